"""mIoU vs number of clicks: one panel per dataset, one line per run (variants are their own lines).

Two kinds of measurement, drawn apart: the click protocols (``coco-1click``, ``-3click``, ``-5click``:
k clicks placed at once by the protocol's rule) are solid lines with filled markers; NoC records
(SAM's iterative clicker, each click placed on the previous error) give the mIoU after each of their
k clicks, a dash-dot curve in the run's colour. The paper's quoted values for the same model are
dashed with hollow markers, only for runs with the official weights (a random or fine-tuned network
has no paper value). The y axis fits the data within 0–100 %. One key for the figure, above the
panels, because the runs and their colours are the same in every panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from ..errors import InputError
from ..identity import group_title
from ..protocols import click_count, count_option, load_protocols
from ..record import RunRecord
from .plot_base import (
    LABEL,
    TICK,
    Plot,
    checked_cells,
    freeze_layout,
    header,
    percent_axis,
    run_colors,
    run_label,
    save,
    slide_grid,
)
from .rules import paper_value

CURVE_STYLES: dict[str, dict[str, Any]] = {
    "clicks": {"marker": "o", "lw": 1.8, "ls": "-"},
    "noc": {"marker": ".", "lw": 1.6, "ls": "-."},
    "paper": {"marker": "o", "markerfacecolor": "none", "lw": 1.4, "ls": "--"},
}
KEY_TEXT = {
    "clicks": "k clicks at once (click protocols)",
    "noc": "after click k of SAM's iterative clicker (NoC)",
    "paper": "paper (official weights only)",
}


@dataclass
class Curve:
    """One line: a run's mIoU at each click count, of one kind of measurement."""

    record: RunRecord
    kind: str  # "clicks" | "noc" | "paper"
    label: str
    points: list[tuple[int, float]] = field(default_factory=list)


def _line_options(r: RunRecord) -> str:
    """Options (other than the click count) that differ from the shipped protocol, for labels."""
    shipped = load_protocols().get(r.protocol.name)
    base = shipped.options if shipped else {}
    count = count_option(r.protocol.task, r.protocol.options)
    diff = {k: v for k, v in r.protocol.options.items() if k != count and base.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in sorted(diff.items()))


def _is_clicks(r: RunRecord) -> bool:
    return r.protocol.task == "miou" and click_count(r.protocol.task, r.protocol.options) is not None


def _curves(records: Sequence[RunRecord], family: str) -> list[Curve]:
    """The family's curves: click protocols by (run, options), NoC records, and the paper's values."""
    curves: dict[tuple[str, str, str], Curve] = {}
    for r in sorted(records, key=lambda r: (r.name, r.protocol.name)):
        if r.dataset.family != family:
            continue
        opts = _line_options(r)
        label = run_label(r) + (f" ({opts})" if opts else "")
        if _is_clicks(r) and (y := r.metric("mIoU")) is not None:
            curve = curves.setdefault((r.name, "clicks", opts), Curve(r, "clicks", label))
            curve.points.append((click_count(r.protocol.task, r.protocol.options) or 0, y))
        elif r.protocol.task == "noc":
            pts = [(k, v) for k in range(1, 101) if (v := r.metric(f"mIoU@{k}")) is not None]
            curves[(r.name, "noc", opts)] = Curve(r, "noc", label, pts)
    out = [c for c in curves.values() if c.points]
    for c in [c for c in out if c.kind == "clicks" and not _line_options(c.record)]:
        paper = _paper_points(c.record, family)
        if paper and c.record.model.official_weights:
            out.append(Curve(c.record, "paper", c.label, paper))
    for c in out:
        c.points.sort()
    return out


def _paper_points(r: RunRecord, family: str) -> list[tuple[int, float]]:
    return [
        (k, pv.value)
        for k in range(1, 21)
        if (pv := paper_value(r.model.name, f"{family}-{k}click", "mIoU")) is not None
    ]


def _draw(ax: Axes, curves: Sequence[Curve], colors: dict[str, str]) -> dict[str, Line2D]:
    handles: dict[str, Line2D] = {}
    for c in curves:
        xs, ys = zip(*c.points, strict=True)
        style = CURVE_STYLES[c.kind]
        ms = 3.5 if c.kind == "noc" else 6.0
        label = c.label if c.kind == "clicks" else f"_{c.kind}: {c.label}"
        ax.plot(xs, ys, color=colors[c.record.name], ms=ms, clip_on=False, label=label, **style)
        if c.kind != "paper":
            handles.setdefault(c.label, Line2D([], [], color=colors[c.record.name], lw=2.5, label=c.label))
    ticks = sorted({x for c in curves for x, _ in c.points})
    if len(ticks) > 8:
        ticks = [t for t in ticks if t in (1, 2, 3, 5) or t % 5 == 0]
    ax.set_xticks(ticks)
    percent_axis(ax, [y for c in curves for _, y in c.points], pad=4.0)
    return handles


def plot_clicks(records: Sequence[RunRecord], outs: Sequence[Path] = (), dpi: int = 100) -> Plot:
    """mIoU vs number of clicks of the click-protocol and NoC records; written to each of ``outs``."""
    cells = checked_cells(records)
    mine = [r for r in cells.values() if _is_clicks(r) or r.protocol.task == "noc"]
    if not mine:
        raise InputError(
            "no click-protocol or NoC records (coco-1click, lvis-3click, coco-noc20, ...) to plot"
        )
    families = sorted({r.dataset.family for r in mine})
    colors = run_colors(name for name, _ in cells)
    fig, axes, _ = slide_grid(len(families), 4.0)
    handles: dict[str, Line2D] = {}
    kinds: set[str] = set()
    for ax, fam in zip(axes, families, strict=True):
        curves = _curves(mine, fam)
        kinds |= {c.kind for c in curves}
        handles.update({k: v for k, v in _draw(ax, curves, colors).items() if k not in handles})
        ax.set_title(fam.upper(), fontsize=LABEL + 0.5)
        ax.set_xlabel("clicks", fontsize=LABEL)
        ax.set_ylabel("mIoU (%)", fontsize=LABEL)
        ax.tick_params(labelsize=TICK)
        ax.grid(True, alpha=0.35)
    keys = list(handles.values())
    keys += [
        Line2D([], [], color="#555555", ms=5, **CURVE_STYLES[k], label=KEY_TEXT[k])
        for k in CURVE_STYLES
        if k in kinds
    ]
    title = f"mIoU vs number of clicks\nData: {group_title(sorted(mine, key=lambda r: r.protocol.name))}"
    header(fig, title, keys, min(len(keys), 3))
    freeze_layout(fig)
    save(fig, outs, dpi)
    return Plot(fig, [])
