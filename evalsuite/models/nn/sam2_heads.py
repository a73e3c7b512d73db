"""SAM 2.1's prompt encoder and mask decoder, with the official state-dict layout.

Re-implemented from the facts of facebookresearch/sam2 @ 2b90b9f (Apache-2.0;
``modeling/sam/prompt_encoder.py``, ``sam/mask_decoder.py``, ``sam/transformer.py``,
``position_encoding.PositionEmbeddingRandom``, ``sam2_utils.MLP/LayerNorm2d``). Kept apart from
SAM v1's modules (:mod:`.sam_decoder`) because the layouts and semantics differ:

* prompt encoder: same keys as SAM v1, but SAM 2's image predictor passes boxes as two *points*
  labelled 2 and 3 and never calls it with ``boxes``, so the (0, 0)/−1 padding point is appended to
  every prompt. Label −1 replaces the positional encoding by ``not_a_point_embed``; labels 0–3 add
  ``point_embeddings[label]`` to it. The mask encoder (``mask_downscaling``) takes the 256×256
  low-res logits of an earlier prediction (``mask_input``);
* decoder transformer: SAM's two-way transformer (depth 2, 8 heads, ReLU MLP 2048 keyed
  ``mlp.layers.{0,1}``, LayerNorm eps 1e-5 = PyTorch's default, SDPA attention);
* output tokens ``[obj_score_token, iou_token, mask_tokens×4]`` before the sparse prompts;
* upscaling with the encoder's high-resolution maps added: ``GELU(LN2d(ConvT(x) + s1))`` then
  ``GELU(ConvT(·) + s0)`` (LayerNorm2d eps 1e-6, exact GELU); hypernetwork MLPs (ReLU); the IoU
  head ends in a sigmoid;
* ``pred_obj_score_head`` is computed for completeness but the image predictor ignores it (no
  "no object" masking in image mode).

SAM 3's interactive ("SAM 1 task") path uses the same heads at its own sizes (72×72 embedding grid,
1008² input, 288² logits), keys the two-way transformer's MLP ``mlp.lin1/lin2`` (SAM v1's
``MLPBlock``, same ReLU arithmetic) and is built here without the object-score head, whose output
its image predictor throws away: the constructor arguments below say so.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .hiera import MLP

# SAM's LayerNorm2d: same formula, eps 1e-6 (sam2_utils.py); MLPBlock: keys lin1/lin2 (SAM 3's MLP)
from .sam_image_encoder import LayerNorm2d, MLPBlock

EMBED_DIM = 256
EMBED_GRID = (64, 64)
INPUT_SIZE = (1024, 1024)
MASK_IN_CHANS = 16
NUM_MASK_TOKENS = 4  # token 0: single-mask output, tokens 1..3: multimask outputs
LOW_RES = 256  # low-res mask logits are 256×256 (and so is mask_input)
LABEL_PAD, LABEL_NEG, LABEL_POS, LABEL_BOX_TL, LABEL_BOX_BR = -1, 0, 1, 2, 3
# dynamic_multimask_via_stability (build_sam.py's apply_postprocessing defaults)
STABILITY_DELTA = 0.05
STABILITY_THRESH = 0.98


class PositionEmbeddingRandom(nn.Module):
    """Random-Fourier encoding of [0, 1]² coordinates (a persistent 2×128 Gaussian buffer)."""

    positional_encoding_gaussian_matrix: torch.Tensor

    def __init__(self, num_pos_feats: int = EMBED_DIM // 2) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = (2 * math.pi) * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """C×H×W encoding of the cell centres of an H×W grid."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self.encode(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """B×N×C encoding of (x, y) pixel coordinates in an image of ``image_size`` (H, W)."""
        x = coords[..., 0] / image_size[1]
        y = coords[..., 1] / image_size[0]
        return self.encode(torch.stack([x, y], dim=-1).float())


class PromptEncoder(nn.Module):
    """Labelled points (boxes included, as labels 2/3) and mask inputs → sparse and dense embeddings.

    ``embedding_grid`` (H, W) of the image embedding and ``input_size`` (H, W) of the encoder input:
    SAM 2.1's 64×64 and 1024² by default (SAM 3: 72×72 and 1008²); mask inputs are 4× the grid.
    """

    def __init__(
        self, embedding_grid: tuple[int, int] = EMBED_GRID, input_size: tuple[int, int] = INPUT_SIZE
    ) -> None:
        super().__init__()
        self.image_embedding_size = embedding_grid
        self.input_image_size = input_size
        self.pe_layer = PositionEmbeddingRandom(EMBED_DIM // 2)
        # learned offsets for labels 0 (negative click), 1 (positive), 2 (box top-left), 3 (bottom-right)
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
        """1×256×H×W positional encoding of the image-embedding grid (64×64 for SAM 2.1)."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """N×P×2 points (input-frame pixels) and N×P labels → N×(P+1)×256, the padding point appended.

        The official image predictor calls the encoder with ``boxes=None``, so the padding point
        is appended to every prompt, a box's corners (labels 2, 3) included.
        """
        coords = coords + 0.5  # pixel centres
        n = coords.shape[0]
        coords = torch.cat([coords, coords.new_zeros(n, 1, 2)], dim=1)
        labels = torch.cat([labels, labels.new_full((n, 1), LABEL_PAD)], dim=1)[..., None]
        emb = self.pe_layer.forward_with_coords(coords, self.input_image_size)
        emb = torch.where(labels == LABEL_PAD, torch.zeros_like(emb) + self.not_a_point_embed.weight, emb)
        for label, table in enumerate(self.point_embeddings):  # labels 0..3, in the official order
            emb = torch.where(labels == label, emb + cast(nn.Embedding, table).weight, emb)
        return emb

    def forward(
        self, coords: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N×(P+1)×256 sparse, N×256×H×W dense) embeddings; ``masks``: N×1×4H×4W logits or None."""
        sparse = self.embed_points(coords, labels)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                coords.shape[0], -1, *self.image_embedding_size
            )
        return sparse, dense


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections, optionally at reduced internal width."""

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
        out = F.scaled_dot_product_attention(q, k, v)
        b, heads, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, heads * c))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token→image cross attention, token MLP, image→token cross attention."""

    def __init__(
        self, dim: int, num_heads: int, mlp_dim: int, skip_first_layer_pe: bool, lin_mlp: bool = False
    ) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample_rate=2)
        self.norm2 = nn.LayerNorm(dim)
        # the same ReLU MLP, keyed mlp.layers.{0,1} (SAM 2) or mlp.lin1/lin2 (SAM 3, lin_mlp)
        self.mlp: nn.Module = (
            MLPBlock(dim, mlp_dim, act=nn.ReLU) if lin_mlp else MLP(dim, mlp_dim, dim, 2, act=nn.ReLU)
        )
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample_rate=2)
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
    """Two two-way blocks, then a final token→image attention and LayerNorm."""

    def __init__(
        self,
        depth: int = 2,
        dim: int = EMBED_DIM,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        lin_mlp: bool = False,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, skip_first_layer_pe=i == 0, lin_mlp=lin_mlp)
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(dim, num_heads, downsample_rate=2)
        self.norm_final_attn = nn.LayerNorm(dim)

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


