"""Peers' evaluation conventions as named option sets: ``--preset efficientvit-sam | edgesam | sam-hq``.

A preset is nothing but protocol options (and the model's own options where the peer's code sets one),
each read from that peer's published evaluation code (file, lines and commit below and in
docs/presets.md). It is applied to each protocol of a run that has the option; ``--set`` values win over
the preset's. Everything a preset sets is an ordinary option, so it is recorded, named in run names and
labels, and compared as such: a preset changes no number that ``--set`` could not.

What a peer's code does that is no option — it changes the model's input or the ground truth's pixels —
is listed under ``not_reproduced``: a preset reproduces the peer's *protocol*, not those steps. The tests
(tests/test_presets.py) re-implement each peer's per-image loop from its code and check, with one
deterministic fake model, that evalsuite with the preset gives the same per-instance IoUs and means on the
sample, and say which steps they replace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError, did_you_mean
from ..models import get_spec
from ..models.base import Runner
from ..protocols import get_protocol


@dataclass(frozen=True)
class Preset:
    """One peer's conventions (see the module docstring)."""

    name: str
    summary: str
    #: where each value was read (repository @ commit: file lines)
    source: str
    protocol_options: Mapping[str, Any]
    model_options: Mapping[str, Any] = field(default_factory=dict)
    #: what the peer's code does that no option expresses (said in docs, ls and the tests)
    not_reproduced: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "efficientvit-sam",
            "EfficientViT-SAM's eval_efficientvit_sam_model.py: annotation box, crowd kept, SAM's clicker, "
            "argmax-score mask, every annotation of area >= 1 scored, overlapping size buckets",
            "mit-han-lab/efficientvit @ de7d773: applications/efficientvit_sam/"
            "eval_efficientvit_sam_model.py 25-26, 53-76, 136-191; sam_eval_utils.py 19-46, 136-190",
            {
                "box_source": "ann",
                "include_crowd": True,
                "click_rule": "sam",
                "mask_choice": "score",
                "empty_mask": "zero",
                "size_buckets": "inclusive",
            },
            not_reproduced=(
                "the IoU's 1e-7 epsilon (|A∩B| / (|A∪B| + 1e-7): below 1e-7 of each IoU)",
                "multi-GPU padding: DistributedSampler repeats images when the image count is not a multiple "
                "of the GPU count (LVIS on 8 GPUs: 7 images counted twice)",
            ),
        ),
        Preset(
            "edgesam",
            "EdgeSAM's evaluation/eval_mIoU.py: annotation box, crowd dropped, the first mask token, the "
            "mask-centre point, no refinement iteration (the paper's Box / Center columns)",
            "chongzhou96/EdgeSAM @ b53372c: evaluation/eval_mIoU.py 93-123, 306-326, 429-472; "
            "training/data/coco_dataset.py 63-65, 108-110; scripts/eval_mIoU.sh",
            {
                "box_source": "ann",
                "include_crowd": False,
                "click_rule": "center",
                "mask_choice": "single",
            },
            not_reproduced=(
                "the ground truth's resize round trip (nearest to the 1024-pixel input, bilinear back, > 0: "
                "about one pixel wider than the annotation)",
                "the image resize (torch bilinear with antialias, not the predictor's)",
                "the centre point computed on the 1024-scale ground truth with kornia's approximate "
                "distance transform (evalsuite: the exact transform at the original size)",
                "the +1 / +2 point refinement rounds (points drawn at random from the error region)",
                "an empty ground truth: EdgeSAM scores it (IoU 0, dropped when the prediction is empty "
                "too); evalsuite skips it",
            ),
        ),
        Preset(
            "sam-hq",
            "SAM-HQ's train/train.py --eval: the mask's box with an inclusive max, one output, the HQ "
            "token's mask alone (hq_token_only), mIoU with mBIoU on the HQ datasets",
            "SysCV/sam-hq @ fb181f8: train/train.py 502-585; train/utils/misc.py 375-401, 483-537",
            {"box_source": "tight_inclusive", "mask_choice": "single"},
            {"hq_token_only": True},
            not_reproduced=(
                "the image and the label squashed to 1024×1024 (bilinear, aspect ratio not kept) before "
                "the model and the box: evalsuite prompts the model at the original size, as its "
                "predictor does",
                "the box taken from the resized label (> 128) in the squashed frame",
            ),
        ),
    )
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise InputError(
            f"unknown preset {name!r}.{did_you_mean(name, list(PRESETS))}",
            hint=f"presets: {', '.join(PRESETS)} (`evalsuite ls presets`)",
        )
    return PRESETS[name]


def _model_options(model: str | Runner) -> Mapping[str, Any]:
    if isinstance(model, str):
        return get_spec(model).options if model else {}
    return model.spec.options if model.spec is not None else {}


def preset_overrides(
    name: str, protocols: Sequence[str], model: str | Runner, given: Mapping[str, Any]
) -> dict[str, Any]:
    """``given`` (the run's ``--set`` values) with the preset's options added where the run's protocols
    (or its model) have them; ``given`` wins. A protocol the preset's options cannot apply to is named."""
    preset = get_preset(name)
    out = dict(given)
    protos = [get_protocol(p) for p in protocols]
    for key, value in preset.protocol_options.items():
        if key not in out and any(p.accepts(key) for p in protos):
            out[key] = value
    declared = _model_options(model)
    for key, value in preset.model_options.items():
        if key not in out and key in declared:
            out[key] = value
    for p in protos:
        mine = {k: v for k, v in out.items() if p.accepts(k)}
        try:
            p.with_options(mine)
        except InputError as e:
            raise InputError(
                f"preset {name} on {p.name}: {e.message}",
                hint=f"the preset's conventions: {preset.summary}",
            ) from None
    return out
