"""Deterministic weights without a download: ``--weights random[:SEED]``.

A smoke run needs a real network with weights that give finite, non-degenerate masks, and the
same weights on every machine and torch version. So nothing here touches a random generator:
each state-dict entry is a pure function of (key, shape, seed) — a counter-based hash of the flat
index (MurmurHash3's finaliser over a Weyl sequence), scaled by a rule chosen from the key (norm
scales around 1, biases small, embeddings of unit variance, other weights 1/sqrt(fan-in)).
Seed 0 is exactly the fill of the team's fidelity goldens (``../shared/fidelity/fill.py``,
FILL_VERSION 1), which is known to give non-degenerate masks for every built-in network; other
seeds mix the seed into each key's hash seed.
"""

from __future__ import annotations

import math
import re
import zlib

import numpy as np
import torch
from torch import nn

FILL_VERSION = 1
# nn.Embedding tables: point/box/no-mask embeddings, decoder tokens (not patch_embed.proj.weight)
_EMBED_TABLE = re.compile(r"(?:^|\.)(?:[^.]*(?:embed|token)[^.]*|invalid_points)(?:\.\d+)?\.weight$")


def _key_seed(key: str, seed: int) -> int:
    material = key if seed == 0 else f"{key}#{seed}"
    return zlib.crc32(material.encode("utf-8")) & 0xFFFFFFFF


def _unit_noise(numel: int, seed32: int) -> np.ndarray:
    """Zero-mean, unit-variance uniform values, a pure function of (flat index, seed32).

    32-bit unsigned arithmetic wraps modulo 2**32, which is exactly the ``& 0xFFFFFFFF`` of the
    fidelity fill's 64-bit form (tested equal); in place, so ViT-H fills in seconds.
    """
    x = np.arange(numel, dtype=np.uint32)
    x *= np.uint32(0x9E3779B9)
    x += np.uint32(seed32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    out = x.astype(np.float64)
    out *= 2.0 / 4294967296.0  # exact: a power of two
    out -= 1.0
    out *= math.sqrt(3.0)
    return out


def _offset_scale(key: str, shape: tuple[int, ...], is_float: bool) -> tuple[float, float]:
    if not is_float:
        return 0.0, 0.0
    for suffix, rule in (
        ("running_var", (1.0, 0.2)),
        ("running_mean", (0.0, 0.1)),
        ("positional_encoding_gaussian_matrix", (0.0, 1.0)),
        ("pos_embed", (0.0, 0.5)),
    ):
        if key.endswith(suffix):
            return rule
    if len(shape) <= 1:
        return (1.0, 0.1) if len(shape) == 1 and key.endswith("weight") else (0.0, 0.05)
    if _EMBED_TABLE.search(key):
        return 0.0, 1.0
    return 0.0, 1.0 / math.sqrt(max(int(np.prod(shape[1:])), 1))


def deterministic_value(key: str, shape: tuple[int, ...], seed: int = 0, is_float: bool = True) -> np.ndarray:
    """The float64 value of one state-dict entry (rounded once to the entry's dtype by the caller)."""
    offset, scale = _offset_scale(key, shape, is_float)
    if scale == 0.0:
        return np.full(shape, offset, dtype=np.float64)
    numel = int(np.prod(shape)) if shape else 1
    return (offset + scale * _unit_noise(numel, _key_seed(key, seed))).reshape(shape)


@torch.no_grad()
def randomize(module: nn.Module, seed: int = 0) -> None:
    """Overwrite every state-dict entry of ``module`` in place, then ``eval()`` it.

    ``eval()`` comes last because some networks cache weight-derived state there (MobileSAM's
    TinyViT attention biases).
    """
    if seed < 0:
        raise ValueError(f"the weights seed must be >= 0, got {seed}")
    for key, tensor in module.state_dict(keep_vars=True).items():
        value = deterministic_value(key, tuple(tensor.shape), seed, torch.is_floating_point(tensor))
        tensor.data.copy_(torch.from_numpy(value).to(tensor.dtype))
    module.eval()
