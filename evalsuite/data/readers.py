"""The reader interface, and the COCO and LVIS readers built on the official APIs (pycocotools
``COCO``, ``lvis.LVIS``): the modules of the COCO-instances and LVIS formats.

A reader yields :class:`Sample` s — image id, image path, size and annotations —
and knows nothing about prompts, models or metrics. Other formats: :mod:`.sa1b`, :mod:`.folders`;
the format names: :mod:`.formats`.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import urlparse

from lvis import LVIS
from pycocotools.coco import COCO

from ..errors import InputError
from ..options import OptionSpec
from .jsonio import read_json
from .masks import MAX_RUN
from .types import Instance, Sample
from .values import as_float, finite_sum, is_finite_number, is_int, is_int64, short

_REQUIRED = {
    "images": ("id", "height", "width"),
    "annotations": ("id", "image_id", "category_id", "segmentation"),
}


def _check_annotation_fields(ann: dict, path: Path) -> None:
    """Types of the fields evalsuite reads (the official APIs assume them)."""
    where = f"{path}: annotation {ann['id']}"
    for key in ("image_id", "category_id"):
        if not is_int64(ann[key]):
            raise InputError(f"{where}: {key} {short(ann[key])} is not an integer (64-bit)")
    if "iscrowd" in ann and ann["iscrowd"] not in (0, 1):
        raise InputError(f"{where}: iscrowd {short(ann['iscrowd'])} is not 0 or 1")
    if "area" in ann and not is_finite_number(ann["area"]):
        raise InputError(f"{where}: area {short(ann['area'])} is not a finite number")
    if "bbox" in ann:
        box = ann["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(is_finite_number(v) for v in box)):
            raise InputError(f"{where}: bbox {short(box)} is not [x, y, w, h] of finite numbers")
        x, y, w, h = (float(v) for v in box)
        if not (finite_sum(x, w) and finite_sum(y, h)):
            raise InputError(f"{where}: bbox {short(box)}: x + w or y + h is beyond the range of a float")


def _check_layout(data: object, path: Path, image_keys: tuple[str, ...]) -> None:
    """Fail early, naming the file and the first offending entry, on a malformed annotation file.

    The official APIs index whatever they are given: duplicate ids silently overwrite each
    other and a dangling image id crashes deep inside, so these are checked here first.
    """
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with 'images', 'annotations', 'categories'")
    for section in ("images", "annotations", "categories"):
        if not isinstance(data.get(section), list):
            raise InputError(f"{path}: missing or malformed '{section}' list")
        for entry in data[section]:
            if not isinstance(entry, dict):
                raise InputError(
                    f"{path}: an entry of '{section}' is a {type(entry).__name__}, not an object"
                )
    for section, keys in (
        ("images", _REQUIRED["images"] + image_keys),
        ("annotations", _REQUIRED["annotations"]),
    ):
        for entry in data[section]:
            missing = [k for k in keys if k not in entry]
            if missing:
                raise InputError(
                    f"{path}: {section[:-1]} {short(entry.get('id', '?'))} lacks {', '.join(missing)}"
                )
    for section in ("images", "annotations", "categories"):
        seen: set = set()
        for entry in data[section]:
            key = entry.get("id")
            if not is_int64(key):
                raise InputError(f"{path}: {section[:-1]} id {short(key)} is not an integer (64-bit)")
            if key in seen:
                raise InputError(f"{path}: {section[:-1]} id {key} appears twice", hint="ids must be unique")
            seen.add(key)
    for img in data["images"]:
        h, w = img["height"], img["width"]
        if not (is_int(h) and is_int(w) and h > 0 and w > 0):
            raise InputError(
                f"{path}: image {img['id']} has size {short(h)}x{short(w)}; height and width must be positive"
            )
        if h * w > MAX_RUN:
            raise InputError(
                f"{path}: image {img['id']} has size {h}x{w}; height x width must stay below 2^32 "
                "(pycocotools counts mask pixels in 32 bits)"
            )
        for key in image_keys:
            if not isinstance(img[key], str) or not img[key]:
                raise InputError(
                    f"{path}: image {img['id']} has {key} {short(img[key])}; expected a non-empty string"
                )
    images = {img["id"] for img in data["images"]}
    categories = {c["id"] for c in data["categories"]}
    for ann in data["annotations"]:
        _check_annotation_fields(ann, path)
        if ann["image_id"] not in images:
            raise InputError(
                f"{path}: annotation {ann['id']} refers to image {ann['image_id']!r}, which is not listed"
            )
        if ann["category_id"] not in categories:
            raise InputError(
                f"{path}: annotation {ann['id']} has category {ann['category_id']!r}, which is not listed"
            )


def _lvis_marks(data: dict) -> tuple[bool, bool]:
    """(every, any) category with LVIS's ``frequency`` and image with ``neg_category_ids``."""
    cats, images = data.get("categories"), data.get("images")
    if not (isinstance(cats, list) and isinstance(images, list) and cats and images):
        return False, False
    marks = [isinstance(c, dict) and "frequency" in c for c in cats]
    marks += [isinstance(i, dict) and "neg_category_ids" in i for i in images]
    return all(marks), any(marks)


