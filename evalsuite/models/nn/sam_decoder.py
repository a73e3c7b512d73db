"""SAM's prompt encoder and mask decoder, shared by SAM ViT-B/L/H and MobileSAM.

Re-implemented from the facts of segment-anything (Apache-2.0, ``modeling/prompt_encoder.py``,
``modeling/mask_decoder.py``, ``modeling/transformer.py``), with the same state-dict keys:

* prompt encoder: random-Fourier positional encoding (a persistent 2×128 Gaussian buffer), point
  coordinates shifted by +0.5 to pixel centres, learned embeddings for negative/positive points,
  the two box corners and "not a point" (padding), a conv mask encoder for 256² mask inputs and a
  ``no_mask_embed`` added everywhere when there is none;
* mask decoder: a two-layer two-way transformer (ReLU MLP, LayerNorm eps 1e-5, cross attention at
  half width), ConvTranspose upscaling ×4 with LayerNorm2d/GELU, one hypernetwork MLP per mask
  token and an IoU head; token 0 is the single-mask output, tokens 1..3 the multimask outputs.

The transformer's LayerNorm eps is a parameter (``transformer_norm_eps``) because EfficientViT-SAM
reuses this decoder but sets every ``nn.LayerNorm`` eps to 1e-6 (``set_norm_eps`` in its model zoo);
the default stays SAM's 1e-5.
"""

from __future__ import annotations

import itertools
import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .sam_image_encoder import LayerNorm2d, MLPBlock

EMBED_DIM = 256
EMBED_GRID = (64, 64)
INPUT_SIZE = (1024, 1024)
MASK_IN_CHANS = 16
NUM_MASK_TOKENS = 4  # 1 single-mask output + 3 multimask outputs


