"""From logged per-item rows to a run record: scoring, then assembly (two separate steps).

:func:`score` hands a task's rows to its metric and returns the typed result; :func:`build_record`
puts that result together with everything the record must say about where it came from.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..data.locate import DataSource
from ..data.readers import DatasetReader
from ..identity import CODE_KEY  # not part of the run id: the same run re-made later keeps its id
from ..metrics.base import MetricResult
from ..protocols import Protocol
from ..provenance import device_info, software
from ..record import (
    SCHEMA_VERSION,
    CountsPart,
    DatasetPart,
    EnvironmentPart,
    ExecutionPart,
    ModelPart,
    PaperValue,
    ProtocolPart,
    RunRecord,
    ScoringPart,
    SoftwarePart,
    TimingPart,
)
from ..report.rules import paper_value
from ..tasks import Task


def ids_sha256(ids: Iterable[int]) -> str:
    """SHA-256 of the evaluated image-id list (a ``--limit`` or a slice is a different dataset)."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def score(
    task: Task, rows: list[dict[str, Any]], image_rows: Iterable[Mapping[str, Any]]
) -> tuple[MetricResult, Counter]:
    """The task's metric over the logged rows, and the skip counts (task-level plus per image)."""
    metric = task.new_metric()
    metric.process([task.record_type.from_json(row) for row in rows])
    skipped = task.initial_skips()
    for row in image_rows:
        skipped.update(row.get("skipped", {}))
    return metric.evaluate(), skipped


@dataclass(frozen=True)
class RecordContext:
    """The run-level facts of a record (the same for every protocol of a run)."""

    model: ModelPart
    seed: int
    device: str
    source: DataSource
    reader: DatasetReader
    image_ids: list[int]
    limit: int | None


def build_record(
    ctx: RecordContext,
    name: str,
    protocol: Protocol,
    task: Task,
    result: MetricResult,
    skipped: Counter,
    config: dict[str, Any],
    execution: dict[str, Any],
    timing: TimingPart | None,
) -> RunRecord:
    """The run record of one protocol (see :mod:`evalsuite.record` for what each part means)."""
    metrics = {k: result.metrics.get(k) for k in protocol.metrics}
    paper: dict[str, PaperValue] = {}
    if not ctx.model.random_weights:  # random weights have no paper value to stand beside
        for m in protocol.metrics:
            pv = paper_value(ctx.model.name, protocol.name, m, protocol.column_overrides)
            if pv is not None:
                paper[m] = PaperValue(pv.value, pv.source, pv.row)
    per_category = {
        str(k): {"name": ctx.reader.categories.get(k, {}).get("name"), **v}
        for k, v in result.per_category.items()
    }
    counts = CountsPart(
        images=len(ctx.image_ids),
        skipped=dict(sorted(skipped.items())),
        instances=result.counts.get("instances"),
        instances_by_size=result.counts.get("instances_by_size"),
        detections_scored=result.counts.get("detections_scored"),
    )
    sw = software()
    return RunRecord(
        schema_version=SCHEMA_VERSION,
        run_id=f"{name}__{protocol.name}__{short_hash({k: v for k, v in config.items() if k != CODE_KEY})}",
        name=name,
        protocol=ProtocolPart(
            name=protocol.name,
            version=protocol.version,
            id=protocol.id,
            task=protocol.task,
            options=dict(protocol.options),
            options_hash=protocol.options_hash,
            overrides=protocol.overrides,
        ),
        dataset=DatasetPart(
            name=ctx.source.name,
            family=ctx.source.family,
            annotation_file=str(ctx.source.ann_file),
            annotation_sha256=ctx.reader.annotation_sha256,
            image_ids_sha256=ids_sha256(ctx.image_ids),
            limit=ctx.limit,
            official=ctx.source.official,
        ),
        boxes=task.boxes(),
        counts=counts,
        model=ctx.model,
        seed=ctx.seed,
        metrics=metrics,
        higher_is_better={k: result.higher_is_better.get(k, True) for k in metrics},
        per_category=per_category,
        paper=paper,
        scoring=None
        if result.backend is None
        else ScoringPart(result.backend["backend"], result.backend["stats"]),
        software=SoftwarePart(**sw),  # type: ignore[arg-type]
        environment=EnvironmentPart(**device_info(ctx.device)),
        execution=ExecutionPart.from_json(
            {"finished_utc": datetime.now(UTC).isoformat(timespec="seconds"), **execution}
        ),
        timing=timing,
        files={
            "log": task.log_name,
            "images": "images.jsonl",
            "config": "config.json",
            **{name: name for name in result.artifacts},
        },
    )
