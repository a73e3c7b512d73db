"""SAM 2.1's image path as one module, its pre/post-processing, and strict loading of official weights.

Facts from facebookresearch/sam2 @ 2b90b9f (Apache-2.0): ``sam2_base.py`` (``forward_image``,
``no_mem_embed``), ``sam2_image_predictor.py``, ``utils/transforms.py`` and ``build_sam.py``:

* preprocessing (``SAM2Transforms``): uint8 → float [0, 1] (``ToTensor``), **stretched** to 1024×1024
  with antialiased bilinear interpolation (aspect ratio not kept, no padding), ImageNet mean/std;
* ``forward_image`` applies the decoder's ``conv_s0``/``conv_s1`` to the stride-4/-8 neck maps once per
  image; ``directly_add_no_mem_embed``: the stride-16 map plus ``no_mem_embed`` is the image embedding;
* prompts: (x, y) → (x/W·1024, y/H·1024) in float32; a box becomes points labelled 2, 3 before the
  clicks; masks: low-res logits → bilinear (align_corners=False) straight to the original size.

An official checkpoint also holds the video predictor's memory modules; :func:`drop_video_memory`
drops exactly those (a fixed list, checked key by key) and the rest is loaded strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .hiera import HIERA_B_PLUS, HIERA_L, HIERA_S, HIERA_T, IMG_SIZE, HieraConfig, ImageEncoder
from .sam2_heads import EMBED_DIM, MaskDecoder, PromptEncoder, select_outputs

PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)
LOGIT_CLAMP = 32.0  # SAM2ImagePredictor clamps the low-res logits it returns to ±32

VARIANTS: dict[str, HieraConfig] = {"t": HIERA_T, "s": HIERA_S, "b+": HIERA_B_PLUS, "l": HIERA_L}


def scale_to_frame(coords: torch.Tensor, size: tuple[int, int], frame: int) -> torch.Tensor:
    """Original-image (x, y) → a square ``frame``: x/W·frame, y/H·frame in float32, normalised first as
    SAM 2's ``transform_coords`` does (the order of the float operations is what the goldens hold)."""
    h, w = size
    coords = coords.to(torch.float32).clone()
    coords[..., 0] = coords[..., 0] / w
    coords[..., 1] = coords[..., 1] / h
    return coords * frame


@dataclass(frozen=True)
class Sam2Features:
    """What ``set_image`` keeps per image: the 1×256×64×64 embedding and the two high-res maps."""

    embedding: torch.Tensor  # stride 16, no_mem_embed added
    high_res_s0: torch.Tensor  # stride 4 after conv_s0: 1×32×256×256 (SAM 3: 288×288)
    high_res_s1: torch.Tensor  # stride 8 after conv_s1: 1×64×128×128 (SAM 3: 144×144)

    def __getitem__(self, i: int) -> Sam2Features:
        """Image ``i`` of a batch, as its own contiguous 1×… tensors."""
        return Sam2Features(
            *(t[i : i + 1].contiguous() for t in (self.embedding, self.high_res_s0, self.high_res_s1))
        )


