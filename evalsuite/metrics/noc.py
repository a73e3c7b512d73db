"""NoC: how many clicks of the SAM clicker an instance needs to reach an IoU threshold.

Pure functions of per-instance IoU sequences (the IoU after click 1, 2, …, k), so a NoC run can
be re-scored from its log. Conventions of RITM / SAM: an instance that never reaches the
threshold within the cap counts as the cap (NoC) and as a failure (NoF).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..data.values import is_finite_number
from .base import ItemField, MaskBatch, Metric, MetricResult
from .iou import iou_with_truth
from .miou import BUCKETS

#: the NoC metric's per-item field: the IoU of the chosen mask after each click
IOUS_FIELD = ItemField(
    "ious",
    lambda v: isinstance(v, list) and all(is_finite_number(x) and 0.0 <= x <= 1.0 for x in v),
    "IoU of the chosen mask after click 1, 2, ..., k",
)
_NAME = re.compile(r"(NoC|NoF)@\d+|mIoU@\d+")

NOC_THRESHOLDS = (0.85, 0.90)
NOC_MAX_CLICKS = 20


def noc(ious: Sequence[float], threshold: float, max_clicks: int = NOC_MAX_CLICKS) -> int:
    """Number of clicks needed to reach IoU ≥ ``threshold`` (a fraction), capped at ``max_clicks``.

    ``ious[i]`` is the IoU after click ``i + 1``. An instance that never reaches the threshold
    within ``max_clicks`` clicks counts as ``max_clicks``. A sequence shorter than ``max_clicks``
    that has not reached the threshold is undetermined: ValueError.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"noc: threshold is an IoU fraction in (0, 1], got {threshold}")
    if max_clicks < 1:
        raise ValueError("noc: max_clicks must be >= 1")
    for i, v in enumerate(ious[:max_clicks]):
        if not math.isfinite(v):
            raise ValueError(f"noc: IoU after click {i + 1} is not finite")
        if v >= threshold:
            return i + 1
    if len(ious) < max_clicks:
        raise ValueError(
            f"noc: {len(ious)} clicks never reach IoU {threshold}; need {max_clicks} to apply the cap"
        )
    return max_clicks


@dataclass(frozen=True)
class NocSummary:
    """NoC@t (mean clicks), failures (never reached within the cap) and mIoU after each click."""

    n: int
    max_clicks: int
    noc: dict[float, float]
    failures: dict[float, int]
    miou_at: list[float]  # percent, after click 1..max_clicks


def summarize_noc(
    sequences: Sequence[Sequence[float]],
    thresholds: Sequence[float] = NOC_THRESHOLDS,
    max_clicks: int = NOC_MAX_CLICKS,
) -> NocSummary:
    """Mean NoC per threshold over instances, with failure counts and the mIoU-vs-clicks curve."""
    if not sequences:
        raise ValueError("summarize_noc: no instances")
    if any(len(s) < max_clicks for s in sequences):
        raise ValueError(f"summarize_noc: every sequence needs {max_clicks} IoUs")
    nocs = {t: [noc(s, t, max_clicks) for s in sequences] for t in thresholds}
    failures = {t: sum(1 for s in sequences if max(s[:max_clicks]) < t) for t in thresholds}
    arr = np.asarray([list(s[:max_clicks]) for s in sequences], dtype=np.float64)
    return NocSummary(
        n=len(sequences),
        max_clicks=max_clicks,
        noc={t: math.fsum(v) / len(v) for t, v in nocs.items()},
        failures=failures,
        miou_at=[100.0 * math.fsum(col) / len(col) for col in arr.T],
    )


def noc_metric_names(max_clicks: int) -> list[str]:
    """``NoC@85, NoC@90, NoF@85, NoF@90, mIoU@1 … mIoU@max_clicks``."""
    pct = [round(t * 100) for t in NOC_THRESHOLDS]
    return (
        [f"NoC@{p}" for p in pct]
        + [f"NoF@{p}" for p in pct]
        + [f"mIoU@{k}" for k in range(1, max_clicks + 1)]
    )


@dataclass(frozen=True)
class ClickRecord:
    """One instance clicked ``len(ious)`` times: the clicks, and the IoU of the chosen mask after each."""

    image_id: int
    ann_id: int
    category_id: int
    area: float
    size: str
    prompt: dict[str, Any]  # {"points": [[x, y], ...], "labels": [...]}, all clicks
    ious: list[float]
    mask_index: int  # of the last round
    score: float  # of the last round
    #: the other metrics' per-item fields (of the last round), logged after ``ious``
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The logged row (the fields in order; what ``dataclasses.asdict`` gives, without its deep copy)."""
        row = {
            "image_id": self.image_id,
            "ann_id": self.ann_id,
            "category_id": self.category_id,
            "area": self.area,
            "size": self.size,
            "prompt": self.prompt,
            "ious": self.ious,
        }
        row.update(self.extra)
        row["mask_index"] = self.mask_index
        row["score"] = self.score
        return row

    def value(self, name: str) -> Any:
        """A metric's per-item field (``ious``, or one of ``extra``)."""
        return self.ious if name == "ious" else self.extra[name]

    @classmethod
    def from_json(cls, data: dict[str, Any], extra: Sequence[ItemField] = ()) -> ClickRecord:
        names = {f.name for f in extra}
        base = {k: v for k, v in data.items() if k not in names}
        return cls(**base, extra={f.name: data[f.name] for f in extra})

    @property
    def key(self) -> tuple[int, int]:
        return (self.image_id, self.ann_id)


class NocMetric(Metric[ClickRecord]):
    """NoC@85/90 (mean clicks), NoF@85/90 (instances that never got there) and mIoU after each click."""

    higher_is_better: ClassVar[dict[str, bool]] = {"NoC": False, "NoF": False, "mIoU": True}
    task_kinds = frozenset({"noc"})
    fields = (IOUS_FIELD,)
    per_round = True

    def __init__(self, max_clicks: int = NOC_MAX_CLICKS) -> None:
        self.max_clicks = max_clicks
        super().__init__()

    @classmethod
    def reports(cls, metric: str) -> bool:
        return _NAME.fullmatch(metric) is not None

    def measure(self, batch: MaskBatch) -> dict[str, list[Any]]:
        """The IoU after this round (the task collects one per click into ``ious``)."""
        gt = batch.gt if batch.on_host else batch.gt_on(batch.pred.device)
        return {"ious": iou_with_truth(batch.pred, gt)}

    def evaluate(self) -> MetricResult:
        records = sorted(self._records, key=lambda r: r.key)
        if len({r.key for r in records}) != len(records):
            raise RuntimeError("an instance was clicked twice; refusing to report")
        names = noc_metric_names(self.max_clicks)
        direction = {n: self.higher_is_better[n.split("@")[0]] for n in names}
        by_size = {b: sum(1 for r in records if r.size == b) for b in BUCKETS}
        if not records:
            return MetricResult(
                dict.fromkeys(names), direction, {"instances": 0, "instances_by_size": by_size}
            )
        s = summarize_noc([r.ious for r in records], NOC_THRESHOLDS, self.max_clicks)
        metrics: dict[str, float | None] = {}
        for t in NOC_THRESHOLDS:
            metrics[f"NoC@{round(t * 100)}"] = s.noc[t]
        for t in NOC_THRESHOLDS:
            metrics[f"NoF@{round(t * 100)}"] = float(s.failures[t])
        for k, v in enumerate(s.miou_at, 1):
            metrics[f"mIoU@{k}"] = v
        return MetricResult(metrics, direction, {"instances": s.n, "instances_by_size": by_size})
