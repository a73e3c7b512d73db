"""Tasks that prompt every ground-truth instance (mIoU, NoC): instance selection, batches, rounds.

Per image: select instances (crowd / empty-mask filtering, with counts), take them in batches of
``prompt_batch``, and run the protocol's prompt rule round by round: the model is prompted, one
output per instance is chosen by the protocol's ``mask_choice``, and an adaptive rule (the SAM
clicker) places its next clicks from that choice. The metrics measure the chosen masks against the
ground truth where the masks are (:meth:`evalsuite.metrics.Metric.measure`); the task writes what they
measured into each instance's record.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..data.gt import SKIP_BAD_ANNOTATION, GroundTruth, MaskCache, select_instances
from ..data.types import Instance, Sample
from ..errors import InputError
from ..metrics.base import MaskBatch, Metric
from ..metrics.miou import size_bucket
from ..models.base import Prediction, Runner
from ..prompts.strategies import KIND_BOX, PromptInput, PromptSet, PromptStrategy, strategy_for
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
        if self.options["mask_choice"] == "box_iou" and KIND_BOX not in self.strategy.kinds:
            raise InputError(f"{protocol.name}: mask_choice=box_iou needs box prompts")
        self.score_empty = self.options.get("empty_mask", "skip") == "zero"
        if self.score_empty and not self.strategy.prompts_empty_masks():
            raise InputError(
                f"{protocol.name}: empty_mask=zero scores empty ground-truth masks, which the prompt rule "
                f"{self.strategy.name!r} with these options cannot prompt",
                hint="use box_source=ann or click_rule=sam (EfficientViT-SAM's), or empty_mask=skip",
            )
        #: the listed metrics other than the task's own, measuring the chosen masks
        self.measurers: list[Metric] = self.measuring_metrics()

    def run_image(self, runner: Runner, cache: MaskCache) -> tuple[list, Counter]:
        gt = select_instances(
            cache, self.options["include_crowd"], skip_bad=self.ctx.skip_bad, score_empty=self.score_empty
        )
        gt = self._promptable(cache.sample, gt)
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

    def _promptable(self, sample: Sample, gt: GroundTruth) -> GroundTruth:
        """The instances the prompt rule can prompt: one it cannot (an annotation box at 3e8 with
        ``box_source=ann``) is refused with one line, or skipped and counted (``bad_annotation``) with
        ``--skip-bad``."""
        problems = self.strategy.problems(gt.instances, sample.height, sample.width)
        if not any(problems):
            return gt
        keep = []
        for k, (inst, problem) in enumerate(zip(gt.instances, problems, strict=True)):
            if problem is None:
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

    def measure(self, rnd: Round, masks: np.ndarray, metrics: Sequence[Metric]) -> dict[str, list[Any]]:
        """What ``metrics`` measure of a round's chosen masks against the ground truth (field → values)."""
        batch = MaskBatch(rnd.chosen, masks)
        out: dict[str, list[Any]] = {}
        for m in metrics:
            out.update(m.measure(batch))
        return out

    @abstractmethod
    def records(self, sample: Sample, inp: PromptInput, rounds: Iterator[Round]) -> list[Any]:
        """The per-instance records of one batch, from its rounds (consume them all)."""


def instance_fields(sample: Sample, inst: Instance) -> dict[str, Any]:
    """The identity part every per-instance record shares."""
    return {
        "image_id": sample.image_id,
        "ann_id": inst.ann_id,
        "category_id": inst.category_id,
        "area": inst.area,
        "size": size_bucket(inst.area),
    }


def chosen_scores(rnd: Round) -> tuple[list[int], list[float | None]]:
    """Chosen output and its predicted score, per instance (host lists). A NaN or infinite predicted score
    becomes None (JSON has no NaN; the task counts them)."""
    index = rnd.index.tolist()
    scores_all = rnd.pred.iou_predictions
    if scores_all.device.type == "cpu":
        table = scores_all.tolist()
        score = [table[i][j] for i, j in enumerate(index)]
    else:
        rows = torch.arange(len(rnd.index), device=rnd.index.device)
        score = scores_all[rows, rnd.index].tolist()
    return index, [v if math.isfinite(v) else None for v in score]  # one device sync each
