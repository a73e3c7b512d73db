"""Weightless baselines that need no checkpoint.

``oracle`` returns the ground-truth mask: every protocol must score 100 with it,
which proves the data, prompt and metric pipeline end to end. ``box-fill``
returns the prompt box filled in: a real floor for box protocols.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.masks import box_masks
from ..errors import InputError
from .base import PROMPT_BOX, ModelSpec, Prediction, Runner


def _no_checkpoint(name: str, checkpoint: str | None) -> None:
    if checkpoint is not None:
        raise InputError(f"model {name!r} has no weights; drop --checkpoint")


class OracleRunner(Runner):
    """Returns the ground-truth mask of each prompted instance (score 1)."""

    name = "oracle"
    uses_ground_truth = True

    def __init__(self) -> None:
        self._shape: tuple[int, int] | None = None
        self._targets: np.ndarray | None = None

    def set_image(self, image: np.ndarray) -> None:
        self._shape = image.shape[:2]
        self._targets = None

    def set_targets(self, masks: np.ndarray) -> None:
        self._targets = np.asarray(masks, dtype=bool)

    def predict(
        self, boxes=None, points=None, point_labels=None, multimask=True, mask_input=None
    ) -> Prediction:
        self.refuse_mask_input(mask_input)
        if self._targets is None:
            raise RuntimeError("oracle: set_targets() must be called before predict()")
        n = len(boxes) if boxes is not None else len(points)
        if n != len(self._targets):
            raise RuntimeError(f"oracle: {n} prompts but {len(self._targets)} targets")
        masks = torch.from_numpy(self._targets)[:, None]
        return Prediction(masks=masks, iou_predictions=torch.ones(n, 1))


class BoxFillRunner(Runner):
    """Returns the prompt box, filled, as the mask (box prompts only).

    The masks are made on ``device``, so on a GPU a run costs what the suite itself costs there
    (prompts, IoU, logs) without a network: the benchmark uses it to measure that overhead.
    """

    name = "box-fill"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self._shape: tuple[int, int] | None = None
        self.device = torch.device(device)

    def set_image(self, image: np.ndarray) -> None:
        self._shape = image.shape[:2]

    def predict(
        self, boxes=None, points=None, point_labels=None, multimask=True, mask_input=None
    ) -> Prediction:
        self.refuse_mask_input(mask_input)
        if boxes is None or points is not None:
            raise InputError("model 'box-fill' takes box prompts only")
        if self._shape is None:
            raise RuntimeError("set_image() must be called before predict()")
        h, w = self._shape
        return Prediction(
            masks=box_masks(np.asarray(boxes, float), h, w, self.device)[:, None],
            iou_predictions=torch.ones(len(boxes), 1, device=self.device),
        )


def _build_oracle(checkpoint: str | None = None, device: str = "cpu", **_: object) -> Runner:
    _no_checkpoint("oracle", checkpoint)
    return OracleRunner()


def _build_box_fill(checkpoint: str | None = None, device: str = "cpu", **_: object) -> Runner:
    _no_checkpoint("box-fill", checkpoint)
    return BoxFillRunner(device)


ORACLE = ModelSpec(
    "oracle",
    "ground-truth masks (pipeline check: every protocol scores 100)",
    _build_oracle,
    parameters=0,
    verification="scores 100 on every protocol (pipeline check)",
)
BOX_FILL = ModelSpec(
    "box-fill",
    "the prompt box filled in (a floor for box protocols)",
    _build_box_fill,
    prompt_kinds=frozenset({PROMPT_BOX}),
    parameters=0,
    verification="equals an independent numpy computation (pipeline check)",
)
