"""Detector outputs in the COCO results format, validated against the dataset on load.

A detection file is a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
(extra keys are ignored). Every entry is checked before any model runs: a bad file fails with
the first offender and the count of each problem, or — with ``--skip-bad`` — the bad entries
are skipped and counted by reason in the run record. Nothing is altered silently.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .jsonio import read_json

# skip reasons, in the order they are checked
MALFORMED = "malformed"
UNKNOWN_IMAGE = "unknown_image_id"
UNKNOWN_CATEGORY = "unknown_category_id"
BAD_SCORE = "non_finite_score"
BAD_BOX = "bad_box"

_EXPLAIN = {
    MALFORMED: "not an object with numeric image_id, category_id, bbox [x, y, w, h] and score",
    UNKNOWN_IMAGE: "its image_id is not in the annotation file",
    UNKNOWN_CATEGORY: "its category_id is not in the annotation file",
    BAD_SCORE: "its score is NaN or infinite",
    BAD_BOX: "its bbox has a non-finite value or a width/height <= 0",
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


def _problem(det: object, image_ids: set[int], category_ids: set[int]) -> str | None:
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
    if not math.isfinite(det["score"]):  # a number: checked above
        return BAD_SCORE
    if not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        return BAD_BOX
    return None


def load_detections(
    path: Path, image_ids: set[int], category_ids: set[int], skip_bad: bool = False
) -> Detections:
    """Read and validate a COCO-results detection file against the dataset's ids."""
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
        reason = _problem(det, image_ids, category_ids)
        if reason is None:
            keep.append(i)
        else:
            problems[reason] += 1
            first.setdefault(reason, (i, det))
    if problems and not skip_bad:
        reason = next(r for r in _EXPLAIN if r in problems)
        index, det = first[reason]
        image = f" (image_id {det.get('image_id')!r})" if isinstance(det, dict) else ""
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
