"""SA-1B's format: one JSON per image, masks as COCO compressed RLE (``sa-1b``).

Each ``<stem>.json`` holds ``image`` (``file_name``, ``height``, ``width``, ``image_id``) and
``annotations`` (``id``, ``segmentation`` {``size`` [h, w], ``counts``}, ``area``, ``bbox`` xywh,
``point_coords``, ``predicted_iou``, ``stability_score``, ``crop_box``); masks have no classes and
no crowd flag (TensorFlow Datasets' ``segment_anything`` catalogue page documents the layout).

Subsets are options, so they are part of what the data are (and of the annotations' SHA-256):
``first`` keeps the first N JSON files in name order, ``instances_per_image`` keeps at most K
annotations of an image — K drawn without replacement by a generator seeded with the image id,
then in annotation order. (EdgeSAM's own SA-1K subset cannot be rebuilt from its code: it takes
the first 1,000 files in file-system order and draws 64 annotations *with* replacement from torch's
generator; docs/datasets.md says what evalsuite's SA-1B entry does instead.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import DataNotFoundError, InputError
from ..options import OptionSpec
from .folders import OBJECT, manifest_sha256
from .jsonio import read_json
from .masks import rle_problem
from .readers import DatasetReader
from .types import Instance, Sample
from .values import is_finite_number, is_int, short


class Sa1bReader(DatasetReader):
    """SA-1B per-image JSON files in ``ann_dir``; each image at ``images_dir/<image.file_name>``."""

    format = family = "sa-1b"
    OPTIONS: ClassVar[dict[str, OptionSpec]] = {
        "first": OptionSpec(int, minimum=1, help="keep the first N annotation files in name order"),
        "instances_per_image": OptionSpec(int, minimum=1, help="keep at most K annotations per image"),
    }

    def __init__(
        self,
        ann_dir: Path,
        images_dir: Path,
        first: int | None = None,
        instances_per_image: int | None = None,
    ) -> None:
        super().__init__(ann_dir, images_dir)
        if not self.ann_file.is_dir():
            raise DataNotFoundError(f"{self.ann_file}: not a folder", hint="check --data-root and the layout")
        files = sorted(
            p for p in self.ann_file.iterdir() if p.suffix == ".json" and not p.name.startswith(".")
        )
        self._files = files[:first] if first else files
        self.first, self.per_image = first, instances_per_image
        self.options: dict[str, Any] = {
            k: v for k, v in (("first", first), ("instances_per_image", instances_per_image)) if v
        }
        self.categories = dict(OBJECT)

    def image_ids(self) -> list[int]:
        return list(range(1, len(self._files) + 1))

    def _hash_annotations(self) -> str:
        return manifest_sha256(self.format, self.options, self._files, self.ann_file)

    def sample(self, image_id: int) -> Sample:
        if not 1 <= image_id <= len(self._files):
            raise InputError(f"{self.ann_file}: no image {image_id} (ids are 1 to {len(self._files)})")
        path = self._files[image_id - 1]
        data, _ = read_json(path)
        image, anns = _check(data, path)
        height, width = int(image["height"]), int(image["width"])
        name = image.get("file_name") or f"{path.stem}.jpg"
        if not isinstance(name, str) or Path(name).name != name:
            raise InputError(f"{path}: image file_name {short(name)} is not a plain file name")
        instances = [_instance(a, path, height, width) for a in anns]
        if self.per_image and len(instances) > self.per_image:
            keep = np.random.default_rng(image_id).choice(len(instances), self.per_image, replace=False)
            instances = [instances[i] for i in sorted(keep)]
        return Sample(image_id, self.image_root / name, height, width, tuple(instances), ann_file=path)


def _check(data: object, path: Path) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]]:
    if not (isinstance(data, dict) and isinstance(data.get("image"), dict)):
        raise InputError(f"{path}: expected a JSON object with 'image' and 'annotations' (SA-1B format)")
    image, anns = data["image"], data.get("annotations")
    h, w = image.get("height"), image.get("width")
    if not (is_int(h) and is_int(w) and h > 0 and w > 0):
        raise InputError(f"{path}: image size {short(h)}x{short(w)}; height and width must be positive")
    if not (isinstance(anns, list) and all(isinstance(a, dict) for a in anns)):
        raise InputError(f"{path}: missing or malformed 'annotations' list")
    seen: set[int] = set()
    for a in anns:
        if not is_int(a.get("id")) or a["id"] in seen:
            raise InputError(
                f"{path}: annotation id {short(a.get('id'))} is missing, not an integer or twice"
            )
        seen.add(a["id"])
    return image, anns


def _instance(ann: Mapping[str, Any], path: Path, height: int, width: int) -> Instance:
    where = f"{path}: annotation {ann['id']}"
    rle = ann.get("segmentation")
    if problem := rle_problem(rle):
        raise InputError(f"{where}: bad segmentation ({problem})")
    assert isinstance(rle, dict)
    if list(rle["size"]) != [height, width]:
        raise InputError(f"{where}: mask size {rle['size']} differs from the image's [{height}, {width}]")
    area = ann.get("area")
    if area is None:
        area = float(mask_utils.area(rle))
    elif not is_finite_number(area):
        raise InputError(f"{where}: area {short(area)} is not a finite number")
    box = ann.get("bbox", (0, 0, 0, 0))
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(is_finite_number(v) for v in box)):
        raise InputError(f"{where}: bbox {short(box)} is not [x, y, w, h]")
    x, y, bw, bh = (float(v) for v in box)
    return Instance(
        int(ann["id"]), 1, float(area), (x, y, bw, bh), {"size": [height, width], "counts": rle["counts"]}
    )
