"""Where a dataset's annotation file and images are: bundled sample or real COCO / LVIS.

The lookup order is explicit and every path tried is reported when nothing is
found, so a user always learns where evalsuite looked and how to fix it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from ..errors import DataNotFoundError, InputError
from .catalog import DEFAULT_FOR_FAMILY, custom_name, is_sample
from .readers import CocoReader, DatasetReader, LvisReader

DATA_ROOT_ENV = "EVALSUITE_DATA"
DEFAULT_DATA_ROOT = Path("datasets/coco")

# Annotation file candidates, relative to the data root, in order.
_ANN_CANDIDATES = {
    "coco": ("annotations/instances_val2017.json", "instances_val2017.json"),
    "lvis": ("annotations/lvis_v1_val.json", "lvis_v1_val.json", "../lvis/lvis_v1_val.json"),
}
_DATASET_NAMES = {family: spec.name for family, spec in DEFAULT_FOR_FAMILY.items()}
_LAYOUT_HINT = {
    "coco": "<root>/annotations/instances_val2017.json and <root>/val2017/*.jpg",
    "lvis": "<root>/annotations/lvis_v1_val.json with <root>/train2017/ and <root>/val2017/ images",
}


def sample_root() -> Path:
    """The bundled sample dataset shipped inside the package (made by ``tools/make_sample.py``)."""
    return Path(str(resources.files("evalsuite.data.sample_data")))


@dataclass(frozen=True)
class DataSource:
    """A resolved dataset: which family, which annotation file, which image root.

    ``name`` is what the file was looked up as; once its SHA-256 is known, :meth:`identified` names it
    by what it is (:mod:`evalsuite.data.catalog`): the official name only for the official file.
    """

    family: str  # "coco" | "lvis"
    name: str  # e.g. "coco-val2017", "sample-coco", "coco-file-1a2b3c4d"
    ann_file: Path
    image_root: Path
    #: the annotation file is the dataset's official one (None: not yet identified)
    official: bool | None = None

    def identified(self, annotation_sha256: str, recorded_official: str | None = None) -> DataSource:
        """This source named by its content: the official dataset's name when the file's SHA-256 is the
        published one or ``recorded_official`` (recorded when `evalsuite download` extracted it from a
        verified archive); the sample keeps its name; any other file gets a name of its own."""
        if is_sample(self.name):
            return replace(self, official=False)
        spec = DEFAULT_FOR_FAMILY[self.family]
        if annotation_sha256 in {spec.sha256, recorded_official} - {None}:
            return replace(self, name=spec.name, official=True)
        return replace(self, name=custom_name(self.family, annotation_sha256), official=False)

    def open(self) -> DatasetReader:
        reader_cls = {"coco": CocoReader, "lvis": LvisReader}[self.family]
        return reader_cls(self.ann_file, self.image_root)


def locate(
    family: str, data: str = "real", data_root: Path | None = None, ann: Path | None = None
) -> DataSource:
    """Resolve the data for a protocol's dataset family.

    ``data="sample"`` uses the bundled sample; otherwise the root is
    ``data_root``, else ``$EVALSUITE_DATA``, else ``./datasets/coco``, and
    ``ann`` (if given) overrides the annotation file.
    """
    if family not in _ANN_CANDIDATES:
        raise InputError(f"unknown dataset family {family!r}")
    if data == "sample":
        if data_root is not None:
            raise InputError("--data sample and --data-root exclude each other")
        root = sample_root()
        ann_file = Path(ann) if ann else root / "annotations" / Path(_ANN_CANDIDATES[family][0]).name
        return DataSource(family, f"sample-{family}", ann_file, root)
    if data != "real":
        raise InputError(f"--data must be 'real' or 'sample', not {data!r}")

    root_given = data_root is not None or os.environ.get(DATA_ROOT_ENV)
    root = Path(data_root or os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT)
    if ann is not None:
        ann_file = Path(ann)
        if not ann_file.is_file():
            raise DataNotFoundError(f"annotation file {ann_file} not found", hint="check the --ann path")
    else:
        tried = [root / c for c in _ANN_CANDIDATES[family]]
        found = [p for p in tried if p.is_file()]
        if not found:
            where = "" if root_given else f" (default root; set --data-root or ${DATA_ROOT_ENV})"
            raise DataNotFoundError(
                f"{family.upper()} annotations not found under {root}{where}; looked for: "
                + ", ".join(str(p) for p in tried),
                hint=f"expected layout {_LAYOUT_HINT[family]}; pass --data-root DIR or --ann FILE, "
                "or try the bundled data with --data sample",
            )
        ann_file = found[0]
    if not root.is_dir():
        raise DataNotFoundError(
            f"image root {root} is not a folder", hint=f"expected layout {_LAYOUT_HINT[family]}"
        )
    return DataSource(family, _DATASET_NAMES[family], ann_file, root)
