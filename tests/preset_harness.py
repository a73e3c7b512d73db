"""The peers' per-image evaluation loops, re-implemented from their published code, and one fake model.

Each ``*_loop`` below is written from reading the peer's evaluation script (file, lines and commit in its
docstring; facts only, no code copied) and reads the sample the way that script reads its data: the
annotation JSON through pycocotools, the image for its size. :class:`FakeSam` is a deterministic stand-in
for a SAM predictor (``set_image`` / ``predict(point_coords, point_labels, box, multimask_output)``): its
masks and scores are functions of the prompt alone, so a box one pixel wider, another click or another
output choice changes the numbers. :class:`FakeRunner` is the same model behind evalsuite's Runner
interface. tests/test_presets.py runs both sides and compares; ``python tests/preset_harness.py`` prints
the table of docs/presets.md (what each convention moves on the sample).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_util
from scipy import ndimage

from evalsuite.models.base import Prediction, Runner

SMALL, LARGE = 32**2, 96**2
#: the grow (pixels) of each output: token 0 (the single-output token), then tokens 1..3 (multimask)
_SINGLE_GROW = 1
_MULTI_GROW = (-2, 0, 3)


SAMPLE = Path(str(resources.files("evalsuite.data.sample_data")))


def sample_files() -> tuple[Path, Path]:
    """The bundled COCO sample's annotation file and image folder (as a peer would be pointed at them)."""
    return SAMPLE / "annotations" / "instances_val2017.json", SAMPLE / "val2017"


def loose_boxes(folder: Path) -> Path:
    """A copy of the COCO sample whose annotation boxes are looser than the masks' (x - 1.3, y - 0.6,
    w + 2.9, h + 1.7): the sample's own boxes are exactly its masks' pycocotools boxes, so on it the
    annotation box and the tight box prompt alike; real COCO boxes are polygon extents and differ."""
    data = json.loads(sample_files()[0].read_text())
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        a["bbox"] = [x - 1.3, y - 0.6, w + 2.9, h + 1.7]
    path = folder / "instances_loose_boxes.json"
    path.write_text(json.dumps(data))
    return path


# -- the fake model ---------------------------------------------------------------------------------------
def _prompt_key(points: np.ndarray | None, labels: np.ndarray | None, box: np.ndarray | None) -> int:
    key = 17
    for arr in (box, points, labels):
        if arr is not None:
            for v in np.asarray(arr, dtype=np.float64).ravel():
                key = (key * 1_000_003 + round(2 * float(v)) + 7) % 2_147_483_647
    return key


class FakeSam:
    """Masks and scores from the prompt alone: the box's pixels (pixel centres inside it, grown) and/or
    discs around the clicks (radius 12, grown; negative clicks cut a disc of 8); scores: a prompt hash."""

    def set_image(self, image: np.ndarray) -> None:
        self.h, self.w = image.shape[:2]

    def _mask(self, points, labels, box, grow: int) -> np.ndarray:
        rows, cols = np.arange(self.h)[:, None], np.arange(self.w)[None, :]
        out = np.ones((self.h, self.w), dtype=bool)
        if box is not None:
            x0, y0, x1, y1 = (float(v) for v in box)
            out &= (cols >= x0 - grow) & (cols <= x1 + grow) & (rows >= y0 - grow) & (rows <= y1 + grow)
        if points is not None and len(points):
            discs = np.zeros_like(out)
            for (x, y), lab in zip(points, labels, strict=True):
                d2 = (cols - float(x)) ** 2 + (rows - float(y)) ** 2
                if lab == 1:
                    discs |= d2 <= (12 + grow) ** 2
            for (x, y), lab in zip(points, labels, strict=True):
                if lab != 1:
                    discs &= (cols - float(x)) ** 2 + (rows - float(y)) ** 2 > 8**2
            out &= discs
        return out

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True):
        grows = _MULTI_GROW if multimask_output else (_SINGLE_GROW,)
        masks = np.stack([self._mask(point_coords, point_labels, box, g) for g in grows])
        key = _prompt_key(point_coords, point_labels, box)
        offset = 0 if multimask_output else 500
        scores = np.array([((key * 2654435761 + 97 * j + offset) % 1009) / 1009 for j in range(len(grows))])
        return masks, scores, None


