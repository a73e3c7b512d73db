"""What a dataset declares: one :class:`DatasetSpec` per dataset, plain data.

A dataset module (``evalsuite/datasets/*.py``, a plugin's module, or a user's TOML file) fills one
in; the registry (:mod:`.registry`) finds it, :mod:`.locate` reads its layout, the fetch room its
files, ``doctor`` and ``evalsuite ls datasets`` everything. Nothing else in evalsuite knows a
dataset by name: what differs between datasets is a field here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: dataset names become protocol-name prefixes and folder names (as model names do; no '@')
VALID_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Layout:
    """Where a dataset's annotations and images lie under a data root (paths relative to it).

    ``annotations`` is a file for the JSON formats (COCO, LVIS) and a folder for the per-image ones
    (SA-1B JSONs, mask PNGs); ``images`` is the images folder ("" = the root itself).
    """

    annotations: str
    images: str = ""


@dataclass(frozen=True)
class DataFile:
    """A published file of a dataset (an archive, or a detection file): where it is fetched from and
    what it must be. ``extracts`` are ``(member, dest)`` pairs: a member ending in '/' is a folder."""

    name: str  # catalogue key, unique across datasets ("coco-val2017-images"; for detections: the protocol)
    filename: str
    url: str
    sha256: str | None = None  # published value; None: recorded at the first download
    sha256_source: str = ""
    size: int | None = None  # bytes, where published
    md5: str | None = None  # published MD5 (documentation; SHA-256 is what is checked)
    files: int | None = None  # file members in the archive, where known
    official_url: str = ""  # as the dataset's site links it (may be http: documentation only)
    extracts: tuple[tuple[str, str], ...] = ()
    detector: str = ""  # detection files: the detector that made them
    detections: int | None = None  # detection files: entries, where known


@dataclass(frozen=True)
class DatasetSpec:
    """Everything evalsuite knows about one dataset.

    ``name`` is what users type and what protocols are named after (``<name>-box``); run records
    keep it as ``dataset.family``. ``official_name`` (default: ``name``) is what a record calls the
    data when the annotation file is the published one — its SHA-256 is ``sha256`` or was recorded
    by ``evalsuite download`` — and any other file gets a name of its own (:mod:`.catalog`).
    """

    name: str
    title: str  # for people: "COCO val2017"
    format: str  # the reader (:mod:`.formats`): "coco", "lvis", "sa-1b", "mask-png", "instance-png"
    summary: str = ""
    official_name: str = ""
    #: where the data lie under a root, tried in order (the first whose annotations exist wins)
    layouts: tuple[Layout, ...] = ()
    #: the reader's options (thresholds, subsets): part of what the data are
    format_options: Mapping[str, Any] = field(default_factory=dict)
    #: SHA-256 of the official annotation file (JSON formats) or annotation manifest (folder formats,
    #: :attr:`~.readers.DatasetReader.annotation_sha256`); None: recorded by `evalsuite download`
    sha256: str | None = None
    sha256_source: str = ""
    #: the key `evalsuite download` records the official annotations' SHA-256 under (default: derived)
    annotation: str = ""
    #: archives `evalsuite download NAME` fetches and extracts into the data root
    files: tuple[DataFile, ...] = ()
    #: archives of the images, fetched only with ``--images archives`` (where images can also come one
    #: by one from ``image_base_url``, the https origin the format's referenced image paths live under)
    image_archives: tuple[DataFile, ...] = ()
    image_base_url: str = ""
    #: how to obtain the data where nothing can be fetched automatically (a licence to accept)
    obtain: str = ""
    licence: str = ""
    homepage: str = ""
    images: int | None = None  # images in the official set
    #: protocol templates (``protocols/templates/*.toml``): ``box`` makes ``<name>-box``, and so on
    protocols: tuple[str, ...] = ()
    #: the metrics of its mIoU protocols (default: the template's)
    metrics: tuple[str, ...] = ()
    #: the AP scorer of its detector-box protocols: "COCOeval" | "LVISEval" (None: no AP protocols)
    ap_evaluator: str | None = None
    #: published detection files, ``name`` = the detector-box protocol they prompt
    detections: tuple[DataFile, ...] = ()
    #: the bundled sample (inside the package's sample data), where there is one
    sample: Layout | None = None
    #: the data root when neither --data-root nor $EVALSUITE_DATA is given (default: datasets/<name>)
    default_root: str = ""
    #: what evalsuite does differently from the source's own evaluation code (docs, `ls datasets`)
    notes: str = ""
    #: where the declaration came from: "builtin", a plugin's package, a TOML file, "python"
    origin: str = ""

    @property
    def recorded_name(self) -> str:
        """The dataset name a run record carries for the official files."""
        return self.official_name or self.name

    @property
    def annotation_key(self) -> str:
        """Under which name `evalsuite download` records the official annotations' SHA-256."""
        if self.annotation:
            return self.annotation
        if self.layouts and "." in self.layouts[0].annotations.rsplit("/", 1)[-1]:
            return self.layouts[0].annotations.rsplit("/", 1)[-1]
        return f"{self.name}.annotations"

    @property
    def root(self) -> str:
        return self.default_root or f"datasets/{self.name}"

    @property
    def all_files(self) -> tuple[DataFile, ...]:
        return self.files + self.image_archives
