"""RepViT-SAM: the RepViT encoder in front of SAM's decoder, behind SAM's ``SamPredictor`` pipeline.

Facts from THU-MIG/RepViT @ 298f420 (``sam/repvit_sam/``, Apache-2.0): ``build_sam_repvit`` =
``timm.create_model("repvit")`` (the model that repository registers in timm; here
:class:`~evalsuite.models.nn.repvit.RepViTSamEncoder`, no timm dependency, run unfused) + SAM v1's prompt
encoder and mask decoder. Its ``SamPredictor`` is segment_anything's, unchanged: ``multimask_output`` True →
decoder tokens 1..3, False → token 0, raw IoU-head scores; pre- and post-processing as
:class:`~evalsuite.models.sam.SamRunner` (1024 long side, PIL bilinear, SAM mean/std, zero padding; 256²
logits → 1024² → crop → original size → ``> 0``). So the runner is ``SamRunner`` itself; the predictor has
no option of its own.

The checkpoint loads strictly, every key: ``prompt_encoder.mask_downscaling.*`` (SAM's mask encoder, used with
a ``mask_input``) and the 218 BatchNorm ``num_batches_tracked`` counters are never read without a mask prompt
(``unused_by_image_predictor`` in the manifest) but are part of the official network and load normally.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .base import ModelSpec, WeightsFile
from .nn.repvit import RepViTSamEncoder
from .sam import SamModel, SamRunner
from .weights import network_factory


def build_repvit_sam() -> SamModel:
    """The untrained RepViT-SAM network, keyed like the official ``Sam`` module."""
    return SamModel(RepViTSamEncoder())


def _make_runner(name: str, network: nn.Module, device: torch.device) -> SamRunner:
    assert isinstance(network, SamModel)
    return SamRunner(network, device=device, name=name)


# URL: sam/README.md of THU-MIG/RepViT ("Installation": wget of the v1.0 GitHub release asset). No SHA-256 or
# size is published there or found in public code: evalsuite records the SHA-256 at the first download that
# loads (trust on first use). Format: build_sam.py's ``torch.load(f)`` → raw state dict, strict
# ``load_state_dict``. Licence: Apache-2.0 (the repository's LICENSE and sam/LICENSE).
REPVIT_SAM = ModelSpec(
    "repvit-sam",
    "RepViT-SAM (Wang et al. 2023): RepViT encoder distilled from SAM ViT-H + SAM's decoder",
    network_factory("repvit-sam", build_repvit_sam, partial(_make_runner, "repvit-sam")),
    label="RepViT-SAM",
    weights=WeightsFile(
        "repvit-sam",
        "repvit_sam.pt",
        "https://github.com/THU-MIG/RepViT/releases/download/v1.0/repvit_sam.pt",
        format="state_dict",
    ),
    parameters=27_223_480,  # ../shared/fidelity/manifests/repvit-sam.json
    input_size="1024 long side, padded",
    licence="Apache-2.0",
    verification="golden (official RepViT-SAM @298f420; embedding within 2e-4) + key layout",
)
