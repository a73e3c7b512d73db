"""EfficientViT-SAM's image encoder: EfficientViT-L/XL backbone, ``SamNeck`` and a final LayerNorm2d.

Re-implemented from the facts of mit-han-lab/efficientvit (Apache-2.0, commit de7d773:
``efficientvit/models/nn/{ops,norm,act}.py``, ``models/efficientvit/backbone.py`` and ``sam.py``), with
the official state-dict keys (``stages.{i}.op_list.{j}.main.<conv>.{conv,norm}``, ``neck.input_ops`` …),
so the official checkpoints load strictly. What matters numerically:

* every norm is a BatchNorm2d (or the final LayerNorm2d) with eps **1e-6**: the model zoo calls
  ``set_norm_eps(model, 1e-6)`` after building, overriding PyTorch's default 1e-5;
* the activation ``"gelu"`` of efficientvit is ``nn.GELU(approximate="tanh")`` (``act.py``), not SAM's
  exact GELU;
* LiteMLA is multi-scale *linear* attention with ReLU kernels: ``(v‖1)·kᵀ·q`` then a division by the
  ones row plus eps 1e-15 — not softmax attention, so it is written out rather than using SDPA;
* the neck upsamples bicubically (align_corners=False) to 64×64, skipping maps already that size, and
  sums the inputs right-associatively (``a + (b + c)``, efficientvit's ``list_sum``).

Only what the five SAM variants use is implemented (e.g. the neck's middle blocks are always FusedMBConv).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .sam_image_encoder import LayerNorm2d

#: ``set_norm_eps(model, 1e-6)`` in ``sam_model_zoo.create_efficientvit_sam_model``
NORM_EPS = 1e-6
#: ``LiteMLA(eps=1.0e-15)``: added to the linear-attention normaliser
LITE_MLA_EPS = 1e-15
#: ``qkv_dim=32`` of ``EfficientViTLargeBackbone``: channels per attention head
QKV_DIM = 32
#: ``UpSampleLayer(size=(64, 64))`` in ``SamNeck``: the SAM embedding grid
EMBED_GRID = (64, 64)
EMBED_DIM = 256


def _gelu() -> nn.Module:
    """efficientvit's ``"gelu"`` (``act.py``: ``partial(nn.GELU, approximate="tanh")``)."""
    return nn.GELU(approximate="tanh")


