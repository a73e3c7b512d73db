"""TinySAM: MobileSAM's network, TinySAM's weights, a predictor that always returns masks 1..3.

Facts from xinghaochen/TinySAM @ 11589bc (Apache-2.0; ``tinysam/``). The float model built by
``sam_model_registry["vit_t"]`` is MobileSAM's (TinyViT-5M + SAM's prompt encoder and decoder: the same
439 state-dict keys, the same code), so the network and pipeline are :func:`~.sam.build_sam_model`
``("vit_t")`` and :class:`~.sam.SamRunner`. The quantized Q-TinySAM is not covered.

The one difference is the predictor: TinySAM's ``SamPredictor.predict`` has no ``multimask_output``
argument, and its ``MaskDecoder.forward`` always returns tokens 1..3 (``mask_slice = slice(1, None)``);
token 0 is computed and discarded. So evalsuite's ``predict(multimask=True)`` is the official call (M = 3
masks and IoUs), and ``multimask=False`` — a single-mask output the official code does not offer — is
refused with a one-line error instead of being answered with token 0, which the official code never
returns. How TinySAM itself picks a mask: its demo shows ``masks[scores.argmax()]`` and
its COCO evaluation (``eval/tinysam_zero_shot_ins_eval.py``) keeps ``masks[np.argmax(ious)]``: evalsuite's
``mask_choice = "score"``, the default of every built-in protocol. A refinement step (``refine = 1``), which
asks for a single mask, is refused for the same reason.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..errors import InputError
from .base import ModelSpec, WeightsFile
from .sam import SamModel, SamRunner, _SamImage, build_sam_model
from .weights import network_factory


class TinySamRunner(SamRunner):
    """MobileSAM's network behind TinySAM's predictor: masks 1..3 only (module docstring)."""

    def _decode(
        self, image: _SamImage, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not multimask:
            raise InputError(
                f"{self.name or 'tinysam'}: the official TinySAM predictor has no single-mask output "
                "(it always returns masks 1..3); use mask_choice=score (what its demo and COCO "
                "evaluation do) and refine=0"
            )
        return super()._decode(image, sparse, dense, True)


def _make_runner(name: str, network: nn.Module, device: torch.device) -> TinySamRunner:
    assert isinstance(network, SamModel)
    return TinySamRunner(network, device=device, name=name)


# Weights: release 3.0's tinysam_42.3.pth, which the README links since 2025-01-19 and which the paper's
# Table 1 numbers (COCO AP 42.3) belong to; release 1.0's tinysam.pth (the path the demo and evaluation
# script load; COCO AP 41.9) has the same architecture and keys. A raw state dict (the builder passes
# torch.load(f) to a strict load_state_dict). No SHA-256 or size is published: trusted on first use.
TINYSAM = ModelSpec(
    "tinysam",
    "TinySAM (Shu et al. 2023): MobileSAM's network distilled further; the predictor returns masks 1..3",
    network_factory("tinysam", partial(build_sam_model, "vit_t"), partial(_make_runner, "tinysam")),
    label="TinySAM",
    weights=WeightsFile(
        "tinysam",
        "tinysam_42.3.pth",
        "https://github.com/xinghaochen/TinySAM/releases/download/3.0/tinysam_42.3.pth",
    ),
    parameters=10_130_092,
    input_size="1024 long side, padded",
    licence="Apache-2.0",
    verification="golden (official TinySAM) + key layout",
)
