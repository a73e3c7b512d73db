"""SAM 3's interactive image path ("SAM 1 task") as one module, its pre/post-processing, official keys.

Facts from facebookresearch/sam3 @ 99d02f2 (SAM License): ``model_builder.py``, ``model/necks.py``
(``Sam3DualViTDetNeck``), ``model/vl_combiner.py`` (``scalp=1``), ``model/sam3_image_processor.py``
(``Sam3Processor.set_image``), ``model/sam3_image.py`` (``predict_inst``), ``model/sam1_task_predictor.py``
and ``model/utils/sam1_utils.py`` (``SAM2Transforms``):

* preprocessing: uint8 RGB → **stretched** to 1008×1008 by antialiased bilinear interpolation **on the
  uint8 image** (torch's native uint8 kernel: integer results), then /255 and ``Normalize(0.5, 0.5)``.
  torchvision's ``v2.Resize`` takes that kernel only where torch reports the CPU capability "AVX2"
  (``_do_native_uint8_resize_on_cpu``), as on the machine that made the golden (bit-exact here); on a
  CPU reported as "AVX512", or a GPU, it resizes in float32 and rounds, which moves 6.6 % of the
  golden image's resized pixels by one grey level. The official outputs thus depend on the machine;
  evalsuite always takes the native uint8 path, on the CPU, whatever the device;
* trunk :class:`~.sam3_vit.ViT` → the SAM 2 neck ``sam2_convs`` (a copy of the detector's simple FPN with
  its own weights): level 0 ConvT 2× → GELU → ConvT 2× (stride 3.5, 288²), level 1 ConvT 2× (144²),
  level 2 identity (72²), each then 1×1 and 3×3 convs to 256 channels. Level 3 (max-pool, 36²) is
  computed officially but dropped by ``scalp=1``: it is not built here;
* ``set_image`` applies the decoder's ``conv_s0`` / ``conv_s1`` to levels 0 / 1; the image embedding is
  level 2 plus ``no_mem_embed`` (``predict_inst``);
* prompts: SAM 2's prompt encoder and mask decoder at 72×72 / 1008² (``sam2_heads``; transformer MLP keyed
  ``lin1/lin2``), IoU sigmoid, ``dynamic_multimask_via_stability`` (δ 0.05, threshold 0.98); the
  object-score head's output is discarded by the image predictor and the head is not built;
* post-processing (``SAM2Transforms.postprocess_masks`` with the predictor's defaults): holes — 8-connected
  components of ``logit <= 0`` in the 288² low-res logits, of at most ``max_hole_area`` = 256 pixels,
  touching the border or not — are set to 10.0; with ``max_sprinkle_area`` > 0 (default 0) 8-connected
  foreground specks that small are set to −10.0; then bilinear straight to the original size, ``> 0``.
  The returned low-res logits are the decoder's (not filled), clamped to ±32.

An official checkpoint (``sam3.pt``) is the whole SAM 3 video model: keys ``detector.*`` (the image
model) and ``tracker.*`` (the interactive predictor's SAM 2-style model). :func:`adapt_official_state_dict`
maps them as the official ``_load_checkpoint`` does, drops the modules the interactive image path never
uses — by name, see :data:`UNUSED_MODULES` — and leaves the rest to a strict load.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from .sam2_heads import EMBED_DIM, MaskDecoder, PromptEncoder, select_outputs
from .sam2_net import Sam2Features, scale_to_frame
from .sam3_vit import DEPTH, DIM, GRID, IMG_SIZE, ViT, block_rope

PIXEL_MEAN = PIXEL_STD = 0.5
LOW_RES = 4 * GRID  # 288: low-res logits and mask inputs
MASK_THRESHOLD = 0.0
MAX_HOLE_AREA = 256  # SAM3InteractiveImagePredictor's defaults
MAX_SPRINKLE_AREA = 0
FILLED_LOGIT = 10.0  # what a filled hole becomes (threshold + 10; a removed speck: threshold − 10)


# -- the network ----------------------------------------------------------------------------------------
def _neck_level(level: int) -> nn.Sequential:
    """One level of ``sam2_convs``: its up-sampling (levels 0, 1), then 1×1 and 3×3 convs to 256."""
    seq = nn.Sequential()
    if level == 0:
        seq.add_module("dconv_2x2_0", nn.ConvTranspose2d(DIM, DIM // 2, kernel_size=2, stride=2))
        seq.add_module("gelu", nn.GELU())
        seq.add_module("dconv_2x2_1", nn.ConvTranspose2d(DIM // 2, DIM // 4, kernel_size=2, stride=2))
        chans = DIM // 4
    elif level == 1:
        seq.add_module("dconv_2x2", nn.ConvTranspose2d(DIM, DIM // 2, kernel_size=2, stride=2))
        chans = DIM // 2
    else:
        chans = DIM
    seq.add_module("conv_1x1", nn.Conv2d(chans, EMBED_DIM, kernel_size=1))
    seq.add_module("conv_3x3", nn.Conv2d(EMBED_DIM, EMBED_DIM, kernel_size=3, padding=1))
    return seq


class _VisionBackbone(nn.Module):
    """``backbone.vision_backbone``: the trunk and the three SAM 2 neck levels the image path keeps."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ViT()
        self.sam2_convs = nn.ModuleList(_neck_level(i) for i in range(3))


