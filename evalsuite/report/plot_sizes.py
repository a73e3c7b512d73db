"""Accuracy by object size: per column, S / M / L bars for each run (mIoU_S/M/L, or APS/APM/APL).

Panels are columns (protocol plus the column options its records use, as in the tables); runs
are bar groups, so variants of one model stand side by side. The grid is filled row by row and
a short last row is centred, so no panel slot is left empty; one legend serves the figure.
Each bar carries its value, inside the bar's top when the bar is tall (the axis ends at 100 %).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.gridspec import GridSpec
from matplotlib.patches import Patch

from ..errors import InputError
from ..identity import column_key
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
    protocol_order,
    run_label,
    save,
)

SIZE_COLORS = {"S": "#9ecae1", "M": "#4292c6", "L": "#08519c"}
SIZE_KEYS = {"S": "small: area < 32² px", "M": "medium: 32² – 96² px", "L": "large: ≥ 96² px"}
_INSIDE_ABOVE = 88.0  # a value label this high goes inside its bar (the axis stops at 100)


MAX_WIDTH = 13.5  # inches: about a 16:9 slide's width at readable font sizes


def grid_shape(n: int, panel_width: float) -> tuple[int, int]:
    """Rows and columns for ``n`` panels: at most 3 across (2 × 2 for four), fewer for wide panels."""
    cols = n if n <= 3 else (2 if n == 4 else 3)
    cols = max(1, min(cols, int(MAX_WIDTH // panel_width)))
    return math.ceil(n / cols), cols


def _title(key: tuple) -> str:
    name, opts = key
    return name + (f" ({', '.join(f'{k}={v}' for k, v in opts)})" if opts else "")


def _bar_values(ax: Axes, xs: np.ndarray, values: Sequence[float | None], color: str, vertical: bool) -> None:
    for x, v in zip(xs, values, strict=True):
        if v is None:
            ax.text(
                x, 1.0, "n/a", ha="center", va="bottom", rotation=90, fontsize=SMALL - 1.5, color="#555555"
            )
            continue
        inside = v >= _INSIDE_ABOVE
        ax.annotate(
            f"{v:.0f}",
            (x, v),
            xytext=(0, -2 if inside else 2),
            textcoords="offset points",
            ha="center",
            va="top" if inside else "bottom",
            rotation=90 if vertical else 0,
            fontsize=SMALL - 0.5,
            color="white" if inside and color != SIZE_COLORS["S"] else "black",
        )


def plot_sizes(
    records: Sequence[RunRecord], outs: Sequence[Path] = (), protocols: Sequence[str] = (), dpi: int = 100
) -> Plot:
    """S / M / L bars per run for each column of the records (or only ``protocols``)."""
    cells = checked_cells(records)
    if unknown := [p for p in protocols if not any(q == p for _, q in cells)]:
        raise InputError(f"no records for protocol(s) {', '.join(unknown)}")
    order = list(protocols) if protocols else protocol_order(p for _, p in cells)
    keys = sorted(
        {column_key(r) for r in cells.values() if r.protocol.name in order},
        key=lambda k: (order.index(k[0]), bool(k[1]), repr(k[1])),
    )
    per_panel = {
        k: sorted((r for r in cells.values() if column_key(r) == k), key=lambda r: r.name) for k in keys
    }
    most = max(len(v) for v in per_panel.values())
    names = {r.name: break_label(run_label(r)) for recs in per_panel.values() for r in recs}
    tilted = most > 2 or any("\n" in n or len(n) > 12 for n in names.values())
    longest = max(len(line) for n in names.values() for line in n.split("\n"))
    lines = max(n.count("\n") + 1 for n in names.values())
    # room under each panel for its run names (tilted by 30°: half their length, in height)
    names_in = (0.5 * longest * 0.58 * TICK + lines * 1.25 * TICK) / 72 if tilted else 0.3
    panel_width = 2.8 + 0.35 * max(most, 2)
    rows, cols = grid_shape(len(keys), panel_width)
    fig = new_figure(panel_width * cols + 0.4, (3.2 + names_in) * rows + 1.2)
    gs = GridSpec(rows, 2 * cols, figure=fig)
    for i, key in enumerate(keys):
        row, pos = divmod(i, cols)
        in_row = min(cols, len(keys) - row * cols)
        start = (cols - in_row) + 2 * pos  # a short last row is centred
        ax = fig.add_subplot(gs[row, start : start + 2])
        recs = per_panel[key]
        ap = recs[0].protocol.task == "ap"
        x = np.arange(len(recs), dtype=float)
        width = 0.27
        vertical = len(recs) > 3
        for j, size in enumerate(("S", "M", "L")):
            vals = [r.metric(f"AP{size}" if ap else f"mIoU_{size}") for r in recs]
            xs = x + (j - 1) * width
            ax.bar(xs, [np.nan if v is None else v for v in vals], width, color=SIZE_COLORS[size])
            _bar_values(ax, xs, vals, SIZE_COLORS[size], vertical)
        ax.set_xticks(x, [names[r.name] for r in recs])
        ax.tick_params(axis="x", labelsize=TICK, rotation=30 if tilted else 0)
        if tilted:
            for t in ax.get_xticklabels():
                t.set_horizontalalignment("right")
                t.set_rotation_mode("anchor")
        ax.set_xlim(-0.6, len(recs) - 0.4)
        ax.set_ylim(0, 100)
        ax.set_title(_title(key), fontsize=LABEL + 0.5)
        ax.set_ylabel(("mask AP" if ap else "mIoU") + " (%)", fontsize=LABEL)
        ax.tick_params(axis="y", labelsize=TICK)
        ax.grid(True, axis="y", alpha=0.35)
        ax.set_axisbelow(True)
    header(
        fig,
        "Accuracy by object size",
        [Patch(color=SIZE_COLORS[s], label=SIZE_KEYS[s]) for s in ("S", "M", "L")],
        3,
    )
    freeze_layout(fig)
    save(fig, outs, dpi)
    return Plot(fig, [])
