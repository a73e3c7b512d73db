"""Box prompts.

Boxes are float64 ``[xmin, ymin, xmax, ymax]`` in pixel-edge coordinates of the
original image: a mask whose pixels span columns ``c0..c1`` and rows ``r0..r1``
has the box ``[c0, r0, c1 + 1, r1 + 1]``. This is exactly what
``pycocotools.mask.toBbox`` reports (as xywh), so a box taken from a mask and the
box stored in a COCO annotation speak the same language.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["ann_box", "tight_box", "xywh_to_xyxy", "xyxy_to_xywh"]


def _as_boxes(boxes: ArrayLike, name: str) -> np.ndarray:
    """float64 copy of ``boxes`` whose last axis has length 4 (one box or a stack of boxes)."""
    arr = np.array(boxes, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"{name}: expected boxes with a last axis of length 4, got shape {arr.shape}")
    return arr


def xywh_to_xyxy(boxes: ArrayLike) -> np.ndarray:
    """``[x, y, w, h]`` → ``[x, y, x + w, y + h]`` (float64; works on one box or an ``(..., 4)`` stack)."""
    out = _as_boxes(boxes, "xywh_to_xyxy")
    out[..., 2:] += out[..., :2]
    return out


def xyxy_to_xywh(boxes: ArrayLike) -> np.ndarray:
    """``[x0, y0, x1, y1]`` → ``[x0, y0, x1 - x0, y1 - y0]`` (float64; one box or an ``(..., 4)`` stack)."""
    out = _as_boxes(boxes, "xyxy_to_xywh")
    out[..., 2:] -= out[..., :2]
    return out


def tight_box(mask: ArrayLike) -> np.ndarray:
    """Tightest pixel-edge box around a mask, float64 ``[xmin, ymin, xmax + 1, ymax + 1]``.

    Matches ``pycocotools.mask.toBbox`` converted to xyxy, so the box prompt made
    from a decoded mask equals the one COCO itself would report for it.
    Raises ValueError for an empty mask, which has no box.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"tight_box: expected a 2-D mask, got shape {m.shape}")
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        raise ValueError("tight_box: the mask is empty, so it has no bounding box")
    cols = np.flatnonzero(m.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def ann_box(bbox_xywh: ArrayLike) -> np.ndarray:
    """float64 xyxy box from a COCO annotation's ``bbox`` field ``[x, y, w, h]`` (used as stored)."""
    arr = np.asarray(bbox_xywh, dtype=np.float64)
    if arr.shape != (4,):
        raise ValueError(f"ann_box: expected a bbox [x, y, w, h], got shape {arr.shape}")
    return xywh_to_xyxy(arr)
