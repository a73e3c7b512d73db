"""SAM ViT-B/L/H and MobileSAM: in-house networks behind the official ``SamPredictor`` pipeline.

The networks live in :mod:`evalsuite.models.nn` and have exactly the official state-dict keys, so
the official checkpoints load strictly. :class:`SamRunner` reproduces ``SamPredictor``:

* ``ResizeLongestSide(1024)``: new size ``int(old · 1024 / max(H, W) + 0.5)``, resized with PIL
  bilinear on the uint8 image (what torchvision's ``resize(to_pil_image(img))`` does; torchvision
  itself is not needed), normalised with SAM's mean/std on 0–255, zero-padded bottom/right to 1024²;
* prompts scaled by new/old per axis (float64, then float32);
* low-res logits → bilinear 1024² → crop to the resized size → bilinear to the original size → ``> 0``.

Unlike the official predictor, which takes one prompt set per call, N prompts of one image are
decoded in one batched call (the decoder treats the batch rows independently).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..errors import InputError
from .base import BatchedEncoderRunner, ModelSpec, Prediction, WeightsFile
from .nn.sam_decoder import MaskDecoder, PromptEncoder
from .nn.sam_image_encoder import VIT_B, VIT_H, VIT_L, ImageEncoderViT, ViTConfig
from .nn.sam_image_encoder import Attention as ViTAttention
from .nn.tiny_vit import TinyViT
from .weights import network_factory

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
MASK_THRESHOLD = 0.0
LOW_RES = 256


class SamNetwork(Protocol):
    """What :class:`SamRunner` needs of a network: SAM's three parts and its pre- and post-processing.

    SAM, MobileSAM and EfficientViT-SAM (another encoder, another input size) all have them.
    """

    @property
    def image_encoder(self) -> nn.Module: ...

    @property
    def prompt_encoder(self) -> PromptEncoder: ...

    @property
    def mask_decoder(self) -> MaskDecoder: ...

    @property
    def img_size(self) -> int: ...

    def preprocess(self, x: torch.Tensor) -> torch.Tensor: ...

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> torch.Tensor: ...


class SamModel(nn.Module):
    """Image encoder + prompt encoder + mask decoder, keyed like the official ``Sam`` module."""

    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, image_encoder: nn.Module, mask_decoder: MaskDecoder | None = None) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = PromptEncoder()
        # SAM's decoder, or a subclass with more keys (SAM-HQ's)
        self.mask_decoder = MaskDecoder() if mask_decoder is None else mask_decoder
        # non-persistent, as officially: not part of the checkpoints
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), persistent=False)

    @property
    def img_size(self) -> int:
        return int(self.image_encoder.img_size)  # type: ignore[arg-type]

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a 1×3×h×w uint8 (0–255) image, then zero-pad bottom/right to img_size²."""
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        return F.pad(x, (0, self.img_size - w, 0, self.img_size - h))

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> torch.Tensor:
        """Low-res logits → img_size² → crop the unpadded part → original size (all bilinear)."""
        masks = F.interpolate(masks, (self.img_size, self.img_size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)


def build_sam_model(variant: str) -> SamModel:
    """The untrained network of ``variant`` (``vit_b``, ``vit_l``, ``vit_h`` or ``vit_t``).

    Builds on the current default device, so ``with torch.device("meta"):`` gives a shape-only model.
    """
    if variant == "vit_t":
        return SamModel(TinyViT())
    configs: dict[str, ViTConfig] = {"vit_b": VIT_B, "vit_l": VIT_L, "vit_h": VIT_H}
    if variant not in configs:
        raise ValueError(f"unknown SAM variant {variant!r}")
    return SamModel(ImageEncoderViT(configs[variant]))


def resized_shape(h: int, w: int, long_side: int) -> tuple[int, int]:
    """``ResizeLongestSide.get_preprocess_shape``: (new_h, new_w) rounded half up."""
    scale = long_side * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def _as_array(x: Any, dtype: type) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


@dataclass(frozen=True)
class SamInput:
    """An image resized for SAM's encoder (made in the decode workers): h×w×3 uint8 and the sizes."""

    pixels: torch.Tensor  # the resized image, h×w×3 uint8 (h, w = input_size)
    input_size: tuple[int, int]
    original_size: tuple[int, int]

    def pin_memory(self) -> SamInput:
        return replace(self, pixels=self.pixels.pin_memory())


def sam_resize(image: np.ndarray, long_side: int, who: str = "sam") -> SamInput:
    """``ResizeLongestSide(long_side).apply_image``: PIL bilinear on uint8, sizes rounded half up."""
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3):
        raise InputError(f"{who}: expected an H×W×3 RGB image, got {getattr(image, 'shape', '?')}")
    if image.dtype != np.uint8:
        raise InputError(f"{who}: expected a uint8 image, got {image.dtype}")
    h, w = image.shape[:2]
    new_h, new_w = resized_shape(h, w, long_side)
    # torchvision's resize(to_pil_image(img)) on a uint8 array is exactly this PIL call
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((new_w, new_h), Image.Resampling.BILINEAR)
    return SamInput(torch.from_numpy(np.array(resized)), (new_h, new_w), (h, w))


