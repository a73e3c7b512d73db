"""MobileSAM's TinyViT-5M image encoder, with the official checkpoint's state-dict layout.

Re-implemented from the facts of MobileSAM (Apache-2.0; ``mobile_sam/modeling/tiny_vit_sam.py``,
TinyViT by Microsoft, and ``build_sam.py``'s ``vit_t`` configuration): a two-conv stem (stride 4),
a stage of MBConv blocks, three stages of windowed attention blocks (learned per-offset
attention biases, a depthwise "local" conv between attention and MLP), PatchMerging between
stages (the last one keeps stride 1, so the output grid is 64×64), and SAM's neck.

The unused ImageNet classifier (``norm_head``, ``head``) is kept because the checkpoint has it.
BatchNorm and LayerNorm use PyTorch's default eps (1e-5); GELU is exact; no drop path (rate 0).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .sam_image_encoder import IMG_SIZE, make_neck

EMBED_DIMS = (64, 128, 160, 320)
DEPTHS = (2, 2, 6, 2)
NUM_HEADS = (2, 4, 5, 10)
WINDOW_SIZES = (7, 7, 14, 7)
MLP_RATIO = 4.0
MBCONV_EXPAND = 4.0
NUM_CLASSES = 1000
OUT_GRID = 64


class Conv2d_BN(nn.Sequential):
    """Bias-free conv followed by BatchNorm (keys ``c`` and ``bn``; the official class name)."""

    def __init__(
        self, in_ch: int, out_ch: int, ks: int = 1, stride: int = 1, pad: int = 0, groups: int = 1
    ) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_ch, out_ch, ks, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch))


class PatchEmbed(nn.Module):
    """Stem: two stride-2 3×3 Conv2d_BN with GELU between (1024² → 256²)."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            Conv2d_BN(in_chans, embed_dim // 2, 3, 2, 1),
            nn.GELU(),
            Conv2d_BN(embed_dim // 2, embed_dim, 3, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand, 3×3 depthwise, 1×1 project, add, GELU (NCHW in and out)."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = Conv2d_BN(dim, hidden, ks=1)
        self.act1 = nn.GELU()
        self.conv2 = Conv2d_BN(hidden, hidden, ks=3, stride=1, pad=1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2d_BN(hidden, dim, ks=1)
        self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.act3(y + x)


class PatchMerging(nn.Module):
    """Downsampling between stages; returns tokens (B, L, C).

    Officially the depthwise conv keeps stride 1 when the output width is 320/448/576 (the last
    stage of the SAM variants), so MobileSAM's last two stages both run on a 64×64 grid.
    """

    def __init__(self, input_resolution: tuple[int, int], dim: int, out_dim: int) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        stride = 1 if out_dim in (320, 448, 576) else 2
        self.conv1 = Conv2d_BN(dim, out_dim, 1, 1, 0)
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim, 1, 1, 0)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # tokens → NCHW
            h, w = self.input_resolution
            x = x.view(x.shape[0], h, w, -1).permute(0, 3, 1, 2)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.conv3(x).flatten(2).transpose(1, 2)


class ConvLayer(nn.Module):
    """Stage 0: MBConv blocks then PatchMerging."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, out_dim: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, MBCONV_EXPAND) for _ in range(depth))
        self.downsample = PatchMerging(input_resolution, dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class Mlp(nn.Module):
    """LayerNorm → fc1 → GELU → fc2 (the norm lives inside the MLP in TinyViT)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


def attention_bias_index(window: int) -> tuple[int, torch.Tensor]:
    """(number of distinct offsets, N×N index) for a window of N = window² tokens.

    Offsets are (|Δrow|, |Δcol|), numbered in order of first appearance over the row-major
    (query, key) pairs — the order the checkpoints' ``attention_biases`` columns follow.
    """
    points = list(itertools.product(range(window), range(window)))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(offsets.setdefault(off, len(offsets)))
    n = len(points)
    return len(offsets), torch.tensor(idxs, dtype=torch.long).view(n, n)


class Attention(nn.Module):
    """Windowed self-attention with a learned bias per head and relative offset.

    As officially, ``eval()`` caches the gathered N×N biases in the buffer ``ab``. Unlike the
    official module, the cache is also refreshed after ``load_state_dict``, so weights loaded
    after ``eval()`` are never paired with stale biases (README §8); outputs are otherwise equal.
    """

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.scale = self.key_dim**-0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        n_offsets, idxs = attention_bias_index(window)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, n_offsets))
        self.attention_bias_idxs: torch.Tensor
        self.register_buffer("attention_bias_idxs", idxs, persistent=False)
        self.register_buffer("ab", None, persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._refresh_cache())

    def _gathered_biases(self) -> torch.Tensor:
        return self.attention_biases[:, self.attention_bias_idxs]

    @torch.no_grad()
    def _refresh_cache(self) -> None:
        self.ab = None if self.training else self._gathered_biases().detach().clone()

    def train(self, mode: bool = True) -> Attention:
        super().train(mode)
        self._refresh_cache()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, -1)
        # per head the channels are [q | k | v]
        q, k, v = (
            t.permute(0, 2, 1, 3) for t in qkv.split([self.key_dim, self.key_dim, self.key_dim], dim=3)
        )
        bias = self._gathered_biases() if self.training or self.ab is None else self.ab
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class TinyViTBlock(nn.Module):
    """Windowed attention (+ residual), depthwise 3×3 Conv2d_BN, MLP (+ residual); tokens (B, L, C)."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window: int) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.mlp = Mlp(dim, int(dim * MLP_RATIO))
        self.local_conv = Conv2d_BN(dim, dim, ks=3, stride=1, pad=1, groups=dim)

    def _windowed_attn(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        b, n, c = x.shape
        ws = self.window
        if h == ws and w == ws:
            return self.attn(x)
        x = x.view(b, h, w, c)
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        if pad_b or pad_r:  # zero tokens, not masked: they act as keys, as officially
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        nh, nw = ph // ws, pw // ws
        x = x.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
        x = self.attn(x)
        x = x.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
        if pad_b or pad_r:
            x = x[:, :h, :w].contiguous()
        return x.view(b, n, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        b, n, c = x.shape
        x = x + self._windowed_attn(x)
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w))
        x = x.view(b, c, n).transpose(1, 2)
        return x + self.mlp(x)


class BasicLayer(nn.Module):
    """Stages 1–3: TinyViT blocks, then PatchMerging except after the last stage."""

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window: int,
        out_dim: int | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, input_resolution, num_heads, window) for _ in range(depth)
        )
        self.downsample = PatchMerging(input_resolution, dim, out_dim) if out_dim is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    """1×3×1024×1024 normalised image → 1×256×64×64 embedding (MobileSAM's ``vit_t``)."""

    img_size = IMG_SIZE

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(3, EMBED_DIMS[0])
        grid = IMG_SIZE // 4
        layers: list[nn.Module] = []
        for i, (dim, depth) in enumerate(zip(EMBED_DIMS, DEPTHS, strict=True)):
            side = grid // 2 ** (i - 1 if i == 3 else i)  # the last merge keeps stride 1
            res = (side, side)
            out_dim = EMBED_DIMS[i + 1] if i + 1 < len(EMBED_DIMS) else None
            if i == 0:
                layers.append(ConvLayer(dim, res, depth, out_dim=EMBED_DIMS[1]))
            else:
                layers.append(BasicLayer(dim, res, depth, NUM_HEADS[i], WINDOW_SIZES[i], out_dim))
        self.layers = nn.ModuleList(layers)
        # ImageNet classifier of the pre-trained TinyViT: unused, but present in the checkpoint
        self.norm_head = nn.LayerNorm(EMBED_DIMS[-1])
        self.head = nn.Linear(EMBED_DIMS[-1], NUM_CLASSES)
        self.neck = make_neck(EMBED_DIMS[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_intermediate(x, count=0)[0]

    def forward_with_intermediate(
        self, x: torch.Tensor, count: int | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The embedding and ``[stage-2 output]``: ``layers[1]``'s output (after its PatchMerging),
        B×64×64×160 channels-last — Light HQ-SAM's ``interm_embeddings``. ``count=0`` keeps none."""
        x = self.patch_embed(x)
        kept: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == 1 and (count is None or count > 0):
                kept.append(x.view(x.shape[0], OUT_GRID, OUT_GRID, -1))
        b, _, c = x.shape
        x = x.view(b, OUT_GRID, OUT_GRID, c).permute(0, 3, 1, 2)
        return self.neck(x), kept
