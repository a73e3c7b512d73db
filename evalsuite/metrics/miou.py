"""Per-instance records and the mIoU aggregations of the Table 4 protocols.

The evaluator keeps small per-instance records; every number is a pure function
of them, so a run can be re-scored offline and record sets from several
processes merge by concatenation. A record holds what the task knows (ids, size,
prompt, chosen output) and the fields its protocol's metrics measured: ``iou`` (the
mIoU metric's) and, in ``extra``, any other metric's (e.g. ``biou``). Records logged
before metrics could add fields read as they always did.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.values import is_finite_number, is_int, short
from ..errors import InputError
from ..options import OptionSpec
from .base import ItemField, MaskBatch, Metric, MetricResult, option_values
from .iou import iou_with_truth

# COCO's area buckets (by the annotation's `area`), non-overlapping.
SMALL_MAX = 32**2
MEDIUM_MAX = 96**2
BUCKETS = ("S", "M", "L")
#: how instances are put in size buckets by their annotation's area
SIZE_BUCKETS = OptionSpec(
    choices=("half-open", "inclusive"),
    required=False,
    default="half-open",
    help="half-open: S < 32², 32² <= M < 96², L >= 96² (COCO's, non-overlapping); inclusive: S <= 32², "
    "32² <= M <= 96², L >= 96² (EfficientViT-SAM's sam_eval_utils.get_iou_metric: areas of exactly 32² "
    "and 96² count in two buckets)",
)


def size_bucket(area: float) -> str:
    """'S' (< 32²), 'M' (32²–96²) or 'L' (≥ 96²), as COCO buckets areas."""
    if area < SMALL_MAX:
        return "S"
    return "M" if area < MEDIUM_MAX else "L"


def size_buckets_of(area: float, rule: str = "half-open") -> tuple[str, ...]:
    """The buckets an instance of this area counts in: one (``half-open``: COCO's), or two at an edge
    (``inclusive``)."""
    if rule == "half-open":
        return (size_bucket(area),)
    if rule != "inclusive":
        raise ValueError(f"unknown size_buckets {rule!r}")
    out = []
    if area <= SMALL_MAX:
        out.append("S")
    if SMALL_MAX <= area <= MEDIUM_MAX:
        out.append("M")
    if area >= MEDIUM_MAX:
        out.append("L")
    return tuple(out)


def _unit_interval(v: Any) -> bool:
    return is_finite_number(v) and 0.0 <= v <= 1.0


#: the mIoU metric's per-item field
IOU_FIELD = ItemField("iou", _unit_interval, "IoU of the chosen mask with the ground truth, in [0, 1]")


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
    #: the other metrics' per-item fields (``{"biou": 0.71}``), logged after ``iou``
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The logged row (the fields in order; what ``dataclasses.asdict`` gives, without its deep copy)."""
        row = {
            "image_id": self.image_id,
            "ann_id": self.ann_id,
            "category_id": self.category_id,
            "area": self.area,
            "size": self.size,
            "iou": self.iou,
        }
        row.update(self.extra)
        row["prompt"] = self.prompt
        row["mask_index"] = self.mask_index
        row["score"] = self.score
        return row

    def value(self, name: str) -> Any:
        """A metric's per-item field (``iou``, or one of ``extra``)."""
        return self.iou if name == "iou" else self.extra[name]

    @classmethod
    def from_json(cls, data: dict[str, Any], extra: Sequence[ItemField] = ()) -> InstanceRecord:
        """A logged row, checked: a hand-damaged log is named, not scored or crashed on. ``extra``: the
        fields the protocol's other metrics declared (rows logged without metrics of their own have none)."""
        problem = None
        names = {f.name for f in extra}
        if not isinstance(data, dict) or data.keys() != _INSTANCE_FIELDS | names:
            problem = f"fields {sorted(data) if isinstance(data, dict) else type(data).__name__}"
        elif bad := [f.name for f in extra if not f.valid(data[f.name])]:
            problem = f"{bad[0]} {short(data[bad[0]])} is not a valid value"
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
        base = {k: v for k, v in data.items() if k not in names}
        return cls(**base, extra={f.name: data[f.name] for f in extra})

    @property
    def key(self) -> tuple[int, int]:
        return (self.image_id, self.ann_id)


_INSTANCE_FIELDS = frozenset(
    ("image_id", "ann_id", "category_id", "area", "size", "iou", "prompt", "mask_index", "score")
)


def _mean_pct(values: list[float]) -> float | None:
    return 100.0 * math.fsum(values) / len(values) if values else None


def summarize_miou(
    records: Iterable[InstanceRecord],
    field: str = "iou",
    prefix: str = "mIoU",
    size_buckets: str = "half-open",
) -> dict[str, float | int | None]:
    """mIoU (percent) over all instances and per size bucket, with counts (of one per-item ``field``,
    reported as ``prefix``, ``prefix_S``...; buckets by ``size_buckets``, see :data:`SIZE_BUCKETS`).

    An empty bucket gives ``None``: there is no honest number for it.
    """
    by_bucket: dict[str, list[float]] = defaultdict(list)
    everything: list[float] = []
    for r in records:
        v = r.value(field)
        everything.append(v)
        for b in size_buckets_of(r.area, size_buckets) if size_buckets != "half-open" else (r.size,):
            by_bucket[b].append(v)
    out: dict[str, float | int | None] = {prefix: _mean_pct(everything)}
    for b in BUCKETS:
        out[f"{prefix}_{b}"] = _mean_pct(by_bucket[b])
    out["n"] = len(everything)
    for b in BUCKETS:
        out[f"n_{b}"] = len(by_bucket[b])
    return out


def per_category_miou(
    records: Iterable[InstanceRecord], field: str = "iou", prefix: str = "mIoU"
) -> dict[int, dict[str, float | int | None]]:
    """mIoU (percent) and instance count per category id (of one per-item ``field``, as ``prefix``)."""
    by_cat: dict[int, list[float]] = defaultdict(list)
    for r in records:
        by_cat[r.category_id].append(r.value(field))
    out: dict[int, dict[str, float | int | None]] = {}
    for c, v in sorted(by_cat.items()):
        out[c] = {prefix: _mean_pct(v), "n": len(v)}
    return out


class MeanOverInstances(Metric[InstanceRecord]):
    """A mean of one per-item field over instances, overall and per size bucket, with per-category means."""

    #: the per-item field averaged, and the reported name (``mIoU``, ``mIoU_S``...)
    field_name: ClassVar[str]
    prefix: ClassVar[str]
    options: ClassVar[dict[str, OptionSpec]] = {"size_buckets": SIZE_BUCKETS}
    task_kinds = frozenset({"miou"})

    def __init__(self, size_buckets: str = "half-open") -> None:
        self.size_buckets = size_buckets
        super().__init__()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Metric:
        return cls(**option_values(options, cls.options))

    @property
    def records(self) -> list[InstanceRecord]:
        return sorted(self._records, key=lambda r: r.key)

    def evaluate(self) -> MetricResult:
        records = self.records
        keys = [r.key for r in records]
        if len(set(keys)) != len(keys):
            raise RuntimeError("an instance was scored twice; refusing to report a biased mean")
        summary = summarize_miou(records, self.field_name, self.prefix, self.size_buckets)
        metrics = {
            k: None if v is None else float(v) for k, v in summary.items() if k.startswith(self.prefix)
        }
        return MetricResult(
            metrics=metrics,
            higher_is_better=dict(self.higher_is_better),
            counts={
                "instances": summary["n"],
                "instances_by_size": {b: summary[f"n_{b}"] for b in BUCKETS},
            },
            per_category=per_category_miou(records, self.field_name, self.prefix),
        )


class MIoUMetric(MeanOverInstances):
    """mIoU: mean mask IoU over instances (overall and per size bucket), with per-category mIoU."""

    higher_is_better: ClassVar[dict[str, bool]] = dict.fromkeys(("mIoU", "mIoU_S", "mIoU_M", "mIoU_L"), True)
    fields = (IOU_FIELD,)
    field_name = "iou"
    prefix = "mIoU"

    def measure(self, batch: MaskBatch) -> dict[str, list[Any]]:
        """IoU of each chosen mask with its ground truth, where the masks are (numpy counts on C-order
        masks on the CPU, torch reductions on the device elsewhere: :func:`~.iou.iou_with_truth`)."""
        if batch.on_host:
            return {"iou": iou_with_truth(batch.pred, batch.gt)}
        return {"iou": iou_with_truth(batch.pred, batch.gt_on(batch.pred.device))}
