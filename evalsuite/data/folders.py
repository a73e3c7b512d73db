"""Per-image annotation files beside an images folder: mask PNGs and instance-id PNGs.

Two layouts of the interactive- and high-quality-segmentation benchmarks:

* ``mask-png`` — one object per image, a mask file per image (DIS5K, the HQ-Seg-44K test sets,
  GrabCut, Berkeley). The object is every pixel whose value is above ``threshold`` (SAM-HQ reads
  ``gt > 128``; RITM's GrabCut/Berkeley reader takes > 128 as object and exactly 128 as "ignore",
  which evalsuite counts as background: it has no ignore region), in the first channel (SAM-HQ,
  RITM's GrabCut reader) or the maximum over the colour channels (``channel = "max"``: RITM's DAVIS
  reader). Palette PNGs are read as their colours, as those readers (skimage, OpenCV) read them.
* ``instance-png`` — an instance-id map per image (DAVIS-style palette or grayscale PNGs): every
  non-zero id is an object (``ann_id`` = the id), ``void`` (e.g. 255) belongs to none of them (it
  counts as background: there is no ignore region in evalsuite's IoU); ``merge = true`` makes every
  non-zero, non-void pixel one object, which is how RITM reads its DAVIS copy ("one object per image").

Images are paired with annotation files by file stem. Image ids are the 1-based positions of the
annotation files sorted by name, so they are the same on every machine. The annotations' SHA-256 is
that of a manifest (the format, its options, and every annotation file's name and SHA-256), so
any changed mask, threshold or file makes another dataset identity. Masks reach the engine as
compressed RLE (small to hand from a decode worker), decoded there like COCO's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataNotFoundError, InputError
from ..options import OptionSpec
from .jsonio import sha256_file
from .masks import encode_mask
from .readers import DatasetReader
from .types import Instance, Sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIXES = (".png", ".bmp", ".gif", ".tif", ".tiff", ".jpg", ".jpeg")
#: the one category of these formats (they have no classes)
OBJECT = {1: {"id": 1, "name": "object"}}


def _listing(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Visible files of ``folder`` with one of ``suffixes``, by stem (a stem twice is an error)."""
    if not folder.is_dir():
        raise DataNotFoundError(f"{folder}: not a folder", hint="check --data-root and the dataset's layout")
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in suffixes or not path.is_file():
            continue
        if path.stem in out:
            raise InputError(
                f"{folder}: two files named {path.stem} ({out[path.stem].name}, {path.name})",
                hint="images and annotations are paired by file name: keep one of them",
            )
        out[path.stem] = path
    return out


