"""The evalsuite cache: one root for everything fetched (checkpoints, archives, detection files)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "EVALSUITE_HOME"


def home() -> Path:
    """``$EVALSUITE_HOME``, default ``~/.cache/evalsuite``."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "evalsuite"


def cache_dir(kind: str) -> Path:
    """The cache folder of one kind of artefact: ``checkpoints``, ``datasets`` or ``boxes``."""
    return home() / kind
