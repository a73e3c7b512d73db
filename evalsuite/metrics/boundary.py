"""Boundary IoU (Cheng et al., CVPR 2021), as SAM-HQ's evaluation computes it: the mBIoU metric.

The boundary of a mask is the band of its pixels within ``d`` of its outside, the image edge counting as
outside; ``d = int(round(dilation_ratio · sqrt(H² + W²)))`` pixels, at least 1, with the image's H, W.
Boundary IoU is the IoU of the two boundaries. This is SAM-HQ's ``train/utils/misc.py``
``mask_to_boundary`` / ``boundary_iou`` (SysCV/sam-hq @ fb181f8, lines 497-537; from Cheng's gist): a
1-pixel zero border (``cv2.copyMakeBorder``), ``cv2.erode`` with a 3×3 ones kernel ``d`` times — a
chessboard erosion of radius ``d``, so a pixel stays iff the (2d+1)² square around it lies in the mask —
then ``boundary = mask − eroded``. Two empty boundaries (two empty masks) give 0, as mask IoU does here
(SAM-HQ divides 0 by 0; evalsuite never scores an empty ground truth, whose boundary alone is empty).

Computed where the masks are: on the CPU with OpenCV on the union box of each pair (every pixel outside
it is 0 in both masks, so the crop, bordered by zeros, erodes exactly as the whole image); on a GPU with
torch min-pooling (separable, on the device).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..options import OptionSpec
from .base import ItemField, MaskBatch
from .miou import IOU_FIELD, SIZE_BUCKETS, MeanOverInstances

DILATION_RATIO = 0.02
_KERNEL = np.ones((3, 3), dtype=np.uint8)


def boundary_width(height: int, width: int, ratio: float = DILATION_RATIO) -> int:
    """``d = int(round(ratio · sqrt(H² + W²)))``, at least 1 (Python's round: halves to even, as SAM-HQ's)."""
    return max(1, round(ratio * math.sqrt(height**2 + width**2)))


def _boundary_cv2(mask: np.ndarray, d: int) -> np.ndarray:
    """``mask − erode(mask)`` of a uint8 0/1 crop that has only zeros beyond its edges."""
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, _KERNEL, iterations=d)[1:-1, 1:-1]
    return mask - eroded


def _union_box(p: np.ndarray, g: np.ndarray) -> tuple[int, int, int, int] | None:
    either = p | g
    rows = np.flatnonzero(either.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(either.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def boundary_iou_host(pred: np.ndarray, gt: np.ndarray, ratio: float = DILATION_RATIO) -> list[float]:
    """Boundary IoU of each pair of N×H×W bool masks (numpy, OpenCV on each pair's union box)."""
    n, h, w = gt.shape
    d = boundary_width(h, w, ratio)
    out = []
    for i in range(n):
        box = _union_box(pred[i], gt[i])
        if box is None:
            out.append(0.0)
            continue
        r0, r1, c0, c1 = box
        bp = _boundary_cv2(pred[i, r0:r1, c0:c1].view(np.uint8), d)
        bg = _boundary_cv2(gt[i, r0:r1, c0:c1].view(np.uint8), d)
        union = np.count_nonzero(bp | bg)
        out.append(np.count_nonzero(bp & bg) / union if union else 0.0)
    return out


def _erode_torch(masks: torch.Tensor, d: int) -> torch.Tensor:
    """Chessboard erosion of radius ``d`` of N×H×W bool masks, outside the image counting as 0."""
    x = F.pad(masks[:, None].to(torch.float16 if masks.is_cuda else torch.float32), (d, d, d, d), value=0.0)
    x = -F.max_pool2d(-x, kernel_size=(1, 2 * d + 1), stride=1)  # min over rows, then columns
    x = -F.max_pool2d(-x, kernel_size=(2 * d + 1, 1), stride=1)
    return x[:, 0] > 0.5


def boundary_iou_torch(pred: torch.Tensor, gt: torch.Tensor, ratio: float = DILATION_RATIO) -> list[float]:
    """Boundary IoU of each pair of N×H×W bool masks on their device (torch min-pooling)."""
    n, h, w = gt.shape
    if n == 0:
        return []
    d = boundary_width(h, w, ratio)
    p, g = pred.bool(), gt.bool()
    bp = p & ~_erode_torch(p, d)
    bg = g & ~_erode_torch(g, d)
    inter = (bp & bg).flatten(1).sum(1, dtype=torch.int64)
    union = (bp | bg).flatten(1).sum(1, dtype=torch.int64)
    iou = torch.where(
        union > 0, inter.double() / union.clamp(min=1).double(), torch.zeros_like(inter).double()
    )
    return iou.tolist()


def _unit_interval(v: Any) -> bool:
    return IOU_FIELD.valid(v)


class BoundaryIoUMetric(MeanOverInstances):
    """mBIoU: mean boundary IoU over instances (Cheng et al. 2021; width 0.02 of the diagonal, as SAM-HQ)."""

    higher_is_better: ClassVar[dict[str, bool]] = dict.fromkeys(
        ("mBIoU", "mBIoU_S", "mBIoU_M", "mBIoU_L"), True
    )
    fields = (ItemField("biou", _unit_interval, "boundary IoU of the chosen mask with the ground truth"),)
    field_name = "biou"
    prefix = "mBIoU"
    options: ClassVar[dict[str, OptionSpec]] = {
        "size_buckets": SIZE_BUCKETS,
        "dilation_ratio": OptionSpec(
            float,
            minimum=0.001,
            maximum=0.5,
            required=False,
            default=DILATION_RATIO,
            help="boundary width as a fraction of the image diagonal (0.02: SAM-HQ's mBIoU; 0.01: the "
            "'strict' setting of the SAM-HQ paper on UVO and LVIS)",
        ),
    }

    def __init__(self, size_buckets: str = "half-open", dilation_ratio: float = DILATION_RATIO) -> None:
        self.dilation_ratio = float(dilation_ratio)
        super().__init__(size_buckets)

    def measure(self, batch: MaskBatch) -> dict[str, list[Any]]:
        if batch.on_host:
            p, g = batch.host()
            return {"biou": boundary_iou_host(p, g, self.dilation_ratio)}
        return {"biou": boundary_iou_torch(batch.pred, batch.gt_on(batch.pred.device), self.dilation_ratio)}