def _check_family(data: object, path: Path, family: str) -> None:
    """A COCO file for an LVIS protocol (or the reverse) is refused: the evaluators would mis-score it.

    A file with some of LVIS's keys is left to the evaluator-key checks, which name the entry."""
    if not isinstance(data, dict):
        return  # the layout check names the problem
    every, some = _lvis_marks(data)
    if family == "lvis" and not some and data.get("categories") and data.get("images"):
        raise InputError(
            f"{path}: not an LVIS annotation file (no category has a 'frequency', no image "
            "'neg_category_ids'), but an LVIS protocol was asked for",
            hint="use the coco-* protocols for a COCO file, or pass an LVIS v1 file",
        )
    if family == "coco" and every:
        raise InputError(
            f"{path}: an LVIS annotation file, but a COCO protocol was asked for",
            hint="use the lvis-* protocols for it, or pass a COCO instances file",
        )


class DatasetReader(ABC):
    """What every format's reader gives: image ids, samples, the annotations' SHA-256, categories."""

    #: the format's name (a dataset's ``format``); ``family`` is its older name
    format: ClassVar[str] = ""
    family: ClassVar[str] = ""
    #: options a dataset may set for this format (thresholds, subsets), with their declarations
    OPTIONS: ClassVar[dict[str, OptionSpec]] = {}
    #: the AP scorer a dataset of this format gets unless it declares another (None: no AP)
    ap_evaluator: ClassVar[str | None] = None
    #: whether :meth:`evaluator_gt` gives an annotation dict the AP scorers read
    ap_ground_truth: ClassVar[bool] = False
    #: the official API object over the parsed file (pycocotools ``COCO`` / ``lvis.LVIS``), where one is
    api: Any

    def __init__(self, ann_file: Path, image_root: Path) -> None:
        self.ann_file = Path(ann_file)
        self.image_root = Path(image_root)
        self._annotation_sha256 = ""
        self.categories: dict[int, dict] = {}

    @classmethod
    def open(cls, ann: Path, root: Path, images: Path, options: Mapping[str, Any]) -> DatasetReader:
        """The reader of a dataset found under ``root``: its annotations, its images folder, its options."""
        return cls(ann, images, **options)

    @property
    def annotation_sha256(self) -> str:
        """SHA-256 of the annotations: the file's bytes, or (per-image formats) a manifest of them."""
        if not self._annotation_sha256:
            self._annotation_sha256 = self._hash_annotations()
        return self._annotation_sha256

    def _hash_annotations(self) -> str:
        return ""

    def evaluator_gt(self) -> dict:
        """The annotation file as the AP scorers read it (COCO-style dict)."""
        raise InputError(
            f"{self.ann_file}: the {self.format} format has no ground truth for the AP evaluators",
            hint="the detector-box (AP) protocols need a COCO- or LVIS-format annotation file",
        )

    def verified_categories(self, image_id: int) -> set[int] | None:
        """Categories known present or absent in the image (LVIS's federated design); None: all of them."""
        return None

    @classmethod
    def referenced_images(cls, ann_file: Path) -> list[PurePosixPath] | None:
        """The images an annotation file names, relative to the images folder (None: not in this format)."""
        return None

    @abstractmethod
    def image_ids(self) -> list[int]:
        """Every image id, sorted (the evaluation order)."""

    @abstractmethod
    def sample(self, image_id: int) -> Sample:
        """The image's path, size and annotations (sorted by annotation id)."""

    def __iter__(self) -> Iterator[Sample]:
        for image_id in self.image_ids():
            yield self.sample(image_id)

    def __len__(self) -> int:
        return len(self.image_ids())

    @staticmethod
    def _instance(ann: dict, crowd_key: bool) -> Instance:
        x, y, w, h = (float(v) for v in ann.get("bbox", (0.0, 0.0, 0.0, 0.0)))
        area = as_float(ann["area"]) if "area" in ann else None
        return Instance(
            ann_id=int(ann["id"]),
            category_id=int(ann["category_id"]),
            area=math.nan if area is None else area,  # missing: refused where it is used (gt.area_problem)
            bbox=(x, y, w, h),
            segmentation=ann["segmentation"],
            iscrowd=bool(ann.get("iscrowd", 0)) if crowd_key else False,
        )


