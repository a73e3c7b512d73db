"""FastSAM-s / -x: YOLOv8-seg "segment everything", then the official prompt rules pick the mask.

FastSAM has no prompt encoder: a prompt only *selects* among the candidate masks that one
"segment everything" pass produced. What is reproduced here, and from where (official repository
CASIA-IVA-Lab/FastSAM, ``Inference.py`` at 02d0382, ``fastsam/predict.py`` at 856bdbf,
``fastsam/prompt.py`` at 314d076; line numbers are approximate):

* **segment everything** — ``Inference.py`` defaults: ``imgsz=1024, conf=0.4, iou=0.9,
  retina_masks=True`` (masks at the original resolution); ``max_det`` is not passed there, so the
  Ultralytics default 300 applies (set explicitly here). The image goes to Ultralytics as BGR, as
  the official code reads it with ``cv2.imread``. Letterboxing, NMS and mask upsampling are
  Ultralytics' generic YOLOv8-seg code (the installed version). FastSAM's own step before the masks
  are cropped to their boxes (``FastSAMPredictor.postprocess`` + ``fastsam/utils.py``) is
  reproduced by :func:`snap_boxes`: every box edge within 20 px of the network-input border is
  moved onto it, and a box whose IoU with the whole input exceeds 0.9 becomes the whole input.
  Today's Ultralytics ``FastSAMPredictor`` applies this only to the reported boxes, after the masks;
  the official repository applies it before, so it changes the masks, and that is what is done here.
* **box prompt** — ``FastSAMPrompt.box_prompt`` (prompt.py ≈ L377–412): bounds rounded with Python's
  ``round`` (half to even), then ``x1, y1 = max(·, 0)`` and ``x2 = min(·, W)``, ``y2 = min(·, H)``
  (nothing else is clamped); intersection = mask pixels in ``[y1:y2, x1:x2]``, union = box area +
  mask area − intersection, IoU in float32, ``torch.argmax`` (the first maximum wins, candidates in
  Ultralytics' order = descending confidence). See :func:`select_by_box`.
* **point prompt** — ``FastSAMPrompt.point_prompt`` (prompt.py ≈ L414–437): candidates sorted by area,
  largest first (a stable sort); an all-zero canvas; for each candidate in that order, for each point in
  the given order: if the candidate contains the point, paint all its pixels 1 (label 1) or 0 (label
  0). Smaller candidates are painted later and win; within one candidate the last point it contains
  decides. See :func:`select_by_points`.

Deviations, all outside what the protocols produce: point coordinates are floored and clipped into
the image (the official code indexes with them as given, so one on the far edge raises and a negative
one wraps around); the official demo's de-duplication of several boxes' masks (``list(set(...))``) is
not applied — every box prompts its own mask; recent Ultralytics drops candidates whose mask is empty
after cropping (the 2023 code kept them), which matters only for a box whose IoUs are all zero.

Ultralytics (AGPL-3.0) is the optional extra ``evalsuite[fastsam]``, imported only by the factory. The
factory sets ``YOLO_OFFLINE=1`` and ``YOLO_AUTOINSTALL=0`` unless the user set them: a run must
never download or pip-install anything behind the user's back.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .base import ModelSpec, Prediction, Runner, WeightsFile

#: official "segment everything" settings (Inference.py defaults; max_det = Ultralytics' default)
SEGMENT_ARGS: dict[str, Any] = {"imgsz": 1024, "conf": 0.4, "iou": 0.9, "max_det": 300, "retina_masks": True}
#: official FastSAMPredictor: box edges this close (network-input pixels) to the border snap onto it
BORDER_SNAP_PX = 20
#: official FastSAMPredictor: a box whose IoU with the whole input exceeds this becomes the whole input
FULL_BOX_IOU = 0.9
MISSING_EXTRA = "FastSAM needs the optional extra: pip install 'evalsuite[fastsam]' (Ultralytics, AGPL-3.0)"

ArrayLike = np.ndarray | torch.Tensor


# -- pure rules (no Ultralytics) -----------------------------------------------------------------------
def _candidates(candidates: ArrayLike) -> torch.Tensor:
    c = torch.as_tensor(candidates)
    if c.ndim != 3:
        raise ValueError(f"candidates must be K×H×W, got shape {tuple(c.shape)}")
    return c if c.dtype == torch.bool else c != 0


def box_bounds(box_xyxy: ArrayLike, height: int, width: int) -> tuple[int, int, int, int]:
    """The integer slice bounds the official ``box_prompt`` uses for a box at mask resolution.

    Python ``round`` (half to even), then only the lower bounds are raised to 0 and only the upper
    bounds lowered to W / H — exactly as official, so a degenerate box stays degenerate.
    """
    x1, y1, x2, y2 = (round(float(v)) for v in np.asarray(box_xyxy, dtype=np.float64).reshape(4))
    return max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)


def box_ious(candidates: ArrayLike, box_xyxy: ArrayLike, areas: torch.Tensor | None = None) -> torch.Tensor:
    """Float32 IoU of each candidate with the box rectangle, computed as the official ``box_prompt``.

    Counts are exact integers here; converted to float32 they equal the official float32 sums for
    images under 2^24 pixels, so the float32 quotient (and hence every tie) is bit-identical.
    ``areas`` (the candidates' pixel counts) may be passed to save recounting them per box.
    """
    c = _candidates(candidates)
    _, h, w = c.shape
    x1, y1, x2, y2 = box_bounds(box_xyxy, h, w)
    box_area = (y2 - y1) * (x2 - x1)
    inter = c[:, y1:y2, x1:x2].sum(dim=(1, 2))  # Python slice semantics, as official
    union = box_area + (c.sum(dim=(1, 2)) if areas is None else areas) - inter
    return inter.to(torch.float32) / union.to(torch.float32)


def select_by_box(candidates: ArrayLike, box_xyxy: ArrayLike) -> int:
    """Index of the candidate the official box rule picks; -1 when there is no candidate.

    Rule: highest IoU between the box rectangle and the mask pixels; ties (and an all-NaN row, which
    only a zero-area box over empty candidates gives) resolve as ``torch.argmax``: the first maximum,
    a NaN counting as the maximum.
    """
    c = _candidates(candidates)
    if c.shape[0] == 0:
        return -1
    return int(torch.argmax(box_ious(c, box_xyxy)))


def select_by_boxes(
    candidates: ArrayLike, boxes_xyxy: ArrayLike, areas: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`select_by_box` for N boxes: an N int64 tensor (all -1 when there is no candidate)."""
    c = _candidates(candidates)
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if c.shape[0] == 0:
        return torch.full((len(b),), -1, dtype=torch.int64)
    areas = c.sum(dim=(1, 2)) if areas is None else areas
    return torch.tensor([int(torch.argmax(box_ious(c, box, areas))) for box in b], dtype=torch.int64)


def _pixels(points: ArrayLike, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of each (x, y) point: floored, then clipped into the image."""
    p = torch.as_tensor(np.asarray(points, dtype=np.float64).reshape(-1, 2))
    cols = p[:, 0].floor().clamp(0, width - 1).to(torch.int64)
    rows = p[:, 1].floor().clamp(0, height - 1).to(torch.int64)
    return rows, cols


def point_paint_order(
    candidates: ArrayLike,
    points: ArrayLike,
    labels: ArrayLike | None = None,
    areas: torch.Tensor | None = None,
) -> list[tuple[int, bool]]:
    """The (candidate index, value) paints of the official point rule, in painting order.

    Candidates are visited largest area first (stable: equal areas keep Ultralytics' order); a
    candidate paints the value of the last point, in the given order, that it contains and whose
    label is 1 or 0 (other labels, e.g. -1 padding, do nothing, as official); a candidate containing
    none paints nothing. ``labels=None`` means all positive. ``areas`` (the candidates' pixel counts)
    may be passed to save recounting them per prompt.
    """
    c = _candidates(candidates)
    k, h, w = c.shape
    rows, cols = _pixels(points, h, w)
    lab = (
        torch.ones(len(rows), dtype=torch.int64)
        if labels is None
        else torch.as_tensor(np.asarray(labels).reshape(-1).astype(np.int64))
    )
    if len(lab) != len(rows):
        raise ValueError(f"{len(rows)} points but {len(lab)} labels")
    if k == 0 or len(rows) == 0:
        return []
    hit = c[:, rows.to(c.device), cols.to(c.device)].cpu() & ((lab == 0) | (lab == 1))[None]  # K×P
    acts = hit.any(dim=1)
    if not acts.any():
        return []
    last = hit.shape[1] - 1 - torch.argmax(hit.flip(1).to(torch.uint8), dim=1)  # last point each one holds
    areas = c.sum(dim=(1, 2)) if areas is None else areas
    order = torch.argsort(-areas.cpu().to(torch.int64), stable=True)
    order = order[acts[order]]
    return list(zip(order.tolist(), (lab[last[order]] == 1).tolist(), strict=True))


def paint(candidates: ArrayLike, paints: list[tuple[int, bool]]) -> torch.Tensor:
    """H×W bool canvas after applying ``paints`` (from :func:`point_paint_order`) in order."""
    c = _candidates(candidates)
    out = torch.zeros(c.shape[1:], dtype=torch.bool, device=c.device)
    for i, value in paints:
        out = torch.logical_or(out, c[i]) if value else torch.logical_and(out, ~c[i])
    return out


def select_by_points(
    candidates: ArrayLike, points: ArrayLike, labels: ArrayLike | None = None
) -> torch.Tensor:
    """H×W bool mask of the official point rule (see :func:`point_paint_order`).

    Net effect: the union of the candidates containing a positive point, with the candidates
    containing a negative point cut out — but in area order, so a smaller candidate painted later
    overrides a larger one (a positive point in a small mask inside a larger, negatively clicked
    mask survives). No candidate hit by a positive point gives an empty mask.
    """
    return paint(candidates, point_paint_order(candidates, points, labels))


def select_by_points_batch(
    candidates: ArrayLike, points: ArrayLike, labels: ArrayLike | None = None
) -> torch.Tensor:
    """:func:`select_by_points` for N prompts: points N×P×2, labels N×P → N×H×W bool."""
    c = _candidates(candidates)
    p = np.asarray(points, dtype=np.float64)
    lab = None if labels is None else np.asarray(labels)
    masks = [select_by_points(c, p[n], None if lab is None else lab[n]) for n in range(len(p))]
    return torch.stack(masks) if masks else torch.zeros((0, *c.shape[1:]), dtype=torch.bool, device=c.device)


def snap_boxes(boxes_xyxy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The official FastSAMPredictor box adjustment, applied before the masks are cropped to the boxes.

    ``height``/``width`` are the network input's (letterboxed) size, the frame the boxes are in.
    Edges within :data:`BORDER_SNAP_PX` of the border move onto it (``adjust_bboxes_to_image_border``,
    which the official ``bbox_iou`` applies in place to all boxes); then a box whose IoU with the whole
    input exceeds :data:`FULL_BOX_IOU` becomes the whole input. The official code fails (and returns
    no result at all) when two boxes pass that test; here each of them becomes the whole input.
    Arithmetic is in the boxes' dtype, in the official order.
    """
    b = boxes_xyxy.clone()
    t = BORDER_SNAP_PX
    zero = torch.zeros((), dtype=b.dtype, device=b.device)
    b[:, 0] = torch.where(b[:, 0] < t, zero, b[:, 0])
    b[:, 1] = torch.where(b[:, 1] < t, zero, b[:, 1])
    b[:, 2] = torch.where(b[:, 2] > width - t, zero + width, b[:, 2])
    b[:, 3] = torch.where(b[:, 3] > height - t, zero + height, b[:, 3])
    full = torch.tensor([0, 0, width, height], dtype=b.dtype, device=b.device)
    ix = (torch.minimum(full[2], b[:, 2]) - torch.maximum(full[0], b[:, 0])).clamp(0)
    iy = (torch.minimum(full[3], b[:, 3]) - torch.maximum(full[1], b[:, 1])).clamp(0)
    inter = ix * iy
    union = (full[2] - full[0]) * (full[3] - full[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    b[inter / union > FULL_BOX_IOU] = full
    return b


# -- runner ----------------------------------------------------------------------------------------------
class FastSamRunner(Runner):
    """FastSAM behind the :class:`Runner` interface: one "segment everything" pass per image.

    ``predict`` returns one mask per prompt (M = 1, ``multimask`` is ignored). ``iou_predictions`` is
    FastSAM's own confidence: for a box, the chosen candidate's detection confidence; for points, the
    highest confidence among the candidates painted with 1 (0 when none). An image with no candidate
    gives empty masks with score 0.
    """

    takes_mask_prompt = False

    def __init__(
        self, yolo: Any, name: str = "", device: str | torch.device = "cpu", predictor: type | None = None
    ) -> None:
        self.name = name
        self.device = torch.device(device)
        #: the Ultralytics ``YOLO`` object and the predictor class its ``predict`` is told to use
        self.yolo = yolo
        self.predictor = predictor
        self.model = yolo.model
        #: the official settings; tests may lower ``conf`` to get candidates out of random weights
        self.segment_args: dict[str, Any] = dict(SEGMENT_ARGS)
        self._candidates: torch.Tensor | None = None
        self._scores: torch.Tensor | None = None
        self._areas: torch.Tensor | None = None

    def set_image(self, image: np.ndarray) -> None:
        """Run "segment everything" once; keep the K×H×W candidate masks and their K confidences."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 RGB image, got {image.shape} {image.dtype}")
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # Ultralytics takes numpy images as BGR
        extra = {} if self.predictor is None else {"predictor": self.predictor}
        (result,) = self.yolo.predict(bgr, device=self.device, verbose=False, **extra, **self.segment_args)
        h, w = image.shape[:2]
        if result.masks is None or len(result.masks.data) == 0:
            self._candidates = torch.zeros((0, h, w), dtype=torch.bool, device=self.device)
            self._scores = torch.zeros(0, dtype=torch.float32, device=self.device)
            self._areas = torch.zeros(0, dtype=torch.int64, device=self.device)
            return
        masks = result.masks.data.to(self.device) != 0
        if tuple(masks.shape[1:]) != (h, w):  # retina_masks=True gives the original size
            raise RuntimeError(f"FastSAM masks are {tuple(masks.shape[1:])}, expected {(h, w)}")
        self._candidates = masks
        self._scores = result.boxes.conf.to(self.device, torch.float32)
        self._areas = masks.sum(dim=(1, 2))

    @property
    def candidates(self) -> torch.Tensor:
        """K×H×W bool candidate masks of the current image (Ultralytics' order: descending confidence)."""
        if self._candidates is None:
            raise RuntimeError("set_image() must be called first")
        return self._candidates

    @property
    def scores(self) -> torch.Tensor:
        """K float32 detection confidences of :attr:`candidates`."""
        if self._scores is None:
            raise RuntimeError("set_image() must be called first")
        return self._scores

    def predict(
        self,
        boxes: np.ndarray | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        multimask: bool = True,
        mask_input: torch.Tensor | None = None,
    ) -> Prediction:
        self.refuse_mask_input(mask_input)
        if (boxes is None) == (points is None):
            raise InputError("FastSAM takes either box prompts or point prompts, one kind per call")
        if boxes is not None:
            masks, score = self._by_boxes(boxes)
        else:
            assert points is not None  # one of the two: checked above
            masks, score = self._by_points(points, point_labels)
        return Prediction(masks=masks[:, None], iou_predictions=score[:, None])

    def _by_boxes(self, boxes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        cand, scores = self.candidates, self.scores
        idx = select_by_boxes(cand, boxes, self._areas).to(self.device)
        if len(cand) == 0:
            return self._empty(len(idx)), torch.zeros(len(idx), dtype=torch.float32, device=self.device)
        return cand[idx], scores[idx]

    def _by_points(self, points: np.ndarray, labels: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        cand, scores = self.candidates, self.scores
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 3 or pts.shape[2] != 2:
            raise ValueError(f"points must be N×P×2, got shape {pts.shape}")
        labs = None if labels is None else np.asarray(labels)
        masks, score = [], []
        for i in range(len(pts)):
            paints = point_paint_order(cand, pts[i], None if labs is None else labs[i], self._areas)
            masks.append(paint(cand, paints))
            positive = [k for k, value in paints if value]
            score.append(float(scores[positive].max()) if positive else 0.0)
        stacked = torch.stack(masks) if masks else self._empty(0)
        return stacked, torch.tensor(score, dtype=torch.float32, device=self.device)

    def _empty(self, n: int) -> torch.Tensor:
        return torch.zeros((n, *self.candidates.shape[1:]), dtype=torch.bool, device=self.device)


# -- Ultralytics glue (imported lazily) ------------------------------------------------------------------
_PREDICTOR: type | None = None


def _everything_predictor() -> type:
    """Ultralytics' YOLOv8-seg predictor with the official FastSAM box adjustment before mask cropping."""
    global _PREDICTOR
    if _PREDICTOR is None:
        from ultralytics.models.yolo.segment import SegmentationPredictor

        if not hasattr(SegmentationPredictor, "construct_result"):
            raise InputError(
                "this Ultralytics version is too old for evalsuite's FastSAM runner",
                hint="pip install -U 'evalsuite[fastsam]'",
            )

        class FastSamEverythingPredictor(SegmentationPredictor):
            def construct_result(self, pred, img, orig_img, img_path, proto):
                if len(pred):  # boxes are still in network-input pixels here
                    pred[:, :4] = snap_boxes(pred[:, :4], int(img.shape[2]), int(img.shape[3]))
                return super().construct_result(pred, img, orig_img, img_path, proto)

        _PREDICTOR = FastSamEverythingPredictor
    return _PREDICTOR


def _import_yolo() -> type:
    os.environ.setdefault("YOLO_OFFLINE", "1")  # read when Ultralytics is first imported
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise InputError(MISSING_EXTRA) from exc
    return YOLO


def _random_yolo(yolo_cls: type, scale: str) -> Any:
    """YOLOv8-seg of the given scale from Ultralytics' packaged YAML, one class, random weights."""
    from ultralytics.nn.tasks import SegmentationModel

    yolo = yolo_cls(f"yolov8{scale}-seg.yaml", task="segment")
    net = SegmentationModel({**yolo.model.yaml, "nc": 1}, nc=1, verbose=False)
    net.args, net.task = yolo.model.args, yolo.model.task
    yolo.model = net
    return yolo


def _build(
    model_name: str,
    scale: str,
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    trust_checkpoint: bool = False,
    **_: object,
) -> FastSamRunner:
    """The runner; ``checkpoint=None`` gives the architecture with random weights (tests)."""
    yolo_cls = _import_yolo()
    sha256 = None
    if checkpoint is None:
        yolo = _random_yolo(yolo_cls, scale)
    else:
        from .registry import get_spec
        from .weights import read_checkpoint

        # Verifies the SHA-256 against the published one (or the user's explicit trust) first; only then
        # may Ultralytics unpickle the same file with its own loader (legacy module names included).
        ck = read_checkpoint(get_spec(model_name), checkpoint, trust=trust_checkpoint)
        yolo = yolo_cls(str(ck.path), task="segment")
        if getattr(yolo, "task", None) != "segment":
            raise InputError(f"{ck.path}: not a FastSAM (YOLOv8-seg) checkpoint: task is {yolo.task!r}")
        ck.confirm()
        sha256 = ck.sha256
    runner = FastSamRunner(yolo, name=model_name, device=device, predictor=_everything_predictor())
    runner.checkpoint_sha256 = sha256
    return runner


_ULTRALYTICS = "https://github.com/ultralytics/assets/releases/download/v8.2.0/"
# URLs from the Ultralytics FastSAM docs (assets release v8.2.0; later docs link v8.4.0 with the same
# FastSAM-s hash and size); SHA-256 and sizes from data-juicer's model lock and other projects pinning
# these assets. The Google Drive files of the FastSAM README were not hashed anywhere we found and may
# differ (they would then need --trust-checkpoint).
_SHA_SOURCE = "data-juicer's model lock and other projects pinning the Ultralytics assets"

FASTSAM_S = ModelSpec(
    name="fastsam-s",
    summary="FastSAM-s (YOLOv8-s-seg, 11.8M params; segment everything, the prompt selects a mask)",
    build=partial(_build, "fastsam-s", "s"),
    label="FastSAM-s",
    weights=WeightsFile(
        "fastsam-s",
        "FastSAM-s.pt",
        _ULTRALYTICS + "FastSAM-s.pt",
        format="ultralytics",
        size=23_851_578,
        sha256="c9f78716a81c7aff0d608ccc73e1b82ab3aaad86005049f6a92106a0be6d0844",
        sha256_source=_SHA_SOURCE,
        pickled=True,
    ),
    parameters=11_800_000,
    input_size="1024 letterboxed",
    licence="AGPL-3.0 (Ultralytics)",
    verification="Ultralytics' own network; FastSAM's prompt rules tested on hand-built candidates",
)
FASTSAM_X = ModelSpec(
    name="fastsam-x",
    summary="FastSAM-x (YOLOv8-x-seg, 68M params; segment everything, the prompt selects a mask)",
    build=partial(_build, "fastsam-x", "x"),
    label="FastSAM-x",
    weights=WeightsFile(
        "fastsam-x",
        "FastSAM-x.pt",
        _ULTRALYTICS + "FastSAM-x.pt",
        format="ultralytics",
        size=144_972_346,
        sha256="752cadc2828edb1cd4bc4f9eb587100631af06ea2108f4c9ed56df4755701e76",
        sha256_source=_SHA_SOURCE,
        pickled=True,
    ),
    parameters=68_000_000,
    input_size="1024 letterboxed",
    licence="AGPL-3.0 (Ultralytics)",
    verification="Ultralytics' own network; FastSAM's prompt rules tested on hand-built candidates",
)
