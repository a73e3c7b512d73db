"""Model registry fed by the ``evalsuite.models`` entry-point group.

Built-in models are declared in evalsuite's own ``pyproject.toml`` exactly as a third-party
package would declare its own, so adding a model is one module and one entry point — never an
edit here. Entry points are resolved lazily: a model's module (and its heavy imports) loads only
when that model is used.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from ..errors import InputError, UnknownNameError, did_you_mean
from .base import ModelSpec, Runner

ENTRY_POINT_GROUP = "evalsuite.models"
_RANDOM = re.compile(r"random(?::(\d+))?")
#: model names become folder names (as run names do; no '@', which marks a dataset in run names)
_VALID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,-]{0,127}")


def _dist(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return f"the package of {ep.value}"
    return f"{dist.metadata['Name']} {dist.version}"


#: model names claimed by more than one package (filled by :func:`_entry_points`)
_CLAIMS: dict[str, list[EntryPoint]] = {}


@cache
def _entry_points() -> dict[str, EntryPoint]:
    """The first entry point of each model name; names several packages claim are noted in ``_CLAIMS``."""
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        claims = found.setdefault(ep.name, [])
        if all((e.value, _dist(e)) != (ep.value, _dist(ep)) for e in claims):  # one package seen twice
            claims.append(ep)
    _CLAIMS.clear()
    _CLAIMS.update({name: claims for name, claims in found.items() if len(claims) > 1})
    return {name: claims[0] for name, claims in found.items()}


def _check_claims(name: str) -> None:
    """A name claimed by two packages is an error naming both: a plugin never silently replaces a model."""
    _entry_points()
    claims = _CLAIMS.get(name, [])
    if len(claims) > 1:
        who = " and ".join(f"{_dist(ep)} ({ep.value})" for ep in claims)
        raise InputError(
            f"model name {name!r} is registered by {len(claims)} packages: {who}",
            hint="uninstall one of them, or ask its author to rename the model",
        )


def model_names() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_entry_points())


def builtin_model_names() -> list[str]:
    """The models evalsuite itself registers (not those of installed plugins), sorted."""
    return sorted(n for n, ep in _entry_points().items() if ep.value.startswith("evalsuite."))


@cache
def get_spec(name: str) -> ModelSpec:
    """Resolve a model name to its :class:`ModelSpec` (loading its module)."""
    eps = _entry_points()
    _check_claims(name)
    if name not in eps:
        if not eps:
            raise UnknownNameError(
                f"unknown model {name!r}: no models are registered",
                hint="evalsuite must be installed (pip install -e .) so its entry points exist",
            )
        raise UnknownNameError(
            f"unknown model {name!r}.{did_you_mean(name, list(eps))}",
            hint="`evalsuite ls` lists the registered models",
        )
    if not _VALID_NAME.fullmatch(name):
        raise InputError(
            f"model name {name!r} (from {_dist(eps[name])}) is not a valid name: use letters, digits and "
            ". _ + = , - (it becomes a folder name)"
        )
    target = eps[name].load()
    if isinstance(target, ModelSpec):
        if target.name != name:
            raise InputError(
                f"entry point {name!r} points at the spec of {target.name!r}",
                hint=f'fix the [project.entry-points."{ENTRY_POINT_GROUP}"] table of its package',
            )
        return target
    if callable(target):
        doc = inspect.getdoc(target) or ""
        return ModelSpec(name=name, summary=doc.splitlines()[0] if doc else "", build=target)
    raise InputError(
        f"entry point {eps[name].value!r} for model {name!r} is neither a ModelSpec nor a callable",
        hint=f'fix the [project.entry-points."{ENTRY_POINT_GROUP}"] table of the package that provides it',
    )


@dataclass(frozen=True)
class WeightsChoice:
    """Which weights a run uses: the official file, a file of the user's, random, or none."""

    kind: str  # "official" | "file" | "random" | "none"
    path: Path | None = None
    seed: int | None = None

    @property
    def label(self) -> str:
        """What the run record says: ``official``, ``file``, ``random:SEED`` or ``none``."""
        return f"random:{self.seed}" if self.kind == "random" else self.kind


def parse_weights(text: str | None, checkpoint: str | Path | None = None) -> WeightsChoice:
    """``--weights`` (``official`` default, or ``random[:SEED]``) together with ``--checkpoint``."""
    if text in (None, "", "official"):
        return (
            WeightsChoice("file", Path(checkpoint)) if checkpoint is not None else WeightsChoice("official")
        )
    m = _RANDOM.fullmatch(text)
    if m is None:
        raise InputError(f"--weights must be 'official' or 'random[:SEED]', not {text!r}")
    if checkpoint is not None:
        raise InputError("--weights random and --checkpoint exclude each other")
    return WeightsChoice("random", seed=int(m.group(1) or 0))


def build_model(
    name: str,
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    weights: WeightsChoice | str | None = None,
    trust_checkpoint: bool = False,
    **options: object,
) -> Runner:
    """Build the runner registered as ``name``.

    ``checkpoint=None`` builds the network without loading weights (tests, benchmarks) unless
    ``weights`` says ``random[:SEED]`` (deterministic weights, see :mod:`.random_init`); weightless
    baselines ignore both.
    """
    spec = get_spec(name)
    choice = weights if isinstance(weights, WeightsChoice) else parse_weights(weights, None)
    if spec.options:  # the model's declared options, checked, with their official defaults
        options = spec.resolve_options(options)
    if trust_checkpoint:  # only when asked: a third-party factory need not know the keyword
        options = {**options, "trust_checkpoint": True}
    runner = spec.build(checkpoint=None if checkpoint is None else str(checkpoint), device=device, **options)
    if not isinstance(runner, Runner):
        raise InputError(f"model {name!r}: its factory returned {type(runner).__name__}, not a Runner")
    runner.name = runner.name or name
    runner.spec = spec
    if not spec.needs_weights:
        runner.weights_label = "none"
    elif choice.kind == "random":
        runner.weights_label = choice.label
    else:  # a checkpoint file (official or not: the engine tells by its SHA-256), or none loaded at all
        runner.weights_label = "file" if checkpoint is not None else "untrained"
    if choice.kind == "random" and runner.model is not None:
        from .random_init import randomize

        randomize(runner.model, choice.seed or 0)
    return runner
