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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..errors import InputError
from .base import PROMPT_BOX, PROMPT_POINTS, ModelSpec, Prediction, Runner
from .nn.sam_decoder import MaskDecoder, PromptEncoder
from .nn.sam_image_encoder import VIT_B, VIT_H, VIT_L, ImageEncoderViT, ViTConfig
from .nn.sam_image_encoder import Attention as ViTAttention
from .nn.tiny_vit import TinyViT

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
MASK_THRESHOLD = 0.0
LOW_RES = 256


class SamModel(nn.Module):
    """Image encoder + prompt encoder + mask decoder, keyed like the official ``Sam`` module."""

    def __init__(self, image_encoder: nn.Module) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = PromptEncoder()
        self.mask_decoder = MaskDecoder()
        # non-persistent, as officially: not part of the checkpoints
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), persistent=False)

    @property
    def img_size(self) -> int:
        return self.image_encoder.img_size

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


class SamRunner(Runner):
    """SAM / MobileSAM with ``SamPredictor``'s pre- and post-processing, N prompts per call."""

    prompt_kinds = frozenset({PROMPT_BOX, PROMPT_POINTS})
    takes_mask_prompt = True

    def __init__(self, model: SamModel, device: str | torch.device = "cpu", name: str = "") -> None:
        self.model = model
        self.name = name
        self.device = torch.device(device)
        self._features: torch.Tensor | None = None
        self._input_size: tuple[int, int] | None = None
        self._original_size: tuple[int, int] | None = None
        self._batch: list[tuple[torch.Tensor, tuple[int, int], tuple[int, int]]] = []

    # -- image -----------------------------------------------------------------------------------
    def image_transform(self) -> Callable[[np.ndarray], SamInput]:
        return partial(sam_resize, long_side=self.model.img_size, who=self.name or "sam")

    def _encoder_input(self, item: SamInput) -> torch.Tensor:
        x = item.pixels.to(self.device, non_blocking=True).permute(2, 0, 1).contiguous()[None]
        return self.model.preprocess(x)

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """The 1×3×1024×1024 tensor entering the image encoder, and the resized (h, w) inside it."""
        item = self.image_transform()(image)
        return self._encoder_input(item), item.input_size

    @torch.inference_mode()
    def set_images(self, images: Sequence[SamInput]) -> None:
        """Embed a batch of resized images in one encoder pass."""
        self._features = None
        self._batch = []
        if not images:
            return
        features = self.model.image_encoder(torch.cat([self._encoder_input(item) for item in images]))
        self._batch = [
            (features[i : i + 1], item.input_size, item.original_size) for i, item in enumerate(images)
        ]

    def use_image(self, index: int) -> None:
        if not 0 <= index < len(self._batch):
            raise RuntimeError(
                f"use_image({index}): the last set_images() batch has {len(self._batch)} image(s)"
            )
        self._features, self._input_size, self._original_size = self._batch[index]

    def set_image(self, image: np.ndarray) -> None:
        """Resize, normalise and pad ``image`` (H×W×3 uint8 RGB), then compute its embedding."""
        item = self.image_transform()(image)  # a bad image is refused before the current one is dropped
        self.set_images([item])
        self.use_image(0)

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
        if self._features is None:
            raise RuntimeError("set_image() must be called first")
        return self._features

    def _upscale(self, input_size: tuple[int, int], original_size: tuple[int, int], low_res: torch.Tensor):
        with torch.inference_mode():
            return self.model.postprocess_masks(low_res, input_size, original_size) > MASK_THRESHOLD

    # -- prompts ---------------------------------------------------------------------------------
    def _scale_coords(self, coords: np.ndarray) -> torch.Tensor:
        """Original-image (x, y) → resized-image coordinates: float64 arithmetic, then float32."""
        (old_h, old_w), (new_h, new_w) = self._original_size, self._input_size
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
        if self._features is None:
            raise RuntimeError("set_image() must be called before predict()")
        pts, box_t, mask_t = self._prompt_tensors(boxes, points, point_labels, mask_input)
        sparse, dense = self.model.prompt_encoder(points=pts, boxes=box_t, masks=mask_t)
        low_res, iou = self.model.mask_decoder(
            image_embeddings=self._features,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        if return_logits:
            logits = self.model.postprocess_masks(low_res, self._input_size, self._original_size)
            return Prediction(masks=logits, iou_predictions=iou, low_res_logits=low_res)
        # full-size masks are made when read (Prediction.select upscales only the chosen output)
        to_masks = partial(self._upscale, self._input_size, self._original_size)
        return Prediction(iou_predictions=iou, low_res_logits=low_res, to_masks=to_masks)


# -- factories and registry entries ----------------------------------------------------------------
def _factory(name: str, variant: str) -> Callable[..., SamRunner]:
    def build(
        checkpoint: str | None = None, device: str = "cpu", trust_checkpoint: bool = False, **_: object
    ) -> SamRunner:
        model = build_sam_model(variant)
        sha256 = None
        if checkpoint is not None:
            from .checkpoints import load_checkpoint, load_strict  # lazy: only runs that load weights need it

            ck = load_checkpoint(name, checkpoint, trust=trust_checkpoint)
            load_strict(model, ck, name)
            sha256 = ck.sha256
        model.eval()  # after loading: MobileSAM caches its attention biases here
        runner = SamRunner(model.to(device), device=device, name=name)
        runner.checkpoint_sha256 = sha256
        return runner

    build.__doc__ = f"Build the {name} runner (random weights without a checkpoint)."
    return build


SAM_VIT_B = ModelSpec(
    "sam-vit-b",
    "SAM ViT-B (Kirillov et al. 2023), official predictor pipeline",
    _factory("sam-vit-b", "vit_b"),
    needs_weights=True,
)
SAM_VIT_L = ModelSpec(
    "sam-vit-l",
    "SAM ViT-L (Kirillov et al. 2023), official predictor pipeline",
    _factory("sam-vit-l", "vit_l"),
    needs_weights=True,
)
SAM_VIT_H = ModelSpec(
    "sam-vit-h",
    "SAM ViT-H (Kirillov et al. 2023), official predictor pipeline",
    _factory("sam-vit-h", "vit_h"),
    needs_weights=True,
    paper_row="SAM (ViT-H)",
)
MOBILESAM = ModelSpec(
    "mobilesam",
    "MobileSAM (Zhang et al. 2023): TinyViT-5M encoder + SAM's decoder",
    _factory("mobilesam", "vit_t"),
    needs_weights=True,
    paper_row="MobileSAM",
)
