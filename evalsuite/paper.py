"""The papers' tables (``protocols/paper/*.toml``): their layouts and their numbers — quoted, never measured.

Each file quotes one paper table: its title and source, optionally its column layout (which
protocols and metrics make the table: the one place that says so), and its rows. A row names the
evalsuite model it corresponds to (none for rows without a public checkpoint) and, where the
paper measured it under non-default protocol options (SAM ViT-H's refinement iteration in
Table 5), those options: a measurement is comparable with the quoted value exactly when its
options equal the shipped protocol's plus the row's. Reports put these numbers beside measured
ones with their source; nothing may treat them as results.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class PaperColumn:
    """One column of a paper table: a protocol's metric."""

    group: str  # "COCO" | "LVIS"
    label: str  # "box", "1 click", "AP", ...
    protocol: str
    metric: str
    extra: bool = False  # beyond the paper's columns (measured by evalsuite only)


@dataclass(frozen=True)
class PaperRow:
    label: str  # as printed in the paper ("SAM (ViT-H)")
    model: str | None  # the evalsuite model, None when there is none (no public checkpoint, a detector)
    values: dict[str, dict[str, float]]  # protocol -> metric -> value
    provenance: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # protocol options the paper measured with
    #: the paper prompted with its own detection file, which evalsuite cannot identify ("" = the usual)
    boxes: str = ""


@dataclass(frozen=True)
class PaperTable:
    number: str
    title: str
    source: str
    notes: str
    columns: tuple[PaperColumn, ...]
    rows: tuple[PaperRow, ...]
    #: the words of the title that name the paper's detections ("with ViTDet-H boxes"): a measured
    #: table replaces them with the detection file its records used
    boxes_phrase: str = ""

    @property
    def protocols(self) -> tuple[str, ...]:
        """The protocols of the table's columns, in column order."""
        return tuple(dict.fromkeys(c.protocol for c in self.columns))

    @property
    def models(self) -> tuple[str, ...]:
        """The evalsuite models of the table's rows, in the paper's order."""
        return tuple(r.model for r in self.rows if r.model)

    def source_of(self, row: PaperRow) -> str:
        return self.source + (f" — {row.provenance}" if row.provenance else "")


@dataclass(frozen=True)
class QuotedValue:
    """One number quoted from a paper, where it comes from, and the options it was measured with."""

    value: float
    table: str
    row: str
    source: str
    options: dict[str, Any] = field(default_factory=dict)
    boxes: str = ""


def _row(data: dict[str, Any], default_metric: str | None) -> PaperRow:
    values: dict[str, dict[str, float]] = {}
    for protocol, cell in data.get("values", {}).items():
        if isinstance(cell, dict):
            values[protocol] = {m: float(v) for m, v in cell.items()}
        elif default_metric is not None:
            values[protocol] = {default_metric: float(cell)}
    return PaperRow(
        label=str(data["label"]),
        model=data.get("model") or None,
        values=values,
        provenance=str(data.get("provenance", "")),
        options=dict(data.get("options", {})),
        boxes=str(data.get("boxes", "")),
    )


@cache
def _files() -> tuple[PaperTable, ...]:
    folder = resources.files("evalsuite._protocols").joinpath("paper")
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".toml")), key=lambda p: p.name)
    out = []
    for path in files:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        out.append(
            PaperTable(
                number=str(data["table"]),
                title=str(data.get("title", "")),
                source=str(data["source"]),
                notes=str(data.get("notes", "")),
                columns=tuple(PaperColumn(**c) for c in data.get("columns", ())),
                rows=tuple(_row(r, data.get("metric")) for r in data.get("rows", ())),
                boxes_phrase=str(data.get("boxes_phrase", "")),
            )
        )
    return tuple(out)


def quoted_tables() -> tuple[PaperTable, ...]:
    """Every quoted table, in file-name order (also those without a layout, quoted for their values)."""
    return _files()


def paper_tables() -> dict[str, PaperTable]:
    """The tables evalsuite rebuilds (those whose file gives a column layout), by number."""
    return {t.number: t for t in _files() if t.columns}


def paper_table(number: str) -> PaperTable:
    tables = paper_tables()
    if number not in tables:
        raise KeyError(f"no paper table {number!r} (known: {', '.join(tables)})")
    return tables[number]


def quoted_values(model: str, protocol: str, metric: str) -> list[QuotedValue]:
    """Every quoted value for (evalsuite model, protocol name, metric), files in name order.

    The EfficientSAM paper's tables come first; other papers add rows for models it does not cover
    or for other options (which column a value belongs to is the report's rule:
    :func:`evalsuite.report.rules.paper_value`).
    """
    out = []
    for table in _files():
        for row in table.rows:
            if row.model != model:
                continue
            value = row.values.get(protocol, {}).get(metric)
            if value is not None:
                out.append(
                    QuotedValue(value, table.number, row.label, table.source_of(row), row.options, row.boxes)
                )
    return out
