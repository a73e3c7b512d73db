"""Per-category and per-size numbers of each record, in long form (``evalsuite export``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import InputError
from ..identity import select_cells
from ..record import RunRecord
from .render import csv_num, to_csv
from .render_text import options_text


def export_frame(records: Sequence[RunRecord], kind: str) -> pd.DataFrame:
    """Per-category or per-size numbers of each record, in long form (one metric value per row).

    Per-category comes from the record's ``per_category`` (per-category mIoU; per-category AP, APS,
    APM, APL for the AP protocols, with ``n`` their scored ground-truth objects); per-size from the size
    metrics (mIoU_S/M/L with their instance counts, APS/APM/APL for AP protocols). A record without
    per-category numbers is never silently left out: ``frame.attrs["notes"]`` says which and why
    (``evalsuite export`` prints the notes on stderr).
    """
    if kind not in ("per-category", "per-size"):
        raise InputError(f"unknown export {kind!r} (per-category, per-size)")
    sel = select_cells(records)
    out: list[dict[str, Any]] = []
    notes: list[str] = [f"left out: {e.line()}" for e in sel.excluded]
    for r in sorted(sel.records, key=lambda r: (r.name, r.protocol.name)):
        if kind == "per-category":
            if not r.per_category:
                notes.append(f"{r.name} {r.protocol.id} ({r.path}): {_no_per_category(r)}")
            out += _per_category_rows(r)
        else:
            out += _per_size_rows(r)
    frame = pd.DataFrame(out)
    frame.attrs["notes"] = notes
    return frame


def _base(r: RunRecord) -> dict[str, Any]:
    return {
        "name": r.name,
        "model": r.model.name,
        "protocol_id": r.protocol.id,
        "overrides": options_text(r.protocol.overrides),
        "options_hash": r.protocol.options_hash,
        "dataset": r.dataset.name,
        "run_id": r.run_id,
    }


def _per_category_rows(r: RunRecord) -> list[dict[str, Any]]:
    out = []
    for cat_id in sorted(r.per_category, key=int):
        entry = r.per_category[cat_id]
        for metric, value in entry.items():
            if metric in ("name", "n"):
                continue
            number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            out.append(
                {
                    **_base(r),
                    "category_id": int(cat_id),
                    "category": entry.get("name") or "",
                    "metric": metric,
                    "value": csv_num(number),
                    "n": entry.get("n"),
                }
            )
    return out


def _per_size_rows(r: RunRecord) -> list[dict[str, Any]]:
    by_size = r.counts.instances_by_size or {}
    out = []
    for size in ("S", "M", "L"):
        metric = f"AP{size}" if r.protocol.task == "ap" else f"mIoU_{size}"
        if metric in r.metrics:
            row = {"size": size, "metric": metric, "value": csv_num(r.metric(metric)), "n": by_size.get(size)}
            out.append({**_base(r), **row})
    return out


def _no_per_category(r: RunRecord) -> str:
    if r.protocol.task == "ap":
        return (
            "no per-category AP in its record (written before evalsuite recorded it); "
            "re-run the protocol to get them"
        )
    if r.protocol.task == "noc":
        return "NoC protocols record no per-category numbers"
    return "no per-category numbers in its record"


def render_export(records: Sequence[RunRecord], kind: str) -> str:
    return to_csv(export_frame(records, kind))
