"""The paper's Table 4 and Table 5, rebuilt from run records, in Markdown, LaTeX and CSV.

One neutral :class:`Table` is built from records; each renderer only formats it, so the three
formats always say the same thing. Every measured value sits beside the paper's value (quoted
from ``protocols/paper/*.toml`` through :func:`evalsuite.reference.paper_value`, with its
source as a numbered note) and Δ = measured − paper. Δ is left out where the run's protocol
version or options differ from the shipped protocol the paper values belong to.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import InputError
from ..protocols import load_protocols
from ..reference import paper_value
from .records import RunRecord, check_columns, unique_cells


@dataclass(frozen=True)
class Column:
    """One table column: a protocol's metric."""

    group: str  # "COCO" | "LVIS"
    label: str  # "box", "1 click", "AP", ...
    protocol: str
    metric: str
    extra: bool = False  # beyond the paper's columns


@dataclass(frozen=True)
class TableSpec:
    number: str
    title: str
    columns: tuple[Column, ...]


def _table4_columns() -> tuple[Column, ...]:
    cols = []
    for fam in ("coco", "lvis"):
        for name, label, extra in (
            ("box", "box", False),
            ("1click", "1 click", False),
            ("3click", "3 click", False),
            ("5click", "5 click", True),
        ):
            cols.append(Column(fam.upper(), label, f"{fam}-{name}", "mIoU", extra))
    return tuple(cols)


def _table5_columns() -> tuple[Column, ...]:
    cols = [Column("COCO", m, "coco-vitdet", m) for m in ("AP", "APS", "APM", "APL")]
    cols += [Column("LVIS", m, "lvis-vitdet", m) for m in ("AP", "APS", "APM", "APL")]
    cols += [Column("LVIS", m, "lvis-vitdet", m, extra=True) for m in ("APr", "APc", "APf")]
    return tuple(cols)


SPECS: dict[str, TableSpec] = {
    "4": TableSpec("4", "Zero-shot single-point valid mask evaluation, mIoU (%)", _table4_columns()),
    "5": TableSpec(
        "5", "Zero-shot instance segmentation with detector boxes, mask AP (%)", _table5_columns()
    ),
}

#: paper row order (first the paper's models, then the rest by name)
_PAPER_ORDER = (
    "sam-vit-h",
    "mobilesam",
    "fastsam-x",
    "efficientsam-ti",
    "efficientsam-s",
)


@dataclass(frozen=True)
class Cell:
    """A measured value with the paper's value beside it."""

    measured: float | None
    paper: float | None = None
    source: int | None = None  # 1-based index into Table.sources
    comparable: bool = True  # the run used the protocol the paper value belongs to
    run_id: str | None = None

    @property
    def delta(self) -> float | None:
        if self.measured is None or self.paper is None or not self.comparable:
            return None
        return self.measured - self.paper


@dataclass(frozen=True)
class ProtocolInfo:
    """What the caption says about one column's protocol."""

    protocol_id: str
    options: dict
    options_hash: str
    dataset: str
    annotation_sha256: str | None
    boxes_sha256: str | None
    default: bool  # version and options are the shipped protocol's


@dataclass
class Table:
    """A rendered-format-neutral table: rows of cells plus everything the caption must say."""

    spec: TableSpec
    columns: list[Column]
    rows: list[tuple[str, list[Cell]]]
    protocols: list[ProtocolInfo]
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _is_default(r: RunRecord) -> bool:
    shipped = load_protocols().get(r.protocol)
    return shipped is not None and shipped.version == r.version and shipped.options == r.options


def table_protocols(number: str) -> set[str]:
    return {c.protocol for c in SPECS[number].columns}


