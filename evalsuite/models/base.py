"""The runner interface every model implements.

A runner wraps one promptable segmentation model with its official pre- and
post-processing. The evaluator only ever talks to this interface: it knows
nothing about a model's internals, and a runner knows nothing about datasets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from ..errors import InputError
from ..fetch.artefact import Artefact
from ..options import OptionSpec

PROMPT_BOX = "box"
PROMPT_POINTS = "points"
BOTH_PROMPTS = frozenset({PROMPT_BOX, PROMPT_POINTS})
#: how an official checkpoint file holds its weights (see :mod:`evalsuite.models.weights`)
WEIGHT_FORMATS = ("state_dict", "model_key", "zip_model_key", "state_dict_key_or_plain", "ultralytics")


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

    def _lazy(self) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
        assert self._to_masks is not None and self.low_res_logits is not None  # checked in __init__
        return self._to_masks, self.low_res_logits

    @property
    def masks(self) -> torch.Tensor:
        if self._masks is None:
            to_masks, logits = self._lazy()
            self._masks = to_masks(logits)
        return self._masks

    @property
    def num_outputs(self) -> int:
        """M, the outputs per prompt."""
        return int(self.iou_predictions.shape[1])

    @property
    def device(self) -> torch.device:
        """Where the masks are (and so where IoU against the ground truth is computed)."""
        return self._masks.device if self._masks is not None else self._lazy()[1].device

    def select(self, index: torch.Tensor) -> torch.Tensor:
        """The full-size mask of output ``index[i]`` for each prompt i: N×H×W bool.

        A single-output prediction gives a view (nothing is copied); on the CPU the gather of the
        chosen outputs is a numpy copy (torch's indexing kernel splits a few megabytes across
        intra-op threads, which wait for each other on a loaded machine).
        """
        if self._masks is not None:
            masks = self._masks
            if masks.dtype != torch.bool:  # a Runner's own masks: logits or scores are not masks
                masks = self._masks = binary_masks(masks, "a runner's predict()")
            if masks.shape[1] == 1:
                return masks[:, 0]
            if masks.device.type == "cpu" and index.device.type == "cpu" and masks.dtype == torch.bool:
                picked = masks.numpy()[np.arange(len(index)), index.numpy()]
                return torch.from_numpy(picked)
            return masks[torch.arange(len(index), device=index.device), index]
        rows = torch.arange(len(index), device=index.device)
        to_masks, logits = self._lazy()
        return to_masks(logits[rows, index][:, None])[:, 0]


def binary_masks(masks: torch.Tensor, who: str, threshold: float | None = None) -> torch.Tensor:
    """``masks`` as bool: boolean, or integers that are all 0/1; with ``threshold``, ``masks > threshold``.

    Anything else (logits, probabilities) is refused with one line naming ``who`` returned them ("model
    'x'"), the dtype and the value range: never "every non-zero pixel is foreground".
    """
    if threshold is not None:
        if masks.dtype == torch.bool:
            raise InputError(f"{who} returned boolean masks; drop threshold=")
        return masks > threshold
    if masks.dtype == torch.bool:
        return masks
    if not masks.dtype.is_floating_point and not masks.dtype.is_complex and masks.numel():
        lo, hi = int(masks.min()), int(masks.max())
        if lo >= 0 and hi <= 1:
            return masks.bool()
    elif not masks.numel():
        return masks.bool()
    lo_v, hi_v = (
        (float(masks.min()), float(masks.max())) if masks.numel() and not masks.dtype.is_complex else (0, 0)
    )
    raise InputError(
        f"{who} returned masks of dtype {str(masks.dtype).removeprefix('torch.')} with values in "
        f"[{lo_v:g}, {hi_v:g}]; masks must be boolean or 0/1 integers",
        hint="return masks > your threshold, or pass threshold=T to evaluate()/CallableRunner for logits "
        "or probabilities",
    )


@dataclass(frozen=True)
class WeightsFile(Artefact):
    """A model's official checkpoint file: an :class:`~evalsuite.fetch.Artefact` plus its layout.

    ``format``: ``state_dict`` (raw), ``model_key`` (``{"model": sd}``), ``zip_model_key`` (a zip
    holding such a file as ``member``), ``state_dict_key_or_plain`` (``{"state_dict": sd}`` or raw),
    ``ultralytics`` (a pickled Ultralytics checkpoint: ``pickled`` must then be True, and the file is
    unpickled in full only with a published SHA-256 or the user's explicit trust).
    """

    kind: str = "checkpoints"
    format: str = "state_dict"
    member: str | None = None  # the file inside a zip
    pickled: bool = False

    def __post_init__(self) -> None:
        if self.format not in WEIGHT_FORMATS:
            raise ValueError(f"{self.name}: unknown weights format {self.format!r}")


@dataclass(frozen=True)
class ModelSpec:
    """Everything evalsuite knows about a model, in one place: what an entry point points at.

    ``build(checkpoint=None, device="cpu", trust_checkpoint=False, **options)`` returns a
    :class:`Runner`; ``checkpoint=None`` builds the network without loading weights. Third-party
    packages may point their entry point at a bare factory instead; the registry wraps it.
    """

    name: str
    summary: str
    build: Callable[..., Runner]
    #: display name in reports ("EfficientSAM-S"); the registry name where empty
    label: str = ""
    #: the official checkpoint (None: the model has no weights to fetch)
    weights: WeightsFile | None = None
    #: prompt kinds the model takes; the runner reads them from here
    prompt_kinds: frozenset[str] = BOTH_PROMPTS
    #: parameters of the official network (documentation and planning; runs count their own)
    parameters: int | None = None
    #: images/s of the official code on one H100 (bf16, prompts batched; ../shared/PERFORMANCE.md) —
    #: only for `reproduce --dry-run`'s time estimate, never reported as a measurement
    throughput_hint: float | None = None
    #: input the encoder sees, for the README model table (e.g. "1024² stretched")
    input_size: str = ""
    #: licence of the original weights
    licence: str = ""
    #: how the runner is checked against the official implementation (README model table). "golden":
    #: its outputs equal the official code's on deterministic weights (../shared/fidelity/golden);
    #: "key layout": the official checkpoint's keys load strictly (../shared/fidelity/manifests).
    #: tests/test_docs.py holds every claim against those files.
    verification: str = ""
    #: the official predictor's own options (EdgeSAM's mask count, SAM-HQ's ``hq_token_only``), each with
    #: its official default (``OptionSpec.default``); ``build(**options)`` receives all of them, resolved.
    #: A changed one makes a variant of the model (a row), never another column.
    options: Mapping[str, OptionSpec] = field(default_factory=dict)

    def resolve_options(self, given: Mapping[str, object]) -> dict[str, object]:
        """Every declared option with its value: ``given`` checked against the declarations, defaults
        for the rest. An option the model does not declare is refused with one line."""
        if unknown := sorted(set(given) - set(self.options)):
            known = ", ".join(sorted(self.options)) or "none"
            raise InputError(f"model {self.name!r} has no option {', '.join(unknown)} (its options: {known})")
        out: dict[str, object] = {}
        for key, decl in self.options.items():
            value = given.get(key, decl.default)
            decl.check(key, value, f"model {self.name}")
            out[key] = value
        return out

    @property
    def needs_weights(self) -> bool:
        return self.weights is not None

    @property
    def display_name(self) -> str:
        return self.label or self.name


class Runner(ABC):
    """One model, ready to be prompted.

    Call :meth:`set_image` once per image, then :meth:`predict` any number of
    times for that image.

    The evaluation loop feeds images in batches instead: the decode workers apply
    :meth:`image_transform` to each image, :meth:`set_images` embeds a batch,
    and :meth:`use_image` picks the image the next predict() calls are about.
    The defaults fall back to one set_image() per image, so a runner needs only
    set_image() and predict(); a model whose encoder batches derives from
    :class:`BatchedEncoderRunner`.
    """

    #: registry name, set by the factory or the registry
    name: str = ""
    #: whether predict() accepts a low-res mask prompt (SAM's refinement step)
    takes_mask_prompt: bool = False
    #: baselines such as ``oracle`` read the ground truth through set_targets()
    uses_ground_truth: bool = False
    #: the underlying network, for models that have one
    model: Any = None
    #: SHA-256 of the loaded checkpoint file, recorded in every run record
    checkpoint_sha256: str | None = None
    #: the registry entry this runner was built from (set by the registry)
    spec: ModelSpec | None = None
    #: the weights the registry loaded (``official``/``file``/``random:SEED``/``none``; set by build_model)
    weights_label: str = ""

    @property
    def prompt_kinds(self) -> frozenset[str]:
        """What the model takes: its spec's (a runner built outside the registry takes both)."""
        return self.spec.prompt_kinds if self.spec is not None else BOTH_PROMPTS

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
        mask_input: torch.Tensor | None = None,
    ) -> Prediction:
        """Segment N objects of the current image.

        ``boxes``: N×4 xyxy; ``points``: N×P×2 (x, y); ``point_labels``: N×P
        (1 foreground, 0 background), all in original-image pixel coordinates;
        ``mask_input``: N×1×256×256 low-res logits of an earlier call (only for runners with
        ``takes_mask_prompt``; the others refuse it).
        """

    def set_targets(self, masks: np.ndarray) -> None:  # pragma: no cover - only oracle overrides
        """Receive the N ground-truth masks matching the next predict() call's prompts."""
        raise TypeError(f"model {self.name!r} does not use ground truth")

    def refuse_mask_input(self, mask_input: object) -> None:
        """For runners without a mask prompt: a clear error instead of silently ignoring one."""
        if mask_input is not None:
            raise InputError(f"model {self.name!r} takes no mask prompt (mask_input)")


ItemT = TypeVar("ItemT")
StateT = TypeVar("StateT")


class BatchedEncoderRunner(Runner, Generic[ItemT, StateT]):
    """A runner whose image encoder embeds a batch of images in one pass.

    Subclasses give :meth:`image_transform` (what the decode workers make of an image: an
    ``ItemT``), :meth:`_encode` (a batch of items → one per-image state, e.g. the embedding and
    the sizes) and :meth:`_activate` (make one state current for predict()). This class owns the
    batch bookkeeping every such runner shares, so set_images/use_image/set_image exist once.
    """

    device: torch.device = torch.device("cpu")

    def __init__(self) -> None:
        self._states: list[StateT] = []
        self._current: StateT | None = None

    @abstractmethod
    def image_transform(self) -> Callable[[np.ndarray], ItemT]:
        """The picklable per-image transform (it also checks the image)."""

    @abstractmethod
    def _encode(self, items: Sequence[ItemT]) -> list[StateT]:
        """One encoder pass over ``items`` (non-empty): the per-image states, in order."""

    def _activate(self, state: StateT) -> None:
        """Make ``state`` the image predict() segments (default: just keep it as current)."""

    @torch.inference_mode()
    def set_images(self, images: Sequence[ItemT]) -> None:
        self._current = None
        self._states = []
        if images:
            self._states = self._encode(images)

    def use_image(self, index: int) -> None:
        if not 0 <= index < len(self._states):
            raise RuntimeError(
                f"use_image({index}): the last set_images() batch has {len(self._states)} image(s)"
            )
        self._current = self._states[index]
        self._activate(self._current)

    def set_image(self, image: np.ndarray) -> None:
        """Transform (which refuses a bad image before the current one is dropped), embed, make current."""
        item = self.image_transform()(image)
        self.set_images([item])
        self.use_image(0)

    @property
    def current(self) -> StateT:
        """The state of the current image (an error before any set_image)."""
        if self._current is None:
            raise RuntimeError("set_image() must be called first")
        return self._current
