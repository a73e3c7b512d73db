"""The annotation formats evalsuite reads, by the name a dataset declares as its ``format``.

One reader class per format (:class:`~.readers.DatasetReader`): COCO instances JSON and LVIS
(:mod:`.readers`), SA-1B per-image JSON (:mod:`.sa1b`), folders of mask PNGs and of instance-id
PNGs (:mod:`.folders`). Each yields the same :class:`~.types.Sample` s, so the engine, its decode
workers and every task read any of them alike.
"""

from __future__ import annotations

from ..errors import InputError, did_you_mean
from .folders import InstanceFolderReader, MaskFolderReader
from .readers import CocoReader, DatasetReader, LvisReader
from .sa1b import Sa1bReader

READERS: dict[str, type[DatasetReader]] = {
    cls.format: cls for cls in (CocoReader, LvisReader, Sa1bReader, MaskFolderReader, InstanceFolderReader)
}


def reader_class(fmt: str, where: str = "") -> type[DatasetReader]:
    """The reader class of format ``fmt``; one line naming the known formats otherwise."""
    if fmt not in READERS:
        prefix = f"{where}: " if where else ""
        raise InputError(
            f"{prefix}unknown format {fmt!r}.{did_you_mean(str(fmt), list(READERS))}",
            hint="formats: " + ", ".join(READERS),
        )
    return READERS[fmt]
