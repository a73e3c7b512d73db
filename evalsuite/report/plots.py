"""Figures from run records (matplotlib on an explicit Agg canvas; PNG and PDF with embedded fonts).

Kinds: ``speed`` (accuracy vs model throughput, a row of panels per paper table, marker area ∝
parameters; :mod:`.plot_speed`), ``clicks`` (mIoU vs number of clicks, paper values dashed;
:mod:`.plot_clicks`), ``sizes`` (S/M/L bars per run; :mod:`.plot_sizes`) and ``qualitative``
(re-predicted instances of an mIoU record, or the logged detections of an AP record;
:mod:`.plot_images`). Each ``plot_*`` draws, writes the files it is given and returns a
:class:`Plot`: the figure (tests inspect it) and notes for the user.
"""

from __future__ import annotations

from .plot_base import Plot
from .plot_clicks import plot_clicks
from .plot_images import plot_detections, plot_qualitative
from .plot_sizes import plot_sizes
from .plot_speed import plot_speed

__all__ = [
    "Plot",
    "plot_clicks",
    "plot_detections",
    "plot_qualitative",
    "plot_sizes",
    "plot_speed",
]
