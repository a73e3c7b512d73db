"""The Table 4 task: prompt each ground-truth instance, score the chosen mask's IoU."""

from __future__ import annotations

from collections.abc import Iterator

from ..data.types import Sample
from ..metrics.miou import InstanceRecord, MIoUMetric
from ..prompts.strategies import PromptInput
from .prompted import PromptedTask, Round, chosen_scores, instance_fields


class MIoUTask(PromptedTask):
    """One mIoU protocol (Table 4): every selected ground-truth instance is prompted and scored."""

    log_name = "instances.jsonl"
    record_type = InstanceRecord
    primary_metric = MIoUMetric

    def own_metric(self) -> MIoUMetric:
        return MIoUMetric(size_buckets=self.options.get("size_buckets", "half-open"))

    def records(self, sample: Sample, inp: PromptInput, rounds: Iterator[Round]) -> list[InstanceRecord]:
        *_, last = rounds  # the last round's answer is scored (earlier rounds only place clicks)
        idx, score = chosen_scores(last)
        values = self.measure(last, inp.masks, [_IOU, *self.measurers])
        iou = values.pop("iou")
        prompts = last.prompts.to_json()
        return [
            InstanceRecord(
                **instance_fields(sample, inst),
                iou=float(iou[i]),
                prompt=prompts[i],
                mask_index=int(idx[i]),
                score=score[i],
                extra={k: v[i] for k, v in values.items()},
            )
            for i, inst in enumerate(inp.instances)
        ]


#: measures each chosen mask's IoU (the records' own field); it accumulates nothing
_IOU = MIoUMetric()
