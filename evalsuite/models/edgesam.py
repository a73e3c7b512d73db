"""EdgeSAM and EdgeSAM-3x: RepViT-m1 in front of SAM's decoder, behind EdgeSAM's ``SamPredictor`` pipeline.

Facts from chongzhou96/EdgeSAM @ 03465ff (the last commit before the training code, whose imports need a
detector stack; HEAD's inference path builds the same modules): ``build_edge_sam`` = ``RepViT("m1",
upsample_mode="bicubic")`` (:class:`~evalsuite.models.nn.repvit.EdgeSamEncoder`, run unfused) + SAM v1's
prompt encoder and mask decoder (4 mask tokens). Pre- and post-processing are SAM's ``SamPredictor``'s
(:class:`~evalsuite.models.sam.SamRunner`): 1024 long side, PIL bilinear, SAM mean/std, zero padding;
256² logits → 1024² → crop → original size → ``> 0``. Both checkpoints (``edge_sam.pth``, and
``edge_sam_3x.pth`` trained on 3 % of SA-1B instead of 1 %) have the same layout and are raw state dicts.
They load strictly, every key: the keys an image predictor without a mask prompt never reads
(``unused_by_image_predictor`` in the manifests) are part of the official network and load normally —
``prompt_encoder.mask_downscaling.*`` (SAM's mask encoder, used with a ``mask_input``) and the 106
BatchNorm ``num_batches_tracked`` counters (training only).

**The official predictor's options** (``edge_sam/predictor.py``, ``SamPredictor.predict``), exposed as
model options with the defaults of ``predict``:

* ``num_multimask_outputs`` ∈ {1, 3, 4}, default **3**: EdgeSAM has no ``multimask_output`` flag; the
  decoder returns token 0 (1), tokens 1..3 (3, SAM's multimask output) or tokens 0..3 (4). Mapping onto
  evalsuite's ``Runner.predict(multimask=...)``: ``multimask=True`` → ``num_multimask_outputs`` = the option
  (M = 1, 3 or 4 outputs); ``multimask=False`` → ``num_multimask_outputs=1`` (token 0, SAM's single-mask
  output), whatever the option. The goldens were made with 3 (mm1) and 1 (mm0). A protocol's
  ``mask_choice=score`` then takes the best-scored of the M outputs.
* ``use_stability_score``, default **False**: ``predict`` reports the IoU head's output; with True the
  score of each mask is instead its stability score on the 256² logits (pixels > +1 over pixels > −1,
  offset 1.0, threshold 0.0), which changes which mask ``mask_choice=score`` picks and the AP mask scores.
  The default is ``predict``'s, not ``predict_torch``'s (True there): ``predict`` is the documented
  single-image entry point that evalsuite's calls mirror, and the goldens were made through it. The web
  demo uses True with 4 outputs for clicks and 1 output for boxes, and the README (CoreML/ONNX export)
  explains why: the IoU token was not distilled, so its predictions "might not be reliable" (its CoreML
  decoder export command passes ``--use-stability-score``). EdgeSAM's own evaluation (HEAD
  ``evaluation/eval_mIoU.py``) calls the mask decoder directly and scores with the raw IoU head (no
  stability score); its ``--num-multimask-outputs`` defaults to 1 (``scripts/eval_mIoU.sh``: 1 for its box
  and point rows, 3 with ``--multimask-select score`` or ``oracle`` for its multimask rows).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..options import OptionSpec
from .base import ModelSpec, WeightsFile
from .nn.repvit import EdgeSamEncoder
from .sam import MASK_THRESHOLD, SamModel, SamNetwork, SamRunner, _SamImage
from .weights import network_factory

#: decoder tokens returned for each ``num_multimask_outputs`` (EdgeSAM's ``MaskDecoder.forward``)
MASK_TOKENS = {1: slice(0, 1), 3: slice(1, 4), 4: slice(0, 4)}
#: the official ``SamPredictor.predict`` defaults
DEFAULT_NUM_MULTIMASK_OUTPUTS = 3
DEFAULT_USE_STABILITY_SCORE = False
#: ``Sam.stability_score_offset`` / ``SamPredictor.stability_score_offset``
STABILITY_OFFSET = 1.0


def stability_score(
    logits: torch.Tensor, threshold: float = MASK_THRESHOLD, offset: float = STABILITY_OFFSET
) -> torch.Tensor:
    """``calculate_stability_score``: per mask, pixels > threshold + offset over pixels > threshold − offset
    (float32; NaN where no pixel exceeds threshold − offset, as officially)."""
    inter = (logits > threshold + offset).sum(dim=(-2, -1))
    union = (logits > threshold - offset).sum(dim=(-2, -1))
    return inter.to(torch.float32) / union.to(torch.float32)


def build_edgesam() -> SamModel:
    """The untrained EdgeSAM network (both checkpoints), keyed like the official ``Sam`` module."""
    return SamModel(EdgeSamEncoder())


class EdgeSamRunner(SamRunner):
    """EdgeSAM with its ``SamPredictor``'s options (see the module docstring for the mapping)."""

    def __init__(
        self,
        model: SamNetwork,
        device: str | torch.device = "cpu",
        name: str = "",
        num_multimask_outputs: int = DEFAULT_NUM_MULTIMASK_OUTPUTS,
        use_stability_score: bool = DEFAULT_USE_STABILITY_SCORE,
    ) -> None:
        super().__init__(model, device=device, name=name)
        if num_multimask_outputs not in MASK_TOKENS:
            raise ValueError(f"num_multimask_outputs must be 1, 3 or 4, got {num_multimask_outputs!r}")
        self.num_multimask_outputs = num_multimask_outputs
        self.use_stability_score = use_stability_score

    def _decode(
        self, image: _SamImage, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All four mask tokens decoded, then the official predictor's slice: ``num_multimask_outputs``
        tokens (the option) with ``multimask``, else token 0; scored by the IoU head or, with
        ``use_stability_score``, by the stability of the low-res logits."""
        all_masks, all_iou = self.model.mask_decoder.predict_masks(
            image.features, self.model.prompt_encoder.get_dense_pe(), sparse, dense
        )
        tokens = MASK_TOKENS[self.num_multimask_outputs if multimask else 1]
        low_res, iou = all_masks[:, tokens], all_iou[:, tokens]
        if self.use_stability_score:
            iou = stability_score(low_res)
        return low_res, iou


def _make_runner(
    name: str,
    network: nn.Module,
    device: torch.device,
    num_multimask_outputs: int = DEFAULT_NUM_MULTIMASK_OUTPUTS,
    use_stability_score: bool = DEFAULT_USE_STABILITY_SCORE,
) -> EdgeSamRunner:
    assert isinstance(network, SamModel)
    return EdgeSamRunner(network, device, name, num_multimask_outputs, use_stability_score)


OPTIONS = {
    "num_multimask_outputs": OptionSpec(
        choices=(1, 3, 4),
        column=False,
        default=DEFAULT_NUM_MULTIMASK_OUTPUTS,
        help="masks per prompt when multimask is asked for: 3 = decoder tokens 1..3 (SAM's), "
        "4 = tokens 0..3, 1 = token 0; a single-mask call always gives token 0 "
        "(EdgeSAM SamPredictor.predict, default 3)",
    ),
    "use_stability_score": OptionSpec(
        bool,
        column=False,
        default=DEFAULT_USE_STABILITY_SCORE,
        help="score masks by their stability (logits > +1 over > -1) instead of the IoU head "
        "(EdgeSAM SamPredictor.predict, default False)",
    ),
}

_HF = "https://huggingface.co/spaces/chongzhou/EdgeSAM/resolve/main/weights/"
# URLs: the EdgeSAM README (HEAD b53372c, "Usage" wget lines and the "Checkpoints" table) — the files are
# published only in the authors' Hugging Face Space. No SHA-256 or size is published there or found in
# public code: evalsuite records the SHA-256 at the first download that loads (trust on first use).
# Format: build_sam.py's ``torch.load(f)`` → raw state dict, then ``load_state_dict`` (strict at 03465ff).
# Licence: S-Lab License 1.0 (the repository's LICENSE; non-commercial use only).
_LICENCE = "S-Lab License 1.0 (non-commercial)"
PARAMETERS = 9_582_112  # ../shared/fidelity/manifests/edgesam.json (edgesam-3x.json: the same)


def _spec(name: str, filename: str, label: str, summary: str, verification: str) -> ModelSpec:
    return ModelSpec(
        name,
        summary,
        network_factory(name, build_edgesam, partial(_make_runner, name)),
        label=label,
        weights=WeightsFile(name, filename, _HF + filename, format="state_dict"),
        parameters=PARAMETERS,
        input_size="1024 long side, padded",
        licence=_LICENCE,
        verification=verification,
        options=OPTIONS,
    )


EDGESAM = _spec(
    "edgesam",
    "edge_sam.pth",
    "EdgeSAM",
    "EdgeSAM (Zhou et al. 2023): RepViT-m1 encoder distilled from SAM ViT-H + SAM's decoder",
    "golden (official EdgeSAM @03465ff) + key layout",
)
EDGESAM_3X = _spec(
    "edgesam-3x",
    "edge_sam_3x.pth",
    "EdgeSAM-3x",
    "EdgeSAM-3x (Zhou et al. 2023): the EdgeSAM network trained on 3x more data (3% of SA-1B)",
    "key layout; the code of edgesam (golden)",
)
