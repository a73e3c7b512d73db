"""SAM 2.1 (Hiera-T/-S/-B+/-L) runners: the official ``SAM2ImagePredictor`` pipeline on in-house networks.

Official behaviour reproduced (facebookresearch/sam2 @ 2b90b9f, ``sam2_image_predictor.py``,
``utils/transforms.py``, ``build_sam.py``); the network is :mod:`evalsuite.models.nn.sam2_net`:

* image: uint8 RGB → float [0, 1] → **stretched** to 1024×1024 (antialiased bilinear, aspect ratio not
  kept, no padding) → ImageNet mean/std; one encoder pass per batch of images;
* prompts: (x, y) scaled per axis to the 1024 frame (x/W·1024, y/H·1024, float32); a box is two points
  labelled 2 (top-left) and 3 (bottom-right) placed **before** the clicks, and a (0, 0)/−1 padding
  point is always appended, also after a box. Clicks: 1 foreground, 0 background, −1 ignored; a −1
  point becomes the "not a point" token exactly as in the official encoder, which lets prompts with
  fewer clicks be padded to share one call — but, as officially, each −1 point is one more token the
  decoder attends to, so a padded prompt is not bit-for-bit the unpadded one;
* ``mask_input`` (N×1×256×256 low-res logits of an earlier call) goes through the prompt encoder's
  mask path, as ``SAM2ImagePredictor.predict(mask_input=...)`` does (the AP protocols' ``refine=1``);
* outputs: multimask = decoder tokens 1..3; single mask = token 0, unless its stability score
  (#logit > 0.05 / #logit > −0.05) is below 0.98: then the multimask token with the highest predicted
  IoU, with its logits and IoU (``dynamic_multimask_via_stability``, on in ``build_sam2``'s default).
  IoUs are sigmoid outputs. Masks = bilinear upscaling of the **unclamped** low-res logits straight to
  the original size, ``> 0``; the returned low-res logits are clamped to ±32 (both as officially).
  The object-score head is computed but ignored, as in the official image predictor.

Unlike the official predictor, which takes one prompt set per call, N prompts of one image are decoded
in one batched call (the official batched path for several boxes; the rows are independent).

SAM 3's interactive path (:mod:`evalsuite.models.sam3`) runs through the same runner: its network gives
the same four calls (:class:`PredictorNetwork`), and it sets :attr:`Sam2Runner.low_res` and the
:meth:`Sam2Runner.mask_logits` hook (its hole filling).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .base import BatchedEncoderRunner, ModelSpec, Prediction, WeightsFile
from .nn.sam2_heads import LABEL_BOX_BR, LABEL_BOX_TL, LOW_RES
from .nn.sam2_net import LOGIT_CLAMP, Sam2Features, Sam2Model, build_sam2, drop_video_memory, upscale_logits
from .weights import network_factory

MASK_THRESHOLD = 0.0
#: click labels a caller may pass: 1 foreground, 0 background, −1 ignored (padding)
CLICK_LABELS = (-1, 0, 1)


# -- images ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sam2Input:
    """An image as the decode workers hand it over: H×W×3 uint8 (SAM 2.1 stretches it on the device).

    ``original_size``: the image's (H, W) when ``pixels`` were already resized (SAM 3 resizes in the
    decode workers); None when ``pixels`` is the original image.
    """

    pixels: torch.Tensor
    original_size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """The original image's (H, W)."""
        return self.original_size or (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    def pin_memory(self) -> Sam2Input:
        return Sam2Input(self.pixels.pin_memory(), self.original_size)


def sam2_input(image: np.ndarray, label: str = "SAM 2.1") -> Sam2Input:
    """Check the image and wrap it as a tensor (what :meth:`Sam2Runner.set_images` takes)."""
    if not (
        isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    ):
        desc = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise InputError(f"{label} needs an H×W×3 uint8 RGB image, got {desc}")
    return Sam2Input(torch.from_numpy(np.ascontiguousarray(image)))


# -- predictions ----------------------------------------------------------------------------------------
class Sam2Prediction(Prediction):
    """A :class:`Prediction` whose full-size masks come from the unclamped logits.

    ``low_res_logits`` holds the ±32-clamped logits the official predictor returns (what a refinement
    step feeds back), but its masks are upscaled from the raw ones: bilinear weights can flip the sign
    of a mix of clamped values.
    """

    def __init__(
        self,
        logits: torch.Tensor,
        iou: torch.Tensor,
        size: tuple[int, int],
        mask_logits: torch.Tensor | None = None,
    ) -> None:
        # the masks come from ``mask_logits`` where given (SAM 3: ``logits`` with small holes filled)
        self._raw_logits = logits if mask_logits is None else mask_logits
        self._size = size
        self._full: torch.Tensor | None = None
        clamped = logits.clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        super().__init__(iou_predictions=iou, low_res_logits=clamped, to_masks=partial(_masks, size))

    @property
    def masks(self) -> torch.Tensor:
        if self._full is None:
            self._full = _masks(self._size, self._raw_logits)
        return self._full

    def select(self, index: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(index), device=index.device)
        if self._full is not None:
            return self._full[rows, index]
        return _masks(self._size, self._raw_logits[rows, index][:, None])[:, 0]


def _upscale(size: tuple[int, int], low_res: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return upscale_logits(low_res, size)


def _masks(size: tuple[int, int], low_res: torch.Tensor) -> torch.Tensor:
    return _upscale(size, low_res) > MASK_THRESHOLD


def _as_array(x: Any, dtype: type) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


# -- runner ---------------------------------------------------------------------------------------------
@runtime_checkable
class PredictorNetwork(Protocol):
    """What :class:`Sam2Runner` asks of its network (SAM 2.1's :class:`Sam2Model`, SAM 3's ``Sam3Model``)."""

    def preprocess(self, images: list[torch.Tensor]) -> torch.Tensor: ...

    def encode(self, x: torch.Tensor) -> Sam2Features: ...

    def scale_points(self, coords: torch.Tensor, size: tuple[int, int]) -> torch.Tensor: ...

    def decode(
        self,
        features: Sam2Features,
        coords: torch.Tensor,
        labels: torch.Tensor,
        multimask: bool,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass(frozen=True)
class _Sam2Image:
    features: Sam2Features
    size: tuple[int, int]  # original (H, W)


class Sam2Runner(BatchedEncoderRunner[Sam2Input, _Sam2Image]):
    """SAM 2.1 behind the :class:`Runner` interface; all N prompts of an image go through one decoder call."""

    takes_mask_prompt = True
    #: side of the low-res logits (and of ``mask_input``)
    low_res = LOW_RES

    def __init__(self, model: nn.Module, name: str = "", device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.name = name
        self.device = torch.device(device)
        network = model.to(self.device).eval()
        assert isinstance(network, PredictorNetwork), type(network)
        self.model: PredictorNetwork = network

    # -- image -------------------------------------------------------------------------------------------
    def image_transform(self) -> Callable[[np.ndarray], Sam2Input]:
        return sam2_input

    def _encoder_input(self, images: Sequence[Sam2Input]) -> torch.Tensor:
        return self.model.preprocess([item.pixels.to(self.device, non_blocking=True) for item in images])

    @torch.inference_mode()
    def encoder_input(self, image: np.ndarray) -> torch.Tensor:
        """The normalised 1×3×1024×1024 tensor that enters the image encoder."""
        return self._encoder_input([self.image_transform()(image)])

    def _encode(self, items: Sequence[Sam2Input]) -> list[_Sam2Image]:
        """Stretch each image to 1024² on the device, then embed the batch in one encoder pass."""
        features = self.model.encode(self._encoder_input(items))
        return [_Sam2Image(features[i], item.size) for i, item in enumerate(items)]

    @property
    def features(self) -> Sam2Features:
        """The current image's embedding and high-resolution maps."""
        return self.current.features

    @property
    def image_embedding(self) -> torch.Tensor:
        """The 1×256×64×64 embedding of the current image (``no_mem_embed`` included, as officially)."""
        return self.current.features.embedding

    def upscale(self, low_res: torch.Tensor) -> torch.Tensor:
        """Low-res logits → logits at the current image's original size (bilinear, as officially)."""
        return _upscale(self.current.size, low_res)

    # -- prompts -----------------------------------------------------------------------------------------
    def _prompt_points(
        self, boxes: Any = None, points: Any = None, point_labels: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N×P×2 original-pixel points (float32) and N×P labels: box corners (2, 3) first, then the clicks."""
        parts_xy: list[np.ndarray] = []
        parts_lb: list[np.ndarray] = []
        n = None
        if boxes is not None:
            b = _as_array(boxes, np.float64)
            if b.ndim != 2 or b.shape[1] != 4:
                raise InputError(f"{self.name}: boxes must be N×4 (x0, y0, x1, y1), got shape {b.shape}")
            n = len(b)
            parts_xy.append(b.reshape(n, 2, 2))
            parts_lb.append(np.tile(np.array([LABEL_BOX_TL, LABEL_BOX_BR], dtype=np.int64), (n, 1)))
        if points is not None:
            if point_labels is None:
                raise InputError(f"{self.name}: point_labels must be given with points (1, 0 or -1 each)")
            p = _as_array(points, np.float64)
            lb = _as_array(point_labels, np.int64)
            if p.ndim != 3 or p.shape[2] != 2 or lb.shape != p.shape[:2]:
                raise InputError(
                    f"{self.name}: points must be N×P×2 with point_labels N×P, got {p.shape} and {lb.shape}"
                )
            if not np.isin(lb, CLICK_LABELS).all():
                raise InputError(f"{self.name}: point labels must be in {CLICK_LABELS}, got {np.unique(lb)}")
            if n is not None and len(p) != n:
                raise InputError(f"{self.name}: {n} boxes but {len(p)} point prompts")
            n = len(p)
            parts_xy.append(p)
            parts_lb.append(lb)
        if n is None:
            raise InputError(f"{self.name}: predict() needs a box or points for every prompt")
        # as officially: float64 input → float32 tensor, then scaled to the 1024 frame in float32
        xy = torch.as_tensor(np.concatenate(parts_xy, axis=1), dtype=torch.float32, device=self.device)
        labels = torch.as_tensor(np.concatenate(parts_lb, axis=1), device=self.device)
        return xy, labels

    def _mask_input(self, mask_input: Any, n: int) -> torch.Tensor | None:
        if mask_input is None:
            return None
        m = torch.as_tensor(mask_input, dtype=torch.float32).to(self.device)
        side = self.low_res
        if m.ndim != 4 or tuple(m.shape) != (n, 1, side, side):
            raise InputError(
                f"{self.name}: mask_input must be N×1×{side}×{side} with N = {n}, got {tuple(m.shape)}"
            )
        return m

    # -- prediction --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_low_res(
        self,
        boxes: np.ndarray | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        multimask: bool = True,
        mask_input: np.ndarray | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N×M×256×256 **unclamped** logits and N×M IoUs of the chosen outputs (M = 3 or 1)."""
        features = self.features
        xy, labels = self._prompt_points(boxes, points, point_labels)
        masks = self._mask_input(mask_input, len(xy))
        if len(xy) == 0:
            m, side = 3 if multimask else 1, self.low_res
            return features.embedding.new_zeros(0, m, side, side), features.embedding.new_zeros(0, m)
        coords = self.model.scale_points(xy, self.current.size)
        return self.model.decode(features, coords, labels, multimask, mask_input=masks)

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

        ``boxes`` N×4 xyxy, ``points`` N×P×2 (x, y), ``point_labels`` N×P (1 fg, 0 bg, −1 ignored), in
        original-image pixels; ``mask_input`` N×1×256×256 low-res logits of an earlier call. With
        ``return_logits`` the ``masks`` field holds the full-resolution float logits instead of
        ``logits > 0`` (``SAM2ImagePredictor.predict(return_logits=True)``).
        """
        logits, iou = self.predict_low_res(boxes, points, point_labels, multimask, mask_input)
        for_masks = self.mask_logits(logits)
        if return_logits:
            clamped = logits.clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
            return Prediction(masks=self.upscale(for_masks), iou_predictions=iou, low_res_logits=clamped)
        # full-size masks are made when read (select() upscales only the chosen output)
        return Sam2Prediction(logits, iou, self.current.size, mask_logits=for_masks)

    def mask_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The low-res logits the full-size masks are upscaled from: SAM 2.1's own (SAM 3 fills holes)."""
        return logits


# -- registry entries -----------------------------------------------------------------------------------
def _make_runner(name: str, network: nn.Module, device: torch.device) -> Sam2Runner:
    assert isinstance(network, Sam2Model)
    return Sam2Runner(network, name=name, device=device)


_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
# Official files: facebookresearch/sam2 README and checkpoints/download_ckpts.sh (the same files are on
# Hugging Face as facebook/sam2.1-hiera-{tiny,small,base-plus,large}, build_sam.HF_MODEL_ID_TO_FILENAMES).
# Format {"model": state_dict}: the official build_sam._load_checkpoint reads
# torch.load(f, map_location="cpu", weights_only=True)["model"] and loads it strictly (all keys, the
# video predictor's memory modules included: drop_video_memory checks and drops exactly those).
# SHA-256: Meta publishes none on the download site. The values are the ones third parties pin for these
# files, identical in every independent source found: micro-sam (micro_sam/v2 util.py, pooch known_hash,
# verified on each download), an Intel SAM model map (sha_sum per file) and many projects pinning a single
# file; one records that the Hiera-T value equals the Hugging Face LFS SHA-256 of facebook/sam2.1-hiera-tiny
# (revision de431c4). Sizes: as reported next to those hashes (T, S, L each by one or two sources, B+ by
# one); not checked here, the files cannot be downloaded on the build machines.
_SHA_SOURCE = (
    "micro-sam's pooch registry, an Intel SAM model map and single-file pins (not published by Meta)"
)
_VARIANTS = {
    # name: (variant, file, SHA-256, size, label, parameters of the full official module)
    "sam2.1-hiera-t": (
        "t",
        "sam2.1_hiera_tiny.pt",
        "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
        156_008_466,
        "SAM 2.1 Hiera-T",
        38_962_498,
    ),
    "sam2.1-hiera-s": (
        "s",
        "sam2.1_hiera_small.pt",
        "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
        184_416_285,
        "SAM 2.1 Hiera-S",
        46_060_354,
    ),
    "sam2.1-hiera-b+": (
        "b+",
        "sam2.1_hiera_base_plus.pt",
        "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
        323_606_802,
        "SAM 2.1 Hiera-B+",
        80_850_178,
    ),
    "sam2.1-hiera-l": (
        "l",
        "sam2.1_hiera_large.pt",
        "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
        898_083_611,
        "SAM 2.1 Hiera-L",
        224_446_642,
    ),
}


def _spec(name: str) -> ModelSpec:
    variant, filename, sha256, size, label, params = _VARIANTS[name]
    return ModelSpec(
        name,
        f"{label} (Ravi et al. 2024), image predictor; image stretched to 1024², no video memory",
        network_factory(
            name, partial(build_sam2, variant), partial(_make_runner, name), adapt=drop_video_memory
        ),
        label=label,
        weights=WeightsFile(
            name,
            filename,
            _SAM2_URL + filename,
            format="model_key",
            sha256=sha256,
            size=size,
            sha256_source=_SHA_SOURCE,
        ),
        parameters=params,  # 7,658,302 of them in the video-only modules the runner does not build
        input_size="1024² stretched",
        licence="Apache-2.0",
        verification=(
            "golden (official sam2, SAM2ImagePredictor) + key layout"
            if name in ("sam2.1-hiera-t", "sam2.1-hiera-b+")
            else "key layout; the code of sam2.1-hiera-t and sam2.1-hiera-b+ (golden)"
        ),
    )


SAM2_1_HIERA_T = _spec("sam2.1-hiera-t")
SAM2_1_HIERA_S = _spec("sam2.1-hiera-s")
SAM2_1_HIERA_B_PLUS = _spec("sam2.1-hiera-b+")
SAM2_1_HIERA_L = _spec("sam2.1-hiera-l")
