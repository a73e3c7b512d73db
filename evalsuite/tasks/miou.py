"""The Table 4 task: prompt each ground-truth instance, score the chosen mask's IoU."""

from __future__ import annotations

from collections.abc import Iterator

from ..data.types import Sample
from ..metrics.miou import InstanceRecord, MIoUMetric
from ..prompts.strategies import PromptInput
from .prompted import PromptedTask, Round, chosen_iou, instance_fields


class MIoUTask(PromptedTask):
    """One mIoU protocol (Table 4): every selected ground-truth instance is prompted and scored."""

    log_name = "instances.jsonl"
    record_type = InstanceRecord

    def new_metric(self) -> MIoUMetric:
        return MIoUMetric()

    def records(self, sample: Sample, inp: PromptInput, rounds: Iterator[Round]) -> list[InstanceRecord]:
        *_, last = rounds  # the last round's answer is scored (earlier rounds only place clicks)
        idx, iou, score = chosen_iou(last, inp.masks)
        prompts = last.prompts.to_json()
        return [
            InstanceRecord(
                **instance_fields(sample, inst),
                iou=float(iou[i]),
                prompt=prompts[i],
                mask_index=int(idx[i]),
                score=score[i],
            )
            for i, inst in enumerate(inp.instances)
        ]
