"""EfficientSAM-Ti / -S runners with the official pre- and post-processing.

Official behaviour reproduced (yformer/EfficientSAM d525f62, its example script):

* image: uint8 RGB → float [0, 1] CHW (``ToTensor`` semantics, computed here without torchvision) →
  **stretched** to 1024×1024 (bilinear, align_corners=False, no antialias, aspect ratio not kept) →
  ImageNet mean/std;
* prompts: coordinates scaled per axis, x·1024/W and y·1024/H (negative coordinates become −1, as
  official); a box is two points labelled 2 (top-left) and 3 (bottom-right) placed **before** the
  clicks; every query is padded with (−1, −1)/−1 or truncated to 6 points by the model, so a box with
  more than 4 clicks loses the clicks after the 4th, exactly as the official model;
* negative clicks (label 0) are passed on as the official model takes them: they get the positional
  encoding only, no learned embedding (EfficientSAM was not trained with a "negative" embedding);
  label −1 marks a padding point (also official), which lets prompts with different numbers of clicks
  share one batched call;
* no mask prompt (the architecture has no mask input);
* outputs: low-res 256×256 logits → bicubic straight to the original H×W → mask = logits ≥ 0 (the
  official example's ``torch.ge``); multimask = decoder tokens 1..3, single = token 0. Masks are returned
  in token order with their predicted IoUs (the example's sort by IoU is left to the evaluator).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .base import BatchedEncoderRunner, ModelSpec, Prediction, WeightsFile
from .nn.efficientsam_net import (
    LABEL_BOX_BR,
    LABEL_BOX_TL,
    EfficientSam,
    efficient_sam_s,
    efficient_sam_ti,
    upscale_logits,
)
from .weights import network_factory

#: labels a caller may pass: 1 foreground, 0 background (PE only), −1 padding (ignored point)
_CLICK_LABELS = (-1, 0, 1)


def _check_image(image: np.ndarray) -> None:
    if not (
        isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    ):
        desc = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise InputError(f"EfficientSAM needs an H×W×3 uint8 RGB image, got {desc}")


def _to_unit_float(pixels: torch.Tensor) -> torch.Tensor:
    """H×W×3 uint8 tensor → 1×3×H×W float32 in [0, 1], the exact arithmetic of torchvision's ``ToTensor``."""
    return pixels.permute(2, 0, 1).contiguous().to(torch.float32).div(255)[None]


@dataclass(frozen=True)
class EfficientSamInput:
    """An image as the decode workers hand it over: H×W×3 uint8 (it is stretched on the device)."""

    pixels: torch.Tensor

    def pin_memory(self) -> EfficientSamInput:
        return EfficientSamInput(self.pixels.pin_memory())


def efficientsam_input(image: np.ndarray) -> EfficientSamInput:
    """Check the image and wrap it as a tensor (what :meth:`EfficientSamRunner.set_images` takes)."""
    _check_image(image)
    return EfficientSamInput(torch.from_numpy(np.ascontiguousarray(image)))


@dataclass(frozen=True)
class _EfficientSamImage:
    embedding: torch.Tensor  # 1×256×64×64
    size: tuple[int, int]  # original (H, W)


