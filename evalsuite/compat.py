"""Compatibility shims for third-party code, kept in one place.

``lvis`` 0.5.3 (the last release) calls ``np.float`` in ``LVISEval.accumulate``;
numpy 2 removed that alias, so the official LVIS evaluator crashes. The shim
restores the alias to the builtin ``float`` (exactly what numpy < 1.24 had) and
nothing else.
"""

from __future__ import annotations

import numpy as np


def patch_lvis_numpy_float() -> None:
    """Make ``np.float`` resolve to ``float`` if numpy no longer provides it (idempotent)."""
    if "float" not in np.__dict__:
        np.float = float  # type: ignore[attr-defined]
