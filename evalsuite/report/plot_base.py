"""What every figure shares: an explicit Agg canvas, one look, run labels and colours, and saving.

Figures are drawn on their own Agg canvas (no pyplot, no global backend switch) with constrained
layout, which is then frozen so that labels placed afterwards stay where they were checked to fit.
Files carry no timestamps, so a figure depends only on its records; PDFs embed TrueType fonts
(``pdf.fonttype`` 42, set for the save only) because journals refuse Type 3 fonts.
"""

from __future__ import annotations

import io
import re
import textwrap
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import MaxNLocator

from ..errors import InputError
from ..identity import group_rows, group_title, select_cells
from ..protocols import load_protocols
from ..record import RunRecord

SUFFIXES = (".png", ".pdf")
#: colour-blind-safe qualitative palette (Okabe–Ito, then Tableau for more runs)
COLORS = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#7F3C8D",
    "#8C564B",
    "#4D4D4D",
    "#BCBD22",
)
#: font sizes (points) chosen to stay readable when a figure is shown on a slide
TITLE, LABEL, TICK, SMALL = 12.0, 10.5, 9.5, 8.5


@dataclass
class Plot:
    """A drawn figure and what the user should be told about it (skipped records, fallbacks)."""

    figure: Figure
    notes: list[str] = field(default_factory=list)


class SlideFigure(Figure):
    """A matplotlib ``Figure`` that Jupyter shows inline without pyplot (``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
        return buffer.getvalue()


def new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas, laid out by constrained layout until :func:`freeze_layout`."""
    fig = SlideFigure(
        figsize=(width, height),
        layout=ConstrainedLayoutEngine(h_pad=0.06, w_pad=0.06, hspace=0.04, wspace=0.04),
    )
    FigureCanvasAgg(fig)
    return fig


#: a 16:9 slide's width in inches, at font sizes that stay readable there
SLIDE_WIDTH = 13.33


#: a 16:9 slide's height in inches
SLIDE_HEIGHT = 7.5


