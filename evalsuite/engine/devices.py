"""Which devices this machine has, and a one-line refusal for any other (before anything is written)."""

from __future__ import annotations

import re

import torch

from ..errors import InputError

_DEVICE = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def available_devices() -> list[str]:
    """``cpu`` plus every CUDA device (with its name) and MPS where present."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(text: str) -> str:
    """``text`` if this machine has that device, else an InputError naming what it has."""
    m = _DEVICE.fullmatch(text.strip().lower())
    have = ", ".join(available_devices())
    if m is None:
        hint = " (did you mean cuda?)" if text.strip().lower() in ("gpu", "nvidia") else ""
        raise InputError(f"--device {text!r} is not a device name{hint}; this machine has: {have}")
    kind, index = m.group(1), m.group(2)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {text}: CUDA is not available here; this machine has: {have}")
        if index is not None and int(index) >= torch.cuda.device_count():
            raise InputError(
                f"--device {text}: there are {torch.cuda.device_count()} CUDA device(s); "
                f"this machine has: {have}"
            )
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(f"--device {text}: MPS is not available here; this machine has: {have}")
        if index not in (None, "0"):
            raise InputError(f"--device {text}: there is one MPS device; this machine has: {have}")
    return f"{kind}:{index}" if index is not None else kind
