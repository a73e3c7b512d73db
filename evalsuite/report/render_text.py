"""Formatting that every rendering of a table shares: numbers, the legend, the protocol lines."""

from __future__ import annotations

from collections.abc import Mapping

from .table import Cell, Table


def fmt_option(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def options_text(options: Mapping) -> str:
    """``a=1, b=true``: options as the tables, notes and exports write them."""
    return ", ".join(f"{k}={fmt_option(v)}" for k, v in sorted(options.items()))


def num(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def signed(v: float, digits: int = 1) -> str:
    s = f"{v:+.{digits}f}"
    return s.replace("-", "+", 1) if s.strip("-+0.") == "" else s  # never "-0.0"


def cell_text(c: Cell, digits: int = 1) -> str:
    """``measured (paper [n], Δ)``, ``measured``, a quoted ``*paper* [n]`` or ``–`` (plain text)."""
    if c.run_id is None and c.paper is not None:  # a quoted reference value
        return f"*{num(c.paper, digits)}* [{c.source}]"
    if c.measured is None:
        return "–"
    if c.paper is None or c.delta is None:
        return num(c.measured, digits)
    return f"{num(c.measured, digits)} ({num(c.paper, digits)} [{c.source}], {signed(c.delta, digits)})"


def legend(t: Table) -> str:
    quoting = any(c.paper is not None for r in t.rows for c in r.cells) or t.number[:1].isdigit()
    text = "Each cell: " + ("measured (paper [source], Δ = measured − paper)" if quoting else "measured")
    text += "; – = no value."
    extra = [c for c in t.columns if c.extra]
    if extra:
        text += " Columns beyond the paper: " + ", ".join(dict.fromkeys(c.title for c in extra)) + "."
    return text


def info_lines(t: Table) -> list[str]:
    """One line per column definition: protocol id, options and their hash, data and detections."""
    lines = []
    for i in t.infos:
        data = f"data {i.dataset}"
        if i.annotation_sha256:
            data += f" (annotation sha256 {i.annotation_sha256[:12]})"
        if i.boxes_sha256:
            data += f", detections {i.boxes or 'file'} sha256 {i.boxes_sha256[:12]}"
        lines.append(f"{i.label} (options_hash {i.options_hash}): {options_text(i.options)}; {data}")
    return lines


def column_groups(t: Table) -> list[tuple[str, int]]:
    """Consecutive columns of one group (COCO, LVIS), as (group, count): the grouped column heads."""
    groups: list[tuple[str, int]] = []
    for c in t.columns:
        if groups and groups[-1][0] == c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    return groups
