"""Ground-truth mask decoding with pycocotools (polygons, compressed and uncompressed RLE)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> dict:
    """One compressed RLE for an annotation's segmentation, as ``COCO.annToRLE`` builds it."""
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
