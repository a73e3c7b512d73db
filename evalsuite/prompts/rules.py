"""The prompt rules of the EfficientSAM paper's protocols: the box, k random clicks, and SAM's clicker.

Each is one :class:`~.strategies.PromptStrategy` registered under ``evalsuite.prompts`` in
``pyproject.toml`` (``box``, ``random``, ``sam``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ..data.masks import coordinate_bounds
from ..data.types import Instance
from ..errors import InputError
from ..options import OptionSpec
from .boxes import ann_box, tight_box
from .clicks import random_clicks, sam_click
from .strategies import KIND_BOX, KIND_POINTS, MAX_CLICKS, PromptInput, PromptSet, PromptStrategy

#: where a box prompt comes from (shared by every rule that makes a box)
BOX_SOURCE = OptionSpec(
    choices=("tight", "ann", "tight_inclusive"),
    help="tight: the mask's pixel-edge box [x0, y0, x1 + 1, y1 + 1] (pycocotools' toBbox); ann: the "
    "annotation's bbox as stored (EfficientViT-SAM, EdgeSAM); tight_inclusive: [x0, y0, x1, y1] with the "
    "last pixel's index as the max (SAM-HQ's masks_to_boxes)",
)
#: clicks per instance (the k of a k-click protocol)
CLICKS = OptionSpec(int, minimum=1, maximum=MAX_CLICKS, help="clicks per instance")


def make_boxes(source: str, inp: PromptInput) -> np.ndarray:
    """N×4 xyxy boxes of the instances from ``source`` (see :data:`BOX_SOURCE`)."""
    if source == "ann":
        return np.stack([ann_box(i.bbox) for i in inp.instances])
    boxes = np.stack([tight_box(m) for m in inp.masks])
    if source == "tight_inclusive":
        boxes[:, 2:] -= 1.0
    return boxes


def ann_box_problem(inst: Instance, height: int, width: int) -> str | None:
    """Why an annotation's bbox cannot be a prompt (None: it can): it must have a positive size and lie
    within [-W, 2W] × [-H, 2H] of the image (a box at 3e8 is no prompt any model was trained on)."""
    x0, x1, y0, y1 = coordinate_bounds(height, width)
    x, y, w, h = inst.bbox
    if not (w > 0 and h > 0):
        return "has a non-positive size, so box_source=ann cannot prompt with it"
    if not (x0 <= x and x + w <= x1 and y0 <= y and y + h <= y1):
        return (
            f"reaches far outside the {width}x{height} (WxH) image "
            f"(a prompt box must lie within [{x0:g}, {x1:g}] x [{y0:g}, {y1:g}])"
        )
    return None


class BoxRule(PromptStrategy):
    """The shared part of the rules that take a box from each instance (``box_source``)."""

    def problems(self, instances: Sequence[Instance], height: int, width: int) -> list[str | None]:
        """Per instance, why this rule cannot prompt it (None: it can); the task refuses or skips those."""
        if self.opts.get("box_source") != "ann":
            return [None] * len(instances)
        return [ann_box_problem(inst, height, width) for inst in instances]

    def prompts_empty_masks(self) -> bool:
        return self.opts.get("box_source") == "ann"  # a tight box needs the mask's pixels

    def boxes(self, inp: PromptInput) -> np.ndarray:
        if self.opts["box_source"] == "ann":
            for inst in inp.instances:
                if not (inst.bbox[2] > 0 and inst.bbox[3] > 0):
                    raise InputError(
                        f"{inp.ann_file}: image {inp.image_id}, annotation {inst.ann_id}: "
                        f"bbox {list(inst.bbox)} has a "
                        "non-positive size, so box_source=ann cannot prompt with it",
                        hint="use the default box_source=tight, or fix the annotation",
                    )
        return make_boxes(self.opts["box_source"], inp)


class BoxPrompt(BoxRule):
    """The box of each instance: tight around its decoded mask (the paper), or the annotation's bbox."""

    prompt = "box"
    kinds = frozenset({KIND_BOX})
    options: ClassVar[dict[str, OptionSpec]] = {"box_source": BOX_SOURCE}

    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        return PromptSet(boxes=self.boxes(inp))


def k_random_clicks(inp: PromptInput, k: int, stats: Counter) -> tuple[np.ndarray, np.ndarray]:
    """k distinct random positive clicks per instance (N×k×2 points, N×k labels), seeded from (seed,
    image id, annotation id). An instance with fewer pixels than k uses them all and repeats the last
    (counted as ``clicks_repeated``)."""
    points, labels = [], []
    for inst, mask in zip(inp.instances, inp.masks, strict=True):
        n_pix = int(mask.sum())
        pts, lab = random_clicks(mask, min(k, n_pix), inp.seed, inp.image_id, inst.ann_id)
        if n_pix < k:  # fewer pixels than clicks: use them all, repeating the last to fill k
            stats["clicks_repeated"] += 1
            pts = np.concatenate([pts, np.repeat(pts[-1:], k - n_pix, axis=0)])
            lab = np.concatenate([lab, np.repeat(lab[-1:], k - n_pix)])
        points.append(pts)
        labels.append(lab)
    return np.stack(points), np.stack(labels)


class RandomClicks(PromptStrategy):
    """The EfficientSAM paper's rule: k distinct random positive pixels of the mask, given together.

    Seeded from (seed, image id, annotation id), so clicks do not depend on the model or the run
    layout. An instance with fewer pixels than k uses them all and repeats the last (counted).
    """

    prompt = "clicks"
    rule = "random"
    kinds = frozenset({KIND_POINTS})
    options: ClassVar[dict[str, OptionSpec]] = {"clicks": CLICKS}
    seeded = True
    count_option = "clicks"

    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        points, labels = k_random_clicks(inp, self.opts["clicks"], stats)
        return PromptSet(points=points, labels=labels)


class SamClicks(PromptStrategy):
    """The SAM paper's iterative clicker (RITM style, as EfficientViT-SAM's evaluation).

    Click 1 lands at the interior-most pixel of the object; every later click at the interior-most
    pixel of the larger error region of the previous round's chosen mask (positive for a false
    negative region, negative for a false positive one), all clicks so far given together.
    """

    prompt = "clicks"
    rule = "sam"
    kinds = frozenset({KIND_POINTS})
    options: ClassVar[dict[str, OptionSpec]] = {"clicks": CLICKS}
    adaptive = True
    count_option = "clicks"

    @property
    def rounds(self) -> int:
        return int(self.opts["clicks"])

    def prompts_empty_masks(self) -> bool:
        return True  # nothing to find: a negative click on the first pixel, as the RITM clicker does

    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        n = len(inp.masks)
        empty = PromptSet(points=np.zeros((n, 0, 2)), labels=np.zeros((n, 0), dtype=np.int64))
        return self._extend(inp, empty, None)

    def next(self, inp: PromptInput, previous: PromptSet, predicted: np.ndarray) -> PromptSet:
        return self._extend(inp, previous, predicted)

    @staticmethod
    def _extend(inp: PromptInput, prev: PromptSet, predicted: np.ndarray | None) -> PromptSet:
        assert prev.points is not None and prev.labels is not None
        new = [
            sam_click(inp.masks[i], None if predicted is None else predicted[i], prev.points[i])
            for i in range(len(inp.masks))
        ]
        points = np.concatenate([prev.points, np.array([[xy] for xy, _ in new], dtype=np.float64)], axis=1)
        labels = np.concatenate([prev.labels, np.array([[lab] for _, lab in new], dtype=np.int64)], axis=1)
        return PromptSet(points=points, labels=labels)
