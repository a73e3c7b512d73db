"""SAM-HQ's mask decoder (HQ-SAM v1): SAM's decoder plus an HQ output token and an HQ feature path.

Re-implemented from the facts of SysCV/sam-hq (Apache-2.0, ``segment_anything/modeling/mask_decoder_hq.py``
at fb181f8), with its state-dict keys. It extends :class:`~.sam_decoder.MaskDecoder` (same SAM keys and
computation) with:

* ``hf_token``, a fifth output token appended after SAM's four mask tokens, so it takes part in the
  two-way transformer (SAM's masks of an HQ model therefore differ from plain SAM's), and ``hf_mlp``, its
  hypernetwork;
* the HQ feature map, made once per image: ``embedding_encoder(image embedding)`` (ConvT ×2, LayerNorm2d,
  GELU, ConvT ×2) + ``compress_vit_feat(early encoder feature)`` (same shape of layers from ``vit_dim``
  channels) — the early feature is the output of the ViT's first global-attention block, or of Light
  HQ-SAM's TinyViT stage 2 (160 channels);
* per prompt, ``embedding_maskfeature(upscaled SAM image)`` (3×3 conv, LayerNorm2d, GELU, 3×3 conv) + the HQ
  feature map is what the HQ token's hypernetwork output is multiplied with.

Output selection (``MaskDecoderHQ.forward``): with ``multimask_output`` the one SAM mask of tokens 1..3
with the highest predicted IoU (and that IoU), else token 0; then the HQ mask is *added* to it, or
replaces it with ``hq_token_only``. One mask per prompt either way.
"""

from __future__ import annotations

import torch
from torch import nn

from .sam_decoder import EMBED_DIM, MLP, NUM_MASK_TOKENS, MaskDecoder
from .sam_image_encoder import LayerNorm2d

#: index of the HQ mask among the decoder's mask outputs (after SAM's four)
HQ_INDEX = NUM_MASK_TOKENS


def _upscaler(in_dim: int, dim: int, out_dim: int) -> nn.Sequential:
    """ConvT ×2 → LayerNorm2d → GELU → ConvT ×2 (keys ``0``, ``1``, ``3``)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_dim, dim, kernel_size=2, stride=2),
        LayerNorm2d(dim),
        nn.GELU(),
        nn.ConvTranspose2d(dim, out_dim, kernel_size=2, stride=2),
    )


class MaskDecoderHQ(MaskDecoder):
    """SAM's decoder + HQ token: image embedding, HQ features and prompts → one low-res mask per prompt."""

    def __init__(self, vit_dim: int, dim: int = EMBED_DIM) -> None:
        super().__init__(dim)
        self.hf_token = nn.Embedding(1, dim)
        self.hf_mlp = MLP(dim, dim, dim // 8, 3)
        self.compress_vit_feat = _upscaler(vit_dim, dim, dim // 8)
        self.embedding_encoder = _upscaler(dim, dim // 4, dim // 8)
        self.embedding_maskfeature = nn.Sequential(
            nn.Conv2d(dim // 8, dim // 4, 3, 1, 1),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.Conv2d(dim // 4, dim // 8, 3, 1, 1),
        )

    def output_tokens(self) -> torch.Tensor:
        return torch.cat([super().output_tokens(), self.hf_token.weight], dim=0)

    def hq_features(self, image_embeddings: torch.Tensor, early_features: torch.Tensor) -> torch.Tensor:
        """B×32×256×256 HQ feature map of B images from their embeddings and early B×64×64×C features."""
        vit = early_features.permute(0, 3, 1, 2)
        return self.embedding_encoder(image_embeddings) + self.compress_vit_feat(vit)

    def predict_masks_hq(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        hq_features: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """B×5 low-res masks (SAM's four, then the HQ mask) and B×4 IoU predictions (SAM's tokens)."""
        hs, upscaled = self.run_transformer(image_embeddings, image_pe, sparse, dense)
        sam, iou = self.sam_masks(hs, upscaled)
        b, c, h, w = upscaled.shape
        upscaled_hq = self.embedding_maskfeature(upscaled) + hq_features
        hyper_hq = self.hf_mlp(hs[:, 1 + HQ_INDEX, :]).unsqueeze(1)
        hq = (hyper_hq @ upscaled_hq.view(b, c, h * w)).view(b, 1, h, w)
        return torch.cat([sam, hq], dim=1), iou

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        hq_token_only: bool = False,
        hq_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B×1×256×256 logits, B×1 IoU): the official output selection (module docstring).

        ``image_embeddings`` (1×256×64×64) and ``hq_features`` (1×32×256×256) belong to one image.
        """
        if hq_features is None:
            raise ValueError("MaskDecoderHQ needs hq_features (MaskDecoderHQ.hq_features of the image)")
        masks, iou = self.predict_masks_hq(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, hq_features
        )
        if multimask_output:
            best_iou, best = torch.max(iou[:, 1:NUM_MASK_TOKENS], dim=1)
            rows = torch.arange(masks.shape[0], device=masks.device)
            sam = masks[:, 1:NUM_MASK_TOKENS][rows, best].unsqueeze(1)
            iou = best_iou.unsqueeze(1)
        else:
            sam, iou = masks[:, :1], iou[:, :1]
        hq = masks[:, HQ_INDEX : HQ_INDEX + 1]
        return (hq if hq_token_only else sam + hq), iou
