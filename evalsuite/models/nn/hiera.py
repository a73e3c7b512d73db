"""SAM 2.1's image encoder: the Hiera trunk and the FPN neck, with the official state-dict layout.

Re-implemented from the facts of facebookresearch/sam2 @ 2b90b9f (Apache-2.0;
``modeling/backbones/hieradet.py``, ``backbones/utils.py``, ``backbones/image_encoder.py``,
``sam2_utils.MLP`` and ``configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml``):

* patch embedding: 7×7 conv, stride 4, padding 3 → a 256×256 token grid (channels-last);
* position embedding: ``pos_embed`` (NCHW, 7×7 or 14×14) bicubic-interpolated to the grid
  (align_corners=False) plus ``pos_embed_window`` (the first stage's window, 8×8) tiled over it;
* pre-norm blocks, LayerNorm eps **1e-6**, exact-GELU MLP (``mlp.layers.0/1``, ratio 4), no
  relative-position bias; attention through ``scaled_dot_product_attention`` (scale 1/√head_dim);
* window attention: the token grid is zero-padded to a multiple of the window and the padded
  tokens take part in attention unmasked (as officially); the blocks listed in
  ``global_att_blocks`` attend globally;
* the first block of stages 2–4 ("q-pool" block) doubles the width and heads, max-pools q 2×2
  inside its (previous-stage-sized) windows, and its shortcut is ``maxpool(proj(norm1(x)))``;
* FPN neck: 1×1 lateral convs (``convs.0`` is the stride-32 level), nearest ×2 top-down only into
  levels 2 and 3 (strides 16 and 32), no output convs; ``scalp=1`` drops the stride-32 map. The
  neck's sine position encodings feed only the video memory path, so they are not computed.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IMG_SIZE = 1024
NECK_DIM = 256
HIERA_LN_EPS = 1e-6  # hieradet.py: norm_layer "LayerNorm" -> partial(nn.LayerNorm, eps=1e-6)
Q_STRIDE = 2  # q-pool stride between stages (2×2)
FPN_TOP_DOWN_LEVELS = (2, 3)
SCALP = 1


@dataclass(frozen=True)
class BlockSpec:
    """Hyper-parameters of one Hiera block, derived from :class:`HieraConfig`."""

    dim: int
    dim_out: int
    num_heads: int
    window_size: int  # 0: global attention
    q_pool: bool  # first block of a stage > 1: pools q and the shortcut 2×2


@dataclass(frozen=True)
class HieraConfig:
    """What tells the four SAM 2.1 trunks apart (``configs/sam2.1/*.yaml``; the rest are defaults)."""

    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    pos_embed_size: tuple[int, int] = (14, 14)  # window_pos_embed_bkg_spatial_size

    @property
    def stage_ends(self) -> list[int]:
        return [e - 1 for e in itertools.accumulate(self.stages)]

    @property
    def channel_list(self) -> list[int]:
        """Output widths from the lowest resolution to the highest (the neck's order)."""
        return [self.embed_dim * 2**i for i in reversed(range(len(self.stages)))]

    @property
    def blocks(self) -> tuple[BlockSpec, ...]:
        """Per-block widths, heads and windows, as the official constructor derives them.

        The window size lags by one block: a q-pool block still uses the previous stage's window.
        """
        ends = self.stage_ends
        dim, heads, stage, specs = self.embed_dim, self.num_heads, 0, []
        for i in range(sum(self.stages)):
            window = 0 if i in self.global_att_blocks else self.window_spec[stage]
            q_pool = i - 1 in ends
            dim_out = dim
            if q_pool:
                dim_out, heads, stage = dim * 2, heads * 2, stage + 1
                if window == 0:  # the official block cannot unpartition a pooled global attention
                    raise ValueError(f"q-pool block {i} cannot use global attention")
            specs.append(BlockSpec(dim, dim_out, heads, window, q_pool))
            dim = dim_out
        return tuple(specs)


HIERA_T = HieraConfig(
    embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9), pos_embed_size=(7, 7)
)
HIERA_S = HieraConfig(
    embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13), pos_embed_size=(7, 7)
)
HIERA_B_PLUS = HieraConfig(embed_dim=112, num_heads=2, stages=(2, 3, 16, 3), global_att_blocks=(12, 16, 20))
HIERA_L = HieraConfig(
    embed_dim=144,
    num_heads=2,
    stages=(2, 6, 36, 4),
    global_att_blocks=(23, 33, 43),
    window_spec=(8, 4, 16, 8),
    pos_embed_size=(7, 7),
)


class MLP(nn.Module):
    """``num_layers`` linear layers, the activation between them (keys ``layers.0..n-1``).

    SAM 2 uses this one module everywhere (``sam2_utils.MLP``): GELU in Hiera blocks, ReLU in the
    decoder, an optional sigmoid on the output (the IoU head).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int,
        act: type[nn.Module] = nn.ReLU,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.act = act()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == last else self.act(layer(x))
        return torch.sigmoid(x) if self.sigmoid_output else x


def _pool(x: torch.Tensor) -> torch.Tensor:
    """2×2 max-pool of a channels-last (B, H, W, C) map."""
    x = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=Q_STRIDE, stride=Q_STRIDE)
    return x.permute(0, 2, 3, 1)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) → (B·nW, window, window, C), zero-padding H and W up to a multiple of ``window``."""
    b, h, w, c = x.shape
    pad_h, pad_w = -h % window, -w % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: back to (B, H, W, C), padding cropped off."""
    (hp, wp), (h, w) = padded, size
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.reshape(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w, :] if hp > h or wp > w else x


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) map; q optionally max-pooled 2×2 (stage change)."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).unbind(2)
        if self.q_pool:
            q = _pool(q.reshape(b, h, w, -1))
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class MultiScaleBlock(nn.Module):
    """One Hiera block: (windowed) attention and an MLP, both pre-norm with residuals."""

    def __init__(self, spec: BlockSpec, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.spec = spec
        self.norm1 = nn.LayerNorm(spec.dim, eps=HIERA_LN_EPS)
        self.attn = MultiScaleAttention(spec.dim, spec.dim_out, spec.num_heads, q_pool=spec.q_pool)
        self.norm2 = nn.LayerNorm(spec.dim_out, eps=HIERA_LN_EPS)
        self.mlp = MLP(spec.dim_out, int(spec.dim_out * mlp_ratio), spec.dim_out, 2, act=nn.GELU)
        if spec.dim != spec.dim_out:
            self.proj = nn.Linear(spec.dim, spec.dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.spec.dim != self.spec.dim_out:
            shortcut = _pool(self.proj(x))  # the projection sees the *normalised* input
        window = self.spec.window_size
        size = (x.shape[1], x.shape[2])
        if window > 0:
            x, padded = window_partition(x, window)
        x = self.attn(x)
        if window > 0:
            if self.spec.q_pool:  # pooled windows: half the size, over the pooled (padded) grid
                window //= Q_STRIDE
                size = (shortcut.shape[1], shortcut.shape[2])
                padded = (size[0] + -size[0] % window, size[1] + -size[1] % window)
            x = window_unpartition(x, window, padded, size)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """7×7 stride-4 conv → channels-last (B, H/4, W/4, C)."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Hiera(nn.Module):
    """The hierarchical trunk: four stages, outputs at each stage end (strides 4/8/16/32, NCHW)."""

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        self.config = config
        c = config.embed_dim
        # parameters of the module itself come first in the state dict, as officially
        self.pos_embed = nn.Parameter(torch.zeros(1, c, *config.pos_embed_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, c, config.window_spec[0], config.window_spec[0]))
        self.patch_embed = PatchEmbed(c)
        self.blocks = nn.ModuleList(MultiScaleBlock(spec) for spec in config.blocks)
        self.stage_ends = config.stage_ends

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        window = self.pos_embed_window
        pos = pos + window.tile([1, 1, h // window.shape[2], w // window.shape[3]])
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        x = x + self._pos_embed(x.shape[1], x.shape[2])
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


class FpnNeck(nn.Module):
    """1×1 lateral convs to 256 channels; nearest ×2 top-down only into the levels that ask for it."""

    def __init__(self, backbone_channels: list[int], d_model: int = NECK_DIM) -> None:
        super().__init__()
        # keys convs.{i}.conv, the lowest resolution (widest trunk output) first
        self.convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(dim, d_model, kernel_size=1)))
            for dim in backbone_channels
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Trunk maps (highest resolution first) → neck maps in the same order."""
        n = len(self.convs) - 1
        out: list[torch.Tensor] = [xs[0]] * len(xs)
        prev: torch.Tensor | None = None
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](xs[i])
            if i in FPN_TOP_DOWN_LEVELS and prev is not None:
                top_down = F.interpolate(prev.to(torch.float32), scale_factor=2.0, mode="nearest")
                prev = lateral + top_down
            else:
                prev = lateral
            out[i] = prev
        return out


class ImageEncoder(nn.Module):
    """Trunk + neck; returns the stride-4, -8 and -16 maps (256 channels each; ``scalp=1``)."""

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        self.trunk = Hiera(config)
        self.neck = FpnNeck(config.channel_list)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.neck(self.trunk(x))[:-SCALP]
