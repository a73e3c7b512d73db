"""SAM's ViT image encoder (ViT-B/L/H), with the official checkpoints' state-dict layout.

Re-implemented from the facts of segment-anything (Apache-2.0, ``modeling/image_encoder.py``,
``modeling/common.py``, ``build_sam.py``): a 16×16 patch embedding, an absolute position
embedding on the 64×64 grid, pre-norm blocks (LayerNorm eps 1e-6) whose attention is windowed
(14×14, the 64×64 grid zero-padded to 70×70) except in four global blocks, decomposed relative
position biases, an exact-GELU MLP, and a conv/LayerNorm2d neck down to 256 channels.

Attention runs through ``scaled_dot_product_attention``, with the relative-position bias either
as a dense float ``attn_mask`` or folded into the queries and keys (no mask, so the flash kernel
can run; the default on CUDA); both match the fp32 CPU goldens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IMG_SIZE = 1024
PATCH_SIZE = 16
WINDOW_SIZE = 14
OUT_CHANS = 256


@dataclass(frozen=True)
class ViTConfig:
    """The hyper-parameters that tell ViT-B, -L and -H apart (``build_sam.py``)."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]


VIT_B = ViTConfig(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11))
VIT_L = ViTConfig(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23))
VIT_H = ViTConfig(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW map (SAM's neck, mask encoder and upscaler; eps 1e-6).

    Written out (mean, biased variance, then scale/shift) in the same order as the official
    module, so the rounding matches it rather than ``F.layer_norm``'s fused kernel.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLPBlock(nn.Module):
    """Two linear layers around an activation (keys ``lin1``/``lin2`` as in the checkpoints)."""

    def __init__(self, dim: int, hidden_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping 16×16 patches → embed_dim channels, returned channels-last (B, H, W, C)."""

    def __init__(self, embed_dim: int, patch_size: int = PATCH_SIZE, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


def _rel_pos_table(size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """(size, size, head_dim) embeddings of every query/key offset along one axis.

    Entry [i, j] is row ``i - j + size - 1`` of the learned table. Only square grids of the trained
    size occur (1024² input), so the table never needs the official linear interpolation.
    """
    if rel_pos.shape[0] != 2 * size - 1:
        raise ValueError(f"relative position table has {rel_pos.shape[0]} rows, expected {2 * size - 1}")
    coords = torch.arange(size, device=rel_pos.device)
    return rel_pos[coords[:, None] - coords[None, :] + (size - 1)]


def _rel_pos_terms(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """q·Rh[qh, kh] (B·heads, qh, qw, kh) and q·Rw[qw, kw] (B·heads, qh, qw, kw), from unscaled queries."""
    b, heads, _, dim = q.shape
    h, w = hw
    table_h = _rel_pos_table(h, rel_pos_h)  # (qh, kh, d)
    table_w = _rel_pos_table(w, rel_pos_w)  # (qw, kw, d)
    r_q = q.reshape(b * heads, h, w, dim)
    rel_h = torch.matmul(r_q, table_h.permute(0, 2, 1))
    rel_w = torch.matmul(r_q.permute(0, 2, 1, 3), table_w.permute(0, 2, 1)).permute(0, 2, 1, 3)
    return rel_h, rel_w


def decomposed_rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, hw: tuple[int, int]
) -> torch.Tensor:
    """MViTv2's decomposed relative-position bias for queries ``q`` (B, heads, H·W, d).

    bias[q, (kh, kw)] = q·Rh[qh, kh] + q·Rw[qw, kw], computed from the *unscaled* queries as in
    the official code, and returned dense (B, heads, H·W, H·W) for use as an attention mask.
    """
    b, heads = q.shape[:2]
    h, w = hw
    rel_h, rel_w = _rel_pos_terms(q, rel_pos_h, rel_pos_w, hw)
    bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return bias.reshape(b, heads, h * w, h * w)


def rel_pos_attention_folded(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    hw: tuple[int, int],
    scale: float,
) -> torch.Tensor:
    """Attention with the decomposed relative-position bias folded into the queries and keys.

    The bias of key (kh, kw) is rel_h[q, kh] + rel_w[q, kw]: a dot product of the query's row
    [rel_h, rel_w] with the key's one-hot row/column indicator. Appending those to q (divided by
    ``scale``, which the kernel multiplies back) and k gives the same scores as the dense
    (B, heads, H·W, H·W) mask without ever building it, so attention needs no mask and the fused
    (flash) kernels apply; v is zero-padded to the same width (flash wants equal head dims) and
    the padding is cut from the output. Equal to the dense form up to fp32 rounding (~1e-6).
    """
    b, heads, n, dim = q.shape
    h, w = hw
    rel_h, rel_w = _rel_pos_terms(q, rel_pos_h, rel_pos_w, hw)
    rel = torch.cat([rel_h.reshape(b, heads, n, h), rel_w.reshape(b, heads, n, w)], dim=-1)
    rows = torch.arange(h, device=q.device).repeat_interleave(w)
    cols = torch.arange(w, device=q.device).repeat(h)
    indicator = torch.cat([F.one_hot(rows, h), F.one_hot(cols, w)], dim=-1).to(k.dtype)  # (n, h + w)
    pad = -(dim + h + w) % 8  # fused kernels want head dims in multiples of 8
    q2 = F.pad(torch.cat([q, (rel / scale).to(q.dtype)], dim=-1), (0, pad))
    k2 = F.pad(torch.cat([k, indicator.expand(b, heads, n, h + w)], dim=-1), (0, pad))
    v2 = F.pad(v, (0, h + w + pad))
    return F.scaled_dot_product_attention(q2, k2, v2, scale=scale)[..., :dim]


class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) grid with decomposed relative positions."""

    #: fold the relative-position bias into q and k (:func:`rel_pos_attention_folded`) instead of
    #: passing it as a dense attention mask. None: fold on CUDA, where it lets the flash kernel run
    #: (a dense mask rules it out) and saves the mask's memory (B·heads·4096² in global blocks); keep
    #: the mask on the CPU, where the folded form measured ~10 % slower for ViT-B. Both forms pass
    #: the fidelity goldens with the same error.
    fold_rel_pos: bool | None = None

    def __init__(self, dim: int, num_heads: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        # qkv channels are laid out (3, heads, head_dim), as in the checkpoints
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, H·W, d)
        fold = q.is_cuda if self.fold_rel_pos is None else self.fold_rel_pos
        if fold:
            out = rel_pos_attention_folded(q, k, v, self.rel_pos_h, self.rel_pos_w, (h, w), self.scale)
        else:
            bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) → (B·nW, window, window, C), zero-padding bottom/right to a multiple of ``window``.

    The padded tokens are not masked: they take part in the attention as keys, as officially.
    """
    b, h, w, c = x.shape
    pad_h = (window - h % window) % window
    pad_w = (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`, dropping the padding."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(b, hp // window, wp // window, window, window, -1).permute(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, hp, wp, -1)
    return x[:, :h, :w, :].contiguous() if (hp > h or wp > w) else x


class Block(nn.Module):
    """Pre-norm transformer block; ``window == 0`` means global attention over the whole grid."""

    def __init__(self, dim: int, num_heads: int, window: int, grid: int) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        side = window if window > 0 else grid
        self.attn = Attention(dim, num_heads, input_size=(side, side))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, dim * 4, act=nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:
            hw = (x.shape[1], x.shape[2])
            x, padded_hw = window_partition(x, self.window)
            x = window_unpartition(self.attn(x), self.window, padded_hw, hw)
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


def make_neck(in_chans: int, out_chans: int = OUT_CHANS) -> nn.Sequential:
    """1×1 conv → LayerNorm2d → 3×3 conv → LayerNorm2d, both convs bias-free (keys ``neck.0..3``)."""
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel_size=1, bias=False),
        LayerNorm2d(out_chans),
        nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(out_chans),
    )


class ImageEncoderViT(nn.Module):
    """1×3×1024×1024 normalised image → 1×256×64×64 embedding."""

    img_size = IMG_SIZE

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        grid = IMG_SIZE // PATCH_SIZE
        self.patch_embed = PatchEmbed(cfg.embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, cfg.embed_dim))
        self.blocks = nn.ModuleList(
            Block(
                cfg.embed_dim,
                cfg.num_heads,
                window=0 if i in cfg.global_attn_indexes else WINDOW_SIZE,
                grid=grid,
            )
            for i in range(cfg.depth)
        )
        self.neck = make_neck(cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_intermediate(x, count=0)[0]

    def forward_with_intermediate(
        self, x: torch.Tensor, count: int | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The embedding and the (B, 64, 64, C) outputs of the global-attention blocks, in order.

        Those outputs are SAM-HQ's ``interm_embeddings`` (its decoder reads the first). ``count``
        keeps only the first ``count`` of them (None: all), so a caller that needs one does not hold
        the others in memory through the rest of the pass.
        """
        x = self.patch_embed(x) + self.pos_embed
        kept: list[torch.Tensor] = []
        for block in self.blocks:
            x = block(x)
            if block.window == 0 and (count is None or len(kept) < count):
                kept.append(x)
        return self.neck(x.permute(0, 3, 1, 2)), kept
