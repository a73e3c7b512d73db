"""Ground-truth mask decoding with pycocotools (polygons, compressed and uncompressed RLE)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def segmentation_problem(segmentation: Any, height: int, width: int) -> str | None:
    """Why pycocotools would mis-decode this segmentation, or None if it is well formed.

    pycocotools does not check its input: an odd-length polygon or RLE counts that do
    not add up to the image size decode to silently wrong masks, so they are refused here.
    """
    if isinstance(segmentation, list):
        if not segmentation:
            return "empty polygon list"
        for k, poly in enumerate(segmentation):
            if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
                return f"polygon {k} is not a list of finite numbers"
            if len(poly) < 6 or len(poly) % 2:
                return f"polygon {k} has {len(poly)} coordinates (needs an even number, at least 3 points)"
        return None
    if isinstance(segmentation, dict):
        counts, size = segmentation.get("counts"), segmentation.get("size")
        if counts is None or size is None:
            return "RLE without 'counts' and 'size'"
        if list(size) != [height, width]:
            return f"RLE size {list(size)} differs from the image size [{height}, {width}]"
        if isinstance(counts, list):
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                return "RLE counts are not non-negative integers"
            if sum(counts) != height * width:
                return f"RLE counts add up to {sum(counts)}, not height*width = {height * width}"
            return None
        if isinstance(counts, (str, bytes)):
            return None if counts else "empty compressed RLE counts"
        return f"RLE counts of type {type(counts).__name__}"
    return f"segmentation of type {type(segmentation).__name__} (expected polygons or RLE)"


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> dict:
    """One compressed RLE for an annotation's segmentation, as ``COCO.annToRLE`` builds it.

    Raises ValueError for a malformed segmentation (see :func:`segmentation_problem`).
    """
    if problem := segmentation_problem(segmentation, height, width):
        raise ValueError(problem)
    if isinstance(segmentation, list):  # polygons: one RLE per part, merged
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, height, width)  # uncompressed RLE
    if isinstance(segmentation, dict):
        return segmentation  # compressed RLE
    raise ValueError(f"unsupported segmentation type {type(segmentation).__name__}")


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """H×W bool mask of an annotation's segmentation at the image's original size."""
    return mask_utils.decode(segmentation_to_rle(segmentation, height, width)).astype(bool)


def encode_mask(mask: np.ndarray) -> dict:
    """Compressed RLE of a bool mask, with ``counts`` as str (JSON-ready, COCO results format)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def box_masks(boxes: np.ndarray, height: int, width: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """N×H×W bool masks of the pixels whose centres lie inside each xyxy box (on ``device``).

    Pixel (r, c) has centre (c + 0.5, r + 0.5); for the integer pixel-edge boxes
    of the box protocols this is exactly the box's pixels.
    """
    b = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4).to(device)
    xs = torch.arange(width, dtype=torch.float64, device=device) + 0.5
    ys = torch.arange(height, dtype=torch.float64, device=device) + 0.5
    inx = (xs[None] >= b[:, 0:1]) & (xs[None] < b[:, 2:3])
    iny = (ys[None] >= b[:, 1:2]) & (ys[None] < b[:, 3:4])
    return iny[:, :, None] & inx[:, None, :]
