"""Accuracy vs model throughput, laid out like the papers' tables.

One row of panels per paper table (Table 4: mIoU, Table 5: mask AP), one panel per dataset group
(COCO, LVIS). In a Table 4 panel the box / 1-click / 3-click columns are marker shapes, so a run's
columns stand one above the other at its speed — the trade-off reads at a glance, in four panels
instead of eight. Colour and a placed label name the run (rows are run names, so variants of one
model are separate points); marker area is proportional to the parameter count.

x is the record's *model* throughput (``timing.model_images_per_s``: timed images over image
encoder + mask decoder seconds, warm-up excluded), never the whole-run rate, which mostly measures
JPEG decoding and scoring. Schema-1 records have no timing part: they are left out and the figure
says so. Speeds of different devices are not comparable, so mixed devices are refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.gridspec import GridSpec
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..errors import InputError
from ..identity import column_key
from ..paper import paper_table, paper_tables
from ..record import RunRecord
from .plot_base import (
    LABEL,
    SMALL,
    TICK,
    Plot,
    break_label,
    checked_cells,
    freeze_layout,
    header,
    new_figure,
    percent_axis,
    run_colors,
    run_label,
    save,
    wrap,
)
from .plot_labels import Anchor, Label, place_labels

#: marker of each paper column label; columns split by options take the spare shapes in turn
MARKERS = {"box": "s", "1 click": "o", "3 click": "^", "5 click": "D", "AP": "h"}
SPARE_MARKERS = ("v", "P", "X", "<", ">", "*")
AREA_MAX = 700.0  # pt², the largest model's marker
AREA_MIN = 14.0  # pt², the floor that keeps tiny and weightless models visible
AREA_UNKNOWN = 40.0  # pt², hollow: parameter count not known
PANEL_WIDTH = 4.8  # inches per panel column


@dataclass(frozen=True)
class SpeedColumn:
    """One column of a paper table as drawn: which records, which metric, which marker."""

    group: str
    label: str
    metric: str
    key: tuple  # rules.column_key
    marker: str


def model_throughput(record: RunRecord) -> float | None:
    """Images per second of the model alone (encoder + decoder, warm-up excluded), or None."""
    return None if record.timing is None else record.timing.model_images_per_s


def covered_tables(records: Sequence[RunRecord]) -> list[str]:
    """The paper tables at least one record belongs to, by number."""
    names = {r.protocol.name for r in records}
    return [n for n, t in paper_tables().items() if names & set(t.protocols)]


def _columns(number: str, recs: Sequence[RunRecord], spare: list[str]) -> list[SpeedColumn]:
    """The table's headline column of each protocol, split by the column options the records use."""
    spec = paper_table(number)
    out: list[SpeedColumn] = []
    seen: set[str] = set()
    for c in spec.columns:
        if c.protocol in seen:  # Table 5: AP only (APS/M/L are the sizes plot's)
            continue
        seen.add(c.protocol)
        keys = {column_key(r) for r in recs if r.protocol.name == c.protocol}
        for key in sorted(keys, key=lambda k: (bool(k[1]), repr(k))):  # the shipped column first
            opts = ", ".join(f"{k}={v}" for k, v in key[1])
            label = c.label + (f" ({opts})" if opts else "")
            marker = MARKERS.get(c.label, "o") if not opts else spare.pop(0) if spare else "o"
            out.append(SpeedColumn(c.group, label, c.metric, key, marker))
    return out


def _millions(r: RunRecord, params: dict[str, float]) -> float | None:
    if r.name in params:
        return params[r.name]
    n = r.model.parameters
    return None if n is None else n / 1e6


def _fmt_millions(m: float) -> str:
    return f"{m:.0f}M" if m >= 10 else f"{m:.2g}M"


def _fmt_rate(v: float, _pos: object = None) -> str:
    return f"{v:,.0f}" if v >= 1000 else f"{v:g}"


def _area(m: float | None, biggest: float) -> float:
    if m is None:
        return AREA_UNKNOWN
    return max(AREA_MIN, AREA_MAX * m / biggest) if biggest > 0 else AREA_MIN


def _size_references(biggest: float) -> list[float]:
    """Up to three round parameter counts (1, 2, 5 × 10^k million) for the marker-area key."""
    if biggest <= 0:
        return []
    nice = [s * 10**e for e in range(-2, 5) for s in (1, 2, 5)]
    top = max((v for v in nice if v <= biggest), default=biggest)
    refs = [top, top / 10, top / 100]
    return [v for v in refs if AREA_MAX * v / biggest >= AREA_MIN]