def slide_grid(n: int, panel_height: float, extra_height: float = 1.6) -> tuple[Figure, list[Axes], float]:
    """A landscape figure of ``n`` panels, at most a 16:9 slide: one row up to 4, two rows up to 8
    (then three); a short last row is centred. Returns the figure, its axes and a panel's width."""
    rows = 1 if n <= 4 else 2 if n <= 8 else 3
    cols = -(-n // rows)
    height = min(SLIDE_HEIGHT, panel_height * rows + extra_height)
    width = max(min(SLIDE_WIDTH, 3.6 * cols + 0.4), min(height * 16 / 9, 4.6 * cols + 0.4))
    fig = new_figure(round(min(width, SLIDE_WIDTH), 1), round(height, 1))  # whole pixels at any dpi
    gs = GridSpec(rows, 2 * cols, figure=fig)
    axes = []
    for i in range(n):
        row, pos = divmod(i, cols)
        start = (cols - min(cols, n - row * cols)) + 2 * pos
        axes.append(fig.add_subplot(gs[row, start : start + 2]))
    return fig, axes, (fig.get_figwidth() - 0.4) / cols


def freeze_layout(fig: Figure) -> None:
    """Run the layout once and keep it: what is placed afterwards is measured against fixed axes."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


def save(fig: Figure, outs: Sequence[Path], dpi: int = 100) -> list[Path]:
    """Write ``fig`` to each path (.png or .pdf, fonts embedded) with no volatile metadata."""
    written = []
    for out in outs:
        out = Path(out)
        if out.suffix.lower() not in SUFFIXES:
            raise InputError(f"{out}: plot files end in .png or .pdf")
        out.parent.mkdir(parents=True, exist_ok=True)
        with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
            if out.suffix.lower() == ".png":
                fig.savefig(out, dpi=dpi, format="png", metadata={"Software": None})
            else:
                fig.savefig(
                    out, format="pdf", metadata={"Creator": None, "Producer": None, "CreationDate": None}
                )
        written.append(out)
    return written


def checked_cells(records: Sequence[RunRecord]) -> dict[tuple[str, str], RunRecord]:
    """One record per (run name, protocol), every column measured on one data set: the first group of
    :func:`evalsuite.identity.group_rows`. What is left out is warned about, one line per record."""
    sel = select_cells(records)
    lines = [e.line() for e in sel.excluded]
    groups = group_rows(sel.cells)
    if not groups:
        raise InputError("no record can be plotted: " + " | ".join(lines))
    keep = set(groups[0].names)
    cells = {k: r for k, r in sel.cells.items() if k[0] in keep}
    for g in groups[1:]:
        others = g.records(sel.cells)
        title = group_title(others)
        lines += [
            f"{r.name} {r.protocol.label}: measured on other data than the plotted runs ({title}); "
            "plot it apart (--name)"
            for r in others
        ]
    for line in lines:
        warnings.warn(f"left out of the figure: {line}", stacklevel=2)
    return cells


def protocol_order(names: Iterable[str]) -> list[str]:
    """Protocols in the shipped order (Table 4 before Table 5), unknown ones last by name."""
    shipped = list(load_protocols())
    return sorted(set(names), key=lambda n: (shipped.index(n) if n in shipped else len(shipped), n))


def run_label(r: RunRecord) -> str:
    """A row's name on a figure: the model's display label for a plain run, the run name for a variant."""
    if r.name == r.model.name and r.model.label:
        return r.model.label
    return r.name


def run_colors(names: Iterable[str]) -> dict[str, str]:
    """One colour per run name, by sorted name: given every run of the records, a run keeps its
    colour in every kind of plot made from them."""
    return {n: COLORS[i % len(COLORS)] for i, n in enumerate(sorted(set(names)))}


def header(fig: Figure, title: str, handles: Sequence[Artist], ncols: int, **legend: Any) -> None:
    """The figure's title and its one key, above the panels, in at most ``ncols`` columns — fewer
    where the entries would not fit the figure's width.

    The title is the key's own title: constrained layout stacks an "outside" legend and a
    suptitle on top of each other, but lays out a legend (title included) correctly. ``legend``
    overrides the key's spacing options.
    """
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    room = fig.bbox.width - 0.2 * fig.dpi
    for n in range(max(1, ncols), 0, -1):
        key = fig.legend(
            handles=handles,
            loc="outside upper center",
            ncols=n,
            frameon=False,
            fontsize=SMALL + 0.5,
            title=wrap(title, fig.get_figwidth() - 0.4, TITLE),
            title_fontsize=TITLE,
            **{"handletextpad": 0.4, "columnspacing": 1.4, **legend},
        )
        key.get_title().set_multialignment("center")
        if n == 1 or key.get_window_extent(renderer).width <= room:
            return
        key.remove()


def break_label(text: str, width: int = 24) -> str:
    """A long run label on several lines, broken before ``+`` (name parts) and `` (`` (a suffix)."""
    if len(text) <= width:
        return text
    parts = re.split(r"(?=\+)|(?= \()", text)
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part.strip())
    return "\n".join(lines)


def percent_axis(ax: Axes, values: Sequence[float], pad: float = 3.0) -> None:
    """A % y axis that fits ``values`` within 0–100, at least 10 points tall.

    The axis never passes 0 or 100 (a percentage has no room beyond them): markers at the ends are
    drawn unclipped (``clip_on=False``) and sit on the frame. The padding keeps the data off the frame
    elsewhere; a short range grows to 10 points, towards the side that has room.
    """
    lo, hi = min(values), max(values)
    pad = max(pad, 0.08 * (hi - lo))
    bottom, top = max(0.0, lo - pad), min(100.0, hi + pad)
    if top - bottom < 10.0:
        bottom, top = (max(0.0, top - 10.0), top) if top >= 100.0 else (bottom, min(100.0, bottom + 10.0))
    ticks = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(bottom, top)
    ax.set_yticks([t for t in ticks if bottom - 1e-9 <= t <= top + 1e-9])
    ax.set_ylim(bottom, top)


def wrap(text: str, width_in: float, fontsize: float) -> str:
    """Wrap ``text`` to a figure width (DejaVu Sans averages about 0.55 em per character)."""
    chars = max(20, int(width_in * 72 / (fontsize * 0.58)))
    return "\n".join(textwrap.fill(p, chars) for p in text.split("\n"))
