"""Accuracy by object size: per column, S / M / L bars for each run (mIoU_S/M/L, or APS/APM/APL).

Panels are columns (protocol plus the column options its records use, as in the tables); runs
are bar groups, so variants of one model stand side by side. The grid is filled row by row and
a short last row is centred, so no panel slot is left empty; one legend serves the figure.
Each bar carries its value, inside the bar's top when the bar is tall (the axis ends at 100 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from ..errors import InputError
from ..identity import column_key, group_title
from ..paper import paper_tables
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
    protocol_order,
    run_label,
    save,
    slide_grid,
)

SIZE_COLORS = {"S": "#9ecae1", "M": "#4292c6", "L": "#08519c"}
SIZE_KEYS = {"S": "small: area < 32² px", "M": "medium: 32² – 96² px", "L": "large: ≥ 96² px"}
_INSIDE_ABOVE = 88.0  # a value label this high goes inside its bar (the axis stops at 100)


def column_title(key: tuple) -> str:
    """A column as the paper labels it ("COCO box", "LVIS mask AP"), with its column options."""
    name, opts = key
    label = name
    for table in paper_tables().values():
        col = next((c for c in table.columns if c.protocol == name), None)
        if col is not None:
            label = f"{col.group} {'mask AP' if col.metric == 'AP' else col.label}"
            break
    return label + (f" ({', '.join(f'{k}={v}' for k, v in opts)})" if opts else "")


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


def _keys(cells: dict, protocols: Sequence[str]) -> list[tuple]:
    """The columns to draw (those with S/M/L numbers), in the shipped protocol order."""
    if unknown := [p for p in protocols if not any(q == p for _, q in cells)]:
        raise InputError(f"no records for protocol(s) {', '.join(unknown)}")
    order = list(protocols) if protocols else protocol_order(p for _, p in cells)
    keys = sorted(
        {column_key(r) for r in cells.values() if r.protocol.name in order and _has_sizes(r)},
        key=lambda k: (order.index(k[0]), bool(k[1]), repr(k[1])),
    )
    if not keys:
        raise InputError("no mIoU or AP records (their S / M / L numbers) to plot")
    return keys


def _has_sizes(r: RunRecord) -> bool:
    """mIoU and AP records have S / M / L numbers (NoC records do not)."""
    return r.protocol.task in ("miou", "ap")


def _draw_panel(ax: Axes, key: tuple, recs: list[RunRecord], names: dict[str, str], tilted: bool) -> None:
    ap = recs[0].protocol.task == "ap"
    x = np.arange(len(recs), dtype=float)
    width = 0.27
    for j, size in enumerate(("S", "M", "L")):
        vals = [r.metric(f"AP{size}" if ap else f"mIoU_{size}") for r in recs]
        xs = x + (j - 1) * width
        ax.bar(xs, [np.nan if v is None else v for v in vals], width, color=SIZE_COLORS[size])
        _bar_values(ax, xs, vals, SIZE_COLORS[size], len(recs) > 3)
    ax.set_xticks(x, [names[r.name] for r in recs])
    ax.tick_params(axis="x", labelsize=TICK, rotation=30 if tilted else 0)
    if tilted:
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
            t.set_rotation_mode("anchor")
    ax.set_xlim(-0.6, len(recs) - 0.4)
    ax.set_ylim(0, 100)
    ax.set_title(column_title(key), fontsize=LABEL + 0.5)
    ax.set_ylabel(("mask AP" if ap else "mIoU") + " (%)", fontsize=LABEL)
    ax.tick_params(axis="y", labelsize=TICK)
    ax.grid(True, axis="y", alpha=0.35)
    ax.set_axisbelow(True)


def plot_sizes(
    records: Sequence[RunRecord], outs: Sequence[Path] = (), protocols: Sequence[str] = (), dpi: int = 100
) -> Plot:
    """S / M / L bars per run for each column of the records (or only ``protocols``), on a landscape,
    slide-sized grid (at most 4 panels across) titled with the paper's column labels."""
    cells = checked_cells(records)
    keys = _keys(cells, protocols)
    per_panel = {
        k: sorted((r for r in cells.values() if column_key(r) == k), key=lambda r: r.name) for k in keys
    }
    names = {r.name: break_label(run_label(r)) for recs in per_panel.values() for r in recs}
    most = max(len(v) for v in per_panel.values())
    tilted = most > 2 or any("\n" in n or len(n) > 12 for n in names.values())
    longest = max(len(line) for n in names.values() for line in n.split("\n"))
    lines = max(n.count("\n") + 1 for n in names.values())
    # room under each panel for its run names (tilted by 30°: half their length, in height)
    names_in = (0.5 * longest * 0.58 * TICK + lines * 1.25 * TICK) / 72 if tilted else 0.3
    fig, axes, _ = slide_grid(len(keys), 2.6 + names_in)
    for ax, key in zip(axes, keys, strict=True):
        _draw_panel(ax, key, per_panel[key], names, tilted)
    title = (
        f"Accuracy by object size\nData: {group_title(sorted(cells.values(), key=lambda r: r.protocol.name))}"
    )
    header(fig, title, [Patch(color=SIZE_COLORS[s], label=SIZE_KEYS[s]) for s in ("S", "M", "L")], 3)
    freeze_layout(fig)
    save(fig, outs, dpi)
    return Plot(fig, [])
