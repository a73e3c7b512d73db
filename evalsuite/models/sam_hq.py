"""SAM-HQ ViT-B/L/H and Light HQ-SAM (HQ-SAM v1): SAM's pipeline with the HQ mask decoder.

Facts from SysCV/sam-hq @ fb181f8 (Apache-2.0; ``segment_anything/``, not ``sam-hq2/``). The network is
SAM's (ViT-B/L/H, or MobileSAM's TinyViT for Light HQ-SAM) with :class:`~.nn.sam_hq_decoder.MaskDecoderHQ`,
whose HQ path reads an early encoder feature: the output of the first global-attention block (ViT, index 2
/ 5 / 7 for B / L / H) or of TinyViT's stage 2 (``layers[1]``, 160 channels). Pre- and post-processing are
``SamPredictor``'s (:class:`~.sam.SamRunner`); the HQ feature map is made once per image, when it is
embedded, instead of in every decoder call (same operations on the same tensors).

How evalsuite's ``predict(multimask=...)`` maps onto the official ``SamPredictor.predict``:

* ``multimask=True`` → ``multimask_output=True``: the official decoder returns ONE mask, SAM's token of 1..3
  with the highest predicted IoU (and that IoU);
* ``multimask=False`` → ``multimask_output=False``: token 0 and its IoU;
* in both, the HQ token's mask is added to that SAM mask (model option ``hq_token_only=False``, the official
  default, which the authors use for their COCO/LVIS evaluation), or replaces it (``hq_token_only=True``,
  "HQ output only", which they suggest for single-object images).

So predictions always have M = 1 output per prompt, and every protocol's ``mask_choice`` takes that one.
The official demos call ``multimask_output=False``; the predictor's default is True.

Loading is strict, unlike the official builders (``load_state_dict(strict=False)``, under which a file
without the HQ keys loads silently and runs with an untrained HQ path): a missing key is an error naming
it, and a plain SAM checkpoint is recognised and refused as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import cast

import torch
from torch import nn

from ..errors import InputError
from ..options import OptionSpec
from .base import ModelSpec, WeightsFile
from .nn.sam_hq_decoder import MaskDecoderHQ
from .nn.sam_image_encoder import VIT_B, VIT_H, VIT_L, ImageEncoderViT, ViTConfig
from .nn.tiny_vit import EMBED_DIMS, TinyViT
from .sam import SamInput, SamModel, SamRunner, _SamImage
from .weights import network_factory

#: the HQ-only keys of the checkpoints (beside SAM's); a file with none of them is a plain SAM file
HQ_PREFIXES = (
    "mask_decoder.hf_token.",
    "mask_decoder.hf_mlp.",
    "mask_decoder.compress_vit_feat.",
    "mask_decoder.embedding_encoder.",
    "mask_decoder.embedding_maskfeature.",
)
#: channels of the early feature the HQ path reads: Light HQ-SAM's TinyViT stage 2
TINY_VIT_DIM = EMBED_DIMS[2]


class SamHQModel(SamModel):
    """SAM's image encoder and prompt encoder + :class:`MaskDecoderHQ`, keyed like the official ``Sam``."""

    def __init__(self, image_encoder: ImageEncoderViT | TinyViT, vit_dim: int) -> None:
        super().__init__(image_encoder, MaskDecoderHQ(vit_dim))

    @property
    def hq_decoder(self) -> MaskDecoderHQ:
        return cast(MaskDecoderHQ, self.mask_decoder)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B×256×64×64 embeddings and B×32×256×256 HQ feature maps of B preprocessed images."""
        encoder = cast(ImageEncoderViT | TinyViT, self.image_encoder)
        embedding, early = encoder.forward_with_intermediate(x, count=1)
        return embedding, self.hq_decoder.hq_features(embedding, early[0])


def build_sam_hq_model(variant: str) -> SamHQModel:
    """The untrained network of ``variant``: ``vit_b``, ``vit_l``, ``vit_h``, ``vit_tiny`` (Light HQ-SAM)."""
    if variant == "vit_tiny":
        return SamHQModel(TinyViT(), TINY_VIT_DIM)
    configs: dict[str, ViTConfig] = {"vit_b": VIT_B, "vit_l": VIT_L, "vit_h": VIT_H}
    if variant not in configs:
        raise ValueError(f"unknown SAM-HQ variant {variant!r}")
    cfg = configs[variant]
    return SamHQModel(ImageEncoderViT(cfg), cfg.embed_dim)


def refuse_plain_sam(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Load adapter: a SAM checkpoint without any HQ key is refused by name (any other gap: load_strict)."""
    if "mask_decoder.iou_token.weight" in state and not any(k.startswith(HQ_PREFIXES) for k in state):
        raise InputError(
            "it holds SAM's keys but none of the HQ decoder's (mask_decoder.hf_token.weight, …): "
            "a plain SAM checkpoint; run it as sam-vit-b/-l/-h or mobilesam"
        )
    return state


