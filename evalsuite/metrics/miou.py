"""Per-instance records and the mIoU aggregations of the Table 4 protocols.

The evaluator keeps small per-instance records; every number is a pure function
of them, so a run can be re-scored offline and record sets from several
processes merge by concatenation.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ..data.values import is_finite_number, is_int, short
from ..errors import InputError
from .base import Metric, MetricResult

# COCO's area buckets (by the annotation's `area`), non-overlapping.
SMALL_MAX = 32**2
MEDIUM_MAX = 96**2
BUCKETS = ("S", "M", "L")


def size_bucket(area: float) -> str:
    """'S' (< 32²), 'M' (32²–96²) or 'L' (≥ 96²), as COCO buckets areas."""
    if area < SMALL_MAX:
        return "S"
    return "M" if area < MEDIUM_MAX else "L"


@dataclass(frozen=True)
class InstanceRecord:
    """The outcome for one instance: ids, size, the exact prompt used, the chosen mask and its IoU."""

    image_id: int
    ann_id: int
    category_id: int
    area: float
    size: str
    iou: float
    prompt: dict[str, Any]  # {"box": [x0,y0,x1,y1]} or {"points": [[x,y],...], "labels": [...]}
    mask_index: int
    score: float | None  # the model's predicted IoU of the chosen output; None when it was NaN / infinite

    def to_json(self) -> dict[str, Any]:
        """The logged row (the fields in order; what ``dataclasses.asdict`` gives, without its deep copy)."""
        return {
            "image_id": self.image_id,
            "ann_id": self.ann_id,
            "category_id": self.category_id,
            "area": self.area,
            "size": self.size,
            "iou": self.iou,
            "prompt": self.prompt,
            "mask_index": self.mask_index,
            "score": self.score,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceRecord:
        """A logged row, checked: a hand-damaged log is named, not scored or crashed on."""
        problem = None
        if not isinstance(data, dict) or data.keys() != _INSTANCE_FIELDS:
            problem = f"fields {sorted(data) if isinstance(data, dict) else type(data).__name__}"
        elif not all(is_int(data[k]) for k in ("image_id", "ann_id", "category_id", "mask_index")):
            problem = "ids are not integers"
        elif not (is_finite_number(data["iou"]) and 0.0 <= data["iou"] <= 1.0):
            problem = f"iou {short(data['iou'])} is not a number in [0, 1]"
        elif not is_finite_number(data["area"]) or data["size"] not in BUCKETS:
            problem = "area or size is malformed"
        elif not (data["score"] is None or is_finite_number(data["score"])):
            problem = "score is not a finite number or null"
        elif not isinstance(data["prompt"], dict):
            problem = "prompt is not an object"
        if problem:
            who = (
                f"image {short(data.get('image_id'))}, annotation {short(data.get('ann_id'))}: "
                if isinstance(data, dict)
                else ""
            )
            raise InputError(
                f"instances.jsonl: {who}a logged instance is damaged ({short(problem, 200)})",
                hint="delete instances.jsonl in the run folder to predict its images again, "
                "or use --overwrite to start over",
            )
        return cls(**data)

    @property
    def key(self) -> tuple[int, int]:
        return (self.image_id, self.ann_id)


_INSTANCE_FIELDS = frozenset(f.name for f in fields(InstanceRecord))


def _mean_pct(values: list[float]) -> float | None:
    return 100.0 * math.fsum(values) / len(values) if values else None


def summarize_miou(records: Iterable[InstanceRecord]) -> dict[str, float | int | None]:
    """mIoU (percent) over all instances and per size bucket, with counts.

    An empty bucket gives ``None``: there is no honest number for it.
    """
    by_bucket: dict[str, list[float]] = defaultdict(list)
    everything: list[float] = []
    for r in records:
        everything.append(r.iou)
        by_bucket[r.size].append(r.iou)
    out: dict[str, float | int | None] = {"mIoU": _mean_pct(everything)}
    for b in BUCKETS:
        out[f"mIoU_{b}"] = _mean_pct(by_bucket[b])
    out["n"] = len(everything)
    for b in BUCKETS:
        out[f"n_{b}"] = len(by_bucket[b])
    return out


def per_category_miou(records: Iterable[InstanceRecord]) -> dict[int, dict[str, float | int | None]]:
    """mIoU (percent) and instance count per category id."""
    by_cat: dict[int, list[float]] = defaultdict(list)
    for r in records:
        by_cat[r.category_id].append(r.iou)
    out: dict[int, dict[str, float | int | None]] = {}
    for c, v in sorted(by_cat.items()):
        out[c] = {"mIoU": _mean_pct(v), "n": len(v)}
    return out


class MIoUMetric(Metric[InstanceRecord]):
    """mIoU over instances (overall and per COCO size bucket), with per-category mIoU."""

    higher_is_better: ClassVar[dict[str, bool]] = dict.fromkeys(("mIoU", "mIoU_S", "mIoU_M", "mIoU_L"), True)

    @property
    def records(self) -> list[InstanceRecord]:
        return sorted(self._records, key=lambda r: r.key)

    def evaluate(self) -> MetricResult:
        records = self.records
        keys = [r.key for r in records]
        if len(set(keys)) != len(keys):
            raise RuntimeError("an instance was scored twice; refusing to report a biased mean")
        summary = summarize_miou(records)
        metrics = {k: None if v is None else float(v) for k, v in summary.items() if k.startswith("mIoU")}
        return MetricResult(
            metrics=metrics,
            higher_is_better=dict(self.higher_is_better),
            counts={
                "instances": summary["n"],
                "instances_by_size": {b: summary[f"n_{b}"] for b in BUCKETS},
            },
            per_category=per_category_miou(records),
        )
