"""The paper's Table 4 and Table 5, rebuilt from run records (format-neutral; see :mod:`.render`).

Layout: columns come from the paper table's definition (``protocols/paper/*.toml``), split where a
run changed an option that changes what a column measures (labelled with it). Rows are runs by
name: a model's official run under the paper's display name, its variants (other checkpoints,
weights, answer options) under their run names. The paper's value and Δ = measured − paper stand
beside a measured value only where everything is the paper's (:func:`evalsuite.identity.paper_comparability`);
elsewhere a note says why, in words. With ``paper_rows`` the paper's own rows are added, marked as
quoted, for every model of the table that has no such comparable row.

A folder may hold runs that measured different things (the sample and a ``--limit 2`` run, another
seed): they become one table per comparable group (:func:`evalsuite.identity.group_rows`), and
records that cannot be shown at all are named with the reason — never a refusal of the whole folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import InputError
from ..identity import (
    Group,
    column_key,
    default_dataset,
    group_rows,
    group_title,
    paper_comparability,
    row_options,
    select_cells,
)
from ..paper import PaperColumn, PaperRow, PaperTable, paper_table, paper_tables, quoted_tables
from ..protocols import load_protocols
from ..record import RunRecord
from .render_text import options_text
from .rules import paper_column_options, paper_value
from .table import Cell, Column, ColumnInfo, Row, Table, digits_of
from .table_noc import NOC_TABLE, noc_spec

LABEL_MODES = ("paper", "id")
COLUMN_MODES = ("all", "paper")
Cells = Mapping[tuple[str, str], RunRecord]


def build_tables(
    records: Sequence[RunRecord],
    number: str,
    paper_rows: bool = False,
    labels: str = "paper",
    columns: str = "all",
) -> list[Table]:
    """Table ``number`` ("4", "5" or "noc") from the records of its protocols (others are ignored): one
    table per group of runs that measured the same things; left-out records are named in the first.

    ``columns``: ``"all"`` adds, after each dataset's paper columns, the rest of an AP record's summary
    (AP50, AP75, AR@k, ARS/M/L: the COCO / LVIS evaluators' whole summary); ``"paper"`` keeps the
    paper's columns only."""
    if labels not in LABEL_MODES:
        raise InputError(f"--labels must be one of {', '.join(LABEL_MODES)}")
    if columns not in COLUMN_MODES:
        raise InputError(f"--columns must be one of {', '.join(COLUMN_MODES)}")
    spec = table_spec(number, records)
    mine = [r for r in records if r.protocol.name in set(spec.protocols)]
    if not mine:
        raise InputError(
            f"no records for Table {number} (protocols {', '.join(sorted(spec.protocols))})",
            hint="pass the run folders of those protocols",
        )
    sel = select_cells(mine)
    excluded = [e.line() for e in sel.excluded]
    if not sel.cells:
        raise InputError(f"no record of Table {number} can be shown: " + " | ".join(excluded))
    groups = group_rows(sel.cells)
    tables = []
    for i, g in enumerate(groups):
        cells = {k: r for k, r in sel.cells.items() if k[0] in g.names}
        builder = _GroupTable(spec, cells, labels, paper_rows and i == 0, columns == "all")
        tables.append(builder.build(_subtitle(g, cells)))
    tables[0].excluded = excluded
    return tables


def build_table(
    records: Sequence[RunRecord], number: str, paper_rows: bool = False, labels: str = "paper"
) -> Table:
    """The first table of :func:`build_tables` (the runs on the most official data)."""
    return build_tables(records, number, paper_rows, labels)[0]


def table_spec(number: str, records: Sequence[RunRecord] = ()) -> PaperTable:
    """The layout of table ``number``: a paper's (``protocols/paper/*.toml``), or evalsuite's NoC table."""
    if str(number).lower() == NOC_TABLE.lower():
        return noc_spec(records)
    try:
        return paper_table(str(number))
    except KeyError:
        raise InputError(
            f"no table {number!r} (known: {', '.join([*paper_tables(), NOC_TABLE.lower()])})"
        ) from None


def tables_present(records: Sequence[RunRecord]) -> list[str]:
    """The tables (paper tables by number, then ``noc``) that at least one record belongs to."""
    present = {r.protocol.name for r in records}
    out = [n for n, t in paper_tables().items() if present & set(t.protocols)]
    return out + (["noc"] if any(r.protocol.task == "noc" for r in records) else [])


def _subtitle(g: Group, cells: Cells) -> str:
    return group_title(sorted(g.records(cells), key=lambda r: (r.protocol.name, r.name)))


@dataclass
class _GroupTable:
    """Builds the table of one group of rows (every column's records measured one thing)."""

    spec: PaperTable
    cells: Cells
    labels: str
    paper_rows: bool
    all_columns: bool = True
    sources: list[str] = field(default_factory=list)
    no_delta: dict[str, list[str]] = field(default_factory=dict)  # reason -> row labels

    def build(self, subtitle: str) -> Table:
        self.by_name: dict[str, dict[tuple, RunRecord]] = {}
        for r in self.cells.values():
            self.by_name.setdefault(r.name, {})[column_key(r)] = r
        self.columns = columns_of(self.spec, self.cells, self.all_columns)
        if self.paper_rows:
            self.columns = with_quoted_columns(self.columns, self.spec, self._other_papers())
        rows = self._rows()
        infos = column_infos(self.columns, self.cells)
        table = Table(self.spec.number, measured_title(self.spec, infos), self.columns, rows, infos)
        table.sources, table.subtitle = self.sources, subtitle
        table.notes = self._notes(rows) + ([self.spec.notes] if self.spec.number == NOC_TABLE else [])
        return table

    def _source(self, text: str) -> int:
        if text not in self.sources:
            self.sources.append(text)
        return self.sources.index(text) + 1

    # -- rows -----------------------------------------------------------------------------------------
    def _rows(self) -> list[Row]:
        models = {_model(recs) for recs in self.by_name.values()}
        rows: list[Row] = []
        for prow in self.spec.rows:
            measured = [self._measured_row(n) for n in self._names_of(prow.model)] if prow.model else []
            rows += measured
            shown = any(c.paper is not None for r in measured for c in r.cells)
            if self.paper_rows and not shown:
                rows.append(self._quoted_row(prow))
        order = model_order(self.spec)
        rest = sorted(
            models - {r.model for r in self.spec.rows if r.model},
            key=lambda m: (m not in order, order.index(m) if m in order else 0, m),
        )
        others = self._other_papers()
        for model in rest:
            measured = [self._measured_row(n) for n in self._names_of(model)]
            rows += measured
            shown = any(c.paper is not None for r in measured for c in r.cells)
            if self.paper_rows and not shown:
                rows += [self._quoted_row(prow, table) for table, prow in others if prow.model == model]
        return rows

    def _other_papers(self) -> list[tuple[PaperTable, PaperRow]]:
        """Rows of other papers' tables for the measured models this table's paper has no row of (their
        own claims: EdgeSAM's, TinySAM's, ...), with values for this table's protocols."""
        own = {r.model for r in self.spec.rows if r.model}
        measured = {_model(recs) for recs in self.by_name.values()} - own
        protocols = set(self.spec.protocols)
        return [
            (t, r)
            for t in quoted_tables()
            if t is not self.spec
            for r in t.rows
            if r.model in measured and protocols & set(r.values)
        ]

    def _names_of(self, model: str | None) -> list[str]:
        mine = [n for n, recs in self.by_name.items() if _model(recs) == model]
        return sorted(mine, key=lambda n: (n != model, n))  # the model's own run first, then variants

    def _measured_row(self, name: str) -> Row:
        recs = self.by_name[name]
        first = next(iter(recs.values()))
        model = first.model.name
        label = name if (self.labels == "id" or name != model) else (first.model.label or model)
        cells = [self._measured_cell(recs.get(col.key), col, label) for col in self.columns]
        return Row(name, label, model, cells)

    def _measured_cell(self, rec: RunRecord | None, col: Column, label: str) -> Cell:
        if rec is None:
            return Cell(None)
        value = rec.metric(col.metric)
        # a paper's value belongs to the column its options define: none beside another column
        pv = paper_value(rec.model.name, col.protocol, col.metric, dict(col.key[1]))
        if pv is None:
            return Cell(value, run_id=rec.run_id)
        fair = paper_comparability(rec, pv)
        if not fair.ok:
            self.no_delta.setdefault(fair.reason, []).append(label)
            return Cell(value, run_id=rec.run_id)
        return Cell(value, pv.value, self._source(pv.source), rec.run_id)

    def _quoted_row(self, prow: PaperRow, table: PaperTable | None = None) -> Row:
        table = table or self.spec
        cells = []
        for col in self.columns:
            value = prow.values.get(col.protocol, {}).get(col.metric)
            if value is None or paper_column_options(col.protocol, prow.options) != dict(col.key[1]):
                cells.append(Cell(None))
            else:
                cells.append(Cell(None, value, self._source(table.source_of(prow))))
        # the paper measured on the official data of the columns' protocols (never the run's sample)
        families = {
            load_protocols()[c.protocol].dataset for c in self.columns if c.protocol in load_protocols()
        }
        dataset = ", ".join(sorted(filter(None, map(default_dataset, families))))
        label = f"{prow.label} (paper)" if table is self.spec else f"{prow.label} ({table.number})"
        return Row(prow.label, label, prow.model, cells, quoted=True, dataset=dataset)

    # -- notes ----------------------------------------------------------------------------------------
    def _notes(self, rows: list[Row]) -> list[str]:
        notes = []
        for row in rows:
            if row.quoted:
                continue
            variant = {k: v for rec in self.by_name[row.name].values() for k, v in row_options(rec).items()}
            if variant:
                notes.append(f"Row options of {row.label}: {options_text(variant)}.")
        if any(r.quoted for r in rows):
            notes.append("Rows marked (paper) are quoted from the paper, not measured by evalsuite.")
        for reason, who in self.no_delta.items():
            notes.append(f"No paper value beside {', '.join(dict.fromkeys(who))}: {reason}.")
        if any(c.run_id is not None and c.measured is None for r in rows for c in r.cells):
            notes.append("Some records hold no value (null) for their cell, shown as –.")
        if self.labels == "paper":
            named = [(r.label, r.name) for r in rows if not r.quoted and r.label != r.name]
            if named:
                notes.append("Row labels: " + ", ".join(f"{lab} = {name}" for lab, name in named) + ".")
        return notes


def _model(recs: Mapping[tuple, RunRecord]) -> str:
    return next(iter(recs.values())).model.name


def columns_of(spec: PaperTable, cells: Cells, all_columns: bool = False) -> list[Column]:
    """The paper's columns that have records, each split by the column options its records use; with
    ``all_columns``, each dataset's columns are followed by the rest of its AP records' summary."""
    keys_by_protocol: dict[str, list[tuple]] = {}
    for r in cells.values():
        keys = keys_by_protocol.setdefault(r.protocol.name, [])
        if column_key(r) not in keys:
            keys.append(column_key(r))
    layout = list(spec.columns) + (summary_columns(spec, cells.values()) if all_columns else [])
    layout.sort(key=lambda c: [col.group for col in spec.columns].index(c.group))  # stable: paper's first
    out = []
    for c in layout:
        for key in sorted(keys_by_protocol.get(c.protocol, []), key=lambda k: (bool(k[1]), repr(k[1]))):
            opts = dict(key[1])
            label = c.label + (f" ({options_text(opts)})" if opts else "")
            out.append(Column(c.group, label, c.protocol, c.metric, key, c.extra, digits_of(c.metric)))
    return out


def summary_columns(spec: PaperTable, records: Iterable[RunRecord]) -> list[PaperColumn]:
    """The metrics an AP protocol's records carry beyond the paper's columns (the evaluator's whole
    summary: AP50, AP75, AR@k, ARS/M/L), in the protocol's metric order, as extra columns."""
    shipped = load_protocols()
    recs = list(records)
    out = []
    for protocol in spec.protocols:
        mine = [r for r in recs if r.protocol.name == protocol and r.protocol.task == "ap"]
        if not mine:
            continue
        group = next(c.group for c in spec.columns if c.protocol == protocol)
        shown = {c.metric for c in spec.columns if c.protocol == protocol}
        order = list(shipped[protocol].metrics) if protocol in shipped else []
        carried = dict.fromkeys(m for r in mine for m in r.metrics if m not in shown)
        for metric in sorted(carried, key=lambda m: (m not in order, order.index(m) if m in order else 0)):
            out.append(PaperColumn(group, metric, protocol, metric, extra=True))
    return out


def with_quoted_columns(
    columns: list[Column], spec: PaperTable, quoted: Sequence[tuple[PaperTable, PaperRow]]
) -> list[Column]:
    """``columns`` plus the columns the quoted rows' options define (e.g. ``COCO box (box_source=ann)``
    for a paper that prompted with the annotation box), each after its protocol's other columns."""
    out = list(columns)
    for _, prow in quoted:
        for c in spec.columns:
            opts = paper_column_options(c.protocol, prow.options)
            if c.metric not in prow.values.get(c.protocol, {}) or opts is None:
                continue
            key = (c.protocol, tuple(sorted(opts.items())))
            if any(col.key == key for col in out):
                continue
            label = c.label + (f" ({options_text(opts)})" if opts else "")
            new = Column(c.group, label, c.protocol, c.metric, key, c.extra)
            at = max((i + 1 for i, col in enumerate(out) if col.protocol == c.protocol), default=len(out))
            out.insert(at, new)
    return out


def model_order(spec: PaperTable) -> list[str]:
    """The table's models in the paper's order, then those of the other tables."""
    order = list(spec.models)
    for t in paper_tables().values():
        order += [m for m in t.models if m not in order]
    return order


def column_infos(columns: Sequence[Column], cells: Cells) -> list[ColumnInfo]:
    """What defines each column: the shipped options with its column options, the data, the detections
    (a column that holds only quoted values says the paper's dataset)."""
    infos = []
    for col in dict((c.key, c) for c in columns).values():
        rec = next((r for r in cells.values() if column_key(r) == col.key), None)
        opts = dict(col.key[1])
        shipped = load_protocols().get(col.protocol)
        column_def = shipped.with_options(opts) if shipped is not None else None
        label = (
            rec.protocol.id if rec is not None else f"{col.protocol}@{shipped.version if shipped else '?'}"
        )
        if rec is None:
            dataset = default_dataset(shipped.dataset) if shipped is not None else None
            infos.append(
                ColumnInfo(
                    col.key,
                    label + (f" ({options_text(opts)})" if opts else ""),
                    label,
                    column_def.options if column_def is not None else opts,
                    column_def.options_hash if column_def is not None else "",
                    f"{dataset or '?'} (paper values only)",
                    None,
                    None,
                )
            )
            continue
        infos.append(
            ColumnInfo(
                col.key,
                label + (f" ({options_text(opts)})" if opts else ""),
                label,
                column_def.options if column_def is not None else rec.protocol.options,
                column_def.options_hash if column_def is not None else rec.protocol.options_hash,
                rec.dataset.name,
                rec.dataset.annotation_sha256,
                rec.boxes_sha256,
                _detections_words(rec),
            )
        )
    return infos


def _detections_words(r: RunRecord) -> str:
    if r.boxes is None:
        return ""
    name = r.boxes.file.replace("\\", "/").rsplit("/", 1)[-1] or "?"
    what = {
        "official": r.boxes.label or "the published ViTDet-H file",
        "pseudo": "pseudo-detections (make-boxes)",
    }
    return f"{name} ({what.get(r.boxes.kind, 'a detection file of the user')})"


def measured_title(spec: PaperTable, infos: Sequence[ColumnInfo]) -> str:
    """The paper's title, with the detections it names replaced by those the records used."""
    used = list(dict.fromkeys(i.boxes for i in infos if i.boxes))
    if not used or not spec.boxes_phrase or spec.boxes_phrase not in spec.title:
        return spec.title
    return spec.title.replace(spec.boxes_phrase, f"prompted with {' and '.join(used)}")
