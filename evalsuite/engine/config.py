"""Everything a user chooses for one run, in one dataclass (the CLI and the Python API fill it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..models.base import Runner
from .timing import DEFAULT_WARMUP

AP_BACKENDS = ("official", "faster")
PRECISIONS = ("fp32", "tf32", "bf16")
#: run names become folder names: letters, digits and a few separators, nothing that walks paths
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,@-]{0,127}")


@dataclass
class RunConfig:
    """One ``evalsuite run``: a model (or variant) on one or more protocols."""

    protocols: list[str]
    model: str | Runner  # a registered name, or a runner object (Python API)
    name: str | None = None  # the run's name (rows, folders); None: derived, see engine.naming
    data: str = "real"  # "real" | "sample"
    data_root: Path | None = None
    ann: Path | None = None
    checkpoint: str | None = None  # None: the official file from the cache, for models that need weights
    weights: str | None = None  # None / "official", or "random[:SEED]" (deterministic, no download)
    trust_checkpoint: bool = False
    out: Path | None = Path("runs")  # None: nothing is written (Python API), records stay in memory
    limit: int | None = None
    seed: int = 0
    device: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    progress: bool = True
    #: the progress bar's class (tqdm's signature; None: tqdm's terminal bar); the Python API passes
    #: tqdm's notebook widget in Jupyter
    progress_bar: Callable[..., Any] | None = None
    prompt_batch: int = 64
    boxes: Path | None = None  # detection file for the AP protocols
    skip_bad: bool = False
    ap_backend: str = "official"  # "official" (pycocotools / lvis) | "faster" (faster-coco-eval)
    precision: str = "fp32"  # "fp32" (faithful default) | "tf32" | "bf16"
    workers: int | None = None  # image-decoding worker processes (None: by core count)
    image_batch: int | None = None  # images per encoder pass (None: 8 on CUDA, 1 elsewhere)
    warmup: int = DEFAULT_WARMUP  # images not timed at the start of a session
    #: a model passed from Python: its version, which identifies it (None: a hash of its outputs on a probe)
    model_version: str | None = None

    def check(self) -> None:
        """Refuse bad settings before any work (one line each)."""
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


def check_name(name: object, what: str) -> None:
    """A run name becomes a folder name: letters, digits and a few separators, nothing that walks paths."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"{what} {name!r}: use letters, digits and . _ + = , @ - (it becomes a folder name)")