class ConvLayer(nn.Module):
    """Conv → optional BatchNorm → optional tanh-GELU ("same" padding; keys ``conv``, ``norm``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
        norm: bool = True,
        act: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=bias
        )
        self.norm = nn.BatchNorm2d(out_channels, eps=NORM_EPS) if norm else None
        self.act = _gelu() if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class OpSequential(nn.Module):
    """Modules applied in order, stored as ``op_list`` (the official key)."""

    def __init__(self, ops: Sequence[nn.Module]) -> None:
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


class Residual(nn.Module):
    """``main(x) + x``, or just ``main(x)`` for the stride-2 block that opens a stage (key ``main``)."""

    def __init__(self, main: nn.Module, shortcut: bool) -> None:
        super().__init__()
        self.main = main
        self.shortcut = nn.Identity() if shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            return self.main(x)
        return self.main(x) + self.shortcut(x)


# "fewer_norm" blocks (the later stages): the inner convs have a bias and no BatchNorm, only the last
# conv keeps its BatchNorm (and never has a bias).
class ResBlock(nn.Module):
    """3×3 conv (GELU) → 3×3 conv, expand ratio 1 (stage 0 of the L models)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: float, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(in_ch * expand)
        self.conv1 = ConvLayer(in_ch, mid, 3, stride, bias=fewer_norm, norm=not fewer_norm, act=True)
        self.conv2 = ConvLayer(mid, out_ch, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class FusedMBConv(nn.Module):
    """3×3 conv to ``expand``× channels (GELU) → 1×1 conv back."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: float, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(in_ch * expand)
        self.spatial_conv = ConvLayer(in_ch, mid, 3, stride, bias=fewer_norm, norm=not fewer_norm, act=True)
        self.point_conv = ConvLayer(mid, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.spatial_conv(x))


class MBConv(nn.Module):
    """Inverted bottleneck: 1×1 expand (GELU) → 3×3 depthwise (GELU) → 1×1 project."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: float, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(in_ch * expand)
        inner = {"bias": fewer_norm, "norm": not fewer_norm, "act": True}
        self.inverted_conv = ConvLayer(in_ch, mid, 1, 1, **inner)
        self.depth_conv = ConvLayer(mid, mid, 3, stride, groups=mid, **inner)
        self.point_conv = ConvLayer(mid, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


LOCAL_BLOCKS: dict[str, type[nn.Module]] = {"res": ResBlock, "fmb": FusedMBConv, "mb": MBConv}


class LiteMLA(nn.Module):
    """Multi-scale linear attention with ReLU kernels (efficientvit's ``LiteMLA``).

    q, k, v come from a 1×1 conv; each scale adds a depthwise ``s×s`` + grouped 1×1 aggregation of them
    as extra heads. Per head (d = 32 channels, N positions): ``out = (v‖1) kᵀ q``, then rows 0..d−1
    divided by row d (+1e-15). The official code switches to quadratic attention only when
    N ≤ d, which the SAM input sizes never reach; it is implemented for completeness.
    """

    def __init__(self, channels: int, scales: tuple[int, ...], dim: int = QKV_DIM) -> None:
        super().__init__()
        self.dim = dim
        self.eps = LITE_MLA_EPS
        heads = channels // dim
        total = heads * dim
        self.qkv = ConvLayer(channels, 3 * total, 1, norm=False)
        self.aggreg = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3 * total, 3 * total, s, padding=s // 2, groups=3 * total, bias=False),
                nn.Conv2d(3 * total, 3 * total, 1, groups=3 * heads, bias=False),
            )
            for s in scales
        )
        self.kernel_func = nn.ReLU()
        self.proj = ConvLayer(total * (1 + len(scales)), channels, 1)

    def _split(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, _, h, w = qkv.shape
        qkv = qkv.reshape(b, -1, 3 * self.dim, h * w)  # B × heads × (q‖k‖v) × N
        d = self.dim
        q, k, v = qkv[:, :, :d], qkv[:, :, d : 2 * d], qkv[:, :, 2 * d :]
        return self.kernel_func(q), self.kernel_func(k), v

    @torch.autocast(device_type="cuda", enabled=False)  # as official: fp32 division on CUDA
    def linear_attention(self, qkv: torch.Tensor) -> torch.Tensor:
        b, _, h, w = qkv.shape
        if qkv.dtype == torch.float16:
            qkv = qkv.float()
        q, k, v = self._split(qkv)
        v = F.pad(v, (0, 0, 0, 1), mode="constant", value=1.0)  # the ones row yields the normaliser
        out = torch.matmul(torch.matmul(v, k.transpose(-1, -2)), q)
        if out.dtype == torch.bfloat16:
            out = out.float()
        out = out[:, :, :-1] / (out[:, :, -1:] + self.eps)
        return out.reshape(b, -1, h, w)

    @torch.autocast(device_type="cuda", enabled=False)
    def quadratic_attention(self, qkv: torch.Tensor) -> torch.Tensor:
        b, _, h, w = qkv.shape
        q, k, v = self._split(qkv)
        att = torch.matmul(k.transpose(-1, -2), q)  # B × heads × N × N
        dtype = att.dtype
        if dtype in (torch.float16, torch.bfloat16):
            att = att.float()
        att = (att / (att.sum(dim=2, keepdim=True) + self.eps)).to(dtype)
        return torch.matmul(v, att).reshape(b, -1, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv, *(op(qkv) for op in self.aggreg)], dim=1)
        h, w = qkv.shape[-2:]
        if h * w <= self.dim:
            return self.proj(self.quadratic_attention(qkv))
        return self.proj(self.linear_attention(qkv).to(qkv.dtype))


