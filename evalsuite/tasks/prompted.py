"""Tasks that prompt every ground-truth instance (mIoU, NoC): instance selection, batches, rounds.

Per image: select instances (crowd / empty-mask filtering, with counts), take them in batches of
``prompt_batch``, and run the protocol's prompt strategy round by round: the model is prompted,
one output per instance is chosen by the protocol's ``mask_choice``, and an iterative strategy
(the SAM clicker) places its next clicks from that choice.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..data.gt import SKIP_BAD_ANNOTATION, GroundTruth, MaskCache, select_instances
from ..data.masks import coordinate_bounds
from ..data.types import Instance, Sample
from ..errors import InputError
from ..models.base import Prediction, Runner
from ..prompts.strategies import PromptInput, PromptSet, PromptStrategy, strategy_for
from ..protocols import Protocol
from .base import Task, TaskContext
from .choice import choose_masks

#: instances whose chosen output had a NaN or infinite predicted score (a damaged checkpoint, an
#: overflow in low precision): the score is logged as null and counted; the IoU, computed from the
#: masks, is always finite and is scored as usual
NON_FINITE_MODEL_SCORE = "non_finite_model_score"


class Round:
    """One round of prompting a batch of instances: the prompts, the prediction and the chosen outputs."""

    def __init__(self, prompts: PromptSet, pred: Prediction, index: torch.Tensor) -> None:
        self.prompts = prompts
        self.pred = pred
        self.index = index  # chosen output per instance (N)
        self._chosen: torch.Tensor | None = None

    @property
    def chosen(self) -> torch.Tensor:
        """The chosen full-size masks (N×H×W bool), made once (a lazy prediction upscales only these)."""
        if self._chosen is None:
            self._chosen = self.pred.select(self.index)
        return self._chosen


class PromptedTask(Task):
    """The shared part of the per-instance protocols; subclasses turn rounds into records."""

    def __init__(self, protocol: Protocol, ctx: TaskContext) -> None:
        super().__init__(protocol, ctx)
        self.strategy: PromptStrategy = strategy_for(protocol.options)
        if self.options["mask_choice"] == "box_iou" and self.options["prompt"] != "box":
            raise InputError(f"{protocol.name}: mask_choice=box_iou needs box prompts")

    def run_image(self, runner: Runner, cache: MaskCache) -> tuple[list, Counter]:
        gt = select_instances(cache, self.options["include_crowd"], skip_bad=self.ctx.skip_bad)
        if self.options.get("prompt") == "box" and self.options.get("box_source") == "ann":
            gt = self._usable_ann_boxes(cache.sample, gt)
        records: list = []
        stats = Counter(gt.skipped)
        s = cache.sample
        for start in range(0, len(gt.instances), self.ctx.prompt_batch):
            chunk = slice(start, start + self.ctx.prompt_batch)
            inp = PromptInput(
                s.image_id,
                self.ctx.seed,
                gt.instances[chunk],
                gt.masks[chunk],
                str(s.ann_file) if s.ann_file else None,
            )
            records += self.records(s, inp, self.rounds(runner, inp, stats))
        if non_finite := sum(1 for r in records if r.score is None):
            stats[NON_FINITE_MODEL_SCORE] += non_finite
        return records, stats

    def _usable_ann_boxes(self, sample: Sample, gt: GroundTruth) -> GroundTruth:
        """With ``box_source=ann`` the annotation's bbox is the prompt: it must have a positive size and
        lie within [-W, 2W] × [-H, 2H] of the image (a box at 3e8 is no prompt any model was trained
        on). Refused with one line, or skipped and counted (``bad_annotation``) with ``--skip-bad``."""
        x0, x1, y0, y1 = coordinate_bounds(sample.height, sample.width)
        keep = []
        for k, inst in enumerate(gt.instances):
            x, y, w, h = inst.bbox
            if not (w > 0 and h > 0):
                problem = "has a non-positive size, so box_source=ann cannot prompt with it"
            elif not (x0 <= x and x + w <= x1 and y0 <= y and y + h <= y1):
                problem = (
                    f"reaches far outside the {sample.width}x{sample.height} (WxH) image "
                    f"(a prompt box must lie within [{x0:g}, {x1:g}] x [{y0:g}, {y1:g}])"
                )
            else:
                keep.append(k)
                continue
            if not self.ctx.skip_bad:
                where = f"{sample.ann_file}: " if sample.ann_file else ""
                raise InputError(
                    f"{where}image {sample.image_id}, annotation {inst.ann_id}: "
                    f"bbox {list(inst.bbox)} {problem}",
                    hint="use the default box_source=tight, fix the annotation, "
                    "or pass --skip-bad to skip such annotations (counted)",
                )
            gt.skipped[SKIP_BAD_ANNOTATION] += 1
        if len(keep) == len(gt.instances):
            return gt
        return GroundTruth([gt.instances[k] for k in keep], gt.masks[keep], gt.skipped)

    def rounds(self, runner: Runner, inp: PromptInput, stats: Counter) -> Iterator[Round]:
        """Prompt the instances of ``inp`` for every round of the strategy (a generator)."""
        prompts = self.strategy.first(inp, stats)
        last: Round | None = None
        for r in range(self.strategy.rounds):
            if r:
                assert last is not None
                current = last.chosen.cpu().numpy()  # the next clicks are found on the host
                prompts = self.strategy.next(inp, prompts, current)
            if runner.uses_ground_truth:
                runner.set_targets(inp.masks)
            kwargs: dict[str, Any] = prompts.kwargs()
            pred = runner.predict(**kwargs, multimask=self.options["mask_choice"] != "single")
            index = choose_masks(pred, self.options["mask_choice"], gt=inp.masks, boxes=prompts.boxes)
            last = Round(prompts, pred, index)
            yield last

    @abstractmethod
    def records(self, sample: Sample, inp: PromptInput, rounds: Iterator[Round]) -> list[Any]:
        """The per-instance records of one batch, from its rounds (consume them all)."""


def instance_fields(sample: Sample, inst: Instance) -> dict[str, Any]:
    """The identity part every per-instance record shares."""
    from ..metrics.miou import size_bucket

    return {
        "image_id": sample.image_id,
        "ann_id": inst.ann_id,
        "category_id": inst.category_id,
        "area": inst.area,
        "size": size_bucket(inst.area),
    }


def chosen_iou(rnd: Round, masks: np.ndarray) -> tuple[list[int], list[float], list[float | None]]:
    """Chosen output, its IoU with the ground truth and its predicted score, per instance (host lists).

    The IoU is computed where the masks are (:func:`evalsuite.metrics.iou.iou_with_truth`). A NaN or
    infinite predicted score becomes None (JSON has no NaN; the task counts them).
    """
    from ..metrics.iou import iou_with_truth

    iou = iou_with_truth(rnd.chosen, masks)
    index = rnd.index.tolist()
    scores_all = rnd.pred.iou_predictions
    if scores_all.device.type == "cpu":
        table = scores_all.tolist()
        score = [table[i][j] for i, j in enumerate(index)]
    else:
        rows = torch.arange(len(rnd.index), device=rnd.index.device)
        score = scores_all[rows, rnd.index].tolist()
    scores = [v if math.isfinite(v) else None for v in score]
    return index, iou, scores  # one device sync each
