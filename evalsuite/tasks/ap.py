"""The Table 5 task: each detector box prompts the model; masks are scored with COCO / LVIS AP.

Per image, the detections (highest scores first, at most ``max_dets``) go to the model in one
batched call; the chosen mask of each is RLE-encoded at original resolution and keeps its
detection's score and category. The official evaluators score the collected masks at the end.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from ..data.detections import Detections, load_detections
from ..data.gt import MaskCache
from ..data.masks import segmentation_problem
from ..data.pseudo import is_pseudo
from ..data.values import is_finite_number, is_int, short
from ..errors import InputError, UnsupportedPromptError
from ..fetch import is_official
from ..fetch.boxes import BOX_FILES
from ..metrics.ap import LVISEVAL, evaluator_of
from ..metrics.ap_metric import APMetric
from ..models.base import Prediction, Runner
from ..prompts import xywh_to_xyxy
from ..protocols import Protocol
from ..record import BoxesPart
from .base import Task, TaskContext
from .choice import choose_masks

SKIP_OVER_MAX_DETS = "over_max_dets"
#: predicted masks whose model score (predicted IoU) was NaN or infinite: logged as null, counted
NON_FINITE_MODEL_SCORE = "non_finite_model_score"


@dataclass(frozen=True)
class DetectionRecord:
    """One predicted mask: the detection that prompted it and the mask in COCO results form."""

    image_id: int
    det_id: int  # index of the detection in the detection file
    category_id: int
    score: float  # the detector's score (what AP ranks by)
    box: list[float]  # the xyxy prompt
    segmentation: dict  # compressed RLE, str counts
    mask_index: int
    mask_score: float | None  # the model's predicted IoU of the chosen mask (None: it was NaN / infinite)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DetectionRecord:
        """A logged row, checked: a hand-damaged log must not reach the evaluator. (The RLE's runs, which
        pycocotools would decode past a cut string or leave short, are checked for the whole log at
        once when the run folder reads it: ``RunFolder.load_finished``.)"""
        problem = None
        if not isinstance(data, dict) or set(data) != {f.name for f in fields(cls)}:
            problem = f"fields {sorted(data) if isinstance(data, dict) else type(data).__name__}"
        elif not all(is_int(data[k]) for k in ("image_id", "det_id", "category_id", "mask_index")):
            problem = "ids are not integers"
        elif not is_finite_number(data["score"]) or not (
            data["mask_score"] is None or is_finite_number(data["mask_score"])
        ):
            problem = "scores are not finite numbers"
        elif not (isinstance(data["box"], list) and len(data["box"]) == 4):
            problem = "box is not [x0, y0, x1, y1]"
        elif not (
            isinstance(data["segmentation"], dict) and isinstance(data["segmentation"].get("counts"), str)
        ):
            problem = "segmentation is not a compressed RLE"  # its runs: checked with the log (RunFolder)
        if problem:
            who = (
                f"image {short(data.get('image_id'))}, detection {short(data.get('det_id'))}: "
                if isinstance(data, dict)
                else ""
            )
            raise InputError(
                f"{APTask.log_name}: {who}a logged detection is damaged ({problem})",
                hint=f"delete {APTask.log_name} in the run folder to predict its images again, "
                "or use --overwrite to start over",
            )
        return cls(**data)

    def to_result(self) -> dict[str, Any]:
        """The COCO results-format entry (what the official evaluators read)."""
        return {
            "image_id": self.image_id,
            "category_id": self.category_id,
            "segmentation": self.segmentation,
            "score": self.score,
        }


def encode_masks(masks: np.ndarray) -> list[dict]:
    """Compressed RLEs (str counts) of N×H×W bool masks."""
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def oracle_targets(cache: MaskCache, boxes_xywh: np.ndarray, category_ids: np.ndarray) -> np.ndarray:
    """For the ``oracle`` baseline: per detection, the GT mask of its category whose box overlaps it most.

    Crowd and empty annotations are never targets; a detection with no GT of its category gets an
    empty mask.
    """
    s = cache.sample
    gts = [i for i in s.instances if not i.iscrowd and cache.get(i).any()]
    targets = np.zeros((len(boxes_xywh), s.height, s.width), dtype=bool)
    if not gts or not len(boxes_xywh):
        return targets
    gt_boxes = np.asarray([g.bbox for g in gts], dtype=np.float64)
    ious = mask_utils.iou(boxes_xywh.tolist(), gt_boxes.tolist(), [0] * len(gts))
    gt_cats = np.asarray([g.category_id for g in gts])
    for d in range(len(boxes_xywh)):
        same = np.flatnonzero(gt_cats == category_ids[d])
        if len(same):
            targets[d] = cache.get(gts[same[np.argmax(ious[d, same])]])
    return targets


def _check_ground_truth(reader, image_ids: list[int], family: str, backend: str = "official") -> None:
    """The official evaluators decode the ground truth themselves and do not check it: check it first.

    Before any image is run, naming the annotation file: the keys ``COCOeval`` / ``LVISEval`` (and
    faster-coco-eval) read — every annotation's ``area`` (finite, >= 0: it sorts instances into the
    S/M/L ranges) and id (not 0, which the evaluators' matching reads as "unmatched"; not negative,
    nor a negative image id, with faster-coco-eval), and for LVIS every image's ``neg_category_ids``
    and ``not_exhaustive_category_ids`` (lists of category ids) and every category's ``frequency``
    (r, c or f) — and the segmentations of the evaluated images. Unlike the mIoU protocols, bad
    ground truth cannot be skipped here (that would change the benchmark).
    """
    path = reader.ann_file
    data = reader.evaluator_gt()
    hint = "the AP protocols score the ground truth as it is; fix the annotation file"
    if evaluator_of(family) == LVISEVAL:
        for cat in data["categories"]:
            if cat.get("frequency") not in ("r", "c", "f"):
                what = f"has frequency {short(cat['frequency'])}" if "frequency" in cat else "lacks frequency"
                raise InputError(
                    f"{path}: category {cat['id']} {what}: the LVIS evaluator needs r, c or f "
                    "(for APr/APc/APf)",
                    hint="is this a COCO file? use a protocol of a COCO-format dataset; else " + hint,
                )
        for img in data["images"]:
            for key in ("neg_category_ids", "not_exhaustive_category_ids"):
                ids = img.get(key)
                if ids is None:
                    raise InputError(
                        f"{path}: image {img['id']} lacks {key} (the LVIS evaluator needs it)", hint=hint
                    )
                if not (isinstance(ids, list) and all(is_int(c) for c in ids)):
                    raise InputError(
                        f"{path}: image {img['id']}: {key} {short(ids)} is not a list of category ids",
                        hint=hint,
                    )
    for ann in data["annotations"]:
        if ann["id"] == 0:
            raise InputError(
                f"{path}: annotation id 0 (image {ann['image_id']}): the AP evaluators record a match by "
                "the ground truth's id and read 0 as 'no match', so this annotation would count as missed",
                hint="renumber the annotations from 1 (ids 0 are only fine for the mIoU protocols)",
            )
        if backend == "faster" and (ann["id"] < 0 or ann["image_id"] < 0):
            what = f"image id {ann['image_id']}" if ann["image_id"] < 0 else f"annotation id {ann['id']}"
            raise InputError(
                f"{path}: {what} is negative: faster-coco-eval fails on negative image ids and never "
                "matches annotations with negative ids",
                hint="use --ap-backend official (pycocotools / lvis score them correctly)",
            )
        if "area" not in ann:
            raise InputError(
                f"{path}: annotation {ann['id']} (image {ann['image_id']}) lacks area "
                "(the AP evaluators sort instances into S/M/L by it)",
                hint=hint,
            )
        if ann["area"] < 0:  # a finite number: checked by the reader
            raise InputError(
                f"{path}: annotation {ann['id']} (image {ann['image_id']}) has a negative area {ann['area']}",
                hint=hint,
            )
    wanted = set(image_ids)
    sizes = {img["id"]: (img["height"], img["width"]) for img in data["images"]}
    for ann in data["annotations"]:
        if ann["image_id"] in wanted:
            problem = segmentation_problem(ann["segmentation"], *sizes[ann["image_id"]])
            if problem:
                raise InputError(
                    f"{path}: image {ann['image_id']}, annotation {ann['id']}: bad segmentation ({problem})",
                    hint=hint,
                )


class APTask(Task):
    """One detector-box protocol (Table 5)."""

    log_name = "detections.jsonl"
    record_type = DetectionRecord
    primary_metric = APMetric

    def __init__(self, protocol: Protocol, ctx: TaskContext) -> None:
        super().__init__(protocol, ctx)
        if self.options["mask_choice"] == "oracle":
            raise InputError(f"{protocol.name}: mask_choice=oracle needs ground truth per prompt; not for AP")
        if ctx.boxes is None:
            raise InputError(
                f"{protocol.name} needs detections: pass --boxes FILE (COCO results format)",
                hint="`evalsuite download boxes " + protocol.name + "` fetches the published ViTDet-H boxes; "
                "`evalsuite make-boxes` writes pseudo-detections for the sample",
            )
        reader = ctx.reader
        _check_ground_truth(reader, ctx.image_ids, protocol.dataset, ctx.ap_backend)
        sizes = {img["id"]: (img["height"], img["width"]) for img in reader.evaluator_gt()["images"]}
        self.detections: Detections = load_detections(
            ctx.boxes,
            set(reader.image_ids()),
            set(reader.categories),
            skip_bad=ctx.skip_bad,
            image_sizes=sizes,
        )

    @classmethod
    def check_runner(cls, protocol: Protocol, runner: Runner) -> None:
        super().check_runner(protocol, runner)
        if protocol.options.get("refine") and not runner.takes_mask_prompt:
            raise UnsupportedPromptError(
                f"model {runner.name!r} takes no mask prompt, so it cannot do the refinement iteration "
                f"(refine=1) of {protocol.name}",
                hint="drop --set refine=1 (the models that take a mask prompt support it: SAM, MobileSAM, "
                "EfficientViT-SAM, SAM 2.1)",
            )

    def fingerprint(self) -> dict[str, Any]:
        return {"boxes_sha256": self.detections.sha256}

    def boxes(self) -> BoxesPart:
        """The detection file and what it is: the published ViTDet-H file, `make-boxes` output, or other."""
        d = self.detections
        kind, label = "other", ""
        published = BOX_FILES.get(self.protocol.name)
        if published is not None and is_official(published, d.sha256):
            kind, label = "official", published.detector
        elif is_pseudo(d.path, d.sha256):
            kind = "pseudo"
        return BoxesPart(str(d.path), d.sha256, d.total, kind, label)

    def initial_skips(self) -> Counter:
        return Counter(self.detections.skipped)

    def own_metric(self) -> APMetric:
        return APMetric(
            family=self.protocol.dataset,
            gt=self.ctx.reader.evaluator_gt(),
            image_ids=self.ctx.image_ids,
            backend=self.ctx.ap_backend,
        )

    def run_image(self, runner: Runner, cache: MaskCache) -> tuple[list[DetectionRecord], Counter]:
        stats: Counter = Counter()
        dets, cut = self.detections.for_image(cache.sample.image_id).top(self.options["max_dets"])
        if cut:
            stats[SKIP_OVER_MAX_DETS] += cut
        if not len(dets):
            return [], stats
        boxes = xywh_to_xyxy(dets.boxes_xywh)
        if runner.uses_ground_truth:
            runner.set_targets(oracle_targets(cache, dets.boxes_xywh, dets.category_ids))
        pred = runner.predict(boxes=boxes, multimask=self.options["mask_choice"] != "single")
        idx = choose_masks(pred, self.options["mask_choice"], boxes=boxes)
        if self.options["refine"]:
            pred, idx = self._refine(runner, boxes, pred, idx)
        rows = torch.arange(len(idx), device=idx.device)
        masks = pred.select(idx).cpu().numpy()
        mask_scores = [
            v if math.isfinite(v) else None for v in pred.iou_predictions[rows, idx].float().cpu().tolist()
        ]
        if non_finite := mask_scores.count(None):
            stats[NON_FINITE_MODEL_SCORE] += non_finite
        idx_np = idx.cpu().numpy()
        s = cache.sample
        return [
            DetectionRecord(
                image_id=s.image_id,
                det_id=int(dets.det_ids[i]),
                category_id=int(dets.category_ids[i]),
                score=float(dets.scores[i]),
                box=boxes[i].tolist(),
                segmentation=rle,
                mask_index=int(idx_np[i]),
                mask_score=mask_scores[i],
            )
            for i, rle in enumerate(encode_masks(masks))
        ], stats

    def _refine(self, runner: Runner, boxes: np.ndarray, pred: Prediction, idx: torch.Tensor):
        """SAM's refinement iteration: the chosen mask's low-res logits go back in with the same box."""
        if pred.low_res_logits is None:
            raise InputError(f"model {runner.name!r} returns no low-res logits; refine=1 is impossible")
        rows = torch.arange(len(idx), device=idx.device)
        mask_input = pred.low_res_logits[rows, idx][:, None]
        refined = runner.predict(boxes=boxes, mask_input=mask_input, multimask=False)
        return refined, torch.zeros_like(idx)