class FakeRunner(Runner):
    """:class:`FakeSam` behind evalsuite's Runner interface (one predict call per prompt)."""

    name = "fake-sam"

    def __init__(self) -> None:
        self.sam = FakeSam()

    def set_image(self, image: np.ndarray) -> None:
        self.sam.set_image(image)

    def predict(
        self, boxes=None, points=None, point_labels=None, multimask=True, mask_input=None
    ) -> Prediction:
        self.refuse_mask_input(mask_input)
        n = len(boxes) if boxes is not None else len(points)
        outs = [
            self.sam.predict(
                None if points is None else points[i],
                None if point_labels is None else point_labels[i],
                None if boxes is None else boxes[i],
                multimask,
            )
            for i in range(n)
        ]
        masks = torch.from_numpy(np.stack([m for m, _, _ in outs]))
        scores = torch.from_numpy(np.stack([s for _, s, _ in outs])).float()
        return Prediction(masks=masks, iou_predictions=scores)


# -- reading the data as the peers do ----------------------------------------------------------------------
def _images(ann_file: Path, image_dir: Path) -> list[tuple[dict, np.ndarray, list[dict]]]:
    data = json.loads(ann_file.read_text())
    by_image: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    out = []
    for img in sorted(data["images"], key=lambda i: i["id"]):
        name = img.get("file_name") or "/".join(img["coco_url"].split("/")[-2:])
        path = image_dir / name
        image = np.asarray(Image.open(path).convert("RGB"))
        out.append((img, image, by_image.get(img["id"], [])))
    return out


def _decode(ann: dict, h: int, w: int) -> np.ndarray:
    """pycocotools: polygons merged, an uncompressed RLE converted (EfficientViT-SAM's ann_to_mask, EV
    29-40). That function raises on a compressed RLE; real COCO stores crowd masks uncompressed, the sample
    one of its three compressed, so here a compressed RLE is decoded as it stands (pycocotools' annToRLE)."""
    seg = ann["segmentation"]
    if isinstance(seg, list):
        rle = mask_util.merge(mask_util.frPyObjects(seg, h, w))
    elif isinstance(seg["counts"], list):
        rle = mask_util.frPyObjects(seg, h, w)
    else:
        rle = {"size": seg["size"], "counts": seg["counts"].encode()}
    return mask_util.decode(rle) > 0


# -- EfficientViT-SAM ---------------------------------------------------------------------------------------
def _ev_iou(a: np.ndarray, b: np.ndarray) -> float:
    """sam_eval_utils.iou (EU 19-22): count(a & b) / (count(a | b) + 1e-7) × 100."""
    return float(np.count_nonzero(a & b) / (np.count_nonzero(a | b) + 1e-7)) * 100


def _ev_next_click(gt, pred, not_clicked) -> tuple[tuple[int, int], bool]:
    """The RITM clicker as EfficientViT-SAM copies it (EU 164-190): FN / FP padded by one pixel, OpenCV's
    exact L2 distance (float32), × the not-clicked map, positive iff max FN > max FP, the first pixel in
    row-major order at the maximum."""
    fn = np.pad(gt & ~pred, 1)
    fp = np.pad(~gt & pred, 1)
    fn_dt = cv2.distanceTransform(fn.astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1] * not_clicked
    fp_dt = cv2.distanceTransform(fp.astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1] * not_clicked
    positive = bool(fn_dt.max() > fp_dt.max())
    dt = fn_dt if positive else fp_dt
    ys, xs = np.where(dt == dt.max())
    return (int(ys[0]), int(xs[0])), positive


def efficientvit_loop(
    model: FakeSam, prompt: str, num_click: int = 1, ann_file: Path | None = None
) -> dict[tuple[int, int], dict]:
    """eval_efficientvit_sam_model.py run_box / run_point (EV 128-195) on the COCO sample: every image,
    every annotation with area >= 1 (crowd kept), the annotation box xywh → xyxy (no +1), multimask output
    and the argmax-score mask, for points the clicker from an empty prediction, the last round's IoU."""
    out: dict[tuple[int, int], dict] = {}
    for img, image, anns in _images(ann_file or sample_files()[0], sample_files()[1]):
        model.set_image(image)
        for ann in anns:
            if ann["area"] < 1:
                continue
            gt = _decode(ann, image.shape[0], image.shape[1])
            if prompt == "box":
                x, y, w, h = ann["bbox"]
                masks, scores, _ = model.predict(box=np.array([x, y, x + w, y + h]), multimask_output=True)
                pred = masks[scores.argmax()]
            else:
                not_clicked = np.ones_like(gt, dtype=bool)
                pred = np.zeros_like(gt)
                coords, labels = [], []
                for _ in range(num_click):
                    (r, c), positive = _ev_next_click(gt, pred, not_clicked)
                    not_clicked[r, c] = False
                    coords.append((c, r))
                    labels.append(int(positive))
                    masks, scores, _ = model.predict(np.array(coords, float), np.array(labels), None, True)
                    pred = masks[scores.argmax()]
            out[(img["id"], ann["id"])] = {"area": ann["area"], "iou": _ev_iou(pred, gt)}
    return out


