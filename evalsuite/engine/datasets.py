"""Which dataset a run read: the annotation file named by what it is, not by where it was found."""

from __future__ import annotations

from ..data.catalog import DEFAULT_FOR_FAMILY
from ..data.locate import DataSource
from ..fetch import DOWNLOADED, TrustStore
from ..fetch.datasets import datasets_dir


def identify(source: DataSource, annotation_sha256: str) -> DataSource:
    """``source`` with its dataset name and officialness settled (see :meth:`DataSource.identified`).

    The official file is recognised by its published SHA-256, or by the value `evalsuite download`
    recorded when it extracted the file from a verified archive; a file that was merely found in
    place is a custom file, whatever its name or folder.
    """
    spec = DEFAULT_FOR_FAMILY.get(source.family)
    recorded = None
    if spec is not None:
        store = TrustStore(datasets_dir())
        if store.how(spec.annotation) == DOWNLOADED:
            recorded = store.get(spec.annotation)
    return source.identified(annotation_sha256, recorded)
