"""EfficientViT-SAM L0/L1/L2/XL0/XL1: the in-house network behind ``EfficientViTSamPredictor``'s pipeline.

The network lives in :mod:`evalsuite.models.nn.efficientvit_sam_net` with the official state-dict keys.
The official predictor (mit-han-lab/efficientvit de7d773, ``models/efficientvit/sam.py``) is SAM's
``SamPredictor`` with another image size, so the runner is :class:`~evalsuite.models.sam.SamRunner`
with one difference:

* image: ``SamResize(S)`` with S = 512 (L) or 1024 (XL): longest side to S, ``int(old · S / max(H, W) +
  0.5)``, PIL bilinear on uint8 (made in the decode workers); ``ToTensor`` and ``Normalize`` with SAM's
  mean/std over 255; zero padding bottom/right to S×S;
* prompts and postprocessing stay in SAM's 1024 frame even for the L models (``input_size`` = the
  ResizeLongestSide(1024) shape of the original image) — that is the difference;
* outputs as SAM v1: 256² → bilinear 1024² → crop to ``input_size`` → bilinear to the original size,
  masks = logits > 0, raw IoU predictions; an N×1×256×256 mask prompt goes through SAM's mask encoder.

A batch of images is encoded in one pass (BatchNorm runs in eval mode: images do not influence each
other).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from .base import ModelSpec, WeightsFile
from .nn.efficientvit_sam_net import PROMPT_FRAME, EfficientViTSam, build_efficientvit_sam
from .sam import SamInput, SamRunner, _SamImage, resized_shape
from .weights import network_factory


class EfficientViTSamRunner(SamRunner):
    """EfficientViT-SAM with ``EfficientViTSamPredictor``'s pre- and post-processing, N prompts per call."""

    def _encode(self, items: Sequence[SamInput]) -> list[_SamImage]:
        """Normalise and pad each resized image to S×S, embed the batch; prompts use the 1024 frame."""
        features = self.model.image_encoder(torch.cat([self._encoder_input(item) for item in items]))
        return [
            _SamImage(
                features[i : i + 1], resized_shape(*item.original_size, PROMPT_FRAME), item.original_size
            )
            for i, item in enumerate(items)
        ]


def _make_runner(name: str, network: nn.Module, device: torch.device) -> EfficientViTSamRunner:
    assert isinstance(network, EfficientViTSam)
    return EfficientViTSamRunner(network, device=device, name=name)


_HF = "https://huggingface.co/mit-han-lab/efficientvit-sam/resolve/main/"
# File names and URLs: applications/efficientvit_sam/README.md (its table links these five files;
# sam_model_zoo.py expects them under assets/checkpoints/efficientvit_sam/). Format: efficientvit's
# load_state_dict_from_file (torch.load(weights_only=True), then ["state_dict"] if present, strict load).
# SHA-256: all five are pinned, with these HF URLs, in InterDigitalInc/CompressAI-Vision scripts/install.sh
# (commit 012d084b763dc378675ad58a636b083c7d493f1b, its "sha256  path  url" list). The l0 value also
# appears in two unrelated download tables (an Intel model map's "sha_sum" and a project README listing
# weight hashes) that give SAM ViT-H's / ViT-B's / MobileSAM's SHA-256 exactly as evalsuite has them.
# Not verified against the files (they cannot be downloaded here). Sizes: none found published.
_SHA_SOURCE = "InterDigitalInc/CompressAI-Vision scripts/install.sh @ 012d084b (HF URLs pinned)"
_VARIANTS = {
    # variant: (SHA-256, parameters from the fidelity manifests, README label, encoder input)
    "l0": ("c4f994b01a16d48bcf2fbbb089448cfbf58fae5811edfa8113c953b8b8cc64b8", 34_792_784, "L0", 512),
    "l1": ("fa151df2b9b96896accd505470755cdd293a4c50cdabac95478f3fbd86d9152b", 47_650_128, "L1", 512),
    "l2": ("d4bfd842224cbb99de09acc3325e81ac5b7e8725c8fbdab152305e5d934bfe4a", 61_328_592, "L2", 512),
    "xl0": ("9bc2f87bd23d6e6d1f7b5beff910f98835c7c333fac73e695bac0bec685968f8", 116_957_904, "XL0", 1024),
    "xl1": ("10f42277679427c1183dcff19758e536aa86bcc4304e4b387ff48865784be05c", 203_346_128, "XL1", 1024),
}


def _spec(variant: str) -> ModelSpec:
    sha256, params, label, size = _VARIANTS[variant]
    name, filename = f"efficientvit-sam-{variant}", f"efficientvit_sam_{variant}.pt"
    return ModelSpec(
        name,
        f"EfficientViT-SAM-{label} (Zhang et al. 2024), {params / 1e6:.1f}M params, encoder at {size}²",
        network_factory(name, partial(build_efficientvit_sam, variant), partial(_make_runner, name)),
        label=f"EfficientViT-SAM-{label}",
        weights=WeightsFile(
            name,
            filename,
            _HF + filename,
            format="state_dict_key_or_plain",
            sha256=sha256,
            sha256_source=_SHA_SOURCE,
        ),
        parameters=params,
        input_size=f"{size} long side, padded",
        licence="Apache-2.0",
        verification=(
            "golden (official efficientvit) + key layout"
            if variant == "l0"
            else "key layout; the code of efficientvit-sam-l0 (golden)"
        ),
    )


EFFICIENTVIT_SAM_L0 = _spec("l0")
EFFICIENTVIT_SAM_L1 = _spec("l1")
EFFICIENTVIT_SAM_L2 = _spec("l2")
EFFICIENTVIT_SAM_XL0 = _spec("xl0")
EFFICIENTVIT_SAM_XL1 = _spec("xl1")