class CocoReader(DatasetReader):
    """COCO instances file; images at ``<image_root>/val2017/<file_name>`` (or ``image_root`` itself)."""

    format = family = "coco"
    ap_evaluator = "COCOeval"
    ap_ground_truth = True

    def __init__(self, ann_file: Path, image_root: Path, image_dir: str = "val2017") -> None:
        super().__init__(ann_file, image_root)
        data, self._annotation_sha256 = read_json(self.ann_file)
        _check_family(data, self.ann_file, "coco")
        _check_layout(data, self.ann_file, ("file_name",))
        self.api = COCO()
        self.api.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.api.createIndex()
        self.categories = dict(self.api.cats)
        self.image_dir = image_dir
        self._ids = sorted(self.api.imgs)

    @classmethod
    def open(cls, ann: Path, root: Path, images: Path, options: Mapping[str, Any]) -> DatasetReader:
        return cls(ann, images, image_dir="", **options)

    def image_ids(self) -> list[int]:
        return self._ids

    def evaluator_gt(self) -> dict:
        return self.api.dataset

    @classmethod
    def referenced_images(cls, ann_file: Path) -> list[PurePosixPath]:
        data, _ = read_json(ann_file)
        images = data.get("images") if isinstance(data, dict) else None
        if not isinstance(images, list):
            raise InputError(f"{ann_file}: no 'images' list; not a COCO annotation file")
        try:
            return sorted({PurePosixPath(img["file_name"]) for img in images})
        except (KeyError, TypeError):
            raise InputError(f"{ann_file}: an image without a file_name") from None

    def image_path(self, image: dict) -> Path:
        return self.image_root / self.image_dir / image["file_name"]

    def sample(self, image_id: int) -> Sample:
        img = self.api.imgs[image_id]
        anns = sorted(self.api.imgToAnns.get(image_id, []), key=lambda a: a["id"])
        return Sample(
            image_id=int(image_id),
            path=self.image_path(img),
            height=int(img["height"]),
            width=int(img["width"]),
            instances=tuple(self._instance(a, crowd_key=True) for a in anns),
            ann_file=self.ann_file,
        )


class PreloadedLVIS(LVIS):
    """``lvis.LVIS`` over an already parsed dict (the file is read once, for its hash too)."""

    def __init__(self, dataset: dict) -> None:
        self._preloaded = dataset
        super().__init__("<preloaded>")

    def _load_json(self, path: str) -> dict:
        return self._preloaded


