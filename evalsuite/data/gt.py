"""Ground truth of one image: decoded once (in the decode workers), shared by every task run on it."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .masks import decode_segmentation
from .types import Instance, Sample

SKIP_CROWD = "crowd"
SKIP_EMPTY = "empty_mask"


@dataclass
class GroundTruth:
    """The instances of one image kept for scoring, with their decoded masks."""

    instances: list[Instance]
    masks: np.ndarray  # K×H×W bool
    skipped: Counter


SKIP_BAD_ANNOTATION = "bad_annotation"


def area_problem(area: float) -> str | None:
    """Why an annotation's ``area`` cannot bucket it (S/M/L go by this number), or None.

    A missing area (NaN here, see the readers) or a negative one would silently land the instance
    in the small bucket; evalsuite does not guess it from the mask (that would alter the data).
    """
    if math.isnan(area):
        return "no area (the S/M/L size buckets are by the annotation's area)"
    if area < 0:
        return f"area {area:g} is negative (the S/M/L size buckets are by the annotation's area)"
    return None


class MaskCache:
    """Decodes each annotation of an image once, shared by all protocols run on it.

    A malformed annotation is remembered as an error (with the file and ids); it is
    raised when the annotation is needed, or counted as a skip with ``--skip-bad``.
    """

    def __init__(self, sample: Sample, decoded: dict[int, np.ndarray | InputError] | None = None) -> None:
        self.sample = sample
        self._masks: dict[int, np.ndarray | InputError] = dict(decoded or {})

    def _decode(self, inst: Instance) -> np.ndarray | InputError:
        s = self.sample
        where = f"{s.ann_file}: " if s.ann_file else ""
        hint = "fix the annotation, or pass --skip-bad to skip such annotations (counted)"
        if problem := area_problem(inst.area):
            return InputError(f"{where}image {s.image_id}, annotation {inst.ann_id}: {problem}", hint=hint)
        try:
            return decode_segmentation(inst.segmentation, s.height, s.width)
        except Exception as e:  # pycocotools raises bare exceptions on malformed input
            return InputError(
                f"{where}image {s.image_id}, annotation {inst.ann_id}: bad segmentation ({e})", hint=hint
            )

    def decode_all(self) -> dict[int, np.ndarray | InputError]:
        """Every annotation's mask or error (data-loader workers do this ahead of the model)."""
        for inst in self.sample.instances:
            if inst.ann_id not in self._masks:
                self._masks[inst.ann_id] = self._decode(inst)
        return self._masks

    def get(self, inst: Instance) -> np.ndarray:
        if inst.ann_id not in self._masks:
            self._masks[inst.ann_id] = self._decode(inst)
        mask = self._masks[inst.ann_id]
        if isinstance(mask, InputError):
            raise mask
        return mask


def select_instances(cache: MaskCache, include_crowd: bool, skip_bad: bool = False) -> GroundTruth:
    """Instances to score: crowd excluded unless asked for, empty masks dropped; counts by reason."""
    kept: list[Instance] = []
    masks: list[np.ndarray] = []
    skipped: Counter = Counter()
    for inst in cache.sample.instances:
        if inst.iscrowd and not include_crowd:
            skipped[SKIP_CROWD] += 1
            continue
        try:
            mask = cache.get(inst)
        except InputError:
            if not skip_bad:
                raise
            skipped[SKIP_BAD_ANNOTATION] += 1
            continue
        if not mask.any():
            skipped[SKIP_EMPTY] += 1
            continue
        kept.append(inst)
        masks.append(mask)
    h, w = cache.sample.height, cache.sample.width
    stacked = np.stack(masks) if masks else np.zeros((0, h, w), dtype=bool)
    return GroundTruth(kept, stacked, skipped)
