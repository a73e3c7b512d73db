"""The NoC task: an adaptive click rule up to ``clicks`` rounds per instance, the IoU after every click.

An ordinary protocol (``coco-noc20``, ``lvis-noc20``): resumable, sharded and logged like the
others. Its per-instance log holds every click and the IoU of the chosen mask after each, so
NoC@85/90, NoF@85/90 and mIoU after k clicks are pure functions of the log; mIoU after k clicks
equals what a k-click protocol with the same click rule (``click_rule=sam``) scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..data.types import Sample
from ..metrics.noc import ClickRecord, NocMetric
from ..prompts.strategies import PromptInput
from .prompted import PromptedTask, Round, chosen_scores, instance_fields


class NocTask(PromptedTask):
    """One NoC protocol: every selected instance clicked once per round of its adaptive click rule."""

    log_name = "instances.jsonl"
    record_type = ClickRecord
    primary_metric = NocMetric

    def own_metric(self) -> NocMetric:
        return NocMetric(max_clicks=self.strategy.rounds)

    def records(self, sample: Sample, inp: PromptInput, rounds: Iterator[Round]) -> list[ClickRecord]:
        own = NocMetric()
        per_round: list[list[float]] = []
        last = None
        for rnd in rounds:
            per_round.append(self.measure(rnd, inp.masks, [own])["ious"])
            last = rnd
        assert last is not None
        idx, score = chosen_scores(last)
        values = self.measure(last, inp.masks, self.measurers) if self.measurers else {}
        prompts = last.prompts.to_json()
        # None for a NaN / infinite score (counted by the task); ClickRecord.score is typed float
        scores: list[Any] = score
        return [
            ClickRecord(
                **instance_fields(sample, inst),
                prompt=prompts[i],
                ious=[float(r[i]) for r in per_round],
                mask_index=int(idx[i]),
                score=scores[i],
                extra={k: v[i] for k, v in values.items()},
            )
            for i, inst in enumerate(inp.instances)
        ]
