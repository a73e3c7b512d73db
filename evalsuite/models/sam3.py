"""SAM 3's interactive image path (the "SAM 1 task"): the official ``predict_inst`` pipeline, in-house.

Official behaviour reproduced (facebookresearch/sam3 @ 99d02f2, SAM License): ``Sam3Processor(model,
resolution=1008).set_image(PIL image)`` then ``model.predict_inst(state, point_coords, point_labels, box,
multimask_output)``, i.e. ``SAM3InteractiveImagePredictor`` (SAM 2's image predictor) on SAM 3's ViT
trunk and SAM 2 neck; the network, pre- and post-processing are in :mod:`evalsuite.models.nn.sam3_net`.
Text prompts, the detector and the video tracker are not part of it.

* image: stretched to 1008×1008 by antialiased bilinear interpolation **of the uint8 image** (torch's
  native uint8 kernel, as torchvision on a CPU it sees as AVX2, where the golden was made; see
  :mod:`~evalsuite.models.nn.sam3_net`), done in the decode workers on the CPU whatever the device;
  then /255 and ``(x − 0.5) / 0.5``; one encoder pass per batch of images;
* prompts, outputs, multimask: exactly as :mod:`evalsuite.models.sam2` (a box is two points labelled
  2, 3 before the clicks, the padding point always appended; ``multimask=True`` → decoder tokens 1..3;
  ``False`` → token 0 unless its stability score is below 0.98, then the best-IoU token of 1..3; IoUs
  are sigmoid outputs), at SAM 3's sizes: 72×72 embedding, 288×288 low-res logits, and so a
  ``mask_input`` of N×1×288×288;
* masks: the official post-processing fills holes first — 8-connected background components of the
  288² logits with at most ``max_hole_area`` pixels become foreground (logit 10) — then upscales
  bilinearly to the original size and thresholds at 0. The returned low-res logits are the decoder's,
  unfilled, clamped to ±32.

Model options (the official predictor's constructor arguments, with its defaults):

``max_hole_area`` (int ≥ 0, default 256)
    fill background holes of at most this many low-res pixels; 0 turns hole filling off.
``max_sprinkle_area`` (int ≥ 0, default 0)
    remove foreground specks of at most this many low-res pixels (off by default, as officially).

The weights are gated: ``sam3.pt`` on Hugging Face (facebook/sam3) is served only after accepting the
SAM License there, so ``evalsuite download weights sam3`` sends the user's token (``HF_TOKEN`` or
``HUGGING_FACE_HUB_TOKEN``) and says what to do without one. Nothing is fetched at import or run time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..options import OptionSpec
from .base import ModelSpec, WeightsFile
from .nn.sam3_net import (
    LOW_RES,
    MAX_HOLE_AREA,
    MAX_SPRINKLE_AREA,
    Sam3Model,
    adapt_official_state_dict,
    build_sam3,
    fill_holes,
)
from .sam2 import Sam2Input, Sam2Runner, sam2_input
from .weights import network_factory

LABEL = "SAM 3"


def sam3_input(image: np.ndarray) -> Sam2Input:
    """Check the image and stretch it to 1008×1008 uint8 (what :meth:`Sam3Runner.set_images` takes)."""
    item = sam2_input(image, LABEL)
    return Sam2Input(Sam3Model.resize(item.pixels), original_size=item.size)


class Sam3Runner(Sam2Runner):
    """SAM 3's interactive path behind the :class:`Runner` interface (see the module docstring)."""

    low_res = LOW_RES

    def __init__(
        self,
        model: Sam3Model,
        name: str = "sam3",
        device: str | torch.device = "cpu",
        max_hole_area: int = MAX_HOLE_AREA,
        max_sprinkle_area: int = MAX_SPRINKLE_AREA,
    ) -> None:
        super().__init__(model, name=name, device=device)
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area

    def image_transform(self) -> Callable[[np.ndarray], Sam2Input]:
        return sam3_input

    def mask_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The low-res logits with small holes filled (and specks removed, if asked), as officially."""
        return fill_holes(logits, self.max_hole_area, self.max_sprinkle_area)


def _make_runner(network: nn.Module, device: torch.device, **options: object) -> Sam3Runner:
    assert isinstance(network, Sam3Model)
    hole, sprinkle = options.get("max_hole_area", MAX_HOLE_AREA), options.get("max_sprinkle_area", 0)
    assert isinstance(hole, int) and isinstance(sprinkle, int)
    return Sam3Runner(network, device=device, max_hole_area=hole, max_sprinkle_area=sprinkle)


# The checkpoint named by the official builder (model_builder.download_ckpt_from_hf: repo facebook/sam3,
# file sam3.pt) and the README; gated behind the licence on the model page. No SHA-256 is published:
# recorded at first successful load.
_URL = "https://huggingface.co/facebook/sam3/resolve/main/sam3.pt"
_ACCESS = (
    "request access on https://huggingface.co/facebook/sam3 (logged in: accept the SAM License) and, once "
    "it is granted, create an access token at https://huggingface.co/settings/tokens"
)

SAM3 = ModelSpec(
    "sam3",
    "SAM 3 (Carion et al. 2025), interactive image path (SAM 1 task): ViT with RoPE at 1008² stretched, "
    "SAM 2 heads, small holes filled; runs 457 M of the checkpoint's 860 M parameters (no text encoder, "
    "detector or video memory)",
    network_factory("sam3", build_sam3, _make_runner, adapt=adapt_official_state_dict),
    label=LABEL,
    weights=WeightsFile(
        "sam3",
        "sam3.pt",
        _URL,
        format="state_dict",  # raw, or {"model": state_dict}: both read (as the official loader does)
        token_env=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
        access=_ACCESS,
    ),
    parameters=860_055_224,  # the official image model; 457,277,072 of them in the network built here
    input_size="1008² stretched",
    licence="SAM License",
    verification="golden (official sam3, SAM3InteractiveImagePredictor) + key layout",
    options={
        "max_hole_area": OptionSpec(
            int,
            minimum=0,
            column=False,
            default=MAX_HOLE_AREA,
            help="fill background holes of at most this many 288² low-res pixels (0: off)",
        ),
        "max_sprinkle_area": OptionSpec(
            int,
            minimum=0,
            column=False,
            default=MAX_SPRINKLE_AREA,
            help="remove foreground specks of at most this many 288² low-res pixels (0: off)",
        ),
    },
)
