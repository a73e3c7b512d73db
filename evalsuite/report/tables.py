"""The paper's Table 4 and Table 5, rebuilt from run records, in Markdown, LaTeX and CSV.

One neutral :class:`Table` is built from records (:func:`build_table`); each renderer only
formats it, so the three formats always say the same thing. Markdown and CSV come from pandas
(``DataFrame.to_markdown`` / ``to_csv``); LaTeX is written by hand because the paper's layout —
grouped column heads with ``\\cmidrule``, paper values in small type, footnote marks — is not
something ``DataFrame.to_latex`` can express.

Layout: columns come from the paper table's definition (``protocols/paper/*.toml``), split where a
run changed an option that changes what a column measures (labelled with it). Rows are runs by
name: a model's official run under the paper's display name, its variants (other checkpoints,
weights, answer options) under their run names. Each measured value sits beside the paper's
value (with its source as a numbered note) and Δ = measured − paper, where the comparison is
fair — the paper's weights, protocol options and data; everywhere else a note says why there is
no Δ. With ``paper_rows`` the paper's own rows for models that were not measured are added,
marked as quoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import InputError
from ..paper import PaperTable, paper_table, paper_tables
from ..protocols import load_protocols
from ..record import RunRecord
from .rules import (
    check_columns,
    column_key,
    paper_column_options,
    paper_comparability,
    paper_value,
    row_options,
    unique_cells,
)

LABEL_MODES = ("paper", "id")


@dataclass(frozen=True)
class Column:
    """One table column: a protocol's metric, under the column options its records share."""

    group: str  # "COCO" | "LVIS"
    label: str  # "box", "1 click", "AP", "1 click (clicks=3)"
    protocol: str
    metric: str
    key: tuple  # see rules.column_key
    extra: bool = False  # beyond the paper's columns

    @property
    def title(self) -> str:
        return f"{self.group} {self.label}"


@dataclass(frozen=True)
class Cell:
    """A measured value with the paper's value beside it (a reference row has only the paper's)."""

    measured: float | None
    paper: float | None = None
    source: int | None = None  # 1-based index into Table.sources
    comparable: bool = False  # Δ may be given
    run_id: str | None = None

    @property
    def delta(self) -> float | None:
        if self.measured is None or self.paper is None or not self.comparable:
            return None
        return self.measured - self.paper


@dataclass
class Row:
    name: str  # run name (or the paper's row label for a reference row)
    label: str  # what the table shows
    model: str | None
    cells: list[Cell]
    quoted: bool = False  # a reference row: the paper's numbers, not measured


@dataclass(frozen=True)
class ColumnInfo:
    """What the notes say about one column's protocol and data."""

    key: tuple
    label: str  # the protocol id with its column options
    protocol_id: str
    options: dict
    options_hash: str
    dataset: str
    annotation_sha256: str | None
    boxes_sha256: str | None


@dataclass
class Table:
    """A format-neutral table: rows of cells plus everything the notes must say."""

    number: str
    title: str
    columns: list[Column]
    rows: list[Row]
    infos: list[ColumnInfo]
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def table_protocols(number: str) -> set[str]:
    return set(paper_table(number).protocols)


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _options_text(options: dict) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(options.items()))


def _columns(spec: PaperTable, cells: dict[tuple[str, str], RunRecord]) -> list[Column]:
    """The paper's columns that have records, each split by the column options its records use."""
    keys_by_protocol: dict[str, list[tuple]] = {}
    for r in cells.values():
        keys = keys_by_protocol.setdefault(r.protocol.name, [])
        if column_key(r) not in keys:
            keys.append(column_key(r))
    out = []
    for c in spec.columns:
        for key in sorted(keys_by_protocol.get(c.protocol, []), key=lambda k: (bool(k[1]), repr(k[1]))):
            opts = dict(key[1])
            label = c.label + (f" ({_options_text(opts)})" if opts else "")
            out.append(Column(c.group, label, c.protocol, c.metric, key, c.extra))
    return out


def _model_order(spec: PaperTable) -> list[str]:
    order = list(spec.models)
    for t in paper_tables().values():  # models of the other tables next, in their order
        order += [m for m in t.models if m not in order]
    return order


