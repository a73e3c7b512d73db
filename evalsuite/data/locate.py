"""Where a dataset's annotations and images are: the bundled sample, or under a data root.

The lookup order is explicit and every path tried is reported when nothing is found, so a user
always learns where evalsuite looked and how to fix it. The places are the dataset's declared
layouts (:class:`~.spec.Layout`), tried in order under the root: ``--data-root``, else the root a
user's dataset declares, else ``$EVALSUITE_DATA``, else the dataset's default root
(``./datasets/<name>``; COCO and LVIS share ``./datasets/coco``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from ..errors import DataNotFoundError, InputError
from .catalog import custom_name, is_sample, vouches_for_official
from .formats import reader_class
from .readers import DatasetReader
from .registry import datasets, get_dataset
from .spec import DatasetSpec, Layout

DATA_ROOT_ENV = "EVALSUITE_DATA"


def sample_root() -> Path:
    """The bundled sample dataset shipped inside the package (made by ``tools/make_sample.py``)."""
    return Path(str(resources.files("evalsuite.data.sample_data")))


def default_root(spec: DatasetSpec | None = None) -> Path:
    """The data root a run reads when none is given: a dataset's own absolute root (a user's TOML
    ``root``), else $EVALSUITE_DATA, else the dataset's relative default (``datasets/<name>``)."""
    own = Path(spec.root) if spec is not None else Path("datasets")
    env = os.environ.get(DATA_ROOT_ENV)
    return own if own.is_absolute() or not env else Path(env)


@dataclass(frozen=True)
class DataSource:
    """A resolved dataset: which dataset, which annotations, which image root.

    ``name`` is what the data were looked up as; once the annotations' SHA-256 is known,
    :meth:`identified` names them by what they are (:mod:`evalsuite.data.catalog`): the official
    name only for the official annotations.
    """

    family: str  # the dataset's registered name (what protocols name as their `dataset`)
    name: str  # e.g. "coco-val2017", "sample-coco", "coco-file-1a2b3c4d"
    ann_file: Path  # the annotation file, or folder of per-image annotation files
    image_root: Path  # the data root
    #: the annotations are the dataset's official ones (None: not yet identified)
    official: bool | None = None
    images: Path | None = None  # the images folder (None: the data root)
    #: the annotations were given by the user (--ann), not found where the dataset keeps them
    given: bool = False

    @property
    def spec(self) -> DatasetSpec:
        return get_dataset(self.family)

    def identified(self, annotation_sha256: str, recorded_official: str | None = None) -> DataSource:
        """This source named by its content: the official dataset's name when the SHA-256 is the published
        one or ``recorded_official`` (recorded when `evalsuite download` extracted it from a verified
        archive); the sample keeps its name; any other file gets a name of its own — except the data a
        user's own dataset declares (it names no official files), which keep the dataset's name."""
        if is_sample(self.name):
            return replace(self, official=False)
        spec = self.spec
        if annotation_sha256 in {spec.sha256, recorded_official} - {None}:
            return replace(self, name=spec.recorded_name, official=True)
        if self.given or vouches_for_official(spec):
            return replace(self, name=custom_name(self.family, annotation_sha256), official=False)
        return replace(self, name=spec.recorded_name, official=False)

    def open(self) -> DatasetReader:
        spec = self.spec
        cls = reader_class(spec.format, f"dataset {spec.name}")
        return cls.open(self.ann_file, self.image_root, self.images or self.image_root, spec.format_options)


def _hint(spec: DatasetSpec) -> str:
    return " or ".join(f"<root>/{lay.annotations} (images: <root>/{lay.images})" for lay in spec.layouts)


def locate(
    family: str, data: str = "real", data_root: Path | None = None, ann: Path | None = None
) -> DataSource:
    """Resolve the data of the dataset ``family`` (its registered name).

    ``data="sample"`` uses the bundled sample; otherwise the root is ``data_root``, else
    ``$EVALSUITE_DATA``, else the dataset's default root, and ``ann`` (if given) replaces the
    annotations the layout names.
    """
    spec = get_dataset(family)
    if data == "sample":
        if data_root is not None:
            raise InputError("--data sample and --data-root exclude each other")
        if spec.sample is None:
            raise InputError(
                f"dataset {spec.name} has no bundled sample",
                hint="the bundled sample covers: "
                + ", ".join(n for n, s in _with_samples().items())
                + "; pass --data-root DIR for this one",
            )
        root = sample_root()
        ann_file = Path(ann) if ann else root / spec.sample.annotations
        return DataSource(spec.name, f"sample-{spec.name}", ann_file, root, images=root / spec.sample.images)
    if data != "real":
        raise InputError(f"--data must be 'real' or 'sample', not {data!r}")

    root_given = data_root is not None or os.environ.get(DATA_ROOT_ENV) or Path(spec.root).is_absolute()
    root = Path(data_root) if data_root is not None else default_root(spec)
    layout: Layout | None
    if ann is not None:
        ann_file = Path(ann)
        if not ann_file.exists():
            raise DataNotFoundError(f"annotation file {ann_file} not found", hint="check the --ann path")
        layout = next((lay for lay in spec.layouts if (root / lay.images).is_dir()), None) or spec.layouts[0]
    else:
        tried = [(root / lay.annotations, lay) for lay in spec.layouts]
        layout = next((lay for path, lay in tried if path.exists()), None)
        if layout is None:
            where = "" if root_given else f" (default root; set --data-root or ${DATA_ROOT_ENV})"
            raise DataNotFoundError(
                f"{spec.title} annotations not found under {root}{where}; looked for: "
                + ", ".join(str(p) for p, _ in tried),
                hint=f"expected layout {_hint(spec)}; pass --data-root DIR or --ann FILE, "
                "or try the bundled data with --data sample"
                + (f"; to get it: {spec.obtain}" if spec.obtain else ""),
            )
        ann_file = root / layout.annotations
    if not root.is_dir():
        raise DataNotFoundError(f"image root {root} is not a folder", hint=f"expected layout {_hint(spec)}")
    return DataSource(
        spec.name, spec.recorded_name, ann_file, root, images=root / layout.images, given=ann is not None
    )


def _with_samples() -> dict[str, DatasetSpec]:
    return {n: s for n, s in datasets().items() if s.sample is not None}
