"""Where a result came from: software versions, git state, device."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

import torch

from ._version import __version__

_PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "pycocotools",
    "lvis",
    "Pillow",
    "pandas",
    "ultralytics",
    "torchvision",
)


@cache
def git_state() -> dict[str, object]:
    """Commit and dirty flag of the evalsuite checkout, or None outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


@cache
def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def software() -> dict[str, object]:
    return {
        "evalsuite": __version__,
        **git_state(),
        "python": platform.python_version(),
        "packages": package_versions(),
    }


def device_info(device: str) -> dict[str, str]:
    """The device a run used, by name (GPU model or CPU)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
    else:
        name = platform.processor() or platform.machine()
    return {"device": str(dev), "device_name": name}