def build_table(
    records: Sequence[RunRecord], number: str, paper_rows: bool = False, labels: str = "paper"
) -> Table:
    """Table ``number`` ("4" or "5") from the records of its protocols (others are ignored).

    Raises InputError when no record fits, a column would mix protocol versions, datasets,
    detection files or click seeds, or two records of one run name and protocol disagree.
    """
    if labels not in LABEL_MODES:
        raise InputError(f"--labels must be one of {', '.join(LABEL_MODES)}")
    spec = paper_table(number)
    wanted = set(spec.protocols)
    mine = [r for r in records if r.protocol.name in wanted]
    if not mine:
        raise InputError(
            f"no records for Table {number} (protocols {', '.join(sorted(wanted))})",
            hint="pass the run folders of those protocols",
        )
    cells = unique_cells(mine)
    check_columns(cells.values())
    columns = _columns(spec, cells)
    by_name: dict[str, dict[tuple, RunRecord]] = {}
    for r in cells.values():
        by_name.setdefault(r.name, {})[column_key(r)] = r

    sources: list[str] = []
    notes: list[str] = []
    no_delta: dict[str, list[str]] = {}  # reason -> row labels

    def source_index(text: str) -> int:
        if text not in sources:
            sources.append(text)
        return sources.index(text) + 1

    def measured_row(name: str) -> Row:
        recs = by_name[name]
        first = next(iter(recs.values()))
        model = first.model.name
        is_variant = name != model
        label = name if (labels == "id" or is_variant) else (first.model.label or model)
        row_cells = []
        for col in columns:
            rec = recs.get(col.key)
            if rec is None:
                row_cells.append(Cell(None))
                continue
            value = rec.metric(col.metric)
            # a paper's value belongs to the column its options define: none beside another column
            pv = paper_value(model, col.protocol, col.metric, dict(col.key[1]))
            if pv is None or rec.model.random_weights:
                if pv is not None:
                    no_delta.setdefault("random weights: no paper value applies", []).append(label)
                row_cells.append(Cell(value, run_id=rec.run_id))
                continue
            fair = paper_comparability(rec, pv)
            if not fair.ok:
                no_delta.setdefault(fair.reason, []).append(label)
            row_cells.append(Cell(value, pv.value, source_index(pv.source), fair.ok, rec.run_id))
        return Row(name, label, model, row_cells)

    order = _model_order(spec)
    models = {next(iter(recs.values())).model.name for recs in by_name.values()}

    def names_of(model: str) -> list[str]:
        mine = [n for n, recs in by_name.items() if next(iter(recs.values())).model.name == model]
        return sorted(mine, key=lambda n: (n != model, n))  # the model's own run first, then variants

    rows: list[Row] = []
    for prow in spec.rows:
        if prow.model and prow.model in models:
            rows += [measured_row(n) for n in names_of(prow.model)]
        elif paper_rows:
            quoted = []
            for col in columns:
                value = prow.values.get(col.protocol, {}).get(col.metric)
                if value is None or paper_column_options(col.protocol, prow.options) != dict(col.key[1]):
                    quoted.append(Cell(None))
                else:
                    quoted.append(Cell(None, value, source_index(spec.source_of(prow))))
            rows.append(Row(prow.label, f"{prow.label} (paper)", prow.model, quoted, quoted=True))
    rest = sorted(
        models - {r.model for r in spec.rows if r.model},
        key=lambda m: (m not in order, order.index(m) if m in order else 0, m),
    )
    for model in rest:
        rows += [measured_row(n) for n in names_of(model)]

    infos = []
    for col in dict((c.key, c) for c in columns).values():
        recs = [r for r in cells.values() if column_key(r) == col.key]
        rec = recs[0]
        opts = dict(col.key[1])
        # what defines the column: the shipped options with its column options (row options are noted per row)
        shipped = load_protocols().get(rec.protocol.name)
        column_def = shipped.with_options(opts) if shipped is not None else None
        infos.append(
            ColumnInfo(
                col.key,
                rec.protocol.id + (f" ({_options_text(opts)})" if opts else ""),
                rec.protocol.id,
                column_def.options if column_def is not None else rec.protocol.options,
                column_def.options_hash if column_def is not None else rec.protocol.options_hash,
                rec.dataset.name,
                rec.dataset.annotation_sha256,
                rec.boxes_sha256,
            )
        )
    for row in rows:
        if row.quoted:
            continue
        variant = {k: v for rec in by_name[row.name].values() for k, v in row_options(rec).items()}
        if variant:
            notes.append(f"Row options of {row.label}: {_options_text(variant)}.")
    if any(r.quoted for r in rows):
        notes.append("Rows marked (paper) are quoted from the paper, not measured by evalsuite.")
    changed = [
        c.title for i, c in enumerate(columns) if c.key[1] and all(r.cells[i].paper is None for r in rows)
    ]
    if changed:
        notes.append(
            f"{', '.join(dict.fromkeys(changed))}: measured with other options than the paper's column, "
            "so no paper value stands beside them."
        )
    for reason, who in no_delta.items():
        notes.append(f"No Δ for {', '.join(dict.fromkeys(who))}: {reason}.")
    if any(c.run_id is not None and c.measured is None for r in rows for c in r.cells):
        notes.append("Some records hold no value (null) for their cell, shown as –.")
    if labels == "paper":
        named = [(r.label, r.name) for r in rows if not r.quoted and r.label != r.name]
        if named:
            notes.append("Row labels: " + ", ".join(f"{lab} = {name}" for lab, name in named) + ".")
    return Table(number, spec.title, columns, rows, infos, sources, notes)