class Sam2Model(nn.Module):
    """The image-predictor path of ``SAM2Base``, keyed like the official module."""

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        self.config = config
        # "no memory" embedding added to the stride-16 features of a single image
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.image_encoder = ImageEncoder(config)
        self.sam_prompt_encoder = PromptEncoder()
        self.sam_mask_decoder = MaskDecoder()

    @staticmethod
    def preprocess(images: list[torch.Tensor]) -> torch.Tensor:
        """H×W×3 uint8 images (any sizes) → the B×3×1024×1024 encoder input.

        ``ToTensor`` then ``Resize((1024, 1024))`` (antialiased bilinear on float, as torchvision ≥ 0.17
        does for tensors) then ``Normalize``: subtract the mean, then divide by the std.
        """
        out = []
        for pixels in images:
            x = pixels.permute(2, 0, 1).contiguous().to(torch.float32).div(255)[None]
            x = F.interpolate(x, (IMG_SIZE, IMG_SIZE), mode="bilinear", align_corners=False, antialias=True)
            mean = torch.tensor(PIXEL_MEAN, dtype=x.dtype, device=x.device)[:, None, None]
            std = torch.tensor(PIXEL_STD, dtype=x.dtype, device=x.device)[:, None, None]
            out.append(x.sub_(mean).div_(std))
        return torch.cat(out)

    def encode(self, x: torch.Tensor) -> Sam2Features:
        """``forward_image`` + ``no_mem_embed``: B×3×1024×1024 → batched :class:`Sam2Features`."""
        s0, s1, s16 = self.image_encoder(x)
        decoder = self.sam_mask_decoder
        embedding = s16 + self.no_mem_embed.view(1, -1, 1, 1)
        return Sam2Features(embedding, decoder.conv_s0(s0), decoder.conv_s1(s1))

    @staticmethod
    def scale_points(coords: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Original-image (x, y) → the 1024 frame (``transform_coords``)."""
        return scale_to_frame(coords, size, IMG_SIZE)

    def decode_all(
        self,
        features: Sam2Features,
        coords: torch.Tensor,
        labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """N prompts of one image → N×4×256×256 logits, N×4 IoUs, N×1 object scores (unclamped).

        ``coords`` N×P×2 in the 1024 frame, ``labels`` N×P (box corners 2, 3 first, then clicks);
        ``mask_input`` N×1×256×256 low-res logits or None.
        """
        sparse, dense = self.sam_prompt_encoder(coords, labels, mask_input)
        logits, iou, obj = self.sam_mask_decoder(
            features.embedding,
            (features.high_res_s0, features.high_res_s1),
            self.sam_prompt_encoder.get_dense_pe(),
            sparse,
            dense,
        )
        assert obj is not None  # SAM 2.1's decoder is built with its object-score head
        return logits, iou, obj

    def decode(
        self,
        features: Sam2Features,
        coords: torch.Tensor,
        labels: torch.Tensor,
        multimask: bool,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N×M×256×256 unclamped logits and N×M IoUs: M = 3 (tokens 1..3) or 1 (token 0 or its fallback)."""
        logits, iou, _ = self.decode_all(features, coords, labels, mask_input)
        return select_outputs(logits, iou, multimask)


def upscale_logits(low_res: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """N×M×256×256 → N×M×H×W logits: bilinear (align_corners=False) straight to the original size."""
    return F.interpolate(low_res.float(), size, mode="bilinear", align_corners=False)


def build_sam2(variant: str) -> Sam2Model:
    """The untrained image-path network of ``variant`` (``t``, ``s``, ``b+`` or ``l``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown SAM 2.1 variant {variant!r}; known: {', '.join(VARIANTS)}")
    return Sam2Model(VARIANTS[variant])


# -- official checkpoints -----------------------------------------------------------------------------
def video_memory_keys() -> dict[str, tuple[int, ...]]:
    """Every state-dict key (and shape) of an official SAM 2.1 checkpoint that only the video predictor reads.

    The memory attention, memory encoder, object-pointer projections and the "no memory / no object"
    embeddings condition a frame on earlier frames; a single image never reaches them. The list is the
    same for all four variants (176 − 16 keys of the fidelity manifests' ``unused_by_image_predictor``:
    ``sam_prompt_encoder.mask_downscaling.*`` and ``sam_mask_decoder.pred_obj_score_head.*`` are kept
    in :class:`Sam2Model`: the first encodes ``mask_input``, the second is computed and ignored).
    """
    d, mem, ffn = EMBED_DIM, 64, 2048
    keys: dict[str, tuple[int, ...]] = {
        "maskmem_tpos_enc": (7, 1, 1, mem),  # temporal encodings of the 7 memory frames
        "no_mem_pos_enc": (1, 1, d),
        "no_obj_ptr": (1, d),
        "no_obj_embed_spatial": (1, mem),
        "mask_downsample.weight": (1, 1, 4, 4),  # mask prompt → object pointer (video only)
        "mask_downsample.bias": (1,),
    }

    def add(prefix: str, weight: tuple[int, ...]) -> None:
        keys[f"{prefix}.weight"], keys[f"{prefix}.bias"] = weight, (weight[0],)

    for i in range(4):  # memory attention: 4 layers of self + cross (RoPE) attention and an MLP
        layer = f"memory_attention.layers.{i}"
        for name, kv_dim in (("self_attn", d), ("cross_attn_image", mem)):
            add(f"{layer}.{name}.q_proj", (d, d))
            add(f"{layer}.{name}.k_proj", (d, kv_dim))
            add(f"{layer}.{name}.v_proj", (d, kv_dim))
            add(f"{layer}.{name}.out_proj", (d, d))
        add(f"{layer}.linear1", (ffn, d))
        add(f"{layer}.linear2", (d, ffn))
        for norm in ("norm1", "norm2", "norm3"):
            add(f"{layer}.{norm}", (d,))
    add("memory_attention.norm", (d,))
    chans = (1, 4, 16, 64, 256)  # memory encoder: mask downsampler (conv + LayerNorm2d) ×4, then 1×1
    for j in range(4):
        add(f"memory_encoder.mask_downsampler.encoder.{3 * j}", (chans[j + 1], chans[j], 3, 3))
        add(f"memory_encoder.mask_downsampler.encoder.{3 * j + 1}", (chans[j + 1],))
    add("memory_encoder.mask_downsampler.encoder.12", (d, d, 1, 1))
    add("memory_encoder.pix_feat_proj", (d, d, 1, 1))
    for i in range(2):  # fuser: two ConvNeXt blocks
        block = f"memory_encoder.fuser.layers.{i}"
        keys[f"{block}.gamma"] = (d,)
        add(f"{block}.dwconv", (d, 1, 7, 7))
        add(f"{block}.norm", (d,))
        add(f"{block}.pwconv1", (4 * d, d))
        add(f"{block}.pwconv2", (d, 4 * d))
    add("memory_encoder.out_proj", (mem, d, 1, 1))
    for i in range(3):
        add(f"obj_ptr_proj.layers.{i}", (d, d))
    add("obj_ptr_tpos_proj", (mem, d))
    return keys


class CheckpointMismatchError(ValueError):
    """An official-layout state dict does not fit the model (the message names the keys)."""


def _names(keys: list[str], limit: int = 8) -> str:
    more = f" … (+{len(keys) - limit})" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def drop_video_memory(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The image-path part of a full official state dict: exactly :func:`video_memory_keys` dropped.

    Each of those keys must be there with its shape (an official file holds them all: the official
    loader is strict), else :class:`CheckpointMismatchError` names what is absent or mis-shaped.
    """
    video = video_memory_keys()
    absent = [k for k in video if k not in state_dict]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} (expected {v})"
        for k, v in video.items()
        if k in state_dict and tuple(state_dict[k].shape) != v
    ]
    problems = []
    if absent:
        problems.append(f"{len(absent)} video-memory key(s) absent: {_names(absent)}")
    if shapes:
        problems.append(f"{len(shapes)} video-memory key(s) of the wrong shape: {_names(shapes, 4)}")
    if problems:
        raise CheckpointMismatchError("not an official SAM 2.1 state dict: " + "; ".join(problems))
    return {k: v for k, v in state_dict.items() if k not in video}


