"""evalsuite: trustworthy zero-shot numbers for promptable segmentation models.

Reproduces the Table 4 (mIoU with box / click prompts) and Table 5 (detector-box instance AP)
protocols of the EfficientSAM paper on COCO / LVIS — and runs your own models and checkpoints
on them — with the official COCO / LVIS tooling underneath.

From Python::

    import evalsuite

    res = evalsuite.evaluate("efficientsam-s", "coco-box", data="sample", weights="random", limit=3)
    res                    # in Jupyter: the runs as HTML (repr: the headline numbers)
    res.summary            # pandas: one row per run × metric (paper value and Δ where comparable)
    res.instances          # pandas: one row per scored instance
    evalsuite.load("runs/").table(4)   # HTML in Jupyter; print() gives Markdown, .latex LaTeX

Entry points: :func:`evaluate`, :func:`load`, :class:`Results`, :class:`RunConfig` (+ ``run``),
:class:`RunRecord`, :func:`register_dataset` / :func:`load_dataset_file` (your own datasets,
docs/datasets.md); errors to catch: :class:`InputError` (bad input: files, names, options) and its
base :class:`EvalsuiteError`; models in :mod:`evalsuite.models`. The command line is ``evalsuite --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .api import Results, evaluate, load
    from .data.registry import load_dataset_file, register_dataset
    from .engine import RunConfig, run
    from .errors import EvalsuiteError, InputError
    from .record import RunRecord

_LAZY = {
    "evaluate": "api",
    "load": "api",
    "Results": "api",
    "RunConfig": "engine",
    "run": "engine",
    "RunRecord": "record",
    "EvalsuiteError": "errors",
    "InputError": "errors",
    "register_dataset": "data.registry",
    "load_dataset_file": "data.registry",
}
__all__ = [
    "EvalsuiteError",
    "InputError",
    "Results",
    "RunConfig",
    "RunRecord",
    "__version__",
    "evaluate",
    "load",
    "load_dataset_file",
    "register_dataset",
    "run",
]


def __dir__() -> list[str]:
    """The public names, loaded or not (what tab completion offers)."""
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    """Import the heavy parts (torch, pandas) only when they are used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'evalsuite' has no attribute {name!r}")
