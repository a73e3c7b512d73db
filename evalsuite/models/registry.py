"""Model registry fed by the ``evalsuite.models`` entry-point group.

Built-in models are declared in evalsuite's own ``pyproject.toml`` exactly as a
third-party package would declare its own, so adding a model is one module and
one entry point — never an edit here. Entry points are resolved lazily: a
model's module (and its heavy imports) loads only when that model is used.
"""

from __future__ import annotations

import inspect
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from ..errors import InputError, UnknownNameError, did_you_mean
from .base import ModelSpec, Runner

ENTRY_POINT_GROUP = "evalsuite.models"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        # The first distribution to claim a name wins; duplicates are ignored
        # rather than silently replacing a built-in.
        found.setdefault(ep.name, ep)
    return found


def model_names() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_entry_points())


def get_spec(name: str) -> ModelSpec:
    """Resolve a model name to its :class:`ModelSpec` (loading its module)."""
    eps = _entry_points()
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
    target = eps[name].load()
    if isinstance(target, ModelSpec):
        return target
    if callable(target):
        doc = inspect.getdoc(target) or ""
        return ModelSpec(name=name, summary=doc.splitlines()[0] if doc else "", build=target)
    raise InputError(
        f"entry point {eps[name].value!r} for model {name!r} is neither a ModelSpec nor a callable",
        hint=f'fix the [project.entry-points."{ENTRY_POINT_GROUP}"] table of the package that provides it',
    )


def build_model(name: str, checkpoint: str | None = None, device: str = "cpu", **options) -> Runner:
    """Build the runner registered as ``name``.

    ``checkpoint=None`` builds the network without loading weights (tests,
    benchmarks); weightless baselines ignore it.
    """
    runner = get_spec(name).build(checkpoint=checkpoint, device=device, **options)
    if not isinstance(runner, Runner):
        raise InputError(f"model {name!r}: its factory returned {type(runner).__name__}, not a Runner")
    runner.name = runner.name or name
    return runner
