"""Turn any segmentation callable into a runner: the shortest way to plug a model in.

    def segment(image, boxes=None, points=None, point_labels=None):
        ...  # -> N×H×W bool masks, or (masks, scores)

    runner = CallableRunner(segment, name="my-model")

``segment`` is called once per batch of prompts with the original-size RGB image, either with
keywords (when it has a ``boxes`` or ``points`` parameter, or ``**kwargs``) or positionally as
``segment(image, prompts, labels)`` where ``prompts`` is N×4 boxes or N×P×2 points and
``labels`` is None for boxes. It returns N×H×W masks (one output per prompt, predicted IoU 1:
there is nothing to choose from), or ``(masks, scores)`` with N×M×H×W masks and N×M scores
(the protocols then pick an output per prompt by score, as for the built-in models).

Masks are boolean, or integers that are all 0 or 1: anything else (logits, probabilities) is refused
with one line, never silently turned into "every non-zero pixel is foreground". A model that returns
logits or probabilities says where to cut them with ``threshold`` (foreground = value > threshold).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

import numpy as np
import torch

from ..errors import InputError
from .base import BOTH_PROMPTS, ModelSpec, Prediction, Runner, binary_masks

SegmentFn = Callable[..., object]


def _takes_keywords(fn: SegmentFn) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return True
    return "boxes" in params or "points" in params


def _tensor(x: object, model: str, what: str) -> torch.Tensor:
    """A model's output as a tensor; anything that is no numeric array is one line naming the model."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise TypeError(a.dtype)
        return torch.as_tensor(a)
    except (TypeError, ValueError, OverflowError):
        raise InputError(
            f"model {model!r} returned {type(x).__name__} as {what}, not an array of numbers "
            "(expected N×H×W masks, or (masks, scores))"
        ) from None


class CallableRunner(Runner):
    """A runner around ``segment(image, ...) -> masks[, scores]`` (see the module docstring)."""

    def __init__(
        self,
        segment: SegmentFn,
        name: str = "",
        prompt_kinds: Iterable[str] = BOTH_PROMPTS,
        threshold: float | None = None,
    ) -> None:
        if not callable(segment):
            raise InputError(f"expected a callable segmenter, got {type(segment).__name__}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise InputError(f"threshold must be a number, got {threshold!r}")
        self.segment = segment
        self.threshold = threshold
        self.name = name or getattr(segment, "__name__", "") or type(segment).__name__
        self.spec = ModelSpec(
            self.name,
            inspect.getdoc(segment) or "",
            build=lambda **_: self,
            prompt_kinds=frozenset(prompt_kinds),
        )
        self._keywords = _takes_keywords(segment)
        self._image: np.ndarray | None = None

    def set_image(self, image: np.ndarray) -> None:
        self._image = image

    def predict(
        self, boxes=None, points=None, point_labels=None, multimask=True, mask_input=None
    ) -> Prediction:
        self.refuse_mask_input(mask_input)
        if self._image is None:
            raise RuntimeError("set_image() must be called before predict()")
        n = len(boxes) if boxes is not None else len(points)
        if self._keywords:
            out = self.segment(self._image, boxes=boxes, points=points, point_labels=point_labels)
        else:
            out = self.segment(self._image, boxes if boxes is not None else points, point_labels)
        if isinstance(out, tuple) and len(out) != 2:
            raise InputError(
                f"model {self.name!r} returned a tuple of {len(out)}; expected masks or (masks, scores)"
            )
        masks_raw, scores_raw = out if isinstance(out, tuple) else (out, None)
        masks = _tensor(masks_raw, self.name, "masks")
        shape = tuple(masks.shape)
        h, w = self._image.shape[:2]
        if masks.ndim == 3:
            masks = masks[:, None]
        if masks.ndim != 4 or masks.shape[0] != n or tuple(masks.shape[2:]) != (h, w):
            raise InputError(
                f"model {self.name!r} returned masks of shape {shape}, "
                f"expected N×H×W or N×M×H×W with N={n}, H×W={h}×{w}"
            )
        m = masks.shape[1]
        if scores_raw is None:
            if m != 1:
                raise InputError(f"model {self.name!r} returned {m} masks per prompt without scores")
            scores = torch.ones(n, 1)
        else:
            scores = _tensor(scores_raw, self.name, "scores").float()
            if scores.numel() % max(n, 1) or scores.numel() == 0:
                raise InputError(
                    f"model {self.name!r} returned {scores.numel()} scores for {n} prompts "
                    f"({m} masks per prompt: expected N×M = {n}×{m} scores)"
                )
            scores = scores.reshape(n, -1)
            if scores.shape[1] != m:
                raise InputError(
                    f"model {self.name!r} returned {m} masks but {scores.shape[1]} scores per prompt"
                )
        masks = binary_masks(masks, f"model {self.name!r}", self.threshold)
        return Prediction(masks=masks, iou_predictions=scores.to(masks.device))
