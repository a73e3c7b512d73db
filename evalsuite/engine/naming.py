"""The model of a run and the run's name.

A run evaluates a model — a registered name or a runner object — with some weights: the official
checkpoint, a file of the user's (a fine-tune), deterministic random weights, or none. Its name
labels the run folder, the record and every report row, so that variants of one model sit side
by side: by default the model name, plus ``+ck<SHA-256 prefix>`` for a checkpoint that is not the
official file, ``+random<SEED>`` for random weights and ``+key=value`` for each protocol option
changed from its shipped value. ``--name`` replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import InputError
from ..fetch import expected_sha256
from ..models import build_model, get_spec, parse_weights
from ..models.base import ModelSpec, Runner
from ..models.weights import find_checkpoint
from ..protocols import Protocol
from ..record import ModelPart
from .config import RunConfig


@dataclass(frozen=True)
class RunModel:
    """The built runner of a run, what the record says about it, and how its runs are named."""

    runner: Runner
    part: ModelPart
    base_name: str  # the model name with its weights suffix, or the user's --name
    explicit: bool = False  # the user named the run: no option suffix

    @property
    def name(self) -> str:
        return self.part.name

    def name_for(self, protocol: Protocol) -> str:
        """The run name of one protocol of the run."""
        return self.base_name if self.explicit else self.base_name + option_suffix(protocol.overrides)


def _count_parameters(runner: Runner, spec: ModelSpec | None) -> int | None:
    """Parameters of the runner's network as built (spec's documented count where there is none)."""
    net = runner.model
    if isinstance(net, nn.Module):
        return int(sum(p.numel() for p in net.parameters()))
    if spec is not None:
        return spec.parameters
    return None


def _is_official(spec: ModelSpec, sha256: str | None) -> bool:
    """The checkpoint is the official file: its SHA-256 is the published one (or the one first trusted)."""
    if spec.weights is None or sha256 is None:
        return False
    return expected_sha256(spec.weights).sha256 == sha256


def option_suffix(overrides: dict[str, object]) -> str:
    """``+key=value`` for each changed option, sorted (part of a default run name)."""
    return "".join(
        f"+{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in sorted(overrides.items())
    )


def prepare_model(cfg: RunConfig) -> RunModel:
    """Build (or adopt) the runner and describe it for the record; derive the run name."""
    if isinstance(cfg.model, Runner):
        runner = cfg.model
        if cfg.checkpoint is not None or cfg.weights not in (None, "official"):
            raise InputError("a runner object comes with its weights: drop checkpoint= / weights=")
        if not runner.name:
            raise InputError("the runner has no name: set runner.name (it labels the run)")
        spec = runner.spec
        weights = "none" if runner.checkpoint_sha256 is None else "file"
        part = ModelPart(
            name=runner.name,
            checkpoint=None,
            checkpoint_sha256=runner.checkpoint_sha256,
            precision=cfg.precision,
            label=(spec.label or None) if spec is not None else None,
            weights=weights,
            parameters=_count_parameters(runner, spec),
        )
        return RunModel(runner, part, cfg.name or runner.name, explicit=cfg.name is not None)

    name = cfg.model
    spec = get_spec(name)
    choice = parse_weights(cfg.weights, cfg.checkpoint)
    checkpoint = str(choice.path) if choice.path is not None else None
    if choice.kind == "official" and spec.needs_weights:
        checkpoint = str(find_checkpoint(spec))
    if choice.kind == "random" and not spec.needs_weights:
        raise InputError(f"model {name!r} has no weights; drop --weights random")
    if choice.kind == "file" and not spec.needs_weights:
        raise InputError(f"model {name!r} has no weights; drop --checkpoint")
    runner = build_model(
        name, checkpoint=checkpoint, device=cfg.device, weights=choice, trust_checkpoint=cfg.trust_checkpoint
    )
    sha = runner.checkpoint_sha256
    if choice.kind == "random":
        weights = choice.label
    elif not spec.needs_weights:
        weights = "none"
    else:
        weights = "official" if _is_official(spec, sha) else "file"
    part = ModelPart(
        name=name,
        checkpoint=checkpoint,
        checkpoint_sha256=sha,
        precision=cfg.precision,
        label=spec.label or None,
        weights=weights,
        parameters=_count_parameters(runner, spec),
    )
    if cfg.name is not None:
        return RunModel(runner, part, cfg.name, explicit=True)
    base = name
    if weights == "file" and sha is not None:
        base += f"+ck{sha[:8]}"
    if choice.kind == "random":
        base += f"+random{choice.seed}"
    return RunModel(runner, part, base)