def build_table(records: Sequence[RunRecord], number: str) -> Table:
    """Table ``number`` ("4" or "5") from the records of its protocols (others are ignored).

    Raises InputError when no record fits, a column would mix protocol versions, options,
    datasets or detection files, or two records of one model and protocol disagree.
    """
    spec = SPECS[number]
    wanted = table_protocols(number)
    mine = [r for r in records if r.protocol in wanted]
    if not mine:
        raise InputError(
            f"no records for Table {number} (protocols {', '.join(sorted(wanted))})",
            hint="pass the run folders of those protocols",
        )
    cells = unique_cells(mine)
    check_columns(cells.values())
    present = {p for _, p in cells}
    columns = [c for c in spec.columns if c.protocol in present]
    models = sorted(
        {m for m, _ in cells},
        key=lambda m: (_PAPER_ORDER.index(m) if m in _PAPER_ORDER else len(_PAPER_ORDER), m),
    )
    sources: list[str] = []
    rows = []
    for model in models:
        row = []
        for col in columns:
            rec = cells.get((model, col.protocol))
            if rec is None:
                row.append(Cell(None))
                continue
            pv = paper_value(model, col.protocol, col.metric)
            src = None
            if pv is not None:
                if pv.source not in sources:
                    sources.append(pv.source)
                src = sources.index(pv.source) + 1
            row.append(
                Cell(
                    rec.metric(col.metric),
                    pv.value if pv else None,
                    src,
                    comparable=_is_default(rec),
                    run_id=rec.run_id,
                )
            )
        rows.append((model, row))
    infos = []
    for proto in dict.fromkeys(c.protocol for c in columns):
        rec = next(r for r in cells.values() if r.protocol == proto)
        infos.append(
            ProtocolInfo(
                rec.protocol_id,
                rec.options,
                rec.options_hash,
                rec.dataset,
                rec.annotation_sha256,
                rec.boxes_sha256,
                _is_default(rec),
            )
        )
    notes = []
    if any(not i.default for i in infos):
        odd = ", ".join(i.protocol_id for i in infos if not i.default)
        notes.append(
            f"{odd}: run with a protocol version or options other than the shipped defaults the paper values "
            "belong to, so no Δ is given there (n/a)."
        )
    if any(i.dataset.startswith("sample-") for i in infos):
        notes.append(
            "Measured on evalsuite's synthetic sample data, not COCO/LVIS: "
            "Δ against the paper is not meaningful."
        )
    if any(c.run_id is not None and c.measured is None for _, row in rows for c in row):
        notes.append("Some records hold no value (null) for their cell, shown as –.")
    return Table(spec, columns, rows, infos, sources, notes)


# -- shared formatting ------------------------------------------------------------------------------
def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _signed(v: float) -> str:
    s = f"{v:+.1f}"
    return "+0.0" if s == "-0.0" else s


def _options_text(options: dict) -> str:
    def fmt(v: object) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    return ", ".join(f"{k}={fmt(v)}" for k, v in sorted(options.items()))


def _caption(t: Table) -> str:
    extra = [c for c in t.columns if c.extra]
    text = (
        f"Table {t.spec.number} (evalsuite, measured). {t.spec.title}. Each cell: measured (paper [source], "
        "Δ = measured − paper); – = no value."
    )
    if extra:
        text += " Columns beyond the paper: " + ", ".join(f"{c.group} {c.label}" for c in extra) + "."
    return text


def _protocol_lines(t: Table) -> list[tuple[str, str, str, str]]:
    """Per column protocol: (id, options hash, options, data) for the caption's protocol list."""
    lines = []
    for p in t.protocols:
        data = f"data {p.dataset}"
        if p.annotation_sha256:
            data += f" (annotation sha256 {p.annotation_sha256[:12]})"
        if p.boxes_sha256:
            data += f", detections sha256 {p.boxes_sha256[:12]}"
        lines.append((p.protocol_id, p.options_hash, _options_text(p.options), data))
    return lines


