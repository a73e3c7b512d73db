"""Turn any segmentation callable into a runner: the shortest way to plug a model in.

    def segment(image, boxes=None, points=None, point_labels=None):  # -> N×H×W bool (numpy or torch)
        ...

    runner = CallableRunner(segment, name="my-model")

``segment`` is called once per batch of prompts with the original-size RGB image; its masks
are taken as the model's single output with predicted IoU 1 (there is nothing to choose from).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..errors import InputError
from .base import PROMPT_BOX, PROMPT_POINTS, Prediction, Runner

SegmentFn = Callable[..., object]


class CallableRunner(Runner):
    """A runner around ``segment(image, boxes=None, points=None, point_labels=None) -> N×H×W masks``."""

    def __init__(self, segment: SegmentFn, name: str, prompt_kinds=(PROMPT_BOX, PROMPT_POINTS)) -> None:
        self.segment = segment
        self.name = name
        self.prompt_kinds = frozenset(prompt_kinds)
        self._image: np.ndarray | None = None

    def set_image(self, image: np.ndarray) -> None:
        self._image = image

    def predict(self, boxes=None, points=None, point_labels=None, multimask=True) -> Prediction:
        if self._image is None:
            raise RuntimeError("set_image() must be called before predict()")
        n = len(boxes) if boxes is not None else len(points)
        masks = torch.as_tensor(
            np.asarray(self.segment(self._image, boxes=boxes, points=points, point_labels=point_labels))
        )
        h, w = self._image.shape[:2]
        if masks.shape != (n, h, w):
            raise InputError(
                f"model {self.name!r} returned masks of shape {tuple(masks.shape)}, expected {(n, h, w)}"
            )
        return Prediction(masks=masks.bool()[:, None], iou_predictions=torch.ones(n, 1))
