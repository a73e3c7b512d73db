"""Tables rendered as Markdown and CSV (pandas), and the one entry for every format.

LaTeX is :mod:`.render_latex`, HTML (notebooks) :mod:`.render_html`, JSON :mod:`.render_json`; they all
render the same :class:`.table.Table`, so every format says the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..errors import InputError
from .render_text import cell_text, info_lines, legend
from .table import Table

FORMATS = ("md", "latex", "csv", "json", "html")


# -- Markdown (pandas) ------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_list(title: str, items: Sequence[str]) -> list[str]:
    return ["", title, "", *(f"- {_md_escape(s)}" for s in items)] if items else []


def render_markdown(t: Table) -> str:
    frame = pd.DataFrame(
        [
            [
                _md_escape(r.label),
                *(cell_text(c, col.digits) for c, col in zip(r.cells, t.columns, strict=True)),
            ]
            for r in t.rows
        ],
        columns=["model", *(c.title for c in t.columns)],
    )
    body = frame.to_markdown(
        index=False, disable_numparse=True, colalign=("left",) + ("right",) * len(t.columns)
    )
    lines = [f"**{t.caption}** {legend(t)}", "", body, *_md_list("Protocols:", info_lines(t))]
    lines += _md_list("Paper values:", [f"[{i}] {s}" for i, s in enumerate(t.sources, 1)])
    lines += _md_list("Notes:", t.notes)
    lines += _md_list("Left out (not comparable, or not one result):", t.excluded)
    return "\n".join(lines) + "\n"


# -- CSV (pandas): one row per cell --------------------------------------------------------------------
CSV_FIELDS = (
    "table",
    "row",
    "name",
    "model",
    "column",
    "protocol_id",
    "options_hash",
    "dataset",
    "metric",
    "measured",
    "paper",
    "delta",
    "paper_source",
    "quoted",
    "run_id",
)


def csv_num(v: float | None) -> float | None:
    """Six decimals: far below any reported precision, stable across platforms."""
    return None if v is None else round(v, 6)


def table_frame(t: Table) -> pd.DataFrame:
    """The long form of the table: one row per filled cell (measured or quoted)."""
    info = {i.key: i for i in t.infos}
    out = []
    for r in t.rows:
        for col, c in zip(t.columns, r.cells, strict=True):
            if c.run_id is None and c.paper is None:
                continue
            i = info.get(col.key)
            out.append(
                {
                    "table": t.number,
                    "row": r.label,
                    "name": r.name,
                    "model": r.model or "",
                    "column": col.title,
                    "protocol_id": i.protocol_id if i else col.protocol,
                    "options_hash": i.options_hash if i else "",
                    "dataset": r.dataset if r.quoted else (i.dataset if i else ""),
                    "metric": col.metric,
                    "measured": csv_num(c.measured),
                    "paper": csv_num(c.paper),
                    "delta": csv_num(c.delta),
                    "paper_source": t.sources[c.source - 1] if c.source else "",
                    "quoted": r.quoted,
                    "run_id": c.run_id or "",
                }
            )
    return pd.DataFrame(out, columns=list(CSV_FIELDS))


#: a text cell starting with one of these is a formula to a spreadsheet (CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defuse(v: object) -> object:
    return "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v


def to_csv(frame: pd.DataFrame) -> str:
    """CSV text; text cells that a spreadsheet would run as a formula are prefixed with ``'``."""
    text_columns = [
        c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)
    ]
    if text_columns:
        frame = frame.copy()
        for c in text_columns:
            frame[c] = frame[c].map(_defuse)
    return frame.to_csv(index=False, lineterminator="\n")


def render(tables: Sequence[Table], fmt: str, standalone: bool = True) -> str:
    """Tables in one of ``md``, ``latex``, ``csv``, ``json``, ``html`` (LaTeX: one document holding all
    of them; JSON: one document, see ``docs/json.md``)."""
    if fmt == "md":
        return "\n".join(render_markdown(t) for t in tables)
    if fmt == "csv":
        return to_csv(pd.concat([table_frame(t) for t in tables], ignore_index=True))
    if fmt == "latex":
        from .render_latex import render_latex_all

        return render_latex_all(tables, standalone)
    if fmt == "json":
        from .render_json import dumps, report_document

        return dumps(report_document(tables))
    if fmt == "html":
        from .render_html import tables_html

        return tables_html(tables)
    raise InputError(f"unknown format {fmt!r} ({', '.join(FORMATS)})")