@dataclass(frozen=True)
class _SamHQImage(_SamImage):
    """One embedded image and its HQ feature map (1×32×256×256)."""

    hq_features: torch.Tensor


class SamHQRunner(SamRunner):
    """SAM-HQ / Light HQ-SAM with ``SamPredictor``'s pipeline; one mask per prompt (module docstring)."""

    def __init__(
        self,
        model: SamHQModel,
        device: str | torch.device = "cpu",
        name: str = "",
        hq_token_only: bool = False,
    ) -> None:
        super().__init__(model, device=device, name=name)
        self.hq_model = model
        #: the official predictor's ``hq_token_only`` (default False: SAM mask + HQ mask)
        self.hq_token_only = hq_token_only

    def _encode(self, items: Sequence[SamInput]) -> list[_SamImage]:
        x = torch.cat([self._encoder_input(item) for item in items])
        features, hq = self.hq_model.encode(x)
        return [
            _SamHQImage(features[i : i + 1], item.input_size, item.original_size, hq[i : i + 1])
            for i, item in enumerate(items)
        ]

    def _decode(
        self, image: _SamImage, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(image, _SamHQImage)
        return self.hq_model.hq_decoder(
            image_embeddings=image.features,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            hq_token_only=self.hq_token_only,
            hq_features=image.hq_features,
        )


# -- registry entries -------------------------------------------------------------------------------------
# Weights: the sam-hq README links ViT-B/L/H to Google Drive "view" pages (HTML, with a confirmation step for
# large files: not direct downloads) and names Hugging Face lkeab/hq-sam as the alternative; its ViT-Tiny
# link is that repository's resolve URL. So all four come from https://huggingface.co/lkeab/hq-sam
# (direct https, redirected to Hugging Face's CDN). Each file is the raw state dict of the whole model
# (the builders pass torch.load(f) to load_state_dict). No SHA-256 is published beside the links (Hugging
# Face shows the LFS SHA-256 on each file's page, but no copy of those values could be checked here):
# trusted on first use, recorded by `evalsuite download weights`. Sizes: not published (about 379 MB,
# 1.25 GB, 2.57 GB and 42.5 MB by third-party model lists), so not checked.
_HQ_URL = "https://huggingface.co/lkeab/hq-sam/resolve/main/"
_OPTIONS = {
    "hq_token_only": OptionSpec(
        bool,
        column=False,
        default=False,
        help=(
            "SamPredictor.predict(hq_token_only=): False (official default, the authors' COCO/LVIS "
            "setting): SAM mask + HQ mask; True: the HQ mask alone"
        ),
    )
}


def _make_runner(
    name: str, network: nn.Module, device: torch.device, hq_token_only: bool = False
) -> SamHQRunner:
    assert isinstance(network, SamHQModel)
    return SamHQRunner(network, device=device, name=name, hq_token_only=hq_token_only)


def _sam_hq_spec(
    name: str, variant: str, label: str, summary: str, filename: str, parameters: int, verification: str
) -> ModelSpec:
    return ModelSpec(
        name,
        summary,
        network_factory(
            name, partial(build_sam_hq_model, variant), partial(_make_runner, name), adapt=refuse_plain_sam
        ),
        label=label,
        weights=WeightsFile(name, filename, _HQ_URL + filename),
        parameters=parameters,
        input_size="1024 long side, padded",
        licence="Apache-2.0",
        verification=verification,
        options=_OPTIONS,
    )


_FROM_B = "key layout; the code of sam-hq-vit-b (golden)"
SAM_HQ_VIT_B = _sam_hq_spec(
    "sam-hq-vit-b",
    "vit_b",
    "HQ-SAM ViT-B",
    "HQ-SAM ViT-B (Ke et al. 2023): SAM ViT-B + HQ token and early-feature fusion; one mask per prompt",
    "sam_hq_vit_b.pth",
    94_806_576,
    "golden (official sam-hq segment_anything) + key layout",
)
SAM_HQ_VIT_L = _sam_hq_spec(
    "sam-hq-vit-l",
    "vit_l",
    "HQ-SAM ViT-L",
    "HQ-SAM ViT-L (Ke et al. 2023): SAM ViT-L + HQ token and early-feature fusion; one mask per prompt",
    "sam_hq_vit_l.pth",
    313_676_080,
    _FROM_B,
)
SAM_HQ_VIT_H = _sam_hq_spec(
    "sam-hq-vit-h",
    "vit_h",
    "HQ-SAM ViT-H",
    "HQ-SAM ViT-H (Ke et al. 2023): SAM ViT-H + HQ token and early-feature fusion; one mask per prompt",
    "sam_hq_vit_h.pth",
    642_686_000,
    _FROM_B,
)
LIGHT_HQ_SAM = _sam_hq_spec(
    "light-hq-sam",
    "vit_tiny",
    "Light HQ-SAM",
    "Light HQ-SAM (Ke et al. 2023): MobileSAM's TinyViT + the HQ decoder on its stage-2 features",
    "sam_hq_vit_tiny.pth",
    10_578_604,
    "golden (official sam-hq segment_anything) + key layout",
)
