"""Which of a model's multimask outputs counts as its answer (a protocol option)."""

from __future__ import annotations

import numpy as np
import torch

from ..metrics.iou import box_iou_of_masks, iou_per_output
from ..models.base import Prediction


def choose_masks(
    pred: Prediction,
    mask_choice: str,
    gt: torch.Tensor | np.ndarray | None = None,
    boxes: np.ndarray | None = None,
) -> torch.Tensor:
    """Index of the chosen output per prompt (N).

    ``score``: argmax of the model's predicted IoU (the papers' "most confident mask");
    ``single``: the model was asked for one output, so index 0; ``oracle``: the output
    closest to the ground truth ``gt`` (N×H×W); ``box_iou``: the output with the highest
    IoU with the prompt box (FastSAM's rule, the EfficientSAM paper's Table 5 wording).
    Ties go to the lowest index. ``single`` and ``score`` never read the full-size masks, so a
    runner that makes them lazily upscales only the chosen output (:meth:`Prediction.select`).
    """
    if mask_choice == "single" or pred.num_outputs == 1:
        return torch.zeros(pred.iou_predictions.shape[0], dtype=torch.long, device=pred.device)
    if mask_choice == "score":
        return pred.iou_predictions.argmax(dim=1)
    if mask_choice == "oracle":
        if gt is None:
            raise ValueError("mask_choice 'oracle' needs the ground truth")
        return iou_per_output(pred.masks, gt).to(pred.device).argmax(dim=1)
    if mask_choice == "box_iou":
        if boxes is None:
            raise ValueError("mask_choice 'box_iou' needs box prompts")
        return box_iou_of_masks(pred.masks, boxes).to(pred.device).argmax(dim=1)
    raise ValueError(f"unknown mask_choice {mask_choice!r}")
