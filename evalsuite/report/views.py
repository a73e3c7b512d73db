"""What the Python API hands back in a notebook: objects that render as HTML in Jupyter
(``_repr_html_``), say their headline numbers in a short ``repr``, and give every other format on request.

* :class:`TableView` — ``Results.table(4)``: HTML in Jupyter; ``str()`` / ``.markdown`` is the Markdown
  the CLI prints; ``.latex``, ``.csv``, ``.json``, ``.frame`` the other formats.
* :class:`Comparison` — ``Results.compare(a, b)``: the paired bootstrap; ``.frame`` is its DataFrame.
* :class:`GateOutcome` — ``Results.gate(file)``: every gate's verdict; ``.passed`` is the bottom line.

``Results`` itself lives in :mod:`evalsuite.api`; its HTML and ``repr`` are :func:`results_html` and
:func:`results_repr` here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..identity import Excluded, identity_notes
from ..record import RunRecord
from .gates import GateResult, render_results
from .render import render, table_frame
from .render_compare import compare_csv, compare_document, compare_html, compare_markdown, headline
from .render_gates import gate_document, gates_html, verdict
from .render_html import frame_html
from .render_json import dumps, report_document
from .table import Table
from .table_noc import NOC_COLUMNS

_SHOWN = 6  # runs named in a repr before "…"


def _headline(r: RunRecord) -> str:
    m = r.primary_metric
    v = r.metric(m)
    return f"{m} {'–' if v is None else f'{v:.2f}' if m.startswith('NoC') else f'{v:.1f}'}"


def _metric_columns(records: Sequence[RunRecord]) -> list[str]:
    """The metrics a run table shows: every metric of mIoU / AP records, NoC's table columns."""
    out: dict[str, None] = {}
    for r in records:
        names = NOC_COLUMNS if r.protocol.task == "noc" else tuple(r.metrics)
        out.update(dict.fromkeys(m for m in names if r.metric(m) is not None))
    return list(out)


def runs_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per record: run, protocol, data, weights, scored items, its metrics and notes."""
    metrics = _metric_columns(records)
    rows = []
    for r in records:
        scored = r.counts.instances if r.counts.instances is not None else r.counts.detections_scored
        row: dict[str, Any] = {
            "name": r.name,
            "protocol": r.protocol.label,
            "dataset": r.dataset.name,
            "weights": r.model.weights,
            "scored": scored,
        }
        row.update({m: None if (v := r.metric(m)) is None else round(v, 2) for m in metrics})
        row["notes"] = "; ".join(identity_notes(r))
        rows.append(row)
    return pd.DataFrame(rows)


def results_repr(records: Sequence[RunRecord]) -> str:
    """``Results(3 records: box-fill coco-box mIoU 60.4; …)``."""
    parts = [f"{r.name} {r.protocol.label} {_headline(r)}" for r in records[:_SHOWN]]
    more = f"; … {len(records) - _SHOWN} more" if len(records) > _SHOWN else ""
    return f"Results({len(records)} records: {'; '.join(parts)}{more})"


def results_html(records: Sequence[RunRecord], excluded: Sequence[Excluded] = ()) -> str:
    title = f"evalsuite Results: {len(records)} records"
    notes = [f"left out: {e.line()}" for e in excluded]
    if not records:
        return frame_html(pd.DataFrame(), title, notes)
    return frame_html(runs_frame(records), title, notes)


class TableView:
    """A report table (or the tables of several comparable groups) that renders in any format."""

    def __init__(self, tables: Sequence[Table]) -> None:
        self.tables = list(tables)

    def render(self, fmt: str = "md", standalone: bool = True) -> str:
        """The tables as ``md``, ``latex``, ``csv``, ``json`` or ``html`` text (as ``evalsuite report``)."""
        return render(self.tables, fmt, standalone=standalone)

    @property
    def markdown(self) -> str:
        return self.render("md")

    @property
    def latex(self) -> str:
        """A standalone LaTeX document (``render("latex", standalone=False)``: the table environments)."""
        return self.render("latex")

    @property
    def csv(self) -> str:
        return self.render("csv")

    @property
    def json(self) -> str:
        return self.render("json")

    def to_dict(self) -> dict[str, Any]:
        """The JSON document as Python data (schema ``evalsuite-report``)."""
        return report_document(self.tables)

    @property
    def frame(self) -> pd.DataFrame:
        """Long form: one row per filled cell (as the CSV)."""
        return pd.concat([table_frame(t) for t in self.tables], ignore_index=True)

    def __str__(self) -> str:
        return self.markdown

    def __contains__(self, text: str) -> bool:
        return text in self.markdown

    def _repr_html_(self) -> str:
        return self.render("html")

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __repr__(self) -> str:
        heads = [
            f"{t.heading}: {len(t.rows)} rows × {len(t.columns)} columns"
            + (f" ({t.subtitle})" if t.subtitle else "")
            for t in self.tables
        ]
        return f"<TableView {'; '.join(heads)}>"


class Comparison:
    """A paired-bootstrap comparison of two runs (``.frame``: one row per metric / subset)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    @property
    def markdown(self) -> str:
        return compare_markdown(self.frame)

    @property
    def csv(self) -> str:
        return compare_csv(self.frame)

    @property
    def json(self) -> str:
        return dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The JSON document as Python data (schema ``evalsuite-compare``)."""
        return compare_document(self.frame)

    @property
    def attrs(self) -> dict[Any, Any]:
        return dict(self.frame.attrs)

    def __getitem__(self, key: Any) -> Any:
        """Columns of the frame (``cmp["delta"]``), as when ``compare`` returned the DataFrame."""
        return self.frame[key]

    def __len__(self) -> int:
        return len(self.frame)

    def __str__(self) -> str:
        return self.markdown

    def _repr_html_(self) -> str:
        return compare_html(self.frame)

    def __repr__(self) -> str:
        return f"<Comparison {headline(self.frame)}>"


class GateOutcome:
    """Gates checked against records: one :class:`~evalsuite.report.gates.GateResult` per gate."""

    def __init__(self, results: Sequence[GateResult]) -> None:
        self.results = list(results)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    @property
    def markdown(self) -> str:
        return render_results(self.results)

    @property
    def json(self) -> str:
        return dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The JSON document as Python data (schema ``evalsuite-gate``)."""
        return gate_document(self.results)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.markdown

    def _repr_html_(self) -> str:
        return gates_html(self.results)

    def __repr__(self) -> str:
        miss = ""
        if self.failed:
            f = self.failed[0]
            miss = f" (first miss: {f.gate.model} {f.gate.protocol} {f.gate.metric}: {f.status})"
        return f"<GateOutcome {verdict(self.results)}{miss}>"
