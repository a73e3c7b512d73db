"""RepViT image encoders of EdgeSAM and RepViT-SAM, run unfused, with the official state-dict keys.

Re-implemented from the facts of two repositories (read, not copied):

* EdgeSAM (chongzhou96/EdgeSAM @ 03465ff, S-Lab License 1.0, ``edge_sam/modeling/rep_vit.py``):
  ``RepViT(arch="m1", img_size=1024, upsample_mode="bicubic")``;
* RepViT-SAM (THU-MIG/RepViT @ 298f420, Apache-2.0, ``sam/repvit_sam/modeling/repvit.py``): the
  ``repvit`` model that file registers in timm's registry (``timm.create_model("repvit")``).

Both are a stack of RepViT blocks under ``features``: a two-conv stem (3×3 stride 2, GELU, 3×3
stride 2), then per row of the configuration table one block — a *token mixer* (a depthwise 3×3,
optionally a squeeze-excite, and for a downsampling row a 1×1 projection) followed by a *channel
mixer* (residual 1×1 expand ×2, GELU, 1×1 project). The block layout and key names are the same in
both; two things differ, so they are parameters here:

* ``RepVGGDW`` (the stride-1 depthwise token mixer): EdgeSAM's is ``conv(x) + conv1(x) + x`` with
  ``conv1`` a 1×1 depthwise ``Conv2d_BN``; RepViT-SAM's is ``bn(conv(x) + conv1(x) + x)`` with
  ``conv1`` a biased 1×1 depthwise ``Conv2d`` and a BatchNorm after the sum (``bn_after_sum``);
* RepViT-SAM's last downsampling row (input 320 channels) keeps stride 1 (``stride if inp != 320
  else 1``), so its output grid is 64×64 for a 1024² input (``stride_one_inputs``).

Nothing is re-parameterised: the official builders and predictors never call ``fuse()``, and the
checkpoints hold every BatchNorm, so every ``Conv2d_BN`` runs as conv (no bias) → BatchNorm (eval:
running statistics, eps 1e-5). GELU is exact everywhere (the table's "HS" flag selects GELU either
way). The squeeze-excite is timm's ``SqueezeExcite`` (= ``SEModule``) with ``rd_ratio=0.25``: spatial
mean, 1×1 conv (reduced width rounded to a multiple of 8, never up), ReLU, 1×1 conv, sigmoid gate.

The heads differ: EdgeSAM sums ``fuse_stage2`` (1×1 on the stride-16 output of stage 2) and
``fuse_stage3`` (1×1 on the stride-32 output of stage 3, then bicubic ×2 upsampling, align_corners
False) and applies a neck of 1×1 conv → LayerNorm2d → 3×3 conv → LayerNorm2d (eps 1e-6) to 256
channels; RepViT-SAM applies the same neck to the last stage's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .efficientvit import OpSequential
from .sam_image_encoder import OUT_CHANS, make_neck
from .tiny_vit import Conv2d_BN

IMG_SIZE = 1024
NECK_DIM = OUT_CHANS  # SAM's neck width
SE_RATIO = 0.25

#: one row of a RepViT configuration table: kernel, expansion, channels, SE, "HS" (GELU either way), stride
Row = tuple[int, int, int, int, int, int]


def make_divisible(v: float, divisor: int = 8) -> int:
    """RepViT's channel rounding (from MobileNet): nearest multiple of ``divisor``, never 10 % below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def se_channels(channels: int) -> int:
    """timm SEModule's reduced width: ``make_divisible(channels · 0.25, 8, round_limit=0)``."""
    return max(8, int(channels * SE_RATIO + 4) // 8 * 8)


class SqueezeExcite(nn.Module):
    """timm's ``SqueezeExcite``: x · sigmoid(fc2(ReLU(fc1(mean over H, W)))) (keys ``fc1``, ``fc2``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        reduced = se_channels(channels)
        self.fc1 = nn.Conv2d(channels, reduced, kernel_size=1)
        self.fc2 = nn.Conv2d(reduced, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(s)


class Residual(nn.Module):
    """``x + m(x)`` (key ``m``; drop path only in training, never here)."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class RepVGGDW(nn.Module):
    """Depthwise 3×3 ``Conv2d_BN`` + depthwise 1×1 + identity (see the module docstring for the two forms)."""

    def __init__(self, dim: int, bn_after_sum: bool) -> None:
        super().__init__()
        self.conv = Conv2d_BN(dim, dim, 3, 1, 1, groups=dim)
        self.conv1: nn.Module
        if bn_after_sum:  # RepViT-SAM: biased 1×1 conv, BatchNorm after the sum
            self.conv1 = nn.Conv2d(dim, dim, 1, 1, 0, groups=dim)
            self.bn: nn.Module | None = nn.BatchNorm2d(dim)
        else:  # EdgeSAM: 1×1 Conv2d_BN, nothing after the sum
            self.conv1 = Conv2d_BN(dim, dim, 1, 1, 0, groups=dim)
            self.bn = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (self.conv(x) + self.conv1(x)) + x
        return y if self.bn is None else self.bn(y)


def _se_or_identity(channels: int, use_se: bool) -> nn.Module:
    return SqueezeExcite(channels) if use_se else nn.Identity()


def _channel_mixer(dim: int, hidden: int) -> Residual:
    return Residual(nn.Sequential(Conv2d_BN(dim, hidden), nn.GELU(), Conv2d_BN(hidden, dim)))


class RepViTBlock(nn.Module):
    """Token mixer then channel mixer; a downsampling row also projects ``inp`` → ``oup`` channels."""

    def __init__(
        self,
        inp: int,
        hidden: int,
        oup: int,
        kernel: int,
        stride: int,
        use_se: bool,
        bn_after_sum: bool,
        dw_stride: int | None = None,
    ) -> None:
        super().__init__()
        if hidden != 2 * inp:
            raise ValueError(f"RepViT block: hidden width {hidden} must be twice the input {inp}")
        self.token_mixer: nn.Sequential
        if stride == 2:
            self.token_mixer = nn.Sequential(
                Conv2d_BN(inp, inp, kernel, dw_stride or stride, (kernel - 1) // 2, groups=inp),
                _se_or_identity(inp, use_se),
                Conv2d_BN(inp, oup),
            )
            self.channel_mixer = _channel_mixer(oup, 2 * oup)
        elif stride == 1 and inp == oup:
            self.token_mixer = nn.Sequential(RepVGGDW(inp, bn_after_sum), _se_or_identity(inp, use_se))
            self.channel_mixer = _channel_mixer(inp, hidden)
        else:  # neither official table has one (RepViT-SAM's code would drop the residual)
            raise ValueError(f"RepViT block: stride-1 row changing width {inp} → {oup} is not supported")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_mixer(self.token_mixer(x))


@dataclass(frozen=True)
class RepViTConfig:
    """One RepViT: the official table and the two points where EdgeSAM's and RepViT-SAM's code differ."""

    rows: tuple[Row, ...]
    bn_after_sum: bool
    #: downsampling rows whose input has one of these widths keep stride 1 (RepViT-SAM: 320)
    stride_one_inputs: frozenset[int] = field(default_factory=frozenset)


def _row(k: int, c: int, se: int, hs: int, s: int) -> Row:
    return (k, 2, c, se, hs, s)  # expansion t = 2 in every row of both tables


def _stage(c: int, hs: int, se_pattern: str, downsample: bool) -> list[Row]:
    """Rows of one stage: ``se_pattern`` has one character per row ('1' = SE), the first may downsample."""
    return [_row(3, c, int(flag), hs, 2 if downsample and i == 0 else 1) for i, flag in enumerate(se_pattern)]


#: EdgeSAM's RepViT-m1 (``m1_cfgs``): 3 + 4 + 16 + 3 rows at 48 / 96 / 192 / 384 channels
M1 = RepViTConfig(
    rows=tuple(
        _stage(48, 0, "100", False)
        + _stage(96, 0, "0100", True)
        + _stage(192, 1, "0" + "10" * 7 + "0", True)
        + _stage(384, 1, "010", True)
    ),
    bn_after_sum=False,
)

#: RepViT-SAM's ``repvit`` (timm registry): 7 + 8 + 36 + 3 rows at 80 / 160 / 320 / 640 channels
REPVIT_SAM = RepViTConfig(
    rows=tuple(
        _stage(80, 0, "1010100", False)
        + _stage(160, 0, "01010100", True)
        + _stage(320, 1, "0" + "10" * 17 + "0", True)
        + _stage(640, 1, "010", True)
    ),
    bn_after_sum=True,
    stride_one_inputs=frozenset({320}),
)


def build_features(cfg: RepViTConfig) -> tuple[nn.ModuleList, list[int]]:
    """The stem and one block per row (``features``), and the indices (into ``features``) of each stage's
    last block, where the width changes next (the official ``stage_idx``, shifted by the stem)."""
    width = cfg.rows[0][2]
    stem = nn.Sequential(Conv2d_BN(3, width // 2, 3, 2, 1), nn.GELU(), Conv2d_BN(width // 2, width, 3, 2, 1))
    layers: list[nn.Module] = [stem]
    stage_ends: list[int] = []
    for i, (k, t, c, use_se, _hs, s) in enumerate(cfg.rows):
        out = make_divisible(c)
        if out != width and i > 0:
            stage_ends.append(i)  # features[i] (row i - 1) ends the previous stage
        dw_stride = 1 if s == 2 and width in cfg.stride_one_inputs else None
        hidden = make_divisible(width * t)
        layers.append(RepViTBlock(width, hidden, out, k, s, bool(use_se), cfg.bn_after_sum, dw_stride))
        width = out
    stage_ends.append(len(cfg.rows))
    return nn.ModuleList(layers), stage_ends


class BicubicUp2(nn.Module):
    """EdgeSAM's ``UpSampleLayer(factor=2, mode="bicubic")``: ``F.interpolate(scale_factor=2,
    align_corners=False)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


class EdgeSamEncoder(nn.Module):
    """EdgeSAM's image encoder: RepViT-m1, stage 2 (stride 16) + upsampled stage 3 (stride 32), neck.

    1×3×1024×1024 → 1×256×64×64.
    """

    def __init__(self, cfg: RepViTConfig = M1, img_size: int = IMG_SIZE) -> None:
        super().__init__()
        self.img_size = img_size
        self.features, ends = build_features(cfg)
        self.stage2_end, self.stage3_end = ends[2], ends[3]
        self.fuse_stage2 = nn.Conv2d(make_divisible(cfg.rows[ends[2] - 1][2]), NECK_DIM, 1, bias=False)
        stage3 = make_divisible(cfg.rows[ends[3] - 1][2])
        # EdgeSAM's OpSequential is EfficientViT's (the ops under the key ``op_list``)
        self.fuse_stage3 = OpSequential([nn.Conv2d(stage3, NECK_DIM, 1, bias=False), BicubicUp2()])
        self.neck = make_neck(NECK_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stage2 = x
        for i, f in enumerate(self.features):
            x = f(x)
            if i == self.stage2_end:
                stage2 = x
        return self.neck(self.fuse_stage2(stage2) + self.fuse_stage3(x))


class RepViTSamEncoder(nn.Module):
    """RepViT-SAM's image encoder: the ``repvit`` stack (stride 16 at the end), then the neck.

    1×3×1024×1024 → 1×256×64×64.
    """

    def __init__(self, cfg: RepViTConfig = REPVIT_SAM, img_size: int = IMG_SIZE) -> None:
        super().__init__()
        self.img_size = img_size
        self.features, _ = build_features(cfg)
        self.neck = make_neck(make_divisible(cfg.rows[-1][2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for f in self.features:
            x = f(x)
        return self.neck(x)