def load_official_state_dict(model: Sam2Model, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a full official SAM 2.1 state dict (``torch.load(f)["model"]``) strictly into ``model``.

    :func:`drop_video_memory`, then every remaining key must be the model's with its shape
    (``load_state_dict(strict=True)``). Any problem raises :class:`CheckpointMismatchError` naming
    the keys: nothing is loaded partially.
    """
    own = model.state_dict()
    problems = []
    try:
        image_path = drop_video_memory(state_dict)
    except CheckpointMismatchError as e:
        problems.append(str(e).split(": ", 1)[1])
        image_path = {k: v for k, v in state_dict.items() if k not in video_memory_keys()}
    missing = [k for k in own if k not in image_path]
    unexpected = [k for k in image_path if k not in own]
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_names(unexpected)}")
    shapes = [
        f"{k} {tuple(v.shape)} (expected {tuple(own[k].shape)})"
        for k, v in image_path.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if shapes:
        problems.append(f"{len(shapes)} key(s) of the wrong shape: {_names(shapes, 4)}")
    if problems:
        raise CheckpointMismatchError(
            f"not a SAM 2.1 {_variant_name(model)} state dict: " + "; ".join(problems)
        )
    model.load_state_dict(image_path, strict=True)


def _variant_name(model: Sam2Model) -> str:
    return next((f"hiera-{name}" for name, cfg in VARIANTS.items() if cfg == model.config), "Hiera")
