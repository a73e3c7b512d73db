"""HTML for notebooks: tables, run summaries and comparisons as Jupyter shows them (``_repr_html_``).

Plain HTML tables (Jupyter styles them) with the same content as the Markdown: every cell's paper
value and Δ where the comparison is fair, the caption, and the notes below. Everything from a record
(names, notes, paths) is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import pandas as pd

from .render_text import cell_text, column_groups, info_lines, legend
from .table import Table

_STYLE = "text-align:right"


def _list(title: str, items: Sequence[str]) -> str:
    if not items:
        return ""
    lis = "".join(f"<li>{escape(s)}</li>" for s in items)
    return f"<details><summary>{escape(title)} ({len(items)})</summary><ul>{lis}</ul></details>"


def table_html(t: Table) -> str:
    """One table: grouped column heads, a row per run (quoted paper rows in italics), notes folded."""
    head1 = "<th></th>" + "".join(
        f'<th colspan="{n}" style="text-align:center">{escape(g)}</th>' for g, n in column_groups(t)
    )
    head2 = "<th>model</th>" + "".join(f'<th style="{_STYLE}">{escape(c.label)}</th>' for c in t.columns)
    rows = []
    for r in t.rows:
        label = f"<i>{escape(r.label)}</i>" if r.quoted else escape(r.label)
        cells = "".join(
            f'<td style="{_STYLE}">{escape(cell_text(c, col.digits))}</td>'
            for c, col in zip(r.cells, t.columns, strict=True)
        )
        rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    sources = [f"[{i}] {s}" for i, s in enumerate(t.sources, 1)]
    return (
        f"<div><p><b>{escape(t.caption)}</b> {escape(legend(t))}</p>"
        f"<table><thead><tr>{head1}</tr><tr>{head2}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + _list("Paper values", sources)
        + _list("Notes", t.notes)
        + _list("Left out (not comparable, or not one result)", t.excluded)
        + _list("Protocols", info_lines(t))
        + "</div>"
    )


def tables_html(tables: Sequence[Table]) -> str:
    return "\n".join(table_html(t) for t in tables)


def frame_html(frame: pd.DataFrame, title: str = "", notes: Sequence[str] = ()) -> str:
    """A small DataFrame as an escaped HTML table with a bold title and notes below."""
    body = frame.to_html(index=False, escape=True, na_rep="–", border=0)
    head = f"<p><b>{escape(title)}</b></p>" if title else ""
    foot = "".join(f"<p><small>{escape(n)}</small></p>" for n in notes)
    return f"<div>{head}{body}{foot}</div>"
