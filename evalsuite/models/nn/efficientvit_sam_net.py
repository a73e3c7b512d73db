"""EfficientViT-SAM L0/L1/L2/XL0/XL1: the EfficientViT image encoder in front of SAM v1's prompt encoder and
mask decoder, keyed like the official ``EfficientViTSam`` module.

Facts (mit-han-lab/efficientvit de7d773, ``models/efficientvit/sam.py``, ``backbone.py``,
``sam_model_zoo.py``):

* the encoder runs at S = 512 (L models) or 1024 (XL models): ``SamResize(S)`` (longest side, PIL
  bilinear on uint8), ``ToTensor`` (/255), ``Normalize`` with SAM's mean/std divided by 255, zero
  padding bottom/right to S×S; the embedding is always 256×64×64;
* prompts and mask postprocessing stay in SAM's 1024 frame (``image_size = (1024, S)``): the prompt
  encoder expects 1024×1024 coordinates, low-res logits go 256² → 1024² → crop → original size;
* the prompt encoder and decoder are segment_anything's, but ``set_norm_eps(model, 1e-6)`` also sets the
  9 ``nn.LayerNorm`` of the two-way transformer to 1e-6 (SAM: 1e-5); their GELUs stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .efficientvit import NORM_EPS, BackboneConfig, EfficientViTSamImageEncoder, NeckConfig
from .sam_decoder import MaskDecoder, PromptEncoder

#: SAM's pixel mean/std on the 0–255 scale; efficientvit divides both by 255 and normalises [0, 1] pixels
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
#: the frame of the prompt encoder and of ``postprocess_masks`` (``EfficientViTSam.image_size[0]``)
PROMPT_FRAME = 1024


@dataclass(frozen=True)
class VariantConfig:
    """One EfficientViT-SAM model: backbone, neck and encoder resolution (``efficientvit_sam_*`` builders)."""

    backbone: BackboneConfig
    neck: NeckConfig
    img_size: int


_XL_BLOCKS = ("res", "fmb", "fmb", "fmb", "att@3", "att@3")
_XL_EXPANDS = (1.0, 4.0, 4.0, 4.0, 4.0, 6.0)
_XL_FEWER_NORM = (False, False, False, False, True, True)
_L_WIDTHS = (32, 64, 128, 256, 512)
_XL_WIDTHS = (32, 64, 128, 256, 512, 1024)

VARIANTS: dict[str, VariantConfig] = {
    "l0": VariantConfig(BackboneConfig(_L_WIDTHS, (1, 1, 1, 4, 4)), NeckConfig((4, 3, 2), 4, 1), 512),
    "l1": VariantConfig(BackboneConfig(_L_WIDTHS, (1, 1, 1, 6, 6)), NeckConfig((4, 3, 2), 8, 1), 512),
    "l2": VariantConfig(BackboneConfig(_L_WIDTHS, (1, 2, 2, 8, 8)), NeckConfig((4, 3, 2), 12, 1), 512),
    "xl0": VariantConfig(
        BackboneConfig(_XL_WIDTHS, (0, 1, 1, 2, 3, 3), _XL_BLOCKS, _XL_EXPANDS, _XL_FEWER_NORM),
        NeckConfig((5, 4, 3), 6, 4),
        1024,
    ),
    "xl1": VariantConfig(
        BackboneConfig(_XL_WIDTHS, (1, 2, 2, 4, 6, 6), _XL_BLOCKS, _XL_EXPANDS, _XL_FEWER_NORM),
        NeckConfig((5, 4, 3), 12, 4),
        1024,
    ),
}


class EfficientViTSam(nn.Module):
    """Image encoder + SAM prompt encoder + SAM mask decoder, with the official state-dict keys.

    Kept although an image predictor without mask prompts never reads them (the manifests list them as
    ``unused_by_image_predictor``), because the official checkpoints hold them and are loaded strictly:
    ``prompt_encoder.mask_downscaling.*`` (used only with a mask prompt, SAM's refinement input) and the
    BatchNorms' ``num_batches_tracked`` counters (only training updates them).
    """

    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, cfg: VariantConfig) -> None:
        super().__init__()
        self.image_encoder = EfficientViTSamImageEncoder(cfg.backbone, cfg.neck, cfg.img_size)
        self.prompt_encoder = PromptEncoder()
        self.mask_decoder = MaskDecoder(transformer_norm_eps=NORM_EPS)
        # non-persistent (Normalize's constants, not part of the checkpoints); float32 of mean/255 as
        # torchvision's Normalize makes them
        self.register_buffer("pixel_mean", torch.tensor([m / 255 for m in PIXEL_MEAN]).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor([s / 255 for s in PIXEL_STD]).view(-1, 1, 1), False)

    @property
    def img_size(self) -> int:
        """S, the encoder's square input size (512 or 1024)."""
        return self.image_encoder.img_size

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """1×3×h×w uint8 → ``ToTensor`` (/255) → ``Normalize`` → zero-pad bottom/right to S×S (``SamPad``)."""
        x = x.to(torch.float32).div(255)
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        return F.pad(x, (0, self.img_size - w, 0, self.img_size - h))

    @staticmethod
    def postprocess_masks(
        masks: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> torch.Tensor:
        """Low-res logits → 1024² → crop to ``input_size`` (the 1024-frame resized size) → original size."""
        masks = F.interpolate(masks, (PROMPT_FRAME, PROMPT_FRAME), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)


def build_efficientvit_sam(variant: str) -> EfficientViTSam:
    """The untrained network of ``variant`` (``l0``, ``l1``, ``l2``, ``xl0`` or ``xl1``), in train mode.

    Builds on the current default device, so ``with torch.device("meta"):`` gives a shape-only model.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientViT-SAM variant {variant!r} (known: {', '.join(VARIANTS)})")
    return EfficientViTSam(VARIANTS[variant])