def lvis_image_relpath(coco_url: str) -> PurePosixPath:
    """``<split>/<file>`` of an LVIS image from its ``coco_url``.

    LVIS v1 val draws images from COCO train2017 *and* val2017; only the URL says which.
    """
    parts = PurePosixPath(urlparse(coco_url).path).parts
    if len(parts) < 2:
        raise ValueError(f"coco_url {coco_url!r} has no '<split>/<file>' path")
    return PurePosixPath(parts[-2], parts[-1])


#: the image folders LVIS v1 draws from (COCO 2017's)
SPLITS = ("train2017", "val2017")
_IMAGE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(?:jpe?g|png)", re.IGNORECASE)


def lvis_image_files(ann_file: Path) -> list[PurePosixPath]:
    """``<split>/<file>`` of every image an LVIS file references (sorted, unique), validated.

    The split and name are all that is taken from ``coco_url``: the download URL is built by
    evalsuite, so an annotation file cannot point the downloader at another host or path.
    """
    data, _ = read_json(ann_file)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise InputError(f"{ann_file}: no 'images' list; not an LVIS annotation file")
    out: set[PurePosixPath] = set()
    for img in images:
        url = img.get("coco_url") if isinstance(img, dict) else None
        ident = img.get("id", "?") if isinstance(img, dict) else "?"
        try:
            rel = lvis_image_relpath(url) if isinstance(url, str) else None
        except ValueError:
            rel = None
        if rel is None or rel.parts[0] not in SPLITS or not _IMAGE_NAME.fullmatch(rel.parts[1]):
            raise InputError(
                f"{ann_file}: image {ident}: coco_url {url!r} does not name a train2017/val2017 image file"
            )
        out.add(rel)
    return sorted(out)


class LvisReader(DatasetReader):
    """LVIS v1 file; images at ``<image_root>/<train2017|val2017>/<file>`` from each ``coco_url``."""

    format = family = "lvis"
    ap_evaluator = "LVISEval"
    ap_ground_truth = True

    def __init__(self, ann_file: Path, image_root: Path) -> None:
        super().__init__(ann_file, image_root)
        data, self._annotation_sha256 = read_json(self.ann_file)
        _check_family(data, self.ann_file, "lvis")
        _check_layout(data, self.ann_file, ("coco_url",))
        self.api = PreloadedLVIS(data)
        self.categories = dict(self.api.cats)
        self._ids = sorted(self.api.imgs)

    @classmethod
    def open(cls, ann: Path, root: Path, images: Path, options: Mapping[str, Any]) -> DatasetReader:
        return cls(ann, root, **options)  # each image's folder comes from its coco_url

    def image_ids(self) -> list[int]:
        return self._ids

    def evaluator_gt(self) -> dict:
        return self.api.dataset

    def verified_categories(self, image_id: int) -> set[int] | None:
        """The categories annotated in the image, and those verified absent (``neg_category_ids``)."""
        img = self.api.imgs[image_id]
        present = {int(a["category_id"]) for a in self.api.img_ann_map.get(image_id, [])}
        return present | set(img.get("neg_category_ids", []))

    @classmethod
    def referenced_images(cls, ann_file: Path) -> list[PurePosixPath]:
        return lvis_image_files(ann_file)

    def image_path(self, image: dict) -> Path:
        try:
            rel = lvis_image_relpath(image["coco_url"])
        except ValueError as e:
            raise InputError(f"{self.ann_file}: image {image['id']}: {e}") from None
        return self.image_root.joinpath(*rel.parts)

    def sample(self, image_id: int) -> Sample:
        img = self.api.imgs[image_id]
        anns = sorted(self.api.img_ann_map.get(image_id, []), key=lambda a: a["id"])
        return Sample(
            image_id=int(image_id),
            path=self.image_path(img),
            height=int(img["height"]),
            width=int(img["width"]),
            instances=tuple(self._instance(a, crowd_key=False) for a in anns),
            ann_file=self.ann_file,
        )