def efficientvit_summary(results: dict[tuple[int, int], dict]) -> dict[str, float]:
    """get_iou_metric (EU 25-46): the mean, and by area with both bounds inclusive (buckets overlap)."""
    rows = list(results.values())

    def mean(sel):
        return sum(r["iou"] for r in sel) / len(sel) if sel else float("nan")

    return {
        "all": mean(rows),
        "small": mean([r for r in rows if r["area"] <= SMALL]),
        "medium": mean([r for r in rows if SMALL <= r["area"] <= LARGE]),
        "large": mean([r for r in rows if r["area"] >= LARGE]),
    }


# -- EdgeSAM ------------------------------------------------------------------------------------------------
def _edgesam_centre(gt: np.ndarray) -> tuple[float, float]:
    """get_centroid_from_mask (EU2 240-250): the argmax of the distance transform of the inverted,
    one-pixel-zero-padded mask, as (x, y). REPLACED here: kornia's approximate transform at the 1024 scale
    by the exact Euclidean transform (scipy) at the original size — what evalsuite's centre rule computes."""
    dt = ndimage.distance_transform_edt(np.pad(gt, 1))[1:-1, 1:-1]
    r, c = divmod(int(dt.argmax()), gt.shape[1])
    return float(c), float(r)


def edgesam_loop(model: FakeSam, prompt: str, ann_file: Path | None = None) -> dict[tuple[int, int], float]:
    """eval_mIoU.py (EE 290-330, 429-472; coco_dataset.py EC 63-65, 108-110) on the COCO sample: crowd
    annotations dropped, the annotation box xywh → xyxy, one output (mask token 0: num_multimask_outputs
    1), ``--point-from mask-center`` for points; IoU = inter / union per instance, NaN (empty union)
    dropped. REPLACED here: the ground truth's resize round trip (nearest → 1024, bilinear back, > 0) and
    the image resize — the IoU is against the annotation at its own size."""
    out: dict[tuple[int, int], float] = {}
    for img, image, anns in _images(ann_file or sample_files()[0], sample_files()[1]):
        model.set_image(image)
        for ann in anns:
            if ann.get("iscrowd"):
                continue
            gt = _decode(ann, image.shape[0], image.shape[1])
            if prompt == "box":
                x, y, w, h = ann["bbox"]
                masks, _, _ = model.predict(box=np.array([x, y, x + w, y + h]), multimask_output=False)
            else:
                masks, _, _ = model.predict(np.array([_edgesam_centre(gt)]), np.array([1]), None, False)
            union = np.count_nonzero(masks[0] | gt)
            if union:
                out[(img["id"], ann["id"])] = np.count_nonzero(masks[0] & gt) / union
    return out


# -- SAM-HQ -------------------------------------------------------------------------------------------------
def _hq_box(gt: np.ndarray) -> np.ndarray:
    """misc.masks_to_boxes (HM 375-401): [x_min, y_min, x_max, y_max] of the mask's pixels, max inclusive.
    REPLACED here: computed on the label at its own size (SAM-HQ: on the label squashed to 1024×1024)."""
    ys, xs = np.nonzero(gt)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)


def _hq_boundary(mask: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    """misc.mask_to_boundary (HM 497-520), as SAM-HQ computes it on the whole image."""
    h, w = mask.shape
    d = max(1, round(float(ratio * np.sqrt(h**2 + w**2))))
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), dtype=np.uint8), iterations=d)[1 : h + 1, 1 : w + 1]
    return mask.astype(np.uint8) - eroded


