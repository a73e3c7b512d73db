"""The format-neutral table a report renders: columns, rows of cells, and what its notes must say.

Built from records by :mod:`.table_build`, rendered by :mod:`.render` (Markdown, LaTeX, CSV, HTML),
so every format says the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def digits_of(metric: str) -> int:
    """Decimals a metric is shown with: clicks to two places, failure counts whole, percentages to one."""
    return 2 if metric.startswith("NoC@") else 0 if metric.startswith("NoF@") else 1


@dataclass(frozen=True)
class Column:
    """One table column: a protocol's metric, under the column options its records share."""

    group: str  # "COCO" | "LVIS"
    label: str  # "box", "1 click", "AP", "1 click (clicks=3)"
    protocol: str
    metric: str
    key: tuple  # see identity.column_key
    extra: bool = False  # beyond the paper's columns
    digits: int = 1  # decimals shown (NoC: 2; NoF, a count: 0)

    @property
    def title(self) -> str:
        return f"{self.group} {self.label}"


@dataclass(frozen=True)
class Cell:
    """A measured value, with the paper's value beside it only where the comparison is fair.

    A quoted reference row's cells hold only the paper's value (``run_id`` None).
    """

    measured: float | None
    paper: float | None = None
    source: int | None = None  # 1-based index into Table.sources
    run_id: str | None = None

    @property
    def delta(self) -> float | None:
        if self.measured is None or self.paper is None or self.run_id is None:
            return None
        return self.measured - self.paper


@dataclass
class Row:
    name: str  # run name (or the paper's row label for a reference row)
    label: str  # what the table shows
    model: str | None
    cells: list[Cell]
    quoted: bool = False  # a reference row: the paper's numbers, not measured
    dataset: str = ""  # a quoted row: the dataset the paper measured on


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
    boxes: str = ""  # the detection file, in words


@dataclass
class Table:
    """A format-neutral table: rows of cells plus everything the notes must say."""

    number: str
    title: str  # the measured table's title (the detections it used, where the paper names its own)
    columns: list[Column]
    rows: list[Row]
    infos: list[ColumnInfo]
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    subtitle: str = ""  # what the group's records were measured on, when a folder made several tables
    excluded: list[str] = field(default_factory=list)  # records left out, one line each with the reason

    @property
    def heading(self) -> str:
        """ "Table 4" for a paper's table, "NoC table" for evalsuite's own."""
        return f"Table {self.number}" if self.number[:1].isdigit() else f"{self.number} table"

    @property
    def caption(self) -> str:
        text = f"{self.heading} (evalsuite, measured). {self.title}."
        return text + (f" Data: {self.subtitle}." if self.subtitle else "")