class PositionEmbeddingRandom(nn.Module):
    """Random spatial-frequency (Fourier feature) encoding of [0, 1]² coordinates."""

    positional_encoding_gaussian_matrix: torch.Tensor

    def __init__(self, num_pos_feats: int = EMBED_DIM // 2) -> None:
        super().__init__()
        # persistent: the checkpoints store the trained frequencies
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = (2 * math.pi) * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """C×H×W encoding of the centres of an H×W grid."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self._encode(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """B×N×C encoding of (x, y) pixel coordinates in an image of ``image_size`` (H, W)."""
        x = coords[..., 0] / image_size[1]
        y = coords[..., 1] / image_size[0]
        return self._encode(torch.stack([x, y], dim=-1).float())


class PromptEncoder(nn.Module):
    """Points, boxes and low-res masks → sparse (B×N×256) and dense (B×256×64×64) embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_dim = EMBED_DIM
        self.image_embedding_size = EMBED_GRID
        self.input_image_size = INPUT_SIZE
        self.pe_layer = PositionEmbeddingRandom(EMBED_DIM // 2)
        # 0: negative point, 1: positive point, 2: box top-left, 3: box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, EMBED_DIM) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, EMBED_DIM)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, MASK_IN_CHANS // 4, kernel_size=2, stride=2),
            LayerNorm2d(MASK_IN_CHANS // 4),
            nn.GELU(),
            nn.Conv2d(MASK_IN_CHANS // 4, MASK_IN_CHANS, kernel_size=2, stride=2),
            LayerNorm2d(MASK_IN_CHANS),
            nn.GELU(),
            nn.Conv2d(MASK_IN_CHANS, EMBED_DIM, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, EMBED_DIM)

    def get_dense_pe(self) -> torch.Tensor:
        """1×256×64×64 positional encoding of the image-embedding grid."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _point_embedding(self, kind: int) -> torch.Tensor:
        """1×256 learned embedding of point kind 0..3 (typed access to the ModuleList)."""
        return cast(nn.Embedding, self.point_embeddings[kind]).weight

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        coords = coords + 0.5  # pixel centres
        if pad:  # without a box the official encoder appends a (0, 0) point labelled -1
            coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        pe = self.pe_layer.forward_with_coords(coords, self.input_image_size)
        labels = labels[..., None]
        # label -1 (padding): the positional encoding is replaced by the not-a-point embedding
        emb = torch.where(labels == -1, self.not_a_point_embed.weight, pe)
        emb = emb + (labels == 0) * self._point_embedding(0)
        return emb + (labels == 1) * self._point_embedding(1)

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        pe = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_embed = torch.cat([self._point_embedding(2), self._point_embedding(3)])
        return pe + corner_embed

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse tokens (points first, then box corners) and the dense mask embedding."""
        if points is not None:
            bs = points[0].shape[0]
        elif boxes is not None:
            bs = boxes.shape[0]
        elif masks is not None:
            bs = masks.shape[0]
        else:
            bs = 1
        weight = self.no_mask_embed.weight
        parts = [weight.new_empty(bs, 0, self.embed_dim)]
        if points is not None:
            parts.append(self._embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            parts.append(self._embed_boxes(boxes))
        sparse = torch.cat(parts, dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = weight.reshape(1, -1, 1, 1).expand(bs, -1, *self.image_embedding_size)
        return sparse, dense


class DecoderAttention(nn.Module):
    """Multi-head attention with separate q/k/v projections, optionally at reduced width."""

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.num_heads = num_heads
        internal = dim // downsample_rate
        self.q_proj = nn.Linear(dim, internal)
        self.k_proj = nn.Linear(dim, internal)
        self.v_proj = nn.Linear(dim, internal)
        self.out_proj = nn.Linear(internal, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim), as officially
        b, heads, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, heads * c))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token→image cross attention, token MLP, image→token cross attention."""

    def __init__(
        self, dim: int, num_heads: int, mlp_dim: int, skip_first_layer_pe: bool, norm_eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.self_attn = DecoderAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.cross_attn_token_to_image = DecoderAttention(dim, num_heads, downsample_rate=2)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLPBlock(dim, mlp_dim, act=nn.ReLU)
        self.norm3 = nn.LayerNorm(dim, eps=norm_eps)
        self.norm4 = nn.LayerNorm(dim, eps=norm_eps)
        self.cross_attn_image_to_token = DecoderAttention(dim, num_heads, downsample_rate=2)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:  # first layer: the queries *are* the prompt embeddings
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))

        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Two two-way blocks, then a final token→image attention and LayerNorm (all with eps ``norm_eps``)."""

    def __init__(
        self,
        depth: int = 2,
        dim: int = EMBED_DIM,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, skip_first_layer_pe=i == 0, norm_eps=norm_eps)
            for i in range(depth)
        )
        self.final_attn_token_to_image = DecoderAttention(dim, num_heads, downsample_rate=2)
        self.norm_final_attn = nn.LayerNorm(dim, eps=norm_eps)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """B×C×H×W image, its PE and B×N×C tokens → processed tokens and B×HW×C image tokens."""
        keys = image.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, query_pe=tokens, key_pe=key_pe)
        q, k = queries + tokens, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (keys ``layers.0..n-1``)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskDecoder(nn.Module):
    """Image embedding + prompt embeddings → 4 low-res (256²) mask logits and 4 IoU predictions.

    ``transformer_norm_eps``: eps of the transformer's 9 LayerNorms (SAM 1e-5, EfficientViT-SAM 1e-6);
    the upscaler's LayerNorm2d keeps 1e-6 either way.
    """

    def __init__(self, dim: int = EMBED_DIM, transformer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(dim=dim, norm_eps=transformer_norm_eps)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(NUM_MASK_TOKENS, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(NUM_MASK_TOKENS)
        )
        self.iou_prediction_head = MLP(dim, 256, NUM_MASK_TOKENS, 3)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B×M×256×256 logits, B×M IoU) with M = 3 (tokens 1..3) or 1 (token 0).

        ``image_embeddings`` (1×256×64×64) is shared by the B prompts of one image.
        """
        masks, iou = self.predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        sel = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, sel], iou[:, sel]

    def output_tokens(self) -> torch.Tensor:
        """The learned tokens that lead the token sequence: IoU token, then the mask tokens (T×C).

        A subclass appends its own (SAM-HQ's HQ token) and reads their outputs from :meth:`run_transformer`.
        """
        return torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)

    def run_transformer(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two-way transformer and the upscaler: (B×N×C token outputs, B×C/8×256×256 upscaled image).

        Token outputs are in :meth:`output_tokens` order, then the prompt tokens.
        """
        bs = sparse.shape[0]
        output_tokens = self.output_tokens()
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(bs, -1, -1), sparse], dim=1)
        # one image per call: broadcasting equals the official repeat_interleave over prompts
        src = (image_embeddings + dense).expand(bs, -1, -1, -1)
        pos = image_pe.expand(bs, -1, -1, -1)
        b, c, h, w = src.shape

        hs, src = self.transformer(src, pos, tokens)
        return hs, self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))

    def sam_masks(self, hs: torch.Tensor, upscaled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The four mask outputs (hypernetwork of each mask token · upscaled image) and the IoU head."""
        mask_tokens_out = hs[:, 1 : 1 + NUM_MASK_TOKENS, :]
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        return masks, self.iou_prediction_head(hs[:, 0, :])

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All four mask outputs and IoU predictions."""
        hs, upscaled = self.run_transformer(image_embeddings, image_pe, sparse, dense)
        return self.sam_masks(hs, upscaled)
