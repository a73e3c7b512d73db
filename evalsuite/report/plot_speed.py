"""Accuracy vs model throughput, for a slide: one panel per table column, one point per run.

A panel is one column of a paper table (by default each dataset's headline column: Table 4's box
prompt, Table 5's mask AP; ``protocols`` picks others), so a point never mixes protocols and no line
joins them. Colour and a placed label name the run (variants of one model are separate points; the
label carries the parameter count); the marker says what weights made it (filled: official weights
or none; hollow: random weights, a smoke run; diamond: a checkpoint of the user's or a model passed
from Python). A horizontal bar spans the 10th–90th percentile of the per-image model time over the
timed images (records made before evalsuite kept it have none, and the footer says so).

x is the record's *model* throughput (``timing.model_images_per_s``: timed images over image
encoder + mask decoder seconds, warm-up excluded), never the whole-run rate, which mostly measures
JPEG decoding and scoring. What the runs were measured on (the sample, ``--limit``) heads the figure.
Schema-1 records have no timing part: they are left out and the figure says so. Speeds of different
devices are not comparable, so mixed devices are refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..errors import InputError
from ..identity import column_key, group_title
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
    percent_axis,
    run_colors,
    run_label,
    save,
    slide_grid,
    wrap,
)
from .plot_labels import Anchor, Label, place_labels
from .render_text import options_text

MARKER_AREA = 70.0  # pt²: one size for every run (the parameter count is in the label)
#: the marker of each kind of weights, and what the key says about it
WEIGHT_MARKERS = {
    "official": ("o", True, "official weights (or none)"),
    "random": ("o", False, "random weights: a smoke run, not a result"),
    "own": ("D", True, "a checkpoint of yours, or a model from Python"),
}
SPREAD_LABEL = "bar: 10th–90th percentile of the per-image model time"


@dataclass(frozen=True)
class SpeedPoint:
    record: RunRecord
    x: float  # model images / s
    y: float
    spread: tuple[float, float] | None  # images / s of a slow (p90) and a fast (p10) image


@dataclass
class SpeedPanel:
    """One column of a paper table: the runs' points on it."""

    key: tuple  # identity.column_key
    title: str
    metric: str
    points: list[SpeedPoint] = field(default_factory=list)


def model_throughput(record: RunRecord) -> float | None:
    """Images per second of the model alone (encoder + decoder, warm-up excluded), or None."""
    return None if record.timing is None else record.timing.model_images_per_s


def throughput_spread(record: RunRecord) -> tuple[float, float] | None:
    """Throughput of a slow (90th percentile time) and a fast (10th) image; None if not recorded."""
    t = record.timing
    if t is None or t.model_s_p10 is None or t.model_s_p90 is None or min(t.model_s_p10, t.model_s_p90) <= 0:
        return None
    return 1.0 / t.model_s_p90, 1.0 / t.model_s_p10


def weights_kind(r: RunRecord) -> str:
    if r.model.random_weights:
        return "random"
    return "official" if r.model.official_weights and not r.model.fingerprint else "own"


def covered_tables(records: Sequence[RunRecord]) -> list[str]:
    """The paper tables at least one record belongs to, by number."""
    names = {r.protocol.name for r in records}
    return [n for n, t in paper_tables().items() if names & set(t.protocols)]


def _fmt_millions(m: float) -> str:
    return f"{m:.0f}M" if m >= 10 else f"{m:.2g}M"


def _fmt_rate(v: float, _pos: object = None) -> str:
    return f"{v:,.0f}" if v >= 1000 else f"{v:g}"


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