def _log_axis(ax: Axes, lo: float, hi: float, width_in: float) -> None:
    """Log x axis with plain-number ticks: 1-2-5 per decade where they fit, else 1-3, else powers of ten."""
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    per_decade = width_in * 72 / max(math.log10(hi / lo), 1e-9)  # points of axis per decade
    subs = (1.0, 2.0, 5.0) if per_decade >= 110 else (1.0, 3.0) if per_decade >= 70 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(_fmt_rate))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_speed(
    records: Sequence[RunRecord],
    outs: Sequence[Path] = (),
    tables: Sequence[str] = (),
    params: dict[str, float] | None = None,
    dpi: int = 100,
) -> Plot:
    """Accuracy vs model throughput: one row of panels per paper table in ``tables`` (default: every
    table the records cover), one panel per dataset; written to each of ``outs``.

    ``params`` (run name → millions of parameters) overrides the recorded counts.
    """
    params = params or {}
    cells = checked_cells(records)
    known = paper_tables()
    if unknown := [t for t in tables if t not in known]:
        raise InputError(f"no paper table {', '.join(unknown)} (known: {', '.join(known)})")
    numbers = list(tables) or covered_tables(list(cells.values()))
    if not numbers:
        raise InputError(
            "no records of a paper table's protocols to plot",
            hint="speed plots Table 4 (coco-box, coco-1click, ...) and Table 5 (coco-vitdet, lvis-vitdet)",
        )
    notes: list[str] = []
    spare = list(SPARE_MARKERS)
    # (table, group) -> [(column, record, x, y)]
    panels: dict[tuple[str, str], list[tuple[SpeedColumn, RunRecord, float, float]]] = {}
    untimed: list[str] = []
    for number in numbers:
        wanted = set(paper_table(number).protocols)
        recs = [r for r in cells.values() if r.protocol.name in wanted]
        if not recs:
            raise InputError(f"no records for Table {number} (protocols {', '.join(sorted(wanted))})")
        for col in _columns(number, recs, spare):
            for r in sorted((r for r in recs if column_key(r) == col.key), key=lambda r: r.name):
                x, y = model_throughput(r), r.metric(col.metric)
                if x is None or x <= 0:
                    untimed.append(f"{r.name} {r.protocol.id}")
                    continue
                if y is None:
                    notes.append(f"{r.name} {r.protocol.id}: no {col.metric} in the record; not drawn")
                    continue
                panels.setdefault((number, col.group), []).append((col, r, x, y))
    if untimed:
        notes.append(
            f"{len(untimed)} record(s) without model timing (schema 1, or fewer images than the warm-up) "
            "not drawn: " + ", ".join(untimed)
        )
    if not panels:
        raise InputError(
            "no record has a model throughput (timing.model_images_per_s) to plot",
            hint="schema-1 records predate timing, and a run no longer than the warm-up times nothing; "
            "re-run with this evalsuite on more images",
        )
    drawn = [r for pts in panels.values() for _, r, _, _ in pts]
    devices = sorted({r.environment.device_name for r in drawn})
    if len(devices) > 1:
        raise InputError(
            f"records come from different devices ({', '.join(devices)}): their speeds are not comparable",
            hint="plot one device's records at a time",
        )

    millions = {r.name: _millions(r, params) for r in drawn}
    for name in sorted(n for n, m in millions.items() if m is None):
        notes.append(f"{name}: parameter count unknown (pass --params {name}=MILLIONS); hollow marker")
    biggest = max((m for m in millions.values() if m), default=0.0)
    colors = run_colors(name for name, _ in cells)
    xs = [x for pts in panels.values() for _, _, x, _ in pts]
    x_lo, x_hi = min(xs) / 2.5, max(xs) * 2.5

    rows = [n for n in numbers if any(t == n for t, _ in panels)]
    groups = {n: [g for t, g in panels if t == n] for n in rows}
    ncols = max(len(g) for g in groups.values())
    fig = new_figure(PANEL_WIDTH * ncols + 0.4, 3.9 * len(rows) + 1.5)
    gs = GridSpec(len(rows), 2 * ncols, figure=fig)
    placements: list[tuple[Axes, list[Label], list[Anchor]]] = []
    for i, number in enumerate(rows):
        start = ncols - len(groups[number])  # a row with fewer panels is centred (half-column steps)
        for j, group in enumerate(groups[number]):
            ax = fig.add_subplot(gs[i, start + 2 * j : start + 2 * j + 2])
            pts = panels[(number, group)]
            labels, anchors = _draw_panel(ax, pts, colors, millions, biggest)
            _log_axis(ax, x_lo, x_hi, PANEL_WIDTH - 0.9)
            percent_axis(ax, [y for *_, y in pts])
            metric = pts[0][0].metric
            ax.set_title(f"Table {number} · {group}", fontsize=LABEL + 0.5)
            ax.set_xlabel("model throughput (images/s, log scale)", fontsize=LABEL)
            ax.set_ylabel(("mask AP" if metric == "AP" else metric) + " (%)", fontsize=LABEL)
            ax.tick_params(labelsize=TICK)
            ax.grid(True, which="major", alpha=0.35)
            ax.grid(True, which="minor", alpha=0.12)
            placements.append((ax, labels, anchors))

    handles = _legend_handles(panels, biggest)
    widest = max(h.get_markersize() for h in handles) / (SMALL + 0.5)  # in font sizes
    header(
        fig,
        "Accuracy vs model throughput",
        handles,
        min(len(handles), 7),
        handlelength=max(1.2, widest),
        handleheight=max(0.7, widest),
    )
    foot = (
        f"Device: {devices[0]}. Throughput = timed images / (image encoder + mask decoder time), "
        "warm-up excluded; image decoding, prompting and scoring are not counted. "
        "Marker area ∝ parameters" + ("; hollow: count unknown." if None in millions.values() else ".")
    )
    if untimed:
        foot += f" Not drawn: {len(untimed)} record(s) without model timing (schema 1, or too short to time)."
    fig.supxlabel(wrap(foot, fig.get_figwidth() - 0.3, SMALL), fontsize=SMALL, color="#333333")
    freeze_layout(fig)
    for ax, labels, anchors in placements:
        for text in place_labels(ax, labels, anchors, fontsize=SMALL + 0.5):
            notes.append(f"label {text!r} overlaps: too many points close together")
    save(fig, outs, dpi)
    return Plot(fig, notes)