# -- shared formatting ------------------------------------------------------------------------------
def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _signed(v: float) -> str:
    s = f"{v:+.1f}"
    return "+0.0" if s == "-0.0" else s


def _caption(t: Table) -> str:
    return f"Table {t.number} (evalsuite, measured). {t.title}."


def _legend(t: Table) -> str:
    text = "Each cell: measured (paper [source], Δ = measured − paper); – = no value."
    extra = [c for c in t.columns if c.extra]
    if extra:
        text += " Columns beyond the paper: " + ", ".join(dict.fromkeys(c.title for c in extra)) + "."
    return text


def _info_lines(t: Table) -> list[str]:
    lines = []
    for i in t.infos:
        data = f"data {i.dataset}"
        if i.annotation_sha256:
            data += f" (annotation sha256 {i.annotation_sha256[:12]})"
        if i.boxes_sha256:
            data += f", detections sha256 {i.boxes_sha256[:12]}"
        lines.append(f"{i.label} (options_hash {i.options_hash}): {_options_text(i.options)}; {data}")
    return lines


# -- Markdown (pandas) ------------------------------------------------------------------------------
def _md_cell(c: Cell) -> str:
    if c.run_id is None and c.paper is not None:  # a quoted reference value
        return f"*{_num(c.paper)}* [{c.source}]"
    if c.measured is None:
        return "–"
    if c.paper is None:
        return _num(c.measured)
    delta = _signed(c.delta) if c.delta is not None else "n/a"
    return f"{_num(c.measured)} ({_num(c.paper)} [{c.source}], {delta})"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(t: Table) -> str:
    frame = pd.DataFrame(
        [[_md_escape(r.label), *(_md_cell(c) for c in r.cells)] for r in t.rows],
        columns=["model", *(c.title for c in t.columns)],
    )
    body = frame.to_markdown(
        index=False, disable_numparse=True, colalign=("left",) + ("right",) * len(t.columns)
    )
    lines = [f"**{_caption(t)}** {_legend(t)}", "", body, "", "Protocols:", ""]
    lines += [f"- {_md_escape(s)}" for s in _info_lines(t)]
    if t.sources:
        lines += ["", "Paper values:", ""]
        lines += [f"- [{i}] {_md_escape(s)}" for i, s in enumerate(t.sources, 1)]
    if t.notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {_md_escape(n)}" for n in t.notes]
    return "\n".join(lines) + "\n"


# -- LaTeX (by hand: see the module docstring) -------------------------------------------------------
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "Δ": r"$\Delta$",
    "−": "$-$",
    "–": "--",
    "—": "---",
    "≥": r"$\geq$",
    "×": r"$\times$",
    "²": r"$^2$",
}