# -- which panels ----------------------------------------------------------------------------------------
def _panels(cells: dict, tables: Sequence[str], protocols: Sequence[str]) -> list[SpeedPanel]:
    """A panel per column key: each dataset's first column with records (default) or ``protocols``'."""
    known = paper_tables()
    if unknown := [t for t in tables if t not in known]:
        raise InputError(f"no paper table {', '.join(unknown)} (known: {', '.join(known)})")
    recs = list(cells.values())
    numbers = list(tables) or covered_tables(recs)
    if unknown := [p for p in protocols if not any(r.protocol.name == p for r in recs)]:
        raise InputError(f"no records for protocol(s) {', '.join(unknown)}")
    if not numbers and not protocols:
        raise InputError(
            "no records of a paper table's protocols to plot",
            hint="speed plots Table 4 (coco-box, coco-1click, ...) and Table 5 (coco-vitdet, lvis-vitdet)",
        )
    chosen: dict[str, tuple[str, str, str]] = {}  # protocol -> (table, group, label) of its first column
    for number in numbers:
        done: set[str] = set()  # groups (datasets) of this table that have their panel
        for c in paper_table(number).columns:
            if not any(r.protocol.name == c.protocol for r in recs) or c.protocol in chosen:
                continue
            if (c.protocol in protocols) if protocols else (c.group not in done):
                chosen[c.protocol] = (number, c.group, "mask AP" if c.metric == "AP" else c.label)
                done.add(c.group)
    if missing := [p for p in protocols if p not in chosen]:
        raise InputError(
            f"{', '.join(missing)}: not a column of a paper table (speed plots Table 4 / 5 columns)"
        )
    if not chosen:
        raise InputError(f"no records for Table {', '.join(numbers)}")
    panels = []
    for protocol, (number, group, label) in chosen.items():
        metric = next(c.metric for c in paper_table(number).columns if c.protocol == protocol)
        for key in sorted({column_key(r) for r in recs if r.protocol.name == protocol}, key=repr):
            opts = f" ({options_text(dict(key[1]))})" if key[1] else ""
            panels.append(SpeedPanel(key, f"{group} {label}{opts} · Table {number}", metric))
    return panels


def _fill(panels: list[SpeedPanel], cells: dict) -> tuple[list[str], list[str]]:
    """Each panel's points; returns notes and the records left out for want of timing."""
    notes: list[str] = []
    untimed: list[str] = []
    for panel in panels:
        for r in sorted((r for r in cells.values() if column_key(r) == panel.key), key=lambda r: r.name):
            x, y = model_throughput(r), r.metric(panel.metric)
            if x is None or x <= 0:
                untimed.append(f"{r.name} {r.protocol.id}")
            elif y is None:
                notes.append(f"{r.name} {r.protocol.id}: no {panel.metric} in the record; not drawn")
            else:
                panel.points.append(SpeedPoint(r, x, y, throughput_spread(r)))
    if untimed:
        notes.append(
            f"{len(untimed)} record(s) without model timing (schema 1, or fewer images than the warm-up) "
            "not drawn: " + ", ".join(untimed)
        )
    return notes, untimed


def _drawn(panels: list[SpeedPanel]) -> list[RunRecord]:
    drawn = [p.record for panel in panels for p in panel.points]
    if not drawn:
        raise InputError(
            "no record has a model throughput (timing.model_images_per_s) to plot",
            hint="schema-1 records predate timing, and a run no longer than the warm-up times nothing; "
            "re-run with this evalsuite on more images",
        )
    devices = sorted({r.environment.device_name for r in drawn})
    if len(devices) > 1:
        raise InputError(
            f"records come from different devices ({', '.join(devices)}): their speeds are not comparable",
            hint="plot one device's records at a time",
        )
    return drawn


# -- drawing ---------------------------------------------------------------------------------------------
def _millions(r: RunRecord, params: dict[str, float]) -> float | None:
    if r.name in params:
        return params[r.name]
    return None if r.model.parameters is None else r.model.parameters / 1e6


def _draw_point(ax: Axes, p: SpeedPoint, color: str) -> None:
    marker, filled, _ = WEIGHT_MARKERS[weights_kind(p.record)]
    if p.spread is not None and p.spread[1] > p.spread[0]:
        lo, hi = min(p.spread[0], p.x), max(p.spread[1], p.x)
        ax.errorbar(
            [p.x],
            [p.y],
            xerr=[[p.x - lo], [hi - p.x]],
            fmt="none",
            ecolor=color,
            elinewidth=1.2,
            capsize=3,
            alpha=0.8,
            zorder=2,
        )
    ax.scatter(
        [p.x],
        [p.y],
        s=MARKER_AREA,
        marker=marker,
        facecolors=color if filled else "white",
        edgecolors="black" if filled else color,
        linewidths=0.6 if filled else 1.8,
        zorder=3,
        clip_on=False,
    )


def _draw_panel(
    ax: Axes, panel: SpeedPanel, colors: dict[str, str], params: dict[str, float]
) -> tuple[list[Label], list[Anchor]]:
    """One point per run, its spread bar, and a label each (placed once the layout is frozen)."""
    labels, anchors = [], []
    radius = math.sqrt(MARKER_AREA) / 2
    for p in panel.points:
        color = colors[p.record.name]
        _draw_point(ax, p, color)
        m = _millions(p.record, params)
        anchor = Anchor(p.x, p.y, radius)
        anchors.append(anchor)
        text = break_label(run_label(p.record) + (f" ({_fmt_millions(m)})" if m else ""))
        labels.append(Label((anchor,), text, color))
    labels.sort(key=lambda lab: (-lab.anchors[0].y, lab.anchors[0].x, lab.text))
    return labels, anchors


