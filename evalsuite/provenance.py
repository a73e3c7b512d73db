"""Where a result came from: software versions, git state, device."""

from __future__ import annotations

import contextlib
import hashlib
import platform
import subprocess
from functools import cache
from importlib import metadata, resources
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


@cache
def code_version() -> str:
    """evalsuite's version and a SHA-256 prefix of its own code and protocol files, as installed.

    Unlike the git commit it also changes with uncommitted edits, and it exists outside a checkout:
    a run is resumed only by the same code (see :func:`evalsuite.identity.resume_problems`).
    """
    h = hashlib.sha256()
    roots = [Path(__file__).resolve().parent]
    # the protocol files are shipped as their own package (protocols/ in a checkout)
    with contextlib.suppress(ModuleNotFoundError):  # a broken install: the code alone still counts
        roots.append(Path(str(resources.files("evalsuite._protocols"))))
    for root in roots:
        files = sorted(
            p for p in root.rglob("*") if p.suffix in (".py", ".toml") and "__pycache__" not in p.parts
        )
        for path in files:
            h.update(f"{root.name}/{path.relative_to(root).as_posix()}".encode() + b"\0")
            h.update(path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def software() -> dict[str, object]:
    return {
        "evalsuite": __version__,
        "code": code_version(),
        **git_state(),
        "python": platform.python_version(),
        "packages": package_versions(),
    }


def cpuinfo_model_name(text: str) -> str | None:
    """The first ``model name`` of a Linux ``/proc/cpuinfo`` text, or None."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name" and value.strip():
            return " ".join(value.split())
    return None


@cache
def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC 7763 64-Core Processor"): speeds are compared by it, so the
    architecture ("x86_64") is only the last resort."""
    system = platform.system()
    name: str | None = None
    if system == "Linux":
        try:
            name = cpuinfo_model_name(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
        except OSError:
            name = None
    elif system == "Darwin":
        try:
            name = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            name = None
    return name or platform.processor() or platform.machine()


def device_info(device: str) -> dict[str, str]:
    """The device a run used, by name (GPU model or CPU model)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
    else:
        name = cpu_name()
    return {"device": str(dev), "device_name": name}