class EfficientViTBlock(nn.Module):
    """Residual LiteMLA (context) then a residual fewer-norm MBConv (local)."""

    def __init__(self, channels: int, expand: float, scales: tuple[int, ...]) -> None:
        super().__init__()
        self.context_module = Residual(LiteMLA(channels, scales), shortcut=True)
        self.local_module = Residual(MBConv(channels, channels, 1, expand, fewer_norm=True), shortcut=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


@dataclass(frozen=True)
class BackboneConfig:
    """``EfficientViTLargeBackbone`` arguments: one entry per stage (stage 0 is the stride-2 stem)."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    blocks: tuple[str, ...] = ("res", "fmb", "fmb", "mb", "att")
    expands: tuple[float, ...] = (1, 4, 4, 4, 6)
    fewer_norm: tuple[bool, ...] = (False, False, False, True, True)


def _attention_scales(block: str) -> tuple[int, ...]:
    """``"att"`` → LiteMLA scales (5,), ``"att@3"`` → (3,) (backbone.py)."""
    return (3,) if block == "att@3" else (5,)


class EfficientViTLargeBackbone(nn.Module):
    """EfficientViT-L/XL: a conv stem, then per stage a stride-2 block and ``depth`` blocks.

    The stride-2 block of a stage is its own block type when that is "mb"/"fmb", else an MBConv, at
    4× the stage's expand ratio and without shortcut. Attention stages ("att", "att@3") continue with
    EfficientViT blocks. Returns the features of every stage as ``{"stage0": …, "stageN": …}``.
    """

    def __init__(self, cfg: BackboneConfig, in_channels: int = 3) -> None:
        super().__init__()
        self.width_list = list(cfg.widths)
        w0 = cfg.widths[0]
        stem: list[nn.Module] = [ConvLayer(in_channels, w0, 3, 2, act=True)]
        stem += [
            Residual(LOCAL_BLOCKS[cfg.blocks[0]](w0, w0, 1, cfg.expands[0], cfg.fewer_norm[0]), shortcut=True)
            for _ in range(cfg.depths[0])
        ]
        stages = [OpSequential(stem)]
        in_ch = w0
        for i in range(1, len(cfg.widths)):
            width, block, expand, fewer = cfg.widths[i], cfg.blocks[i], cfg.expands[i], cfg.fewer_norm[i]
            down = LOCAL_BLOCKS[block if block in ("mb", "fmb") else "mb"]
            ops: list[nn.Module] = [Residual(down(in_ch, width, 2, expand * 4, fewer), shortcut=False)]
            for _ in range(cfg.depths[i]):
                if block.startswith("att"):
                    ops.append(EfficientViTBlock(width, expand, _attention_scales(block)))
                else:
                    ops.append(Residual(LOCAL_BLOCKS[block](width, width, 1, expand, fewer), shortcut=True))
            stages.append(OpSequential(ops))
            in_ch = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = {}
        for i, stage in enumerate(self.stages):
            x = features[f"stage{i}"] = stage(x)
        return features


class Resize(nn.Module):
    """Bicubic resize to a fixed size (align_corners=False); identity when already that size."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size

    @torch.autocast(device_type="cuda", enabled=False)  # as official: interpolate in fp32
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == self.size:
            return x
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return F.interpolate(x, size=self.size, mode="bicubic", align_corners=False)


@dataclass(frozen=True)
class NeckConfig:
    """``SamNeck`` arguments: the backbone stages it reads (deepest first) and its FusedMBConv stack."""

    stages: tuple[int, ...]
    depth: int
    expand: float
    width: int = 256


class SamNeck(nn.Module):
    """1×1 conv + BN per input stage, bicubic to 64×64, sum, residual FusedMBConvs, 1×1 conv to 256."""

    def __init__(self, cfg: NeckConfig, in_channels: Sequence[int], out_dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.input_keys = [f"stage{i}" for i in cfg.stages]
        self.input_ops = nn.ModuleList(
            OpSequential([ConvLayer(c, cfg.width, 1), Resize(EMBED_GRID)]) for c in in_channels
        )
        self.middle = OpSequential(
            [
                Residual(FusedMBConv(cfg.width, cfg.width, 1, cfg.expand, fewer_norm=False), shortcut=True)
                for _ in range(cfg.depth)
            ]
        )
        head = ConvLayer(cfg.width, out_dim, 1, bias=True, norm=False)
        self.output_ops = nn.ModuleList([OpSequential([head])])

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        maps = [op(features[key]) for key, op in zip(self.input_keys, self.input_ops, strict=True)]
        x = maps[-1]
        for m in reversed(maps[:-1]):  # right-associative, as efficientvit's list_sum: a + (b + c)
            x = m + x
        return self.output_ops[0](self.middle(x))


class EfficientViTSamImageEncoder(nn.Module):
    """Backbone → SamNeck → LayerNorm2d (eps 1e-6): a padded S×S image → 1×256×64×64 embedding."""

    def __init__(self, backbone: BackboneConfig, neck: NeckConfig, img_size: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.backbone = EfficientViTLargeBackbone(backbone)
        self.neck = SamNeck(neck, [backbone.widths[i] for i in neck.stages])
        self.norm = LayerNorm2d(EMBED_DIM, eps=NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.neck(self.backbone(x)))
