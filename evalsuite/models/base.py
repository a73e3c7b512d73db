"""The runner interface every model implements.

A runner wraps one promptable segmentation model with its official pre- and
post-processing. The evaluator only ever talks to this interface: it knows
nothing about a model's internals, and a runner knows nothing about datasets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

PROMPT_BOX = "box"
PROMPT_POINTS = "points"


@dataclass
class Prediction:
    """Output of one :meth:`Runner.predict` call for N prompts.

    ``masks``: N×M×H×W bool at the original image size (M = 3 with multimask,
    1 without); ``iou_predictions``: N×M float, the model's own quality
    estimate used to pick a mask; ``low_res_logits``: N×M×h×w where the model
    has them (SAM's 256×256), else None.
    """

    masks: torch.Tensor
    iou_predictions: torch.Tensor
    low_res_logits: torch.Tensor | None = None


class Runner(ABC):
    """One model, ready to be prompted.

    Call :meth:`set_image` once per image, then :meth:`predict` any number of
    times for that image.
    """

    #: registry name, set by the factory
    name: str = ""
    #: prompt kinds this model accepts (``"box"``, ``"points"``)
    prompt_kinds: frozenset[str] = frozenset({PROMPT_BOX, PROMPT_POINTS})
    #: whether predict() accepts a low-res mask prompt (SAM's refinement step)
    takes_mask_prompt: bool = False
    #: baselines such as ``oracle`` read the ground truth through set_targets()
    uses_ground_truth: bool = False
    #: the underlying network, for models that have one
    model: torch.nn.Module | None = None
    #: SHA-256 of the loaded checkpoint file, recorded in every run record
    checkpoint_sha256: str | None = None

    @abstractmethod
    def set_image(self, image: np.ndarray) -> None:
        """Take an H×W×3 uint8 RGB image (original size) and compute its embedding."""

    @abstractmethod
    def predict(
        self,
        boxes: np.ndarray | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        multimask: bool = True,
    ) -> Prediction:
        """Segment N objects of the current image.

        ``boxes``: N×4 xyxy; ``points``: N×P×2 (x, y); ``point_labels``: N×P
        (1 foreground, 0 background), all in original-image pixel coordinates.
        """

    def set_targets(self, masks: np.ndarray) -> None:  # pragma: no cover - only oracle overrides
        """Receive the N ground-truth masks matching the next predict() call's prompts."""
        raise TypeError(f"model {self.name!r} does not use ground truth")


@dataclass(frozen=True)
class ModelSpec:
    """What a registry entry point points at: a name, a summary and a factory.

    ``build(checkpoint=None, device="cpu", **options)`` returns a :class:`Runner`.
    Third-party packages may instead point their entry point at a bare factory
    callable; the registry wraps it.
    """

    name: str
    summary: str
    build: Callable[..., Runner]
    #: whether a run needs a checkpoint (the CLI then finds the official file in the cache)
    needs_weights: bool = False
    #: prompt kinds the model takes (lets a planner pick protocols without building the model)
    prompt_kinds: frozenset[str] = frozenset({PROMPT_BOX, PROMPT_POINTS})
    paper_row: str | None = None
    extra: dict = field(default_factory=dict)
