"""SAM 3's image trunk: a ViTDet-style ViT (1008² input, 14-px patches, 72×72 tokens) with 2-D RoPE.

Facts from facebookresearch/sam3 @ 99d02f2 (SAM License; ``sam3/model/vitdet.py`` and
``model_builder._create_vit_backbone``), re-implemented with the official state-dict keys:

* patch embedding: 14×14 conv, stride 14, **no bias**, output channels-last (B, 72, 72, 1024);
* absolute position embedding ``pos_embed`` (1, 577, 1024) from 336² pre-training (24×24 + a class
  token): the class entry is dropped and the 24×24 grid is **tiled** 3×3 (not interpolated), then
  ``ln_pre`` (there is no ``ln_post``, no class token at run time, no layer scale);
* 32 pre-norm blocks, 16 heads of 64, MLP 4736 (ratio 4.625) with exact GELU, ``nn.LayerNorm`` eps
  1e-5 everywhere; blocks 7, 15, 23, 31 attend globally, the others within 24×24 windows (the 72×72
  grid splits into 3×3 windows, no padding);
* 2-D axial RoPE on q and k in every block (θ = 10000; 16 frequencies for x, 16 for y): windowed blocks
  use the 24×24 positions of their window, global blocks the 72×72 positions scaled by 24/72
  (``use_interp_rope``). The rotations are a persistent complex64 buffer ``attn.freqs_cis`` per block,
  so an official checkpoint carries them; attention is PyTorch's SDPA with the default 1/√64 scale.
* output: the last block's map as B×1024×72×72 (a channels-last view, as officially: the neck's convs
  see the same memory layout).

The arithmetic follows the official order op by op (qkv layout, RoPE as a complex product, SDPA),
so that filled weights reproduce the official embedding to float32 round-off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .efficientsam_net import Mlp  # fc1 → exact GELU → fc2, keys fc1/fc2 (timm's Mlp without extras)

IMG_SIZE = 1008
PATCH = 14
GRID = IMG_SIZE // PATCH  # 72
DIM = 1024
DEPTH = 32
HEADS = 16
MLP_HIDDEN = 4736  # int(1024 * 4.625)
WINDOW = 24
GLOBAL_BLOCKS = (7, 15, 23, 31)
PRETRAIN_GRID = 24  # 336 / 14: the grid of pos_embed (plus one class-token entry)
ROPE_THETA = 10000.0
LN_EPS = 1e-5


def axial_rope(head_dim: int, side: int, scale: float = 1.0, theta: float = ROPE_THETA) -> torch.Tensor:
    """(side², head_dim/2) complex64 rotations of a side×side grid (``compute_axial_cis``).

    Token t sits at x = t mod side, y = t div side (times ``scale``); the first head_dim/4 complex
    entries turn by x·f_j, the others by y·f_j, f_j = θ^(−4j/head_dim). float32 throughout, as officially.
    """
    quarter = head_dim // 4
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[:quarter].float() / head_dim))
    t = torch.arange(side * side, dtype=torch.float32)
    t_x = (t % side).float() * scale
    t_y = torch.div(t, side, rounding_mode="floor").float() * scale
    angles_x, angles_y = torch.outer(t_x, freqs), torch.outer(t_y, freqs)
    cis_x = torch.polar(torch.ones_like(angles_x), angles_x)
    cis_y = torch.polar(torch.ones_like(angles_y), angles_y)
    return torch.cat([cis_x, cis_y], dim=-1)


def block_rope(index: int) -> torch.Tensor:
    """Block ``index``'s rotations: 24×24 window positions, or 72×72 positions scaled by 24/72 (global)."""
    if index in GLOBAL_BLOCKS:
        return axial_rope(DIM // HEADS, GRID, WINDOW / GRID)
    return axial_rope(DIM // HEADS, WINDOW)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, freqs_cis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate channel pairs (2i, 2i+1) of q, k (B, heads, L, d) by ``freqs_cis`` (L, d/2), as complex."""
    shape = (1,) * (q.ndim - 2) + tuple(freqs_cis.shape)
    rot = freqs_cis.view(*shape)
    q_c = torch.view_as_complex(q.float().reshape(*q.shape[:-1], -1, 2))
    k_c = torch.view_as_complex(k.float().reshape(*k.shape[:-1], -1, 2))
    q_out = torch.view_as_real(q_c * rot).flatten(3)
    k_out = torch.view_as_real(k_c * rot).flatten(3)
    return q_out.type_as(q), k_out.type_as(k)


class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) map with 2-D RoPE on q and k."""

    freqs_cis: torch.Tensor

    def __init__(self, dim: int, num_heads: int, freqs_cis: torch.Tensor) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        # persistent, as officially: official checkpoints hold it (the fidelity fill zeroes it: complex)
        self.register_buffer("freqs_cis", freqs_cis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, L, d)
        q, k = apply_rope(q, k, self.freqs_cis)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) → (B·nH·nW, window, window, C); H and W are multiples of ``window`` here (72 = 3·24)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)


def window_unpartition(windows: torch.Tensor, window: int, hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    h, w = hw
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.reshape(b, h // window, w // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


class Block(nn.Module):
    """Pre-norm block: (windowed or global) attention, then the MLP, each with a residual."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.window = 0 if index in GLOBAL_BLOCKS else WINDOW
        self.norm1 = nn.LayerNorm(DIM, eps=LN_EPS)
        self.attn = Attention(DIM, HEADS, block_rope(index))
        self.norm2 = nn.LayerNorm(DIM, eps=LN_EPS)
        self.mlp = Mlp(DIM, MLP_HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window:
            hw = (x.shape[1], x.shape[2])
            x = window_unpartition(self.attn(window_partition(x, self.window)), self.window, hw)
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """14×14 patches → 1024 channels (no bias), returned channels-last (B, H, W, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, DIM, kernel_size=PATCH, stride=PATCH, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class ViT(nn.Module):
    """B×3×1008×1008 (normalised) → B×1024×72×72, keyed like ``backbone.vision_backbone.trunk``."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed()
        self.pos_embed = nn.Parameter(torch.zeros(1, PRETRAIN_GRID * PRETRAIN_GRID + 1, DIM))
        self.blocks = nn.ModuleList(Block(i) for i in range(DEPTH))
        self.ln_pre = nn.LayerNorm(DIM, eps=LN_EPS)  # registered last, as officially (state-dict order)

    def tiled_pos_embed(self, h: int, w: int) -> torch.Tensor:
        """(1, h, w, C): the 24×24 pre-training grid (class entry dropped) repeated to cover h×w."""
        grid = self.pos_embed[:, 1:].reshape(1, PRETRAIN_GRID, PRETRAIN_GRID, -1).permute(0, 3, 1, 2)
        reps = [1, 1, h // PRETRAIN_GRID + 1, w // PRETRAIN_GRID + 1]
        return grid.tile(reps)[:, :, :h, :w].permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = x + self.tiled_pos_embed(x.shape[1], x.shape[2])
        x = self.ln_pre(x)
        for block in self.blocks:
            x = block(x)
        return x.permute(0, 3, 1, 2)
