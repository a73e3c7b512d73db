"""One-click rules at a fixed place: the mask's centre (its deepest pixel) and the box's centre.

``center``: the pixel farthest from the object's outside — the maximum of the exact Euclidean distance
transform of the mask, zero-padded by one pixel so the image edge counts as outside, the first such pixel
in row-major order. The distances are OpenCV's ``cv2.distanceTransform(DIST_L2, DIST_MASK_PRECISE)``
(exact), checked exactly near the maximum (:func:`~.clicks.sam_click_center`): the very click SAM's
clicker (``click_rule=sam``) makes first, so ``center`` with one click and ``sam`` with one click give the
same prompt. EdgeSAM's ``mask-center`` is this rule, computed on the ground truth resized to the model's
1024-pixel input with kornia's approximate distance transform (``edge_sam/utils/common.py``
``get_centroid_from_mask``): a point that may differ by a pixel or so, which this rule does not reproduce.

``box_center``: the centre of the mask's tight box ``[x0, y0, x1, y1]`` (pixel edges, as the box protocols'
prompt), ``((x0 + x1) / 2, (y0 + y1) / 2)`` — the centre EdgeSAM's ``--point-from box-center`` meant; as
written it computes ``((x0 + y0) / 2, (x1 + y1) / 2)`` from its annotation box (``evaluation/eval_mIoU.py``,
lines 316-317), a point that is not the box's centre. The point may fall outside the object (a ring, a
crescent): that is the rule.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

import numpy as np

from ..options import OptionSpec
from .boxes import tight_box
from .clicks import sam_click_center
from .strategies import KIND_POINTS, PromptInput, PromptSet, PromptStrategy

#: these rules place exactly one click
ONE_CLICK = OptionSpec(int, minimum=1, maximum=1, help="clicks per instance (this rule places one)")


def _one_positive(points: list[tuple[float, float]]) -> PromptSet:
    n = len(points)
    return PromptSet(
        points=np.asarray(points, dtype=np.float64).reshape(n, 1, 2), labels=np.ones((n, 1), dtype=np.int64)
    )


class CentreClick(PromptStrategy):
    """One positive click at the mask's deepest pixel (the exact distance-transform maximum; SAM's 1st)."""

    prompt = "clicks"
    rule = "center"
    kinds = frozenset({KIND_POINTS})
    options: ClassVar[dict[str, OptionSpec]] = {"clicks": ONE_CLICK}
    count_option = "clicks"

    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        return _one_positive([sam_click_center(m) for m in inp.masks])


class BoxCentreClick(PromptStrategy):
    """One positive click at the centre of the mask's tight box (EdgeSAM's box-center, as it was meant)."""

    prompt = "clicks"
    rule = "box_center"
    kinds = frozenset({KIND_POINTS})
    options: ClassVar[dict[str, OptionSpec]] = {"clicks": ONE_CLICK}
    count_option = "clicks"

    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        boxes = [tight_box(m) for m in inp.masks]
        return _one_positive([((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0) for b in boxes])