class MaskDecoder(nn.Module):
    """Image features + prompts → 4 low-res mask logits (4× the grid: 256²), 4 IoUs, an object score.

    ``lin_mlp``: the transformer MLPs keyed ``lin1/lin2`` (SAM 3); ``obj_score_head=False`` leaves out
    ``pred_obj_score_head`` (SAM 3's image predictor discards its output; its token stays, it is
    attended to), and forward() then returns None for the object score.
    """

    def __init__(self, dim: int = EMBED_DIM, lin_mlp: bool = False, obj_score_head: bool = True) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(dim=dim, lin_mlp=lin_mlp)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(NUM_MASK_TOKENS, dim)
        self.obj_score_token = nn.Embedding(1, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        # applied by the image encoder's caller to the stride-4/-8 maps (computed once per image)
        self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(NUM_MASK_TOKENS)
        )
        self.iou_prediction_head = MLP(dim, 256, NUM_MASK_TOKENS, 3, sigmoid_output=True)
        # object-presence score: used by the video predictor only; the image predictor discards it
        self.pred_obj_score_head = MLP(dim, dim, 1, 3) if obj_score_head else None

    def forward(
        self,
        image_embedding: torch.Tensor,
        high_res: tuple[torch.Tensor, torch.Tensor],
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """All outputs of N prompts of one image: N×4×256×256 logits, N×4 IoUs, N×1 object-score logits
        (None without the object-score head).

        ``image_embedding`` (1×256×64×64) and ``high_res`` = (s0 1×32×256×256, s1 1×64×128×128) are
        shared by the N prompts: broadcasting equals the official ``repeat_interleave``.
        """
        n = sparse.shape[0]
        output_tokens = torch.cat(
            [self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight]
        )
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(n, -1, -1), sparse], dim=1)
        src = image_embedding + dense
        pos = image_pe.expand(n, -1, -1, -1)
        b, c, h, w = src.shape

        hs, src = self.transformer(src, pos, tokens)
        iou_token_out = hs[:, 1, :]
        mask_tokens_out = hs[:, 2 : 2 + NUM_MASK_TOKENS, :]

        feat_s0, feat_s1 = high_res
        deconv1, ln1, act1, deconv2, act2 = self.output_upscaling
        upscaled = act1(ln1(deconv1(src.transpose(1, 2).reshape(b, c, h, w)) + feat_s1))
        upscaled = act2(deconv2(upscaled) + feat_s0)

        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        obj = self.pred_obj_score_head
        return masks, self.iou_prediction_head(iou_token_out), None if obj is None else obj(hs[:, 0, :])


def stability_scores(logits: torch.Tensor, delta: float = STABILITY_DELTA) -> torch.Tensor:
    """#(logit > δ) / #(logit > −δ) over the last two dims (1 where nothing is above −δ)."""
    flat = logits.flatten(-2)
    area_i = (flat > delta).sum(-1).float()
    area_u = (flat > -delta).sum(-1).float()
    return torch.where(area_u > 0, area_i / area_u, 1.0)


def select_outputs(
    logits: torch.Tensor, iou: torch.Tensor, multimask: bool, thresh: float = STABILITY_THRESH
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's output choice: tokens 1..3 with ``multimask``, else token 0 per prompt unless it is
    unstable (stability < ``thresh``), then the multimask token with the highest predicted IoU.

    This is SAM 2's ``dynamic_multimask_via_stability`` (on in the image predictor's default build):
    an unstable single mask falls back to a better-defined one, with that token's own IoU.
    """
    if multimask:
        return logits[:, 1:], iou[:, 1:]
    rows = torch.arange(logits.shape[0], device=logits.device)
    best = iou[:, 1:].argmax(dim=-1) + 1
    stable = stability_scores(logits[:, 0]) >= thresh
    chosen = torch.where(stable, torch.zeros_like(best), best)
    return logits[rows, chosen][:, None], iou[rows, chosen][:, None]