def latex_escape(text: str) -> str:
    """Plain text to LaTeX (specials escaped; the few non-ASCII signs evalsuite writes mapped)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _tex_num(v: float) -> str:
    return f"{v:.1f}" if v >= 0 else f"$-${abs(v):.1f}"


def _tex_signed(v: float) -> str:
    s = _signed(v)
    return f"${s[0]}${s[1:]}"


def _tex_cell(c: Cell) -> str:
    if c.run_id is None and c.paper is not None:
        return rf"\textit{{{_tex_num(c.paper)}}}\textsuperscript{{{c.source}}}"
    if c.measured is None:
        return "--"
    if c.paper is None:
        return _tex_num(c.measured)
    delta = "n/a" if c.delta is None else _tex_signed(c.delta)
    paper = f"{_tex_num(c.paper)}\\textsuperscript{{{c.source}}}"
    return f"{_tex_num(c.measured)} {{\\scriptsize ({paper}, {delta})}}"


_LATEX_PREAMBLE = (
    "% Generated by `evalsuite report` from run records; paper values quoted from protocols/paper/.",
    r"\documentclass{article}",
    r"\usepackage[T1]{fontenc}",
    r"\usepackage[landscape,margin=1.5cm]{geometry}",
    r"\usepackage{booktabs}",
    r"\begin{document}",
)


def render_latex(t: Table, standalone: bool = True) -> str:
    """A booktabs table whose caption holds the title only; protocol ids, hashes and options go to ``%``
    comments (machine-readable provenance that does not clutter the page), sources and notes below."""
    groups: list[tuple[str, int]] = []
    for c in t.columns:
        if groups and groups[-1][0] == c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    out = list(_LATEX_PREAMBLE) if standalone else []
    out += [r"\begin{table}[ht]", r"\centering", r"\small"]
    out += [f"% {line}" for line in _info_lines(t)]
    out.append(rf"\caption{{{latex_escape(_caption(t))}}}")
    out.append(r"\begin{tabular}{l" + "r" * len(t.columns) + "}")
    out.append(r"\toprule")
    out.append(
        " & ".join(["", *(rf"\multicolumn{{{n}}}{{c}}{{{latex_escape(g)}}}" for g, n in groups)]) + r" \\"
    )
    rules, start = [], 2
    for _, n in groups:
        rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    out.append("".join(rules))
    out.append(" & ".join(["Model", *(latex_escape(c.label) for c in t.columns)]) + r" \\")
    out.append(r"\midrule")
    for r in t.rows:
        label = latex_escape(r.label)
        out.append(
            " & ".join([rf"\textit{{{label}}}" if r.quoted else label, *(_tex_cell(c) for c in r.cells)])
            + r" \\"
        )
    out.append(r"\bottomrule")
    out.append(r"\end{tabular}")
    out.append(r"\par\medskip")
    out.append(r"\begin{minipage}{\linewidth}\footnotesize")
    out.append(latex_escape(_legend(t)))
    if t.sources:
        out.append(
            r"\par\textbf{Paper values:} "
            + " ".join(rf"\textsuperscript{{{i}}}{latex_escape(s)}." for i, s in enumerate(t.sources, 1))
        )
    out += [r"\par " + latex_escape(n) for n in t.notes]
    out.append(r"\end{minipage}")
    out.append(r"\end{table}")
    if standalone:
        out.append(r"\end{document}")
    return "\n".join(out) + "\n"


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


def _csv_num(v: float | None) -> float | None:
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
                    "dataset": i.dataset if i else "",
                    "metric": col.metric,
                    "measured": _csv_num(c.measured),
                    "paper": _csv_num(c.paper),
                    "delta": _csv_num(c.delta),
                    "paper_source": t.sources[c.source - 1] if c.source else "",
                    "quoted": r.quoted,
                    "run_id": c.run_id or "",
                }
            )
    return pd.DataFrame(out, columns=list(CSV_FIELDS))


def to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def render(tables: Sequence[Table], fmt: str, standalone: bool = True) -> str:
    """Tables in one of ``md``, ``latex``, ``csv`` (LaTeX: one document holding all of them)."""
    if fmt == "md":
        return "\n".join(render_markdown(t) for t in tables)
    if fmt == "csv":
        return to_csv(pd.concat([table_frame(t) for t in tables], ignore_index=True))
    if fmt == "latex":
        body = "\n".join(render_latex(t, standalone=False) for t in tables)
        if not standalone:
            return body
        return "\n".join(_LATEX_PREAMBLE) + "\n" + body + "\\end{document}\n"
    raise InputError(f"unknown format {fmt!r} (md, latex, csv)")


# -- per-category and per-size exports ------------------------------------------------------------------
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
    cells = unique_cells(records)
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    for r in sorted(cells.values(), key=lambda r: (r.name, r.protocol.name)):
        base = {
            "name": r.name,
            "model": r.model.name,
            "protocol_id": r.protocol.id,
            "overrides": _options_text(r.protocol.overrides),
            "options_hash": r.protocol.options_hash,
            "dataset": r.dataset.name,
            "run_id": r.run_id,
        }
        if kind == "per-category":
            if not r.per_category:
                notes.append(f"{r.name} {r.protocol.id} ({r.path}): {_no_per_category(r)}")
            for cat_id in sorted(r.per_category, key=int):
                entry = r.per_category[cat_id]
                for metric, value in entry.items():
                    if metric in ("name", "n"):
                        continue
                    number = (
                        value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
                    )
                    out.append(
                        {
                            **base,
                            "category_id": int(cat_id),
                            "category": entry.get("name") or "",
                            "metric": metric,
                            "value": _csv_num(number),
                            "n": entry.get("n"),
                        }
                    )
        else:
            by_size = r.counts.instances_by_size or {}
            for size in ("S", "M", "L"):
                metric = f"AP{size}" if r.protocol.task == "ap" else f"mIoU_{size}"
                if metric not in r.metrics:
                    continue
                out.append(
                    {
                        **base,
                        "size": size,
                        "metric": metric,
                        "value": _csv_num(r.metric(metric)),
                        "n": by_size.get(size),
                    }
                )
    frame = pd.DataFrame(out)
    frame.attrs["notes"] = notes
    return frame


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
