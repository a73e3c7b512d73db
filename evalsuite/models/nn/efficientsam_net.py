"""EfficientSAM (Ti / S) as a plain PyTorch network, state-dict compatible with the official checkpoints.

Re-implemented from the architecture facts of yformer/EfficientSAM (d525f62, Apache-2.0); the module and
parameter names are those of the official checkpoints, which differ from SAM's (``mlp.layers.0.0`` +
``mlp.fc``, ``final_output_upscaling_layers``, ``bbox_*_embeddings``, ``invalid_points``), so the
official files load with ``strict=True``.

Numerics that the fidelity goldens pin down (and that differ from SAM):

* encoder: plain global-attention ViT, qkv bias, LayerNorm eps 1e-6, absolute ``pos_embed`` of the
  224-pixel pre-training grid (cls entry + 14×14) whose grid is bicubic-resized to 64×64 on every call;
  SAM-style neck (1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d; eps 1e-6);
* prompt encoder: random-Fourier PE plus a learned embedding for labels −1 (padding), 1 (click),
  2 (box top-left) and 3 (box bottom-right); label 0 (negative click) gets **no** learned embedding;
  always exactly :data:`MAX_POINTS` points per query (padded with (−1, −1) / −1, or truncated);
* decoder: two-way transformer with exact-GELU MLPs (LayerNorm eps 1e-5), upscaling
  ConvT → GroupNorm(1, 64) → GELU → ConvT → GELU, GELU hypernetwork / IoU MLPs, no mask input.

All attention goes through :func:`torch.nn.functional.scaled_dot_product_attention` so that fused
kernels can be used on accelerators; on CPU in fp32 it reproduces the official explicit softmax(QKᵀ)V
within the golden tolerances.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: the official decoder always sees exactly this many points per query (``decoder_max_num_input_points``)
MAX_POINTS = 6
#: side of the square encoder input (images are stretched to it)
IMG_SIZE = 1024
#: side of the low-resolution mask logits
LOW_RES = 256
#: labels of the prompt encoder (official meaning)
LABEL_PAD, LABEL_NEG, LABEL_POS, LABEL_BOX_TL, LABEL_BOX_BR = -1, 0, 1, 2, 3
#: ImageNet normalisation applied to the [0, 1] image
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------------------
# image encoder
# ---------------------------------------------------------------------------------------------------------
class LayerNorm2d(nn.Module):
    """Channel LayerNorm of a B×C×H×W map (the neck's), computed as the official explicit formula."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (kept as a submodule for the ``patch_embed.proj`` key)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Global multi-head self-attention with a fused qkv projection (with bias)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        # default scale 1/sqrt(head_dim) == the official head_dim**-0.5
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """ViT block MLP: fc1 → GELU (exact) → fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm ViT block; LayerNorm eps 1e-6 as the official encoder (not PyTorch's default 1e-5)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ImageEncoderViT(nn.Module):
    """Plain ViT on a 1024×1024 input → 256×64×64 embedding."""

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        img_size: int = IMG_SIZE,
        patch_size: int = 16,
        in_chans: int = 3,
        mlp_ratio: float = 4.0,
        out_chans: int = 256,
        pretrain_img_size: int = 224,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.image_embedding_size = img_size // patch_size
        grid = pretrain_img_size // patch_size
        # registered before the submodules so that the state_dict order equals the official one
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def abs_pos(self, h: int, w: int) -> Tensor:
        """1×h×w×C position embedding: drop the cls entry, bicubic-resize the pre-training grid."""
        pos = self.pos_embed[:, 1:]
        size = math.isqrt(pos.shape[1])
        pos = pos.reshape(1, size, size, -1)
        if (size, size) == (h, w):
            return pos
        pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False)
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"encoder input must be {self.img_size}×{self.img_size}, got {tuple(x.shape)}")
        x = self.patch_embed(x).permute(0, 2, 3, 1)  # B×h×w×C
        b, h, w, c = x.shape
        x = (x + self.abs_pos(h, w)).reshape(b, h * w, c)
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.reshape(b, h, w, c).permute(0, 3, 1, 2))


# ---------------------------------------------------------------------------------------------------------
# prompt encoder
# ---------------------------------------------------------------------------------------------------------
class PositionEmbeddingRandom(nn.Module):
    """Random-Fourier positional encoding of [0, 1]² coordinates (persistent Gaussian matrix)."""

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.positional_encoding_gaussian_matrix: Tensor
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def encode(self, coords: Tensor) -> Tensor:
        """…×2 normalised (x, y) → …×(2·num_pos_feats) as [sin, cos]."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def dense(self, h: int, w: int) -> Tensor:
        """C×h×w encoding of the embedding grid's cell centres."""
        grid = torch.ones(h, w, device=self.positional_encoding_gaussian_matrix.device, dtype=torch.float32)
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        return self.encode(torch.stack([x, y], dim=-1)).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """Points (with labels −1/0/1/2/3) → sparse embeddings; EfficientSAM has no dense (mask) prompt."""

    def __init__(self, embed_dim: int = 256, embedding_size: int = 64, input_size: int = IMG_SIZE) -> None:
        super().__init__()
        self.embedding_size = embedding_size
        self.input_size = input_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.invalid_points = nn.Embedding(1, embed_dim)
        self.point_embeddings = nn.Embedding(1, embed_dim)
        self.bbox_top_left_embeddings = nn.Embedding(1, embed_dim)
        self.bbox_bottom_right_embeddings = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> Tensor:
        """1×C×64×64 positional encoding of the image embedding grid."""
        return self.pe_layer.dense(self.embedding_size, self.embedding_size)[None]

    def forward(self, coords: Tensor, labels: Tensor) -> Tensor:
        """B×P×2 coordinates in the 1024² input frame, B×P labels → B×P×C.

        Each point gets its PE plus at most one learned embedding; label 0 (and any other label) adds
        nothing, exactly as the official boolean-mask additions do.
        """
        pe = self.pe_layer.encode((coords + 0.5) / self.input_size)
        zero = torch.zeros_like(self.point_embeddings.weight)
        table = torch.cat(
            [
                self.invalid_points.weight,  # label -1
                zero,  # label 0: positional encoding only
                self.point_embeddings.weight,  # label 1
                self.bbox_top_left_embeddings.weight,  # label 2
                self.bbox_bottom_right_embeddings.weight,  # label 3
                zero,  # anything else: nothing added (official behaviour)
            ]
        )
        idx = labels.long() + 1
        idx = torch.where((idx >= 0) & (idx <= 4), idx, torch.full_like(idx, 5))
        return pe + table[idx]


# ---------------------------------------------------------------------------------------------------------
# mask decoder
# ---------------------------------------------------------------------------------------------------------
class MLPBlock(nn.Module):
    """``num_layers`` × (Linear → GELU) then a plain Linear ``fc`` (official key layout)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(d, hidden_dim), nn.GELU()) for d in dims)
        self.fc = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.fc(x)


class TwoWayAttention(nn.Module):
    """Attention with separate q/k/v projections to ``dim // downsample_rate`` channels."""

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        internal = dim // downsample_rate
        if internal % num_heads:
            raise ValueError("num_heads must divide the internal dimension")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, internal)
        self.k_proj = nn.Linear(dim, internal)
        self.v_proj = nn.Linear(dim, internal)
        self.out_proj = nn.Linear(internal, dim)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(c_per_head), as official
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attn, token→image cross-attn, MLP, image→token cross-attn (post-norm, eps 1e-5).

    Unlike SAM, the official block adds the query PE to the queries *themselves* before self-attention
    (layers after the first), and the first layer keeps its residual connection.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = TwoWayAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = TwoWayAttention(dim, num_heads, downsample_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim, dim, 1)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = TwoWayAttention(dim, num_heads, downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> tuple[Tensor, Tensor]:
        if not self.skip_first_layer_pe:
            queries = queries + query_pe
        queries = self.norm1(queries + self.self_attn(queries, queries, queries))
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks then a final token→image attention and LayerNorm."""

    def __init__(self, depth: int = 2, dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, skip_first_layer_pe=(i == 0)) for i in range(depth)
        )
        self.final_attn_token_to_image = TwoWayAttention(dim, num_heads, downsample_rate=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor
    ) -> tuple[Tensor, Tensor]:
        """B×C×h×w image, 1×C×h×w PE (broadcast), B×T×C tokens → (B×T×C tokens, B×hw×C image)."""
        keys = image_embedding.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        attn = self.final_attn_token_to_image(queries + point_embedding, keys + key_pe, keys)
        return self.norm_final_attn(queries + attn), keys


class MaskDecoder(nn.Module):
    """Tokens + image embedding → 4 low-res mask logits (256²) and 4 predicted IoUs per query."""

    def __init__(
        self,
        dim: int = 256,
        num_multimask_outputs: int = 3,
        upscaling_dims: tuple[int, ...] = (64, 32),
        iou_head_hidden_dim: int = 256,
        iou_head_layers: int = 2,
    ) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(dim=dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        layers = []
        in_dim = dim
        for i, out_dim in enumerate(upscaling_dims):
            last = i == len(upscaling_dims) - 1
            norm: nn.Module = nn.Identity() if last else nn.GroupNorm(1, out_dim)
            layers.append(nn.Sequential(nn.ConvTranspose2d(in_dim, out_dim, 2, stride=2), norm, nn.GELU()))
            in_dim = out_dim
        self.final_output_upscaling_layers = nn.ModuleList(layers)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLPBlock(dim, dim, in_dim, 2) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLPBlock(dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_layers)

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse: Tensor) -> tuple[Tensor, Tensor]:
        """B×C×h×w (one per query), 1×C×h×w PE, B×P×C prompts → (B×4×256×256 logits, B×4 IoU)."""
        tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([tokens[None].expand(sparse.shape[0], -1, -1), sparse], dim=1)
        b, c, h, w = image_embeddings.shape
        hs, src = self.transformer(image_embeddings, image_pe, tokens)
        up = src.transpose(1, 2).reshape(b, c, h, w)
        for layer in self.final_output_upscaling_layers:
            up = layer(up)
        hyper = torch.stack(
            [mlp(hs[:, 1 + i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # B×4×c'
        b, c, h, w = up.shape
        masks = (hyper @ up.reshape(b, c, h * w)).reshape(b, -1, h, w)
        return masks, self.iou_prediction_head(hs[:, 0])


# ---------------------------------------------------------------------------------------------------------
# the whole model
# ---------------------------------------------------------------------------------------------------------
class EfficientSam(nn.Module):
    """Encoder + prompt encoder + decoder with the official pre-processing and prompt handling."""

    def __init__(self, embed_dim: int, num_heads: int, depth: int = 12) -> None:
        super().__init__()
        self.image_encoder = ImageEncoderViT(embed_dim, depth, num_heads)
        self.prompt_encoder = PromptEncoder(256, self.image_encoder.image_embedding_size, IMG_SIZE)
        self.mask_decoder = MaskDecoder(256)
        # not in the checkpoints (persistent=False), as official
        self.pixel_mean: Tensor
        self.pixel_std: Tensor
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def img_size(self) -> int:
        return self.image_encoder.img_size

    def preprocess(self, x: Tensor) -> Tensor:
        """B×3×H×W in [0, 1] → stretched to 1024² (bilinear, no antialias, no aspect kept), normalised."""
        if x.shape[-2:] != (self.img_size, self.img_size):
            x = F.interpolate(x, (self.img_size, self.img_size), mode="bilinear", align_corners=False)
        return (x - self.pixel_mean) / self.pixel_std

    def get_image_embeddings(self, x: Tensor) -> Tensor:
        """B×3×H×W in [0, 1] → B×256×64×64."""
        return self.image_encoder(self.preprocess(x))

    def rescale_points(self, points: Tensor, input_h: int, input_w: int) -> Tensor:
        """Original-pixel (x, y) → the 1024² input frame per axis; negative coordinates become −1."""
        x, y = points[..., 0], points[..., 1]
        neg = torch.full_like(x, -1.0)
        return torch.stack(
            [
                torch.where(x >= 0, x * self.img_size / input_w, neg),
                torch.where(y >= 0, y * self.img_size / input_h, neg),
            ],
            dim=-1,
        )

    def predict_masks(
        self, image_embeddings: Tensor, points: Tensor, labels: Tensor, multimask_output: bool
    ) -> tuple[Tensor, Tensor]:
        """Decoder only, for B images × Q queries in one batch.

        ``points``: B×Q×P×2 already in the 1024² frame (:meth:`rescale_points`), ``labels``: B×Q×P.
        Pads with (−1, −1)/−1 or truncates to :data:`MAX_POINTS` points as the official model.
        Returns B×Q×M×256×256 low-res logits and B×Q×M IoUs (M = 3: tokens 1..3; M = 1: token 0).
        """
        b, q, p, _ = points.shape
        if p > MAX_POINTS:
            points, labels = points[:, :, :MAX_POINTS], labels[:, :, :MAX_POINTS]
        elif p < MAX_POINTS:
            points = F.pad(points, (0, 0, 0, MAX_POINTS - p), value=-1.0)
            labels = F.pad(labels, (0, MAX_POINTS - p), value=LABEL_PAD)
        sparse = self.prompt_encoder(points.reshape(b * q, MAX_POINTS, 2), labels.reshape(b * q, MAX_POINTS))
        c, h, w = image_embeddings.shape[1:]
        tiled = image_embeddings[:, None].expand(b, q, c, h, w).reshape(b * q, c, h, w)
        masks, iou = self.mask_decoder(tiled, self.prompt_encoder.get_dense_pe(), sparse)
        sel = slice(1, None) if multimask_output else slice(0, 1)
        masks, iou = masks[:, sel], iou[:, sel]
        return masks.reshape(b, q, *masks.shape[1:]), iou.reshape(b, q, -1)

    def forward(
        self, images: Tensor, points: Tensor, labels: Tensor, scale_to_original_image_size: bool = True
    ) -> tuple[Tensor, Tensor]:
        """End to end as the official ``forward``: always multimask; logits bicubic-resized to the input."""
        _, _, h, w = images.shape
        low_res, iou = self.predict_masks(
            self.get_image_embeddings(images), self.rescale_points(points, h, w), labels, True
        )
        if scale_to_original_image_size:
            low_res = upscale_logits(low_res, (h, w))
        return low_res, iou


def upscale_logits(low_res: Tensor, size: tuple[int, int]) -> Tensor:
    """…×256×256 logits → …×H×W, bicubic (align_corners=False) straight to the original size, as official."""
    lead = low_res.shape[:-2]
    out = F.interpolate(
        low_res.reshape(-1, 1, *low_res.shape[-2:]), size, mode="bicubic", align_corners=False
    )
    return out.reshape(*lead, *size)


def efficient_sam_ti() -> EfficientSam:
    """EfficientSAM-Ti: ViT-Tiny encoder (dim 192, 3 heads, depth 12)."""
    return EfficientSam(embed_dim=192, num_heads=3)


def efficient_sam_s() -> EfficientSam:
    """EfficientSAM-S: ViT-Small encoder (dim 384, 6 heads, depth 12)."""
    return EfficientSam(embed_dim=384, num_heads=6)