def _draw_panel(
    ax: Axes,
    pts: Sequence[tuple[SpeedColumn, RunRecord, float, float]],
    colors: dict[str, str],
    millions: dict[str, float | None],
    biggest: float,
) -> tuple[list[Label], list[Anchor]]:
    """Markers (and a faint line joining a run's columns); returns one label per run and all anchors."""
    by_run: dict[str, list[tuple[SpeedColumn, RunRecord, float, float]]] = {}
    for p in pts:
        by_run.setdefault(p[1].name, []).append(p)
    labels: list[Label] = []
    anchors: list[Anchor] = []
    for name, run_pts in sorted(by_run.items()):
        color, m = colors[name], millions[name]
        area = _area(m, biggest)
        if len(run_pts) > 1:
            ax.plot(
                [x for *_, x, _ in run_pts],
                [y for *_, y in run_pts],
                color=color,
                lw=0.9,
                alpha=0.35,
                zorder=1,
            )
        for col, _, x, y in run_pts:
            ax.scatter(
                [x],
                [y],
                s=area,
                marker=col.marker,
                facecolors="none" if m is None else color,
                edgecolors=color if m is None else "black",
                linewidths=1.3 if m is None else 0.5,
                alpha=0.85,
                zorder=3,
                clip_on=False,
            )
            anchors.append(Anchor(x, y, math.sqrt(area) / 2))
        r = run_pts[0][1]
        text = break_label(run_label(r) + (f" ({_fmt_millions(m)})" if m else ""))
        spots = tuple(
            Anchor(x, y, math.sqrt(area) / 2) for *_, x, y in sorted(run_pts, key=lambda p: (-p[3], p[2]))
        )
        labels.append(Label(spots, text, color))  # beside the top point if there is room, else another
    labels.sort(key=lambda lab: (-lab.anchors[0].y, lab.anchors[0].x, lab.text))
    return labels, anchors


def _legend_handles(panels: dict, biggest: float) -> list[Line2D]:
    """One key for the whole figure: the column of each marker shape, then marker area → parameters."""
    shapes: dict[str, str] = {}
    for pts in panels.values():
        for col, *_ in pts:
            shapes.setdefault(col.label, col.marker)
    handles = [
        Line2D([], [], marker=m, linestyle="", color="#555555", markersize=8, label=label)
        for label, m in shapes.items()
    ]
    for ref in _size_references(biggest):
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="#cccccc",
                markeredgecolor="#555555",
                markersize=math.sqrt(AREA_MAX * ref / biggest),
                label=f"{_fmt_millions(ref)} params",
            )
        )
    return handles