def _axes(ax: Axes, panel: SpeedPanel, x_range: tuple[float, float], width_in: float) -> None:
    _log_axis(ax, *x_range, width_in)
    percent_axis(ax, [p.y for p in panel.points])
    ax.set_title(panel.title, fontsize=LABEL + 0.5)
    ax.set_xlabel("model throughput, images/s (log)", fontsize=LABEL)
    ax.set_ylabel(("mask AP" if panel.metric == "AP" else panel.metric) + " (%)", fontsize=LABEL)
    ax.tick_params(labelsize=TICK)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)


def _key(drawn: Sequence[RunRecord], spread: bool) -> list[Line2D]:
    kinds = [k for k in WEIGHT_MARKERS if any(weights_kind(r) == k for r in drawn)]
    handles = []
    for k in kinds:
        marker, filled, text = WEIGHT_MARKERS[k]
        handles.append(
            Line2D(
                [],
                [],
                marker=marker,
                ls="",
                markersize=8,
                markerfacecolor="#555555" if filled else "white",
                markeredgecolor="black" if filled else "#555555",
                markeredgewidth=1.5,
                label=text,
            )
        )
    if spread:
        handles.append(Line2D([], [], color="#555555", marker="|", markersize=8, lw=1.2, label=SPREAD_LABEL))
    return handles


def _footer(drawn: Sequence[RunRecord], untimed: list[str], spread: bool) -> str:
    timed = sorted({r.timing.timed_images for r in drawn if r.timing is not None})
    counts = f"{timed[0]}" if len(timed) == 1 else f"{timed[0]}–{timed[-1]}"
    text = (
        f"Device: {drawn[0].environment.device_name}. Throughput = timed images / (image encoder + mask "
        f"decoder time) over {counts} timed image(s), warm-up excluded; decoding, prompting and scoring "
        "are not counted."
    )
    if not spread:
        text += " No spread shown: the records keep none, or timed one image."
    if untimed:
        text += f" Not drawn: {len(untimed)} record(s) without model timing (schema 1, or too short to time)."
    return text


def plot_speed(
    records: Sequence[RunRecord],
    outs: Sequence[Path] = (),
    tables: Sequence[str] = (),
    params: dict[str, float] | None = None,
    dpi: int = 100,
    protocols: Sequence[str] = (),
) -> Plot:
    """Accuracy vs model throughput: a panel per column (each dataset's headline column of every paper
    table in ``tables``, default every table the records cover; or the columns of ``protocols``), one
    point per run; written to each of ``outs``. ``params`` (run name → millions) overrides counts."""
    params = params or {}
    cells = checked_cells(records)
    panels = _panels(cells, tables, protocols)
    notes, untimed = _fill(panels, cells)
    panels = [p for p in panels if p.points]
    drawn = _drawn(panels)
    for r in sorted(
        {r.name: r for r in drawn if _millions(r, params) is None}.values(), key=lambda r: r.name
    ):
        notes.append(f"{r.name}: parameter count unknown (pass --params {r.name}=MILLIONS)")
    xs = [v for panel in panels for p in panel.points for v in (p.x, *(p.spread or ()))]
    x_range = (min(xs) / 2.5, max(xs) * 2.5)
    fig, axes, width = slide_grid(len(panels), 3.7)
    colors = run_colors(name for name, _ in cells)
    placements = []
    for ax, panel in zip(axes, panels, strict=True):
        placements.append((ax, *_draw_panel(ax, panel, colors, params)))
        _axes(ax, panel, x_range, width - 0.9)
    spread = any(p.spread is not None and p.spread[1] > p.spread[0] for pn in panels for p in pn.points)
    title = "Accuracy vs model throughput\n" + f"Data: {group_title(drawn)}"
    handles = _key(drawn, spread)
    header(fig, title, handles, len(handles))
    fig.supxlabel(
        wrap(_footer(drawn, untimed, spread), fig.get_figwidth() - 0.3, SMALL),
        fontsize=SMALL,
        color="#333333",
    )
    freeze_layout(fig)
    for ax, labels, anchors in placements:
        for text in place_labels(ax, labels, anchors, fontsize=SMALL + 0.5):
            notes.append(f"label {text!r} overlaps: too many points close together")
    save(fig, outs, dpi)
    return Plot(fig, notes)
