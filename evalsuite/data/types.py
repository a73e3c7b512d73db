"""Plain data records shared by readers, prompts and evaluators."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Instance:
    """One ground-truth annotation, as stored in the annotation file.

    ``segmentation`` is kept in its original form (polygons, compressed or
    uncompressed RLE); it is decoded on demand with pycocotools.
    """

    ann_id: int
    category_id: int
    area: float  # the annotation's `area`; NaN when the file has none (see gt.area_problem)
    bbox: tuple[float, float, float, float]  # xywh, as in the file
    segmentation: Any
    iscrowd: bool = False


@dataclass(frozen=True)
class Sample:
    """One image with its annotations."""

    image_id: int
    path: Path
    height: int
    width: int
    instances: tuple[Instance, ...] = field(default_factory=tuple)
    ann_file: Path | None = None  # the annotation file it comes from (for error messages)
