"""Mask IoU at original resolution, computed where the masks are.

On CUDA the counts are torch reductions on the device (only the K IoUs come back to the host).
On the CPU they are numpy ``count_nonzero`` over C-order bool masks, one mask at a time: a single
thread at memory speed. torch's CPU reductions over K×H×W bool masks split across intra-op threads,
and on a machine shared with other jobs those threads wait for each other (147 ms for 7 masks
under load against 2 ms here: benchmarks/README.md). The IoU is ``inter / union`` in float64 from
exact integer counts either way, so both paths give bit-identical values.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.masks import box_bounds, box_masks


def _host_bool(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A CPU bool tensor or array as a numpy bool array (no copy when it already is one)."""
    arr = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return arr if arr.dtype == np.bool_ else arr.astype(bool)


def _ratio(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """``inter / union`` as float64, 0 where the union is empty (two empty masks)."""
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def iou_counts(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of each pair of K×H×W bool masks (numpy, one mask at a time): float64 (K,)."""
    k = pred.shape[0]
    inter = np.empty(k, dtype=np.int64)
    union = np.empty(k, dtype=np.int64)
    for i in range(k):
        p, g = pred[i], gt[i]
        inter[i] = np.count_nonzero(p & g)
        union[i] = np.count_nonzero(p | g)
    return _ratio(inter, union)


def _torch_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    pred, gt = pred.bool(), gt.bool()
    inter = (pred & gt).flatten(-2).sum(-1, dtype=torch.int64)
    union = (pred | gt).flatten(-2).sum(-1, dtype=torch.int64)
    return torch.where(
        union > 0, inter.double() / union.clamp(min=1).double(), torch.zeros_like(inter, dtype=torch.float64)
    )


def mask_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of each pair of masks: ``pred``, ``gt`` are ...×H×W bool; returns float64 of shape ``...``.

    Two empty masks have IoU 0 (the protocols never score an empty ground truth). Computed on the
    masks' device (see the module docstring).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {tuple(pred.shape)} vs {tuple(gt.shape)}")
    if pred.device.type != "cpu" or gt.device.type != "cpu":
        return _torch_iou(pred, gt.to(pred.device))
    lead = tuple(pred.shape[:-2])
    h, w = pred.shape[-2:]
    p = _host_bool(pred).reshape(-1, h, w)
    g = _host_bool(gt).reshape(-1, h, w)
    return torch.from_numpy(iou_counts(p, g).reshape(lead))


def iou_with_truth(pred: torch.Tensor, gt: np.ndarray | torch.Tensor) -> list[float]:
    """IoU of each chosen mask (N×H×W bool, on any device) with its ground truth (N×H×W bool), as floats.

    On CUDA the ground truth goes to the device and only N numbers come back; on the CPU the masks are
    counted in numpy, with no copy of either side.
    """
    if pred.device.type != "cpu":
        g = gt if isinstance(gt, torch.Tensor) else torch.from_numpy(np.asarray(gt))
        return _torch_iou(pred, g.to(pred.device, non_blocking=True)).tolist()
    if tuple(pred.shape) != tuple(gt.shape):
        raise ValueError(f"mask shapes differ: {tuple(pred.shape)} vs {tuple(gt.shape)}")
    return iou_counts(_host_bool(pred), _host_bool(gt)).tolist()


def iou_per_output(masks: torch.Tensor, gt: torch.Tensor | np.ndarray) -> torch.Tensor:
    """IoU of every output (N×M×H×W) with its prompt's ground truth (N×H×W): N×M float64, on the masks'
    device (the ``oracle`` mask choice)."""
    n, m = masks.shape[:2]
    if masks.device.type != "cpu":
        on_device = gt if isinstance(gt, torch.Tensor) else torch.from_numpy(np.asarray(gt))
        on_device = on_device.to(masks.device)
        return _torch_iou(masks, on_device[:, None].expand_as(masks))
    p = _host_bool(masks)
    g = _host_bool(gt)
    if g.shape != (n, *p.shape[2:]):
        raise ValueError(f"mask shapes differ: {tuple(masks.shape)} vs {tuple(g.shape)}")
    out = np.empty((n, m), dtype=np.float64)
    for j in range(m):
        out[:, j] = iou_counts(p[:, j], g)
    return torch.from_numpy(out)


def box_iou_of_masks(masks: torch.Tensor, boxes) -> torch.Tensor:
    """IoU of each mask (N×M×H×W) with its prompt box (N×4 xyxy) rasterised by pixel centres: N×M.

    On the CPU the box is a rectangle of pixels (:func:`evalsuite.data.masks.box_bounds`), so the
    intersection is a count inside it and the union ``|mask| + |box| - inter``: the same integers as
    the rasterised box gives, without making it.
    """
    n, m, h, w = masks.shape
    if masks.device.type != "cpu":
        rect = box_masks(boxes, h, w, masks.device)[:, None].expand(n, m, h, w)
        return _torch_iou(masks, rect)
    p = _host_bool(masks)
    bounds = box_bounds(boxes, h, w)
    inter = np.zeros((n, m), dtype=np.int64)
    union = np.zeros((n, m), dtype=np.int64)
    for i, (r0, r1, c0, c1) in enumerate(bounds):
        area = (r1 - r0) * (c1 - c0)
        for j in range(m):
            inside = np.count_nonzero(p[i, j, r0:r1, c0:c1]) if area else 0
            inter[i, j] = inside
            union[i, j] = np.count_nonzero(p[i, j]) + area - inside
    return torch.from_numpy(_ratio(inter, union))
