"""mIoU vs number of clicks: one panel per dataset, one line per run (variants are their own lines).

Measured lines are solid with filled markers; the paper's quoted values for the same model are
dashed with hollow markers in the run's colour, only for runs with the official weights (a random
or fine-tuned network has no paper value). One key for the figure, above the panels, because the
runs and their colours are the same in every panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.lines import Line2D

from ..errors import InputError
from ..protocols import load_protocols
from ..record import RunRecord
from .plot_base import (
    LABEL,
    TICK,
    Plot,
    checked_cells,
    freeze_layout,
    header,
    new_figure,
    percent_axis,
    run_colors,
    run_label,
    save,
)
from .rules import paper_value


def _line_options(r: RunRecord) -> str:
    """Options (other than the click count) that differ from the shipped protocol, for labels."""
    shipped = load_protocols().get(r.protocol.name)
    base = shipped.options if shipped else {}
    diff = {k: v for k, v in r.protocol.options.items() if k != "clicks" and base.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in sorted(diff.items()))


def plot_clicks(records: Sequence[RunRecord], outs: Sequence[Path] = (), dpi: int = 100) -> Plot:
    """mIoU vs number of clicks of the click-protocol records; written to each of ``outs``."""
    cells = checked_cells(records)
    clicky = [
        r
        for r in cells.values()
        if r.protocol.task == "miou" and r.protocol.options.get("prompt") == "clicks"
    ]
    if not clicky:
        raise InputError("no click-protocol records (coco-1click, lvis-3click, ...) to plot")
    families = sorted({r.dataset.family for r in clicky})
    colors = run_colors(name for name, _ in cells)
    fig = new_figure(4.6 * len(families) + 0.6, 4.6)
    handles: dict[str, Line2D] = {}
    any_paper = False
    for i, fam in enumerate(families):
        ax = fig.add_subplot(1, len(families), i + 1)
        lines: dict[tuple[str, str], list[tuple[int, float]]] = {}
        first: dict[str, RunRecord] = {}
        for r in clicky:
            y = r.metric("mIoU")
            if r.dataset.family == fam and y is not None:
                lines.setdefault((r.name, _line_options(r)), []).append(
                    (int(r.protocol.options["clicks"]), y)
                )
                first.setdefault(r.name, r)
        ticks: set[int] = set()
        ys: list[float] = []
        for (name, opts), pts in sorted(lines.items()):
            ref = first[name]
            pts.sort()
            ticks |= {x for x, _ in pts}
            ys += [y for _, y in pts]
            label = run_label(ref) + (f" ({opts})" if opts else "")
            (line,) = ax.plot(*zip(*pts, strict=True), marker="o", color=colors[name], lw=1.8, label=label)
            handles.setdefault(label, line)
            paper = [
                (k, pv.value)
                for k in range(1, 21)
                if (pv := paper_value(ref.model.name, f"{fam}-{k}click", "mIoU")) is not None
            ]
            if paper and not opts and ref.model.official_weights:
                any_paper = True
                ticks |= {x for x, _ in paper}
                ys += [y for _, y in paper]
                ax.plot(
                    *zip(*paper, strict=True),
                    linestyle="--",
                    marker="o",
                    markerfacecolor="none",
                    color=colors[name],
                    lw=1.4,
                )
        ax.set_xticks(sorted(ticks))
        if ys:
            percent_axis(ax, ys, pad=5.0)
        ax.set_title(fam.upper(), fontsize=LABEL + 0.5)
        ax.set_xlabel("clicks", fontsize=LABEL)
        ax.set_ylabel("mIoU (%)", fontsize=LABEL)
        ax.tick_params(labelsize=TICK)
        ax.grid(True, alpha=0.35)
    keys = list(handles.values())
    if any_paper:
        keys += [
            Line2D([], [], color="#555555", marker="o", lw=1.8, label="measured"),
            Line2D(
                [], [], color="#555555", marker="o", markerfacecolor="none", ls="--", lw=1.4, label="paper"
            ),
        ]
    header(fig, "mIoU vs number of clicks", keys, min(len(keys), 3 * len(families)))
    freeze_layout(fig)
    save(fig, outs, dpi)
    return Plot(fig, [])
