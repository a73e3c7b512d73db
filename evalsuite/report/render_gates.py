"""Checked gates rendered as JSON (``evalsuite gate --format json``) and HTML (notebooks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from .gates import GateResult
from .render_html import frame_html
from .render_json import document_head


def gate_rows(results: Sequence[GateResult]) -> list[dict[str, Any]]:
    """One row per gate: what it expects, what the record says, and the verdict."""
    return [
        {
            "model": r.gate.model,
            "protocol": r.gate.protocol,
            "metric": r.gate.metric,
            "expected": r.gate.expected,
            "tolerance": r.gate.tolerance,
            "actual": r.actual,
            "delta": r.delta,
            "status": r.status,
            "passed": r.passed,
            "detail": r.detail,
            "set_by_run": r.gate.run_id,
            "checked_run": None if r.record is None else r.record.run_id,
        }
        for r in results
    ]


def verdict(results: Sequence[GateResult]) -> str:
    failed = sum(not r.passed for r in results)
    text = f"{len(results) - failed} of {len(results)} gates passed"
    return text + (f"; {failed} failed" if failed else "")


def gate_document(results: Sequence[GateResult]) -> dict[str, Any]:
    """The checked gates as a JSON document (schema ``evalsuite-gate``, see ``docs/json.md``)."""
    failed = sum(not r.passed for r in results)
    return {
        **document_head("evalsuite-gate"),
        "passed": failed == 0,
        "total": len(results),
        "failed": failed,
        "gates": gate_rows(results),
    }


def gates_html(results: Sequence[GateResult], failures_only: bool = False) -> str:
    rows = [row for row in gate_rows(results) if not (failures_only and row["passed"])]
    frame = pd.DataFrame(rows).drop(columns=["passed"]) if rows else pd.DataFrame()
    return frame_html(frame, verdict(results))
