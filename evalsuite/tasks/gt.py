"""Ground truth of one image: decoded once, shared by every task run on it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..data.masks import decode_segmentation
from ..data.types import Instance, Sample
from ..errors import InputError

SKIP_CROWD = "crowd"
SKIP_EMPTY = "empty_mask"


@dataclass
class GroundTruth:
    """The instances of one image kept for scoring, with their decoded masks."""

    instances: list[Instance]
    masks: np.ndarray  # K×H×W bool
    skipped: Counter


class MaskCache:
    """Decodes each annotation of an image once, shared by all protocols run on it."""

    def __init__(self, sample: Sample, decoded: dict[int, np.ndarray] | None = None) -> None:
        self.sample = sample
        self._masks: dict[int, np.ndarray] = dict(decoded or {})

    def decode_all(self) -> dict[int, np.ndarray]:
        """Every annotation's mask (data-loader workers do this ahead of the model)."""
        for inst in self.sample.instances:
            self.get(inst)
        return self._masks

    def get(self, inst: Instance) -> np.ndarray:
        if inst.ann_id not in self._masks:
            try:
                self._masks[inst.ann_id] = decode_segmentation(
                    inst.segmentation, self.sample.height, self.sample.width
                )
            except Exception as e:  # pycocotools raises bare exceptions on malformed input
                raise InputError(
                    f"image {self.sample.image_id}, annotation {inst.ann_id}: "
                    f"cannot decode segmentation ({e})",
                    hint="the annotation file is malformed",
                ) from None
        return self._masks[inst.ann_id]


def select_instances(cache: MaskCache, include_crowd: bool) -> GroundTruth:
    """Instances to score: crowd excluded unless asked for, empty masks dropped; counts by reason."""
    kept, masks, skipped = [], [], Counter()
    for inst in cache.sample.instances:
        if inst.iscrowd and not include_crowd:
            skipped[SKIP_CROWD] += 1
            continue
        mask = cache.get(inst)
        if not mask.any():
            skipped[SKIP_EMPTY] += 1
            continue
        kept.append(inst)
        masks.append(mask)
    h, w = cache.sample.height, cache.sample.width
    stacked = np.stack(masks) if masks else np.zeros((0, h, w), dtype=bool)
    return GroundTruth(kept, stacked, skipped)
