"""Detector outputs in the COCO results format, validated against the dataset on load.

A detection file is a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
(extra keys are ignored). Every entry is checked before any model runs: a bad file fails with
the first offender and the count of each problem, or — with ``--skip-bad`` — the bad entries
are skipped and counted by reason in the run record. Nothing is altered silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .jsonio import read_json
from .masks import coordinate_bounds
from .values import as_float, finite_sum, short

# skip reasons, in the order they are checked
MALFORMED = "malformed"
UNKNOWN_IMAGE = "unknown_image_id"
UNKNOWN_CATEGORY = "unknown_category_id"
BAD_SCORE = "non_finite_score"
BAD_BOX = "bad_box"
BOX_OUTSIDE = "box_outside_image"

_EXPLAIN = {
    MALFORMED: "not an object with numeric image_id, category_id, bbox [x, y, w, h] and score",
    UNKNOWN_IMAGE: "its image_id is not in the annotation file",
    UNKNOWN_CATEGORY: "its category_id is not in the annotation file",
    BAD_SCORE: "its score is NaN, infinite or beyond the range of a float",
    BAD_BOX: "its bbox has a non-finite value (or x + w, y + h beyond the float range) "
    "or a width/height <= 0",
    BOX_OUTSIDE: "its bbox reaches far outside its image (a prompt box must lie within [-W, 2W] x [-H, 2H] "
    "of a W x H image)",
}


@dataclass
class ImageDetections:
    """The detections of one image, in file order."""

    det_ids: np.ndarray  # int64: index of each detection in the file (a stable id)
    boxes_xywh: np.ndarray  # float64 N×4
    scores: np.ndarray  # float64
    category_ids: np.ndarray  # int64

    def top(self, k: int) -> tuple[ImageDetections, int]:
        """The k highest-scoring detections (ties keep file order) and how many were cut."""
        order = np.argsort(-self.scores, kind="stable")[:k]
        cut = len(self.scores) - len(order)
        return (
            ImageDetections(
                self.det_ids[order], self.boxes_xywh[order], self.scores[order], self.category_ids[order]
            ),
            cut,
        )

    def __len__(self) -> int:
        return len(self.det_ids)


@dataclass
class Detections:
    """A validated detection file."""

    path: Path
    sha256: str
    total: int
    by_image: dict[int, ImageDetections] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)

    def for_image(self, image_id: int) -> ImageDetections:
        return self.by_image.get(image_id) or ImageDetections(
            np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
        )


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Everything:
    """Stands for "any id" when a file is checked without its annotation file."""

    def __contains__(self, _: object) -> bool:
        return True


def check_results_file(data: object, path: Path, expected: int | None = None) -> None:
    """A COCO-results detection list, checked for well-formed entries without the annotation file
    (a downloaded file must pass this before its SHA-256 is trusted). One line on the first problem."""
    if not isinstance(data, list):
        raise InputError(
            f"{path}: not a COCO results list of detections (got a {type(data).__name__})",
            hint="delete the file and download it again",
        )
    anything: Any = _Everything()
    for i, det in enumerate(data):
        if (reason := _problem(det, anything, anything)) is not None:
            raise InputError(
                f"{path}: detection #{i}: {_EXPLAIN[reason]}", hint="delete the file and download it again"
            )
    if expected is not None and len(data) != expected:
        raise InputError(
            f"{path}: {len(data)} detections, the published file has {expected}",
            hint="delete the file and download it again",
        )


def _problem(
    det: object,
    image_ids: Container[int],
    category_ids: Container[int],
    image_sizes: Mapping[int, tuple[int, int]] | None = None,
) -> str | None:
    if not isinstance(det, dict):
        return MALFORMED
    box, score = det.get("bbox"), det.get("score")
    if not (
        _is_number(det.get("image_id"))
        and _is_number(det.get("category_id"))
        and _is_number(score)
        and isinstance(box, list)
        and len(box) == 4
        and all(_is_number(v) for v in box)
    ):
        return MALFORMED
    if det["image_id"] not in image_ids:
        return UNKNOWN_IMAGE
    if det["category_id"] not in category_ids:
        return UNKNOWN_CATEGORY
    if as_float(score) is None:  # NaN, infinite, or an integer too large for a float
        return BAD_SCORE
    xywh = [f for f in (as_float(v) for v in box) if f is not None]
    if len(xywh) != 4:
        return BAD_BOX
    x, y, w, h = xywh
    if not (finite_sum(x, w) and finite_sum(y, h)) or w <= 0 or h <= 0:
        return BAD_BOX
    size = image_sizes.get(det["image_id"]) if image_sizes is not None else None
    if size is not None:
        x0, x1, y0, y1 = coordinate_bounds(*size)
        if not (x0 <= x and x + w <= x1 and y0 <= y and y + h <= y1):
            return BOX_OUTSIDE
    return None


def load_detections(
    path: Path,
    image_ids: set[int],
    category_ids: set[int],
    skip_bad: bool = False,
    image_sizes: Mapping[int, tuple[int, int]] | None = None,
) -> Detections:
    """Read and validate a COCO-results detection file against the dataset's ids.

    With ``image_sizes`` (image id -> (height, width)), a box used as a prompt must lie within
    [-W, 2W] x [-H, 2H] of its image (:func:`evalsuite.data.masks.coordinate_bounds`).
    """
    path = Path(path)
    data, sha = read_json(path)
    if not isinstance(data, list):
        raise InputError(
            f"{path}: expected a JSON list of detections (COCO results format), got a {type(data).__name__}",
            hint='each entry: {"image_id", "category_id", "bbox": [x, y, w, h], "score"}',
        )
    problems: Counter = Counter()
    first: dict[str, tuple[int, object]] = {}
    keep: list[int] = []
    for i, det in enumerate(data):
        reason = _problem(det, image_ids, category_ids, image_sizes)
        if reason is None:
            keep.append(i)
        else:
            problems[reason] += 1
            first.setdefault(reason, (i, det))
    if problems and not skip_bad:
        reason = next(r for r in _EXPLAIN if r in problems)
        index, det = first[reason]
        image = f" (image_id {short(det.get('image_id'))})" if isinstance(det, dict) else ""
        others = sum(problems.values()) - 1
        more = f"; {others} more bad detection(s): " + ", ".join(f"{r} {n}" for r, n in problems.items())
        raise InputError(
            f"{path}: detection #{index}{image}: {_EXPLAIN[reason]}" + (more if others else ""),
            hint="fix the file, or pass --skip-bad to skip bad detections (they are counted in the record)",
        )
    dets = Detections(path=path, sha256=sha, total=len(data), skipped=problems)
    if not keep:
        return dets
    ids = np.asarray(keep, dtype=np.int64)
    img = np.asarray([data[i]["image_id"] for i in keep], dtype=np.int64)
    cats = np.asarray([data[i]["category_id"] for i in keep], dtype=np.int64)
    boxes = np.asarray([data[i]["bbox"] for i in keep], dtype=np.float64)
    scores = np.asarray([data[i]["score"] for i in keep], dtype=np.float64)
    order = np.argsort(img, kind="stable")
    splits = np.flatnonzero(np.diff(img[order])) + 1
    for chunk in np.split(order, splits):
        dets.by_image[int(img[chunk[0]])] = ImageDetections(
            ids[chunk], boxes[chunk], scores[chunk], cats[chunk]
        )
    return dets
