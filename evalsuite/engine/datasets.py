"""Which dataset a run read: the annotations named by what they are, not by where they were found."""

from __future__ import annotations

from ..data.locate import DataSource
from ..data.registry import find_dataset
from ..fetch import DOWNLOADED, TrustStore
from ..fetch.datasets import datasets_dir


def identify(source: DataSource, annotation_sha256: str) -> DataSource:
    """``source`` with its dataset name and officialness settled (see :meth:`DataSource.identified`).

    The official annotations are recognised by the SHA-256 their dataset declares, or by the value
    `evalsuite download` recorded when it extracted them from the official archive; annotations that
    were merely found in place are a custom file, whatever their name or folder.
    """
    spec = find_dataset(source.family)
    recorded = None
    if spec is not None:
        store = TrustStore(datasets_dir())
        if store.how(spec.annotation_key) == DOWNLOADED:
            recorded = store.get(spec.annotation_key)
    return source.identified(annotation_sha256, recorded)
