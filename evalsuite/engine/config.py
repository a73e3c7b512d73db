"""Everything a user chooses for one run, in one dataclass (the CLI and the Python API fill it).

The user-facing settings are run options declared in :mod:`evalsuite.run_options` (type, default, help,
where each applies): the defaults below are read from there, and :meth:`RunConfig.option` reads any
declared option. A few fields are the engine's own knobs, set by benchmarks and tests (``prompt_batch``,
``warmup``, ``progress_bar``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import run_options as ro
from ..errors import InputError
from ..models.base import Runner
from .timing import DEFAULT_WARMUP

AP_BACKENDS = ro.AP_BACKENDS
PRECISIONS = ro.PRECISIONS
#: run names become folder names: letters, digits and a few separators, nothing that walks paths
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,@-]{0,127}")


_D = ro.DEFAULTS


@dataclass
class RunConfig:
    """One ``evalsuite run``: a model (or variant) on one or more protocols."""

    protocols: list[str]
    model: str | Runner  # a registered name, or a runner object (Python API)
    name: str | None = _D["name"]  # the run's name (rows, folders); None: derived (engine.naming)
    data: str = _D["data"]  # "real" | "sample"
    data_root: Path | None = _D["data_root"]
    ann: Path | None = _D["ann"]
    checkpoint: str | None = _D["checkpoint"]  # None: the official file (models with weights)
    weights: str | None = _D["weights"]  # None / "official", or "random[:SEED]"
    trust_checkpoint: bool = _D["trust_checkpoint"]
    out: Path | None = _D["out"]  # None: nothing is written (Python API), records stay in memory
    limit: int | None = _D["limit"]
    seed: int = _D["seed"]
    device: str = "cpu"  # the CLI and evaluate() resolve the declared default (None: cuda if available)
    overrides: dict[str, Any] = field(default_factory=dict)  # declared default: none
    overwrite: bool = _D["overwrite"]
    progress: bool = _D["progress"]
    #: the progress bar's class (tqdm's signature; None: tqdm's terminal bar); the Python API passes
    #: tqdm's notebook widget in Jupyter
    progress_bar: Callable[..., Any] | None = None
    prompt_batch: int = 64  # instances per model call
    boxes: Path | None = _D["boxes"]  # detection file for the AP protocols
    skip_bad: bool = _D["skip_bad"]
    ap_backend: str = _D["ap_backend"]  # "official" (pycocotools / lvis) | "faster"
    precision: str = _D["precision"]  # "fp32" (faithful default) | "tf32" | "bf16"
    workers: int | None = _D["workers"]  # image-decoding worker processes (None: by core count)
    image_batch: int | None = _D["image_batch"]  # images per encoder pass (None: 8 on CUDA, else 1)
    warmup: int = DEFAULT_WARMUP  # images not timed at the start of a session
    #: a model passed from Python: its version, which identifies it (None: a hash of its outputs on a probe)
    model_version: str | None = _D["model_version"]
    #: a peer's conventions (engine.presets), applied to ``overrides`` by :meth:`check`
    preset: str | None = _D["preset"]
    #: declared run options without a field of their own (read with :meth:`option`)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, protocols: list[str], model: str | Runner, values: dict[str, Any]) -> RunConfig:
        """A config from run-option values by name (the CLI's and evaluate()'s way in): a declared option
        without a field lands in ``extra``; an undeclared one is refused."""
        fields_ = set(cls.__dataclass_fields__)
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in values.items():
            if key in fields_:
                kwargs[key] = value
            elif key in ro.BY_NAME:
                extra[key] = value
            else:
                raise InputError(f"unknown run option {key!r}")
        return cls(protocols=protocols, model=model, extra=extra, **kwargs)

    def option(self, name: str) -> Any:
        """A declared run option's value (a field, or one kept in ``extra``; else its default)."""
        if name in self.__dataclass_fields__:
            return getattr(self, name)
        if name not in ro.BY_NAME:
            raise KeyError(name)
        return self.extra.get(name, ro.default(name))

    def check(self) -> None:
        """Refuse bad settings before any work (one line each); apply the preset to ``overrides``."""
        if self.limit is not None and self.limit < 1:
            raise InputError("--limit must be at least 1")
        if self.ap_backend not in AP_BACKENDS:
            raise InputError(f"--ap-backend must be one of {', '.join(AP_BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.image_batch is not None and self.image_batch < 1:
            raise InputError("--image-batch must be at least 1")
        if self.prompt_batch < 1:
            raise InputError("prompt_batch must be at least 1")
        if self.warmup < 0:
            raise InputError("warmup must be >= 0")
        if self.name is not None:
            check_name(self.name, "--name")
        if self.preset is not None and self.protocols:
            from .presets import preset_overrides

            self.overrides = preset_overrides(self.preset, self.protocols, self.model, self.overrides)


def check_name(name: object, what: str) -> None:
    """A run name becomes a folder name: letters, digits and a few separators, nothing that walks paths."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"{what} {name!r}: use letters, digits and . _ + = , @ - (it becomes a folder name)")
