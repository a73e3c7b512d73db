"""Machine-readable output: the JSON documents of ``report``, ``compare``, ``gate`` and ``run``'s summary.

Each document names its schema and version (``"schema": "evalsuite-report", "schema_version": 1``),
like the run record: a field is added with a version bump, never renamed silently. The JSON Schema of
each is shipped in ``evalsuite/report/schemas/`` and documented in ``docs/json.md``; the tests validate
every document against it. Numbers are plain JSON numbers (percent points, clicks); a missing value is
``null``, never NaN.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from importlib import resources
from typing import Any

from .._version import __version__
from ..identity import identity_notes
from ..record import RunRecord
from .render_text import info_lines
from .table import Cell, Table

#: document name -> its schema version (bumped with any change of the document's shape)
SCHEMAS = {"evalsuite-report": 1, "evalsuite-compare": 1, "evalsuite-gate": 1, "evalsuite-run-summary": 1}


def document_head(schema: str) -> dict[str, Any]:
    return {"schema": schema, "schema_version": SCHEMAS[schema], "evalsuite": __version__}


def clean(v: Any) -> Any:
    """JSON-safe: NaN / infinity become null, tuples lists, numpy scalars Python numbers."""
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # numpy scalar
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(clean(doc), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of document ``name`` (e.g. ``"evalsuite-report"``), as shipped."""
    text = resources.files("evalsuite.report").joinpath("schemas", f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


# -- report --------------------------------------------------------------------------------------------
def _cell(c: Cell) -> dict[str, Any] | None:
    if c.run_id is None and c.paper is None:
        return None
    return {
        "measured": c.measured,
        "paper": c.paper,
        "delta": c.delta,
        "source": c.source,
        "run_id": c.run_id,
    }


def table_dict(t: Table) -> dict[str, Any]:
    """One table: columns, rows with one cell per column (null: empty), and everything its notes say."""
    return {
        "table": t.number,
        "title": t.title,
        "caption": t.caption,
        "data": t.subtitle,
        "columns": [
            {
                "title": c.title,
                "group": c.group,
                "label": c.label,
                "protocol": c.protocol,
                "metric": c.metric,
                "options": dict(c.key[1]),
                "beyond_paper": c.extra,
            }
            for c in t.columns
        ],
        "rows": [
            {
                "label": r.label,
                "name": r.name,
                "model": r.model,
                "quoted": r.quoted,
                "cells": [_cell(c) for c in r.cells],
            }
            for r in t.rows
        ],
        "protocols": info_lines(t),
        "sources": list(t.sources),
        "notes": list(t.notes),
        "excluded": list(t.excluded),
    }


def report_document(tables: Sequence[Table]) -> dict[str, Any]:
    return {**document_head("evalsuite-report"), "tables": [table_dict(t) for t in tables]}


# -- run summary ---------------------------------------------------------------------------------------
def run_dict(r: RunRecord) -> dict[str, Any]:
    """What a finished run says about itself, for the terminal summary's JSON and notebooks."""
    return {
        "name": r.name,
        "model": r.model.name,
        "weights": r.model.weights,
        "checkpoint_sha256": r.model.checkpoint_sha256,
        "protocol": r.protocol.id,
        "options": dict(r.protocol.options),
        "overrides": dict(r.protocol.overrides),
        "dataset": r.dataset.name,
        "images": r.counts.images,
        "scored": r.counts.instances if r.counts.instances is not None else r.counts.detections_scored,
        "skipped": dict(r.counts.skipped),
        "metrics": {m: r.metric(m) for m in r.metrics},
        "higher_is_better": dict(r.higher_is_better),
        "model_images_per_s": None if r.timing is None else r.timing.model_images_per_s,
        "device": r.environment.device_name,
        "notes": identity_notes(r),
        "run_id": r.run_id,
        "record": None if r.path is None else str(r.path),
    }


def summary_document(records: Sequence[RunRecord]) -> dict[str, Any]:
    return {**document_head("evalsuite-run-summary"), "runs": [run_dict(r) for r in records]}
