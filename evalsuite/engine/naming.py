"""The model of a run and the run's name.

A run evaluates a model — a registered name or a runner object — with some weights: the official
checkpoint, a file of the user's (a fine-tune), deterministic random weights, or none. Its name
labels the run folder, the record and every report row, so that variants of one model sit side
by side. By default it carries everything that makes two runs of a model differ: the model name,
``+ck<SHA-256 prefix>`` for a checkpoint that is not the official file, ``+random<SEED>`` for random
weights, ``+key=value`` for each model or protocol option changed from its default, ``+limit<N>``,
``+seed<N>`` and ``@<dataset>`` for an annotation file that is not the protocol's own dataset (the
bundled sample keeps the plain name). ``--name`` replaces it; a name that already holds a run of
another identity is refused at run time (:mod:`evalsuite.identity`).

A model passed from Python is named by its author and identified by a fingerprint
(:mod:`.fingerprint`); it may not take a registered model's name unless it is that model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..data.catalog import DEFAULT_FOR_FAMILY, is_sample
from ..data.locate import DataSource
from ..errors import InputError
from ..fetch import is_official
from ..identity import resume_problems
from ..models import build_model, get_spec, model_names, parse_weights
from ..models.base import ModelSpec, Runner
from ..models.weights import find_checkpoint
from ..protocols import Protocol
from ..record import ModelPart
from .config import RunConfig, check_name
from .fingerprint import model_fingerprint
from .runfolder import CONFIG_FILE


@dataclass(frozen=True)
class RunModel:
    """The built runner of a run, what the record says about it, and how its runs are named."""

    runner: Runner
    part: ModelPart
    base_name: str  # the model name with its weights and model-option suffixes, or the user's --name
    explicit: bool = False  # the user named the run: no suffix
    context: str = ""  # +limit<N>+seed<N>: the run's settings beyond the model and the protocol

    @property
    def name(self) -> str:
        return self.part.name

    def name_for(self, protocol: Protocol, source: DataSource | None = None) -> str:
        """The run name of one protocol of the run (on the dataset ``source``)."""
        if self.explicit:
            return self.base_name
        name = self.base_name + option_suffix(protocol.overrides) + self.context
        return name + dataset_suffix(protocol, source)


def _count_parameters(runner: Runner, spec: ModelSpec | None) -> int | None:
    """Parameters of the runner's network as built (spec's documented count where there is none)."""
    net = runner.model
    if isinstance(net, nn.Module):
        return int(sum(p.numel() for p in net.parameters()))
    if spec is not None:
        return spec.parameters
    return None


def _weights_kind(spec: ModelSpec, sha256: str | None, official_path: bool) -> str:
    """``official`` when the checkpoint's SHA-256 is the published one (or was recorded when `evalsuite
    download` fetched it from the official URL); ``unverified`` for another file at the official cache
    path (meant as the official file, but nobody vouched for it); ``file`` for a file of the user's."""
    if spec.weights is not None and is_official(spec.weights, sha256):
        return "official"
    return "unverified" if official_path else "file"


def dataset_suffix(protocol: Protocol, source: DataSource | None) -> str:
    """``@<dataset>`` when the run read another annotation file than the protocol's own dataset."""
    if source is None or is_sample(source.name):
        return ""
    default = DEFAULT_FOR_FAMILY.get(protocol.dataset)
    return "" if default is not None and source.name == default.name else f"@{source.name}"


def context_suffix(cfg: RunConfig) -> str:
    """``+limit<N>`` and ``+seed<N>`` where they differ from the defaults (every image, seed 0)."""
    out = f"+limit{cfg.limit}" if cfg.limit is not None else ""
    return out + (f"+seed{cfg.seed}" if cfg.seed else "")


def option_suffix(overrides: dict[str, object]) -> str:
    """``+key=value`` for each changed option, sorted (part of a default run name)."""
    return "".join(
        f"+{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in sorted(overrides.items())
    )


def split_overrides(cfg: RunConfig) -> tuple[dict[str, object], dict[str, object]]:
    """``--set`` values as (model options, protocol options): a key the model declares is the model's."""
    declared = {}
    if isinstance(cfg.model, str):
        declared = dict(get_spec(cfg.model).options)
    elif cfg.model.spec is not None:
        declared = dict(cfg.model.spec.options)
    model_opts: dict[str, object] = {}
    for key, value in cfg.overrides.items():
        if key in declared:
            model_opts[key] = declared[key].parse(key, value) if isinstance(value, str) else value
    return model_opts, {k: v for k, v in cfg.overrides.items() if k not in model_opts}


def prepare_model(cfg: RunConfig) -> RunModel:
    """Build (or adopt) the runner and describe it for the record; derive the run name."""
    model_opts, _ = split_overrides(cfg)
    if isinstance(cfg.model, Runner):
        return _adopt(cfg)
    name = cfg.model
    spec = get_spec(name)
    choice = parse_weights(cfg.weights, cfg.checkpoint)
    checkpoint = str(choice.path) if choice.path is not None else None
    official_path = False
    if choice.kind == "official" and spec.needs_weights:
        checkpoint, official_path = str(find_checkpoint(spec)), True
    if choice.kind == "random" and not spec.needs_weights:
        raise InputError(f"model {name!r} has no weights; drop --weights random")
    if choice.kind == "file" and not spec.needs_weights:
        raise InputError(f"model {name!r} has no weights; drop --checkpoint")
    if cfg.model_version is not None:
        raise InputError(
            "version= names a model passed from Python; a registered model is named by its weights"
        )
    runner = build_model(
        name,
        checkpoint=checkpoint,
        device=cfg.device,
        weights=choice,
        trust_checkpoint=cfg.trust_checkpoint,
        **model_opts,
    )
    sha = runner.checkpoint_sha256
    if choice.kind == "random":
        weights = choice.label
    elif not spec.needs_weights:
        weights = "none"
    else:
        weights = _weights_kind(spec, sha, official_path)
    changed = {k: v for k, v in spec.resolve_options(model_opts).items() if v != spec.options[k].default}
    part = ModelPart(
        name=name,
        checkpoint=checkpoint,
        checkpoint_sha256=sha,
        precision=cfg.precision,
        label=spec.label or None,
        weights=weights,
        parameters=_count_parameters(runner, spec),
        options=changed,
    )
    if cfg.name is not None:
        return RunModel(runner, part, cfg.name, explicit=True)
    base = name
    if weights == "file" and sha is not None:
        base += f"+ck{sha[:8]}"
    if choice.kind == "random":
        base += f"+random{choice.seed}"
    return RunModel(runner, part, base + option_suffix(changed), context=context_suffix(cfg))


def _registered(runner: Runner) -> bool:
    """The object was built by the registry as the model it names (``build_model``)."""
    spec = runner.spec
    return spec is not None and spec.name in model_names() and get_spec(spec.name) is spec


def _adopt(cfg: RunConfig) -> RunModel:
    """A runner object from Python: its name checked like --name, its identity fingerprinted."""
    runner = cfg.model
    assert isinstance(runner, Runner)
    if cfg.checkpoint is not None or cfg.weights not in (None, "official"):
        raise InputError("a runner object comes with its weights: drop checkpoint= / weights=")
    if not runner.name:
        raise InputError("the runner has no name: set runner.name (it labels the run)")
    check_name(runner.name, "the model's name")
    registered = _registered(runner)
    if not registered and runner.name in model_names():
        raise InputError(
            f"a model passed from Python is named {runner.name!r}, the name of a registered model",
            hint="give it a name of its own (name=...); only the registered model may carry that name",
        )
    if cfg.name is not None and not registered and cfg.name in model_names():
        raise InputError(
            f"name={cfg.name!r} is a registered model's name, and this model is not that model",
            hint="choose another name for the run",
        )
    spec = runner.spec
    if registered:
        assert spec is not None
        weights = runner.weights_label or "untrained"
        if weights == "file":
            weights = _weights_kind(spec, runner.checkpoint_sha256, official_path=False)
        fingerprint = None if cfg.model_version is None else model_fingerprint(runner, cfg.model_version)
    else:
        weights = "none" if runner.checkpoint_sha256 is None else "file"
        fingerprint = model_fingerprint(runner, cfg.model_version)
    part = ModelPart(
        name=runner.name,
        checkpoint=None,
        checkpoint_sha256=runner.checkpoint_sha256,
        precision=cfg.precision,
        label=(spec.label or None) if spec is not None and registered else None,
        weights=weights,
        parameters=_count_parameters(runner, spec),
        fingerprint=fingerprint,
    )
    if cfg.name is not None:
        return RunModel(runner, part, cfg.name, explicit=True)
    return RunModel(runner, part, runner.name, context=context_suffix(cfg))


#: the settings of a run folder that say which model made it (see engine.loop._fingerprint)
_MODEL_KEYS = ("model", "checkpoint_sha256", "weights", "model_fingerprint", "model_options", "precision")


def check_name_free(name_folder: Path, fingerprint: Mapping[str, Any]) -> None:
    """Refuse a run whose name already holds another model's runs (of other protocols) in this folder.

    One run name is one row of every report: ``--model box-fill --name mix`` on one protocol and
    ``--model oracle --name mix`` on another would make one row of two models. (A protocol folder of
    the same name is checked by the resume rule, :func:`evalsuite.identity.resume_problems`.)
    """
    mine = {k: fingerprint.get(k) for k in _MODEL_KEYS}
    for config in sorted(Path(name_folder).glob(f"*/{CONFIG_FILE}")):
        if config.parent.name == str(fingerprint.get("protocol", "")).split("@")[0]:
            continue  # this protocol's own folder: the resume rule decides (and names what differs)
        try:
            other = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a damaged folder is reported when it is resumed
        if not isinstance(other, dict):
            continue
        theirs = {k: other.get(k) for k in _MODEL_KEYS}
        if theirs != mine:
            problems = resume_problems(theirs, mine)
            raise InputError(
                f"run name {name_folder.name!r} already holds a run of another model in {config.parent} "
                f"({'; '.join(problems)})",
                hint="give this run its own name (--name) or --out (one run name is one model)",
            )