@dataclass(frozen=True)
class _SamImage:
    """One embedded image: its features and the sizes postprocessing needs."""

    features: torch.Tensor  # 1×256×64×64
    input_size: tuple[int, int]
    original_size: tuple[int, int]


class SamRunner(BatchedEncoderRunner[SamInput, _SamImage]):
    """SAM / MobileSAM with ``SamPredictor``'s pre- and post-processing, N prompts per call."""

    takes_mask_prompt = True

    def __init__(self, model: SamNetwork, device: str | torch.device = "cpu", name: str = "") -> None:
        super().__init__()
        self.model: SamNetwork = model
        self.name = name
        self.device = torch.device(device)

    # -- image -----------------------------------------------------------------------------------
    def image_transform(self) -> Callable[[np.ndarray], SamInput]:
        return partial(sam_resize, long_side=self.model.img_size, who=self.name or "sam")

    def _encoder_input(self, item: SamInput) -> torch.Tensor:
        x = item.pixels.to(self.device, non_blocking=True).permute(2, 0, 1).contiguous()[None]
        return self.model.preprocess(x)

    def encoder_input(self, image: np.ndarray) -> torch.Tensor:
        """The 1×3×1024×1024 tensor entering the image encoder."""
        return self._encoder_input(self.image_transform()(image))

    def _encode(self, items: Sequence[SamInput]) -> list[_SamImage]:
        features = self.model.image_encoder(torch.cat([self._encoder_input(item) for item in items]))
        return [
            _SamImage(features[i : i + 1], item.input_size, item.original_size)
            for i, item in enumerate(items)
        ]

    def execution_notes(self) -> dict[str, str]:
        attention = [m for m in self.model.image_encoder.modules() if isinstance(m, ViTAttention)]
        if not attention:
            return {}
        fold = attention[0].fold_rel_pos
        folded = self.device.type == "cuda" if fold is None else fold
        return {"rel_pos_attention": "folded" if folded else "dense_mask"}

    @property
    def image_embedding(self) -> torch.Tensor:
        """The 1×256×64×64 embedding of the current image (``SamPredictor.get_image_embedding``)."""
        return self.current.features

    def _upscale(self, input_size: tuple[int, int], original_size: tuple[int, int], low_res: torch.Tensor):
        with torch.inference_mode():
            return self.model.postprocess_masks(low_res, input_size, original_size) > MASK_THRESHOLD

    # -- prompts ---------------------------------------------------------------------------------
    def _scale_coords(self, coords: np.ndarray) -> torch.Tensor:
        """Original-image (x, y) → resized-image coordinates: float64 arithmetic, then float32."""
        (old_h, old_w), (new_h, new_w) = self.current.original_size, self.current.input_size
        coords = coords.astype(np.float64, copy=True)
        coords[..., 0] = coords[..., 0] * (new_w / old_w)
        coords[..., 1] = coords[..., 1] * (new_h / old_h)
        return torch.as_tensor(coords, dtype=torch.float32, device=self.device)

    def _prompt_tensors(
        self, boxes: Any, points: Any, point_labels: Any, mask_input: Any
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None, torch.Tensor | None]:
        counts: dict[str, int] = {}
        box_t = pts = mask_t = None
        if boxes is not None:
            b = _as_array(boxes, np.float64)
            if b.ndim != 2 or b.shape[1] != 4:
                raise InputError(f"{self.name}: boxes must be N×4 (x0, y0, x1, y1), got shape {b.shape}")
            counts["boxes"] = len(b)
            box_t = self._scale_coords(b.reshape(-1, 2, 2)).reshape(-1, 4)
        if points is not None:
            if point_labels is None:
                raise InputError(f"{self.name}: point_labels must be given with points")
            p = _as_array(points, np.float64)
            lab = _as_array(point_labels, np.int64)
            if p.ndim != 3 or p.shape[2] != 2 or lab.shape != p.shape[:2]:
                raise InputError(
                    f"{self.name}: points must be N×P×2 with point_labels N×P, got {p.shape} and {lab.shape}"
                )
            counts["points"] = len(p)
            pts = (self._scale_coords(p), torch.as_tensor(lab, dtype=torch.int32, device=self.device))
        if mask_input is not None:
            m = torch.as_tensor(mask_input, dtype=torch.float32).to(self.device)
            if m.ndim != 4 or tuple(m.shape[1:]) != (1, LOW_RES, LOW_RES):
                raise InputError(f"{self.name}: mask_input must be N×1×256×256, got {tuple(m.shape)}")
            counts["mask_input"] = m.shape[0]
            mask_t = m
        if not counts or counts.get("boxes") == 0 or counts.get("points") == 0:
            raise InputError(f"{self.name}: predict() needs at least one prompt (boxes or points)")
        if len(set(counts.values())) > 1:
            raise InputError(f"{self.name}: prompts disagree on N: {counts}")
        return pts, box_t, mask_t

    # -- prediction ------------------------------------------------------------------------------
    def _decode(
        self, image: _SamImage, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mask decoder on one image's embedding: N×M low-res logits and N×M IoU predictions.

        The hook where variants with another output selection (SAM-HQ, TinySAM) differ.
        """
        return self.model.mask_decoder(
            image_embeddings=image.features,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )

    @torch.inference_mode()
    def predict(
        self,
        boxes: np.ndarray | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        multimask: bool = True,
        mask_input: np.ndarray | torch.Tensor | None = None,
        return_logits: bool = False,
    ) -> Prediction:
        """Segment N objects of the current image in one batched decoder call.

        ``boxes`` N×4 xyxy, ``points`` N×P×2 (x, y), ``point_labels`` N×P (1 fg, 0 bg, -1 ignored),
        in original-image pixels; ``mask_input`` N×1×256×256 low-res logits of an earlier call
        (SAM's refinement input). ``multimask``: decoder masks 1..3, else mask 0. With
        ``return_logits`` the ``masks`` field holds the float full-resolution logits instead of
        ``logits > 0`` (``SamPredictor.predict(return_logits=True)``).
        """
        image = self.current
        pts, box_t, mask_t = self._prompt_tensors(boxes, points, point_labels, mask_input)
        sparse, dense = self.model.prompt_encoder(points=pts, boxes=box_t, masks=mask_t)
        low_res, iou = self._decode(image, sparse, dense, multimask)
        if return_logits:
            logits = self.model.postprocess_masks(low_res, image.input_size, image.original_size)
            return Prediction(masks=logits, iou_predictions=iou, low_res_logits=low_res)
        # full-size masks are made when read (Prediction.select upscales only the chosen output)
        to_masks = partial(self._upscale, image.input_size, image.original_size)
        return Prediction(iou_predictions=iou, low_res_logits=low_res, to_masks=to_masks)


# -- registry entries -------------------------------------------------------------------------------------
_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
# Sources of sizes and hashes (public code found with the search tools; the values agree everywhere):
# URLs from the segment-anything README. SHA-256 from micro-sam's pooch registry
# (computational-cell-analytics/micro-sam, micro_sam/util.py) and several independent download scripts;
# ViT-H and MobileSAM hashes also in open-edge-platform/model_api issues #350/#352. Sizes from several
# model manifests (ViT-B's also from a wget log of the official URL, "Length: 375042383"). The file-name
# suffixes are MD5 prefixes, not SHA-256. MobileSAM: SHA-256 and size from projects pinning
# weights/mobile_sam.pt at ChaoningZhang/MobileSAM commit f706ad9 (same hash as micro-sam's registry);
# the URL follows master.
_SHA_SOURCE = "micro-sam's pooch registry and independent download scripts"
#: images/s of the official code on one H100, bf16, prompts batched (../shared/PERFORMANCE.md)
_H100 = {"sam-vit-b": 26.0, "sam-vit-h": 14.0, "mobilesam": 37.1}


def _sam_spec(
    name: str,
    variant: str,
    label: str,
    summary: str,
    weights: WeightsFile,
    parameters: int,
    verification: str = "key layout; the code of sam-vit-b (golden)",
) -> ModelSpec:
    make_runner = partial(_make_runner, name)
    return ModelSpec(
        name,
        summary,
        network_factory(name, partial(build_sam_model, variant), make_runner),
        label=label,
        weights=weights,
        parameters=parameters,
        throughput_hint=_H100.get(name),
        input_size="1024 long side, padded",
        licence="Apache-2.0",
        verification=verification,
    )


def _make_runner(name: str, network: nn.Module, device: torch.device) -> SamRunner:
    assert isinstance(network, SamModel)
    return SamRunner(network, device=device, name=name)


SAM_VIT_B = _sam_spec(
    "sam-vit-b",
    "vit_b",
    "SAM ViT-B",
    "SAM ViT-B (Kirillov et al. 2023), official predictor pipeline",
    WeightsFile(
        "sam-vit-b",
        "sam_vit_b_01ec64.pth",
        _SAM_URL + "sam_vit_b_01ec64.pth",
        size=375_042_383,
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        sha256_source=_SHA_SOURCE,
    ),
    93_735_472,
    "golden (official segment_anything) + key layout",
)
SAM_VIT_L = _sam_spec(
    "sam-vit-l",
    "vit_l",
    "SAM ViT-L",
    "SAM ViT-L (Kirillov et al. 2023), official predictor pipeline",
    WeightsFile(
        "sam-vit-l",
        "sam_vit_l_0b3195.pth",
        _SAM_URL + "sam_vit_l_0b3195.pth",
        size=1_249_524_607,
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        sha256_source=_SHA_SOURCE,
    ),
    312_342_832,
)
SAM_VIT_H = _sam_spec(
    "sam-vit-h",
    "vit_h",
    "SAM ViT-H",
    "SAM ViT-H (Kirillov et al. 2023), official predictor pipeline",
    WeightsFile(
        "sam-vit-h",
        "sam_vit_h_4b8939.pth",
        _SAM_URL + "sam_vit_h_4b8939.pth",
        size=2_564_550_879,
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        sha256_source=_SHA_SOURCE,
    ),
    641_090_608,
)
MOBILESAM = _sam_spec(
    "mobilesam",
    "vit_t",
    "MobileSAM",
    "MobileSAM (Zhang et al. 2023): TinyViT-5M encoder + SAM's decoder",
    WeightsFile(
        "mobilesam",
        "mobile_sam.pt",
        "https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/master/weights/mobile_sam.pt",
        size=40_728_226,
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        sha256_source="projects pinning weights/mobile_sam.pt at ChaoningZhang/MobileSAM f706ad9; micro-sam",
    ),
    10_130_092,
    "golden (official MobileSAM) + key layout",
)