def manifest_sha256(fmt: str, options: Mapping[str, Any], files: list[Path], root: Path) -> str:
    """SHA-256 of a per-image format's annotations: format, options, each file's name and SHA-256."""
    doc = {
        "format": fmt,
        "options": dict(sorted(options.items())),
        "files": [[f.relative_to(root).as_posix(), sha256_file(f)] for f in files],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def instance_of(ann_id: int, mask: np.ndarray) -> Instance:
    """One object from its mask: area (pixels), tight box (xywh) and compressed RLE."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    bbox = (0.0, 0.0, 0.0, 0.0)
    if len(rows):
        bbox = (float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0]))
    return Instance(ann_id, 1, float(mask.sum()), bbox, encode_mask(mask))


def read_label_image(path: Path, palette_as_ids: bool) -> np.ndarray:
    """A mask or id map as an integer array: H×W (grayscale, palette ids) or H×W×C (colour channels)."""
    try:
        with Image.open(path) as im:
            if im.mode == "P" and palette_as_ids:
                return np.asarray(im)
            if im.mode == "P":
                return np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
            if im.mode in ("I", "F"):
                raise InputError(f"{path}: a {im.mode}-mode image is not a mask (8- or 16-bit expected)")
            if im.mode == "1":
                return np.asarray(im).astype(np.uint8) * 255
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(
            f"{path}: cannot read the mask ({e})", hint="the file is corrupt or not an image"
        ) from None


def _channels(values: np.ndarray, rule: str) -> np.ndarray:
    """H×W from H×W×C: the first channel, or the maximum over the colour channels (alpha left out)."""
    if values.ndim == 2:
        return values
    colour = values[..., : 3 if values.shape[2] >= 3 else 1]
    return colour[..., 0] if rule == "first" else colour.max(axis=2)


class _PerImageReader(DatasetReader):
    """An annotation file per image in ``ann_dir``, the image of the same stem in ``images_dir``."""

    def __init__(self, ann_dir: Path, images_dir: Path, options: Mapping[str, Any]) -> None:
        super().__init__(ann_dir, images_dir)
        self.options = dict(options)
        self.categories = dict(OBJECT)
        self._files = list(_listing(self.ann_file, MASK_SUFFIXES).values())
        images = _listing(self.image_root, IMAGE_SUFFIXES)
        missing = [f.name for f in self._files if f.stem not in images]
        if missing:
            raise DataNotFoundError(
                f"{self.image_root}: no image for {len(missing)} of {len(self._files)} annotation file(s) "
                f"of {self.ann_file} (first: {missing[0]})",
                hint="images and masks are paired by file name; check the dataset's layout",
            )
        self._images = [images[f.stem] for f in self._files]

    def image_ids(self) -> list[int]:
        return list(range(1, len(self._files) + 1))

    def _file(self, image_id: int) -> Path:
        if not 1 <= image_id <= len(self._files):
            raise InputError(f"{self.ann_file}: no image {image_id} (ids are 1 to {len(self._files)})")
        return self._files[image_id - 1]

    def _hash_annotations(self) -> str:
        return manifest_sha256(self.format, self.options, self._files, self.ann_file)

    def _sample(self, image_id: int, values: np.ndarray, instances: list[Instance]) -> Sample:
        return Sample(
            image_id=image_id,
            path=self._images[image_id - 1],
            height=int(values.shape[0]),
            width=int(values.shape[1]),
            instances=tuple(instances),
            ann_file=self._file(image_id),
        )


class MaskFolderReader(_PerImageReader):
    """``mask-png``: one object per image, ``value > threshold`` in the first (or max) channel."""

    format = family = "mask-png"
    OPTIONS: ClassVar[dict[str, OptionSpec]] = {
        "threshold": OptionSpec(int, minimum=0, maximum=65_534, help="object = value > threshold"),
        "channel": OptionSpec(choices=("first", "max"), help="which channel of a colour mask"),
    }

    def __init__(self, ann_dir: Path, images_dir: Path, threshold: int = 128, channel: str = "first") -> None:
        super().__init__(ann_dir, images_dir, {"threshold": threshold, "channel": channel})
        self.threshold, self.channel = threshold, channel

    def sample(self, image_id: int) -> Sample:
        values = _channels(read_label_image(self._file(image_id), palette_as_ids=False), self.channel)
        return self._sample(image_id, values, [instance_of(1, values > self.threshold)])


class InstanceFolderReader(_PerImageReader):
    """``instance-png``: every non-zero id an object (``void`` none), or all of them one (``merge``)."""

    format = family = "instance-png"
    OPTIONS: ClassVar[dict[str, OptionSpec]] = {
        "void": OptionSpec(int, minimum=1, maximum=65_535, help="the id of pixels that belong to no object"),
        "merge": OptionSpec(bool, help="every non-zero, non-void pixel is one object"),
    }

    def __init__(self, ann_dir: Path, images_dir: Path, void: int | None = None, merge: bool = False) -> None:
        options: dict[str, Any] = {"merge": merge} | ({} if void is None else {"void": void})
        super().__init__(ann_dir, images_dir, options)
        self.void, self.merge = void, merge

    def sample(self, image_id: int) -> Sample:
        path = self._file(image_id)
        values = read_label_image(path, palette_as_ids=True)
        if values.ndim == 3:
            if not self.merge:
                raise InputError(
                    f"{path}: a colour image holds no instance ids",
                    hint="save id maps as palette or grayscale PNGs, or set merge = true (one object)",
                )
            values = _channels(values, "max")
        objects = values != 0
        if self.void is not None:
            objects &= values != self.void
        if self.merge:
            return self._sample(image_id, values, [instance_of(1, objects)])
        ids = np.unique(values[objects])
        return self._sample(image_id, values, [instance_of(int(i), values == i) for i in ids])
