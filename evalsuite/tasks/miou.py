"""The Table 4 task: prompt each ground-truth instance, score the chosen mask's IoU.

Per image: select instances (crowd / empty-mask filtering, with counts),
build prompts with the pure functions of :mod:`evalsuite.prompts`, call the
runner in batches of prompts, pick one mask per instance and compute its IoU
against the ground truth at original resolution.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from ..data.masks import decode_segmentation
from ..data.types import Instance, Sample
from ..errors import InputError, UnsupportedPromptError
from ..metrics.iou import mask_iou
from ..metrics.miou import InstanceRecord, size_bucket
from ..models.base import PROMPT_BOX, PROMPT_POINTS, Prediction, Runner
from ..prompts import ann_box, random_clicks, sam_click, tight_box
from ..protocols import Protocol

SKIP_CROWD = "crowd"
SKIP_EMPTY = "empty_mask"


@dataclass
class GroundTruth:
    """The instances of one image kept for scoring, with their decoded masks."""

    instances: list[Instance]
    masks: np.ndarray  # K×H×W bool
    skipped: Counter


class MaskCache:
    """Decodes each annotation of an image once, shared by all protocols run on it."""

    def __init__(self, sample: Sample) -> None:
        self.sample = sample
        self._masks: dict[int, np.ndarray] = {}

    def get(self, inst: Instance) -> np.ndarray:
        if inst.ann_id not in self._masks:
            try:
                self._masks[inst.ann_id] = decode_segmentation(
                    inst.segmentation, self.sample.height, self.sample.width
                )
            except Exception as e:  # pycocotools raises bare exceptions on malformed input
                raise InputError(
                    f"image {self.sample.image_id}, annotation {inst.ann_id}: "
                    f"cannot decode segmentation ({e})",
                    hint="the annotation file is malformed",
                ) from None
        return self._masks[inst.ann_id]


def select_instances(cache: MaskCache, include_crowd: bool) -> GroundTruth:
    """Instances to score: crowd excluded unless asked for, empty masks dropped; counts by reason."""
    kept, masks, skipped = [], [], Counter()
    for inst in cache.sample.instances:
        if inst.iscrowd and not include_crowd:
            skipped[SKIP_CROWD] += 1
            continue
        mask = cache.get(inst)
        if not mask.any():
            skipped[SKIP_EMPTY] += 1
            continue
        kept.append(inst)
        masks.append(mask)
    h, w = cache.sample.height, cache.sample.width
    stacked = np.stack(masks) if masks else np.zeros((0, h, w), dtype=bool)
    return GroundTruth(kept, stacked, skipped)


class MIoUTask:
    """One mIoU protocol bound to a run seed."""

    def __init__(self, protocol: Protocol, seed: int, prompt_batch: int = 64) -> None:
        self.protocol = protocol
        self.options = protocol.options
        self.seed = seed
        self.prompt_batch = prompt_batch

    @property
    def prompt_kind(self) -> str:
        return PROMPT_BOX if self.options["prompt"] == "box" else PROMPT_POINTS

    def check_runner(self, runner: Runner) -> None:
        """Refuse, before any work, a model that cannot take this protocol's prompts."""
        if self.prompt_kind not in runner.prompt_kinds:
            raise UnsupportedPromptError(
                f"model {runner.name!r} does not take {self.prompt_kind} prompts, which protocol "
                f"{self.protocol.name} needs",
                hint=f"it takes: {', '.join(sorted(runner.prompt_kinds))}",
            )

    def run_image(self, runner: Runner, cache: MaskCache) -> tuple[list[InstanceRecord], Counter]:
        """Score every selected instance of the image currently set on ``runner``."""
        gt = select_instances(cache, self.options["include_crowd"])
        records: list[InstanceRecord] = []
        stats = Counter(gt.skipped)
        for start in range(0, len(gt.instances), self.prompt_batch):
            chunk = slice(start, start + self.prompt_batch)
            records += self._run_chunk(runner, cache.sample, gt.instances[chunk], gt.masks[chunk], stats)
        return records, stats

    # -- prompts ---------------------------------------------------------------------------------
    def _boxes(self, instances: list[Instance], masks: np.ndarray) -> np.ndarray:
        if self.options["box_source"] == "tight":
            return np.stack([tight_box(m) for m in masks])
        return np.stack([ann_box(i.bbox) for i in instances])

    def _random_clicks(
        self, sample: Sample, instances, masks, stats: Counter
    ) -> tuple[np.ndarray, np.ndarray]:
        k = self.options["clicks"]
        points, labels = [], []
        for inst, mask in zip(instances, masks, strict=True):
            n_pix = int(mask.sum())
            pts, lab = random_clicks(mask, min(k, n_pix), self.seed, sample.image_id, inst.ann_id)
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

    def _choose(self, pred: Prediction, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Chosen mask index, its IoU with the ground truth and its predicted score, per instance."""
        masks = pred.masks
        if self.options["mask_choice"] == "oracle":
            ious = mask_iou(masks, gt[:, None].expand_as(masks))
            idx = ious.argmax(dim=1)
        else:  # "score": argmax predicted IoU ("single" has one output, so index 0)
            idx = pred.iou_predictions.argmax(dim=1)
        rows = torch.arange(len(idx), device=idx.device)
        chosen = masks[rows, idx]
        return idx, mask_iou(chosen, gt), pred.iou_predictions[rows, idx]

    def _run_chunk(
        self, runner: Runner, sample: Sample, instances, masks: np.ndarray, stats
    ) -> list[InstanceRecord]:
        opts = self.options
        if opts["prompt"] == "box":
            boxes = self._boxes(instances, masks)
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
        gt = torch.from_numpy(masks).to(pred.masks.device)
        idx, iou, score = self._choose(pred, gt)
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
            new = [sam_click(masks[i], None if current is None else current[i], points[i]) for i in range(n)]
            points = np.concatenate([points, np.array([[xy] for xy, _ in new], dtype=np.float64)], axis=1)
            labels = np.concatenate([labels, np.array([[lab] for _, lab in new], dtype=np.int64)], axis=1)
            pred = self._predict(runner, masks, points=points, point_labels=labels)
            idx, _, _ = self._choose(pred, torch.from_numpy(masks).to(pred.masks.device))
            current = pred.masks[torch.arange(n), idx].cpu().numpy()
        prompts = [
            {"points": p.tolist(), "labels": lab.tolist()} for p, lab in zip(points, labels, strict=True)
        ]
        return pred, prompts
