"""The NoC task: the SAM clicker up to ``clicks`` rounds per instance, the IoU after every click.

An ordinary protocol (``coco-noc20``, ``lvis-noc20``): resumable, sharded and logged like the
others. Its per-instance log holds every click and the IoU of the chosen mask after each, so
NoC@85/90, NoF@85/90 and mIoU after k clicks are pure functions of the log; mIoU after k clicks
equals what a k-click protocol with ``click_rule=sam`` scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..data.types import Sample
from ..metrics.noc import ClickRecord, NocMetric
from ..prompts.strategies import PromptInput
from .prompted import PromptedTask, Round, chosen_iou, instance_fields


class NocTask(PromptedTask):
    """One NoC protocol: every selected instance clicked ``clicks`` times with the SAM rule."""

    log_name = "instances.jsonl"
    record_type = ClickRecord

    def new_metric(self) -> NocMetric:
        return NocMetric(max_clicks=int(self.options["clicks"]))

    def records(self, sample: Sample, inp: PromptInput, rounds: Iterator[Round]) -> list[ClickRecord]:
        per_round = []
        last = None
        for rnd in rounds:
            per_round.append(chosen_iou(rnd, inp.masks))
            last = rnd
        assert last is not None
        prompts = last.prompts.to_json()
        idx, _, score = per_round[-1]
        # None for a NaN / infinite score (counted by the task); ClickRecord.score is typed float
        scores: list[Any] = score
        return [
            ClickRecord(
                **instance_fields(sample, inst),
                prompt=prompts[i],
                ious=[float(r[1][i]) for r in per_round],
                mask_index=int(idx[i]),
                score=scores[i],
            )
            for i, inst in enumerate(inp.instances)
        ]