# -- Markdown ---------------------------------------------------------------------------------------
def _md_cell(c: Cell) -> str:
    if c.measured is None:
        return "–"
    if c.paper is None:
        return _num(c.measured)
    delta = _signed(c.delta) if c.delta is not None else "n/a"
    return f"{_num(c.measured)} ({_num(c.paper)} [{c.source}], {delta})"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(t: Table) -> str:
    head = ["model", *(f"{c.group} {c.label}" for c in t.columns)]
    lines = [f"**{_caption(t)}**", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|" + "|".join("---:" for _ in t.columns) + "|")
    for model, row in t.rows:
        lines.append("| " + " | ".join([_md_escape(model), *(_md_cell(c) for c in row)]) + " |")
    lines += ["", "Protocols:", ""]
    lines += [
        f"- `{pid}` (options_hash `{h}`): {_md_escape(opts)}; {_md_escape(data)}"
        for pid, h, opts, data in _protocol_lines(t)
    ]
    if t.sources:
        lines += ["", "Paper values:", ""]
        lines += [f"- [{i}] {_md_escape(s)}" for i, s in enumerate(t.sources, 1)]
    if t.notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {_md_escape(n)}" for n in t.notes]
    return "\n".join(lines) + "\n"


# -- LaTeX ------------------------------------------------------------------------------------------
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
    if c.measured is None:
        return "--"
    if c.paper is None:
        return _tex_num(c.measured)
    delta = "n/a" if c.delta is None else _tex_signed(c.delta)
    return (
        f"{_tex_num(c.measured)} {{\\scriptsize ({_tex_num(c.paper)}\\textsuperscript{{{c.source}}}, "
        f"{delta})}}"
    )


_LATEX_PREAMBLE = (
    "% Generated by `evalsuite report` from run records; paper values quoted from protocols/paper/.",
    r"\documentclass{article}",
    r"\usepackage[T1]{fontenc}",
    r"\usepackage[landscape,margin=1.5cm]{geometry}",
    r"\usepackage{booktabs}",
    r"\begin{document}",
)


def render_latex(t: Table, standalone: bool = True) -> str:
    """A booktabs table; ``standalone`` wraps it in a document that compiles on its own."""
    ncols = len(t.columns)
    groups: list[tuple[str, int]] = []
    for c in t.columns:
        if groups and groups[-1][0] == c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    out = list(_LATEX_PREAMBLE) if standalone else []
    out += [r"\begin{table}[ht]", r"\centering", r"\small"]
    protocols = "; ".join(
        rf"\texttt{{{latex_escape(pid)}}} (options\_hash \texttt{{{h}}}: "
        + latex_escape(f"{opts}; {data}")
        + ")"
        for pid, h, opts, data in _protocol_lines(t)
    )
    short = latex_escape(f"Table {t.spec.number} (evalsuite, measured). {t.spec.title}.")
    out.append(rf"\caption[{short}]{{" + latex_escape(_caption(t)) + rf" Protocols: {protocols}.}}")
    out.append(r"\begin{tabular}{l" + "r" * ncols + "}")
    out.append(r"\toprule")
    header = [""] + [rf"\multicolumn{{{n}}}{{c}}{{{latex_escape(g)}}}" for g, n in groups]
    out.append(" & ".join(header) + r" \\")
    rules, start = [], 2
    for _, n in groups:
        rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    out.append("".join(rules))
    out.append(" & ".join(["Model", *(latex_escape(c.label) for c in t.columns)]) + r" \\")
    out.append(r"\midrule")
    for model, row in t.rows:
        cells = [rf"\texttt{{{latex_escape(model)}}}", *(_tex_cell(c) for c in row)]
        out.append(" & ".join(cells) + r" \\")
    out.append(r"\bottomrule")
    out.append(r"\end{tabular}")
    if t.sources or t.notes:
        out.append(r"\par\medskip")
        out.append(r"\begin{minipage}{\linewidth}\footnotesize")
        if t.sources:
            out.append(r"\textbf{Paper values:}")
            out.append(
                " ".join(rf"\textsuperscript{{{i}}}{latex_escape(s)}." for i, s in enumerate(t.sources, 1))
            )
        out += [r"\par " + latex_escape(n) for n in t.notes]
        out.append(r"\end{minipage}")
    out.append(r"\end{table}")
    if standalone:
        out.append(r"\end{document}")
    return "\n".join(out) + "\n"


# -- CSV ------------------------------------------------------------------------------------------
CSV_FIELDS = (
    "table",
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
    "run_id",
)


def _csv_num(v: float | None) -> str:
    """Six decimals: far below any reported precision, stable across platforms."""
    return "" if v is None else repr(round(v, 6))


def table_rows(t: Table) -> list[dict[str, str]]:
    """One row per measured cell (the long form of the table)."""
    info = {p.protocol_id.split("@")[0]: p for p in t.protocols}
    out = []
    for model, row in t.rows:
        for col, c in zip(t.columns, row, strict=True):
            if c.run_id is None:
                continue
            p = info[col.protocol]
            out.append(
                {
                    "table": t.spec.number,
                    "model": model,
                    "column": f"{col.group} {col.label}",
                    "protocol_id": p.protocol_id,
                    "options_hash": p.options_hash,
                    "dataset": p.dataset,
                    "metric": col.metric,
                    "measured": _csv_num(c.measured),
                    "paper": _csv_num(c.paper),
                    "delta": _csv_num(c.delta),
                    "paper_source": t.sources[c.source - 1] if c.source else "",
                    "run_id": c.run_id,
                }
            )
    return out


def write_csv(rows: list[dict], fields: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def render_csv(tables: Sequence[Table]) -> str:
    return write_csv([r for t in tables for r in table_rows(t)], CSV_FIELDS)


def render(tables: Sequence[Table], fmt: str, standalone: bool = True) -> str:
    """Tables in one of ``md``, ``latex``, ``csv`` (LaTeX: one document holding all of them)."""
    if fmt == "md":
        return "\n".join(render_markdown(t) for t in tables)
    if fmt == "csv":
        return render_csv(tables)
    if fmt == "latex":
        body = "\n".join(render_latex(t, standalone=False) for t in tables)
        if not standalone:
            return body
        return "\n".join(_LATEX_PREAMBLE) + "\n" + body + "\\end{document}\n"
    raise InputError(f"unknown format {fmt!r} (md, latex, csv)")


# -- per-category and per-size exports --------------------------------------------------------------
EXPORT_FIELDS = {
    "per-category": (
        "model",
        "protocol_id",
        "options_hash",
        "dataset",
        "category_id",
        "category",
        "metric",
        "value",
        "n",
        "run_id",
    ),
    "per-size": ("model", "protocol_id", "options_hash", "dataset", "size", "metric", "value", "n", "run_id"),
}


def export_rows(records: Sequence[RunRecord], kind: str) -> list[dict[str, str]]:
    """Per-category or per-size numbers of each record, in long form (one metric value per row).

    Per-category comes from the record's ``per_category`` (mIoU protocols; AP records carry
    what their evaluator wrote, often nothing); per-size from the size metrics
    (mIoU_S/M/L with the instance counts, APS/APM/APL for AP protocols).
    """
    if kind not in EXPORT_FIELDS:
        raise InputError(f"unknown export {kind!r} (per-category, per-size)")
    cells = unique_cells(records)
    out = []
    for r in sorted(cells.values(), key=lambda r: (r.model, r.protocol)):
        base = {
            "model": r.model,
            "protocol_id": r.protocol_id,
            "options_hash": r.options_hash,
            "dataset": r.dataset,
            "run_id": r.run_id,
        }
        if kind == "per-category":
            per_cat = r.data.get("per_category") or {}
            for cat_id in sorted(per_cat, key=lambda k: int(k)):
                entry = per_cat[cat_id]
                for metric, value in entry.items():
                    if metric in ("name", "n"):
                        continue
                    out.append(
                        {
                            **base,
                            "category_id": str(cat_id),
                            "category": entry.get("name") or "",
                            "metric": metric,
                            "value": _csv_num(value if isinstance(value, (int, float)) else None),
                            "n": str(entry.get("n", "")),
                        }
                    )
        else:
            by_size = (r.data.get("counts") or {}).get("instances_by_size") or {}
            for size in ("S", "M", "L"):
                metric = f"AP{size}" if r.task == "ap" else f"mIoU_{size}"
                if metric not in r.data["metrics"]:
                    continue
                out.append(
                    {
                        **base,
                        "size": size,
                        "metric": metric,
                        "value": _csv_num(r.metric(metric)),
                        "n": str(by_size.get(size, "")),
                    }
                )
    return out


def render_export(records: Sequence[RunRecord], kind: str) -> str:
    return write_csv(export_rows(records, kind), EXPORT_FIELDS[kind])