class EfficientSamRunner(BatchedEncoderRunner[EfficientSamInput, _EfficientSamImage]):
    """EfficientSAM behind the :class:`Runner` interface; all N prompts go through one decoder call."""

    takes_mask_prompt = False

    def __init__(self, model: EfficientSam, name: str = "", device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.name = name
        self.device = torch.device(device)
        self.model: EfficientSam = model.to(self.device).eval()

    # -- image -------------------------------------------------------------------------------------------
    def image_transform(self) -> Callable[[np.ndarray], EfficientSamInput]:
        return efficientsam_input

    def _encoder_input(self, item: EfficientSamInput) -> torch.Tensor:
        pixels = item.pixels.to(self.device, non_blocking=True)
        return self.model.preprocess(_to_unit_float(pixels))

    @torch.inference_mode()
    def encoder_input(self, image: np.ndarray) -> torch.Tensor:
        """The normalised 1×3×1024×1024 tensor that enters the image encoder."""
        return self._encoder_input(efficientsam_input(image))

    def _encode(self, items: Sequence[EfficientSamInput]) -> list[_EfficientSamImage]:
        """Stretch each image to 1024² on the device, then embed the batch in one encoder pass."""
        embeddings = self.model.image_encoder(torch.cat([self._encoder_input(item) for item in items]))
        return [
            _EfficientSamImage(embeddings[i : i + 1], (int(item.pixels.shape[0]), int(item.pixels.shape[1])))
            for i, item in enumerate(items)
        ]

    @property
    def image_embedding(self) -> torch.Tensor:
        """The 1×256×64×64 embedding of the current image."""
        return self.current.embedding

    # -- prompts -----------------------------------------------------------------------------------------
    def _prompt_points(
        self, boxes: np.ndarray | None, points: np.ndarray | None, point_labels: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N×P×2 original-pixel points and N×P labels: box corners (2, 3) first, then the clicks."""
        parts_xy: list[np.ndarray] = []
        parts_lb: list[np.ndarray] = []
        n = None
        if boxes is not None:
            b = np.asarray(boxes, dtype=np.float32)
            if b.ndim != 2 or b.shape[1] != 4:
                raise InputError(f"boxes must be N×4 xyxy, got shape {b.shape}")
            n = len(b)
            parts_xy.append(b.reshape(n, 2, 2))
            parts_lb.append(np.tile(np.array([LABEL_BOX_TL, LABEL_BOX_BR], dtype=np.int64), (n, 1)))
        if points is not None:
            p = np.asarray(points, dtype=np.float32)
            if point_labels is None:
                raise InputError("points need point_labels (1 foreground, 0 background, -1 padding)")
            lb = np.asarray(point_labels)
            if p.ndim != 3 or p.shape[2] != 2 or lb.shape != p.shape[:2]:
                raise InputError(f"points must be N×P×2 with labels N×P, got {p.shape} and {lb.shape}")
            if not np.isin(lb, _CLICK_LABELS).all():
                raise InputError(f"EfficientSAM point labels must be in {_CLICK_LABELS}, got {np.unique(lb)}")
            if n is not None and len(p) != n:
                raise InputError(f"{n} boxes but {len(p)} point prompts")
            n = len(p)
            parts_xy.append(p)
            parts_lb.append(lb.astype(np.int64))
        if n is None:
            raise InputError("EfficientSAM needs a box or points for every prompt")
        xy = torch.from_numpy(np.concatenate(parts_xy, axis=1)).to(self.device)
        labels = torch.from_numpy(np.concatenate(parts_lb, axis=1)).to(self.device)
        return xy, labels

    # -- prediction --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_low_res(
        self,
        boxes: np.ndarray | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        multimask: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N×M×256×256 logits and N×M IoUs, the official ``predict_masks`` with output size −1."""
        embedding = self.image_embedding
        h, w = self.current.size
        xy, labels = self._prompt_points(boxes, points, point_labels)
        if len(xy) == 0:
            m = 3 if multimask else 1
            return embedding.new_zeros(0, m, 256, 256), embedding.new_zeros(0, m)
        pts = self.model.rescale_points(xy[None], h, w)
        low_res, iou = self.model.predict_masks(embedding, pts, labels[None], multimask)
        return low_res[0], iou[0]

    def upscale(self, low_res: torch.Tensor) -> torch.Tensor:
        """Low-res logits → logits at the current image's original size (bicubic, as official)."""
        return _upscale(self.current.size, low_res)

    def predict(
        self,
        boxes: np.ndarray | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        multimask: bool = True,
        mask_input: torch.Tensor | None = None,
    ) -> Prediction:
        self.refuse_mask_input(mask_input)
        low_res, iou = self.predict_low_res(boxes, points, point_labels, multimask)
        # full-size masks are made when read (Prediction.select upscales only the chosen output)
        size = self.current.size
        return Prediction(iou_predictions=iou, low_res_logits=low_res, to_masks=partial(_masks, size))


def _upscale(size: tuple[int, int], low_res: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return upscale_logits(low_res, size)


def _masks(size: tuple[int, int], low_res: torch.Tensor) -> torch.Tensor:
    return _upscale(size, low_res) >= 0  # official example: torch.ge(logits, 0)


def _make_runner(name: str, network: nn.Module, device: torch.device) -> EfficientSamRunner:
    assert isinstance(network, EfficientSam)
    return EfficientSamRunner(network, name=name, device=device)


_REPO = "https://raw.githubusercontent.com/yformer/EfficientSAM/main/weights/"
EFFICIENTSAM_TI = ModelSpec(
    name="efficientsam-ti",
    summary="EfficientSAM-Ti (ViT-Tiny encoder, 10.2M params; image stretched to 1024², bicubic upscaling)",
    build=network_factory("efficientsam-ti", efficient_sam_ti, partial(_make_runner, "efficientsam-ti")),
    label="EfficientSAM-Ti",
    weights=WeightsFile(
        "efficientsam-ti",
        "efficient_sam_vitt.pt",
        _REPO + "efficient_sam_vitt.pt",
        format="model_key",
        size=40_982_470,
        sha256="dff858b19600a46461cbb7de98f796b23a7a888d9f5e34c0b033f7d6eb9e4e6a",
        # several projects pinning yformer/EfficientSAM at d525f62 (one also gives MD5 7a804da5...)
        sha256_source="projects pinning yformer/EfficientSAM at d525f62",
    ),
    parameters=10_223_204,
    throughput_hint=54.0,
    input_size="1024² stretched",
    licence="Apache-2.0",
    verification="golden (official EfficientSAM) + key layout",
)
EFFICIENTSAM_S = ModelSpec(
    name="efficientsam-s",
    summary="EfficientSAM-S (ViT-Small encoder, 26.4M params; image stretched to 1024², bicubic upscaling)",
    build=network_factory("efficientsam-s", efficient_sam_s, partial(_make_runner, "efficientsam-s")),
    label="EfficientSAM-S",
    weights=WeightsFile(
        "efficientsam-s",
        "efficient_sam_vits.pt.zip",
        _REPO + "efficient_sam_vits.pt.zip",
        format="zip_model_key",
        member="efficient_sam_vits.pt",  # no published size or SHA-256 found: trusted on first use
    ),
    parameters=26_413_028,
    throughput_hint=37.3,
    input_size="1024² stretched",
    licence="Apache-2.0",
    verification="golden (official EfficientSAM) + key layout",
)
