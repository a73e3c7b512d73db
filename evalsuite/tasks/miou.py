"""The Table 4 task: prompt each ground-truth instance, score the chosen mask's IoU.

Per image: select instances (crowd / empty-mask filtering, with counts),
build prompts with the pure functions of :mod:`evalsuite.prompts`, call the
runner in batches of prompts, pick one mask per instance and compute its IoU
against the ground truth at original resolution.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from ..data.types import Instance, Sample
from ..errors import InputError
from ..metrics.iou import mask_iou
from ..metrics.miou import InstanceRecord, MIoUEvaluator, size_bucket
from ..models.base import Prediction, Runner
from ..prompts import ann_box, random_clicks, sam_click, tight_box
from .base import Task, TaskContext
from .choice import choose_masks
from .gt import MaskCache, select_instances


class MIoUTask(Task):
    """One mIoU protocol (Table 4): every selected ground-truth instance is prompted and scored."""

    log_name = "instances.jsonl"
    record_type = InstanceRecord

    def __init__(self, protocol, ctx: TaskContext) -> None:
        super().__init__(protocol, ctx)
        if self.options["mask_choice"] == "box_iou" and self.options["prompt"] != "box":
            raise InputError(f"{protocol.name}: mask_choice=box_iou needs box prompts")

    def new_evaluator(self) -> MIoUEvaluator:
        return MIoUEvaluator()

    def run_image(self, runner: Runner, cache: MaskCache) -> tuple[list[InstanceRecord], Counter]:
        """Score every selected instance of the image currently set on ``runner``."""
        gt = select_instances(cache, self.options["include_crowd"], skip_bad=self.ctx.skip_bad)
        records: list[InstanceRecord] = []
        stats = Counter(gt.skipped)
        for start in range(0, len(gt.instances), self.ctx.prompt_batch):
            chunk = slice(start, start + self.ctx.prompt_batch)
            records += self._run_chunk(runner, cache.sample, gt.instances[chunk], gt.masks[chunk], stats)
        return records, stats

    # -- prompts ---------------------------------------------------------------------------------
    def _boxes(self, sample: Sample, instances: list[Instance], masks: np.ndarray) -> np.ndarray:
        if self.options["box_source"] == "tight":
            return np.stack([tight_box(m) for m in masks])
        for inst in instances:
            if not (inst.bbox[2] > 0 and inst.bbox[3] > 0):
                raise InputError(
                    f"{sample.ann_file}: image {sample.image_id}, annotation {inst.ann_id}: "
                    f"bbox {list(inst.bbox)} has a "
                    "non-positive size, so box_source=ann cannot prompt with it",
                    hint="use the default box_source=tight, or fix the annotation",
                )
        return np.stack([ann_box(i.bbox) for i in instances])

    def _random_clicks(
        self, sample: Sample, instances, masks, stats: Counter
    ) -> tuple[np.ndarray, np.ndarray]:
        k = self.options["clicks"]
        points, labels = [], []
        for inst, mask in zip(instances, masks, strict=True):
            n_pix = int(mask.sum())
            pts, lab = random_clicks(mask, min(k, n_pix), self.ctx.seed, sample.image_id, inst.ann_id)
            if n_pix < k:  # fewer pixels than clicks: use them all, repeating the last to fill k
                stats["clicks_repeated"] += 1
                pts = np.concatenate([pts, np.repeat(pts[-1:], k - n_pix, axis=0)])
                lab = np.concatenate([lab, np.repeat(lab[-1:], k - n_pix)])
            points.append(pts)
            labels.append(lab)
        return np.stack(points), np.stack(labels)

    # -- one batch of instances ------------------------------------------------------------------
    def _predict(self, runner: Runner, gt_masks: np.ndarray, **prompts) -> Prediction:
        if runner.uses_ground_truth:
            runner.set_targets(gt_masks)
        return runner.predict(**prompts, multimask=self.options["mask_choice"] != "single")

    def _choose(
        self, pred: Prediction, gt: torch.Tensor, boxes: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Chosen mask index, its IoU with the ground truth and its predicted score, per instance."""
        idx = choose_masks(pred, self.options["mask_choice"], gt=gt, boxes=boxes)
        rows = torch.arange(len(idx), device=idx.device)
        return idx, mask_iou(pred.select(idx), gt), pred.iou_predictions[rows, idx]

    def _run_chunk(
        self, runner: Runner, sample: Sample, instances, masks: np.ndarray, stats
    ) -> list[InstanceRecord]:
        opts = self.options
        boxes = None
        if opts["prompt"] == "box":
            boxes = self._boxes(sample, instances, masks)
            pred = self._predict(runner, masks, boxes=boxes)
            prompts = [{"box": b.tolist()} for b in boxes]
        elif opts["click_rule"] == "random":
            points, labels = self._random_clicks(sample, instances, masks, stats)
            pred = self._predict(runner, masks, points=points, point_labels=labels)
            prompts = [
                {"points": p.tolist(), "labels": lab.tolist()} for p, lab in zip(points, labels, strict=True)
            ]
        else:
            pred, prompts = self._sam_clicks(runner, masks)
        gt = torch.from_numpy(masks).to(pred.device)
        idx, iou, score = (t.tolist() for t in self._choose(pred, gt, boxes))  # one device sync each
        return [
            InstanceRecord(
                image_id=sample.image_id,
                ann_id=inst.ann_id,
                category_id=inst.category_id,
                area=inst.area,
                size=size_bucket(inst.area),
                iou=float(iou[i]),
                prompt=prompts[i],
                mask_index=int(idx[i]),
                score=float(score[i]),
            )
            for i, inst in enumerate(instances)
        ]

    def _sam_clicks(self, runner: Runner, masks: np.ndarray) -> tuple[Prediction, list[dict]]:
        """SAM's iterative rule: each click comes from the error of the prediction with the earlier clicks."""
        n, k = len(masks), self.options["clicks"]
        points = np.zeros((n, 0, 2))
        labels = np.zeros((n, 0), dtype=np.int64)
        current: np.ndarray | None = None
        pred = None
        for _ in range(k):
            if pred is not None:  # the chosen masks so far; the next click is found on the host
                gt = torch.from_numpy(masks).to(pred.device)
                current = pred.select(choose_masks(pred, self.options["mask_choice"], gt=gt)).cpu().numpy()
            new = [sam_click(masks[i], None if current is None else current[i], points[i]) for i in range(n)]
            points = np.concatenate([points, np.array([[xy] for xy, _ in new], dtype=np.float64)], axis=1)
            labels = np.concatenate([labels, np.array([[lab] for _, lab in new], dtype=np.int64)], axis=1)
            pred = self._predict(runner, masks, points=points, point_labels=labels)
        prompts = [
            {"points": p.tolist(), "labels": lab.tolist()} for p, lab in zip(points, labels, strict=True)
        ]
        return pred, prompts