class _Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.vision_backbone = _VisionBackbone()


class _Tracker(nn.Module):
    """``inst_interactive_predictor.model``: what the image predictor uses of the SAM 3 tracker."""

    def __init__(self) -> None:
        super().__init__()
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.sam_prompt_encoder = PromptEncoder((GRID, GRID), (IMG_SIZE, IMG_SIZE))
        self.sam_mask_decoder = MaskDecoder(lin_mlp=True, obj_score_head=False)


class _InteractivePredictor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = _Tracker()


class Sam3Model(nn.Module):
    """SAM 3's interactive image path, keyed like the official image model (``build_sam3_image_model``)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = _Backbone()
        self.inst_interactive_predictor = _InteractivePredictor()

    @property
    def tracker(self) -> _Tracker:
        return self.inst_interactive_predictor.model

    @staticmethod
    def resize(image: torch.Tensor) -> torch.Tensor:
        """H×W×3 uint8 → 1008×1008×3 uint8: antialiased bilinear on the uint8 values (rounded), stretched."""
        chw = image.permute(2, 0, 1)[None]  # a channels-last view, as torchvision's to_image makes it
        out = nn.functional.interpolate(
            chw, (IMG_SIZE, IMG_SIZE), mode="bilinear", align_corners=False, antialias=True
        )
        return out[0].permute(1, 2, 0).contiguous()

    @staticmethod
    def preprocess(images: list[torch.Tensor]) -> torch.Tensor:
        """1008×1008×3 uint8 images (already :meth:`resize`\\ d) → the B×3×1008×1008 encoder input.

        ``ToDtype(float32, scale=True)`` multiplies by 1/255, ``Normalize`` subtracts 0.5 then divides by
        0.5; the result is channels-last in memory, like the official tensor (the patch conv sees the same).
        """
        x = torch.stack([img.permute(2, 0, 1) for img in images]).to(torch.float32)
        x = x.contiguous(memory_format=torch.channels_last)
        return x.mul_(1.0 / 255).sub_(PIXEL_MEAN).div_(PIXEL_STD)

    def encode(self, x: torch.Tensor) -> Sam2Features:
        """B×3×1008×1008 → the 1×256×72×72 embedding (``no_mem_embed`` added) and the 288² / 144² maps."""
        vision = self.backbone.vision_backbone
        feats = vision.trunk(x)
        s4, s8, s14 = (level(feats) for level in vision.sam2_convs)
        tracker = self.tracker
        decoder = tracker.sam_mask_decoder
        embedding = s14 + tracker.no_mem_embed.view(1, -1, 1, 1)
        return Sam2Features(embedding, decoder.conv_s0(s4), decoder.conv_s1(s8))

    @staticmethod
    def scale_points(coords: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Original-image (x, y) → the 1008 frame (``transform_coords``)."""
        return scale_to_frame(coords, size, IMG_SIZE)

    def decode_all(
        self,
        features: Sam2Features,
        coords: torch.Tensor,
        labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N prompts of one image → N×4×288×288 logits and N×4 IoUs of all four tokens (unclamped)."""
        tracker = self.tracker
        sparse, dense = tracker.sam_prompt_encoder(coords, labels, mask_input)
        logits, iou, _ = tracker.sam_mask_decoder(
            features.embedding,
            (features.high_res_s0, features.high_res_s1),
            tracker.sam_prompt_encoder.get_dense_pe(),
            sparse,
            dense,
        )
        return logits, iou

    def decode(
        self,
        features: Sam2Features,
        coords: torch.Tensor,
        labels: torch.Tensor,
        multimask: bool,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N×M×288×288 unclamped logits and N×M IoUs: M = 3 (tokens 1..3) or 1 (token 0 or its fallback)."""
        logits, iou = self.decode_all(features, coords, labels, mask_input)
        return select_outputs(logits, iou, multimask)


def build_sam3() -> Sam3Model:
    """The untrained interactive-path network (RoPE rotations computed, everything else zeros)."""
    return Sam3Model()


# -- post-processing ------------------------------------------------------------------------------------
_EIGHT_CONNECTED = np.zeros((3, 3, 3), dtype=bool)
_EIGHT_CONNECTED[1] = True  # 8-neighbours within one map, nothing across maps


def _small_components(region: np.ndarray, max_area: int) -> np.ndarray:
    """Pixels of ``region`` (M×H×W bool) in an 8-connected component (per map) of ≤ ``max_area`` pixels."""
    labels, _ = ndimage.label(region, structure=_EIGHT_CONNECTED)
    areas = np.bincount(labels.ravel())
    small = areas <= max_area
    small[0] = False  # label 0: outside the region
    return small[labels]


def fill_holes(
    logits: torch.Tensor, max_hole_area: int = MAX_HOLE_AREA, max_sprinkle_area: int = MAX_SPRINKLE_AREA
) -> torch.Tensor:
    """``SAM2Transforms.postprocess_masks``' clean-up of …×H×W low-res logits, each map on its own.

    Holes (8-connected components of ``logit <= 0`` with at most ``max_hole_area`` pixels) become 10.0;
    specks (of ``logit > 0``, at most ``max_sprinkle_area``) become −10.0; both are found on the logits
    as given. 0 switches either off. Same as the official ``skimage.measure.label`` (default: full
    connectivity) path; the labelling runs on the CPU.
    """
    if (max_hole_area <= 0 and max_sprinkle_area <= 0) or logits.numel() == 0:
        return logits
    maps = logits.detach().reshape(-1, *logits.shape[-2:]).float().cpu().numpy()
    out = logits
    if max_hole_area > 0:
        holes = torch.from_numpy(_small_components(maps <= MASK_THRESHOLD, max_hole_area))
        out = torch.where(holes.reshape(logits.shape).to(logits.device), MASK_THRESHOLD + FILLED_LOGIT, out)
    if max_sprinkle_area > 0:
        specks = torch.from_numpy(_small_components(maps > MASK_THRESHOLD, max_sprinkle_area))
        out = torch.where(specks.reshape(logits.shape).to(logits.device), MASK_THRESHOLD - FILLED_LOGIT, out)
    return out


# -- official checkpoints -------------------------------------------------------------------------------
_TRACKER = "inst_interactive_predictor.model."
#: modules of the official image model that the interactive image path never uses, and why
UNUSED_MODULES: dict[str, str] = {
    "backbone.language_backbone": "text encoder (concept prompts)",
    "backbone.vision_backbone.convs": "detector neck (computed by set_image, discarded here)",
    "backbone.vision_backbone.sam2_convs.3": "SAM 2 neck level 3 (computed officially, dropped by scalp=1)",
    "transformer": "detector encoder/decoder",
    "geometry_encoder": "detector prompt encoder",
    "segmentation_head": "detector mask head",
    "dot_prod_scoring": "detector scoring",
    **{
        _TRACKER + name: "tracker memory (video only)"
        for name in (
            "transformer",
            "maskmem_backbone",
            "maskmem_tpos_enc",
            "no_mem_pos_enc",
            "no_obj_ptr",
            "no_obj_embed_spatial",
            "mask_downsample",
            "obj_ptr_proj",
            "obj_ptr_tpos_proj",
        )
    },
    _TRACKER + "sam_mask_decoder.pred_obj_score_head": "object score (computed officially, discarded)",
}


def unused_module(key: str) -> str | None:
    """The :data:`UNUSED_MODULES` entry ``key`` belongs to (module-boundary match), or None."""
    for name in UNUSED_MODULES:
        if key == name or key.startswith(name + "."):
            return name
    return None


def rope_buffers() -> dict[str, torch.Tensor]:
    """Every block's ``freqs_cis`` as the official constructor computes it (full image-model keys)."""
    return {f"backbone.vision_backbone.trunk.blocks.{i}.attn.freqs_cis": block_rope(i) for i in range(DEPTH)}


class CheckpointMismatchError(ValueError):
    """An official-layout state dict does not fit the model (the message names the keys)."""


def _names(keys: list[str], limit: int = 6) -> str:
    more = f" … (+{len(keys) - limit})" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def image_model_keys(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The image-model view of a state dict, and the keys left out.

    A ``sam3.pt`` file (keys ``detector.*`` / ``tracker.*``) is mapped as the official ``_load_checkpoint``
    does: keys containing "detector" lose ``detector.``, keys containing "tracker" get ``tracker.``
    replaced by ``inst_interactive_predictor.model.``, and keys with neither are left out. A state dict
    already in image-model names (no such keys) is taken as it is.
    """
    if not any("detector" in k or "tracker" in k for k in state_dict):
        return dict(state_dict), []
    out = {k.replace("detector.", ""): v for k, v in state_dict.items() if "detector" in k}
    out.update({k.replace("tracker.", _TRACKER): v for k, v in state_dict.items() if "tracker" in k})
    return out, [k for k in state_dict if "detector" not in k and "tracker" not in k]


def adapt_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The interactive image path's part of an official SAM 3 state dict, checked key by key.

    Keys of :data:`UNUSED_MODULES` are dropped by name; RoPE rotations a file lacks are the computed
    ones (the official loader is ``strict=False`` and keeps its constructor's). Everything else must
    be ``expected``'s (default: a fresh :class:`Sam3Model`'s keys and shapes): a missing, unknown or
    mis-shaped key raises :class:`CheckpointMismatchError` naming it, and nothing is loaded.
    """
    if expected is None:
        with torch.device("meta"):
            expected = Sam3Model().state_dict()
    image, left_out = image_model_keys(state_dict)
    kept = {k: v for k, v in image.items() if unused_module(k) is None}
    for k, v in rope_buffers().items():
        kept.setdefault(k, v)
    missing = [k for k in expected if k not in kept]
    unexpected = [k for k in kept if k not in expected]
    shapes = [
        f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
        for k, v in kept.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_names(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} key(s) of the wrong shape: {_names(shapes, 3)}")
    if problems:
        extra = f" ({len(left_out)} key(s) outside detector./tracker. left out)" if left_out else ""
        raise CheckpointMismatchError("not a SAM 3 state dict: " + "; ".join(problems) + extra)
    return kept


def unused_summary(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """How many keys of an official state dict each :data:`UNUSED_MODULES` entry drops (docs, tests)."""
    image, _ = image_model_keys(state_dict)
    counts: dict[str, int] = {}
    for k in image:
        if (name := unused_module(k)) is not None:
            counts[name] = counts.get(name, 0) + 1
    return counts
