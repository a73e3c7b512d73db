"""Mask IoU at original resolution, vectorised (runs on the masks' device)."""

from __future__ import annotations

import torch

from ..data.masks import box_masks


def mask_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of each pair of masks: ``pred``, ``gt`` are ...×H×W bool; returns float64 of shape ``...``.

    Two empty masks have IoU 0 (the protocols never score an empty ground truth).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {tuple(pred.shape)} vs {tuple(gt.shape)}")
    pred, gt = pred.bool(), gt.bool()
    inter = (pred & gt).flatten(-2).sum(-1, dtype=torch.int64)
    union = (pred | gt).flatten(-2).sum(-1, dtype=torch.int64)
    return torch.where(
        union > 0, inter.double() / union.clamp(min=1).double(), torch.zeros_like(inter, dtype=torch.float64)
    )


def box_iou_of_masks(masks: torch.Tensor, boxes) -> torch.Tensor:
    """IoU of each mask (N×M×H×W) with its prompt box (N×4 xyxy) rasterised by pixel centres: N×M."""
    n, m, h, w = masks.shape
    rect = box_masks(boxes, h, w, masks.device)[:, None].expand(n, m, h, w)
    return mask_iou(masks, rect)
