"""Short terminal summaries: the results of a run, the steps of a reproduction (pandas → Markdown)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..record import RunRecord
from .table_noc import NOC_COLUMNS


def _fmt(v: float | None, metric: str = "") -> str:
    if v is not None and metric.startswith("NoC@"):
        return f"{v:.2f}"
    return "–" if v is None else f"{v:.1f}" if abs(v) >= 0.05 or v == 0 else f"{v:.3g}"


def shown_metrics(r: RunRecord) -> tuple[str, ...]:
    """The metrics the summary shows: all of them (AP: COCO's 12 numbers, LVIS's 13), NoC's table columns."""
    if r.protocol.task == "noc":
        return tuple(m for m in NOC_COLUMNS if r.metric(m) is not None)  # mIoU@20: only with 20 clicks
    return tuple(r.metrics)


def summary_table(records: Sequence[RunRecord]) -> str:
    """One Markdown table per metric set: a row per record, the protocol with its overrides."""
    groups: dict[tuple[str, ...], list[RunRecord]] = {}
    for r in records:
        groups.setdefault(shown_metrics(r), []).append(r)
    tables = []
    for metrics, group in groups.items():
        frame = pd.DataFrame(
            [
                [
                    r.protocol.label,
                    r.name,
                    r.model.weights,
                    r.counts.instances if r.counts.instances is not None else r.counts.detections_scored,
                    *(_fmt(r.metric(m), m) for m in metrics),
                ]
                for r in group
            ],
            columns=["protocol", "name", "weights", "scored", *metrics],
        )
        tables.append(
            frame.to_markdown(
                index=False,
                disable_numparse=True,
                colalign=("left", "left", "left") + ("right",) * (len(metrics) + 1),
            )
        )
    return "\n\n".join(tables)


def steps_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of plain rows (e.g. one per step of ``evalsuite reproduce``)."""
    return pd.DataFrame(list(rows)).to_markdown(index=False, disable_numparse=True)
