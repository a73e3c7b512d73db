"""The datasets evalsuite knows by name, and what makes a file *the* official one.

A dataset's name in a run record must say which annotations were scored: only the official
annotations (their SHA-256 declared by the dataset where published, or the value recorded when
``evalsuite download`` extracted them from the official archive) are called by the official name;
any other file given with ``--ann`` or found under ``--data-root`` gets a name of its own, derived
from its content (``<dataset>-file-<sha8>``), so a one-image file is never reported as a published
dataset. A user's dataset that says nothing about official files (no SHA-256, nothing to download)
keeps the name its user gave it. The datasets themselves are declared in their own modules and
found by :mod:`.registry`; this module gives the views of them that identity rules read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from .registry import datasets, state
from .spec import DatasetSpec

#: the bundled sample's dataset names, one per dataset (never the official data)
SAMPLE_PREFIX = "sample-"


@dataclass(frozen=True)
class OfficialDataset:
    """A published evaluation set as the identity rules see it: its recorded name, its dataset (reader
    family) and the annotations' fingerprint."""

    name: str  # what records call the official annotations
    family: str  # the dataset's registered name (the protocols' `dataset`)
    annotation: str  # the key `evalsuite download` records the official annotations' SHA-256 under
    #: SHA-256 of the official annotations where published; None: recorded by `evalsuite download`
    sha256: str | None
    sha256_source: str
    images: int | None
    licence: str
    homepage: str

    @classmethod
    def of(cls, spec: DatasetSpec) -> OfficialDataset:
        return cls(
            spec.recorded_name,
            spec.name,
            spec.annotation_key,
            spec.sha256,
            spec.sha256_source,
            spec.images,
            spec.licence,
            spec.homepage,
        )


class _Views(Mapping[str, OfficialDataset]):
    """A read-only mapping over the registry, rebuilt when the registered datasets change."""

    def __init__(self, key: Callable[[OfficialDataset], str]) -> None:
        self._key = key
        self._state: object = None
        self._data: dict[str, OfficialDataset] = {}

    def _current(self) -> dict[str, OfficialDataset]:
        now = state()
        if now != self._state:
            views = [OfficialDataset.of(s) for s in datasets().values()]
            self._data, self._state = {self._key(v): v for v in views}, now
        return self._data

    def __getitem__(self, key: str) -> OfficialDataset:
        return self._current()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


#: every registered dataset by its official (recorded) name
OFFICIAL: Mapping[str, OfficialDataset] = _Views(lambda v: v.name)
#: every registered dataset by its registered name (the protocols' ``dataset``, records' ``family``)
DEFAULT_FOR_FAMILY: Mapping[str, OfficialDataset] = _Views(lambda v: v.family)


def custom_name(family: str, sha256: str) -> str:
    """The name of annotations that are not the dataset's official ones: its name and content prefix."""
    return f"{family}-file-{sha256[:8]}"


def is_sample(name: str) -> bool:
    return name.startswith(SAMPLE_PREFIX)


def vouches_for_official(spec: DatasetSpec) -> bool:
    """Whether the dataset says which files are official (a SHA-256, files to download, a way to obtain
    them): then only those carry its name. A user's own set that says none of this keeps its name."""
    return bool(spec.sha256 or spec.files or spec.obtain)
