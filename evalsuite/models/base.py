"""The runner interface every model implements.

A runner wraps one promptable segmentation model with its official pre- and
post-processing. The evaluator only ever talks to this interface: it knows
nothing about a model's internals, and a runner knows nothing about datasets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

PROMPT_BOX = "box"
PROMPT_POINTS = "points"


class Prediction:
    """Output of one :meth:`Runner.predict` call for N prompts.

    ``masks``: N×M×H×W bool at the original image size (M = 3 with multimask,
    1 without); ``iou_predictions``: N×M float, the model's own quality
    estimate used to pick a mask; ``low_res_logits``: N×M×h×w where the model
    has them (SAM's 256×256), else None.

    ``iou_predictions`` lives on the same device as the masks. A runner may give
    ``to_masks`` (low-res logits → full-size bool masks) instead of ``masks``:
    the full-size masks are then made only when read, and :meth:`select`
    upscales just the one chosen output per prompt, which is all most protocols
    need (upscaling is per channel, so the result is the same).
    """

    def __init__(
        self,
        masks: torch.Tensor | None = None,
        iou_predictions: torch.Tensor | None = None,
        low_res_logits: torch.Tensor | None = None,
        to_masks: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if iou_predictions is None:
            raise TypeError("Prediction needs iou_predictions")
        if masks is None and (to_masks is None or low_res_logits is None):
            raise TypeError("Prediction needs masks, or low_res_logits with to_masks")
        self._masks = masks
        self.iou_predictions = iou_predictions
        self.low_res_logits = low_res_logits
        self._to_masks = to_masks

    @property
    def masks(self) -> torch.Tensor:
        if self._masks is None:
            self._masks = self._to_masks(self.low_res_logits)
        return self._masks

    @property
    def num_outputs(self) -> int:
        """M, the outputs per prompt."""
        return int(self.iou_predictions.shape[1])

    @property
    def device(self) -> torch.device:
        """Where the masks are (and so where IoU against the ground truth is computed)."""
        return (self._masks if self._masks is not None else self.low_res_logits).device

    def select(self, index: torch.Tensor) -> torch.Tensor:
        """The full-size mask of output ``index[i]`` for each prompt i: N×H×W bool."""
        rows = torch.arange(len(index), device=index.device)
        if self._masks is not None:
            return self._masks[rows, index]
        return self._to_masks(self.low_res_logits[rows, index][:, None])[:, 0]


class Runner(ABC):
    """One model, ready to be prompted.

    Call :meth:`set_image` once per image, then :meth:`predict` any number of
    times for that image.

    The evaluator feeds images in batches instead: the decode workers apply
    :meth:`image_transform` to each image, :meth:`set_images` embeds a batch,
    and :meth:`use_image` picks the image the next predict() calls are about.
    The defaults fall back to one set_image() per image, so a runner needs only
    set_image() and predict(); a model whose encoder batches overrides the three.
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

    def image_transform(self) -> Callable[[np.ndarray], Any] | None:
        """A picklable function the decode workers apply to each H×W×3 uint8 image (e.g. the resize).

        Its results are what :meth:`set_images` receives (and, through the default :meth:`use_image`,
        what set_image() receives: override the three together); None (the default) passes the images
        as they are. A result with a ``pin_memory()`` method is put in pinned memory by the decode
        workers when the run is on CUDA.
        """
        return None

    def set_images(self, images: Sequence[Any]) -> None:
        """Embed a batch of images (as :meth:`image_transform` made them), in one encoder pass where the
        model allows; :meth:`use_image` then makes one of them current. Default: keep them for use_image."""
        self._batch_images = list(images)

    def use_image(self, index: int) -> None:
        """Make image ``index`` of the last :meth:`set_images` batch the one predict() segments."""
        self.set_image(self._batch_images[index])

    def execution_notes(self) -> dict[str, Any]:
        """Kernel choices that can change results in the last bits (recorded in the run's ``execution``)."""
        return {}

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