def samhq_loop(model: FakeSam) -> dict[tuple[int, int], tuple[float, float]]:
    """train.py --eval (HT 502-585) with each COCO-sample instance as one of its single-object images:
    the box from the mask, one output of the HQ token alone (``multimask_output=False``; the fake model has
    no second token, so hq_token_only selects nothing here), IoU and boundary IoU of ``pred > 0`` against
    the ground truth (misc.mask_iou, misc.boundary_iou). REPLACED here: the 1024×1024 squashed input and
    label (the model is prompted at the original size). Crowd annotations are dropped (not images of SAM-HQ's
    datasets)."""
    out: dict[tuple[int, int], tuple[float, float]] = {}
    for img, image, anns in _images(*sample_files()):
        model.set_image(image)
        for ann in anns:
            if ann.get("iscrowd"):
                continue
            gt = _decode(ann, image.shape[0], image.shape[1])
            masks, _, _ = model.predict(box=_hq_box(gt), multimask_output=False)
            pred = masks[0]
            iou = np.count_nonzero(pred & gt) / np.count_nonzero(pred | gt)
            bp, bg = _hq_boundary(pred), _hq_boundary(gt)
            biou = ((bp * bg) > 0).sum() / ((bp + bg) > 0).sum()
            out[(img["id"], ann["id"])] = (float(iou), float(biou))
    return out


# -- the table of docs/presets.md ---------------------------------------------------------------------------
def _measure(protocol: str, options: dict[str, Any] | None = None, preset: str | None = None) -> dict:
    import evalsuite

    res = evalsuite.evaluate(
        FakeRunner(),
        protocol,
        data="sample",
        name="fake-sam",
        version="1",
        options=options,
        preset=preset,
        progress=False,
        workers=0,
    )
    r = res.records[0]
    return {**r.metrics, "n": r.counts.instances}


def convention_table() -> str:
    """What each convention moves on the COCO sample with the fake model (mIoU and its size buckets)."""
    rows = [
        ("coco-box", None, None, "as shipped (tight box, crowd out, argmax score, COCO buckets)"),
        ("coco-box", {"box_source": "ann"}, None, "box_source=ann (EfficientViT-SAM, EdgeSAM)"),
        ("coco-box", {"box_source": "tight_inclusive"}, None, "box_source=tight_inclusive (SAM-HQ)"),
        ("coco-box", {"include_crowd": True}, None, "include_crowd=true (EfficientViT-SAM)"),
        ("coco-box", {"mask_choice": "single"}, None, "mask_choice=single (EdgeSAM, SAM-HQ)"),
        ("coco-box", {"size_buckets": "inclusive"}, None, "size_buckets=inclusive (EfficientViT-SAM)"),
        ("coco-box", {"empty_mask": "zero", "box_source": "ann"}, None, "empty_mask=zero (EfficientViT-SAM)"),
        ("coco-box", None, "efficientvit-sam", "--preset efficientvit-sam"),
        ("coco-box", None, "edgesam", "--preset edgesam"),
        ("coco-box", None, "sam-hq", "--preset sam-hq"),
        ("coco-1click", None, None, "as shipped (1 random click)"),
        ("coco-1click", {"click_rule": "sam"}, None, "click_rule=sam (EfficientViT-SAM)"),
        ("coco-1click", {"click_rule": "center"}, None, "click_rule=center (EdgeSAM's mask-center)"),
        ("coco-1click", {"click_rule": "box_center"}, None, "click_rule=box_center"),
        ("coco-1click", None, "efficientvit-sam", "--preset efficientvit-sam"),
        ("coco-1click", None, "edgesam", "--preset edgesam"),
        ("coco-3click", None, None, "as shipped (3 random clicks)"),
        ("coco-3click", {"click_rule": "sam"}, None, "click_rule=sam (EfficientViT-SAM --num_click 3)"),
        ("coco-box", {"box_click_rule": "random", "box_clicks": 1}, None, "box + 1 random click"),
    ]
    lines = [
        "| protocol | convention | instances | mIoU | mIoU_S | mIoU_M | mIoU_L |",
        "|---|---|---|---|---|---|---|",
    ]
    for proto, opts, preset, what in rows:
        m = _measure(proto, opts, preset)
        cells = [
            f"{m[k]:.2f}" if m.get(k) is not None else "–" for k in ("mIoU", "mIoU_S", "mIoU_M", "mIoU_L")
        ]
        lines.append(f"| {proto} | {what} | {m['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(convention_table())
