"""Figures from run records (matplotlib, Agg canvas, PNG and PDF).

Kinds: ``speed`` (accuracy vs evaluation throughput, marker area ∝ parameters), ``clicks``
(mIoU vs number of clicks, paper values dashed), ``sizes`` (S/M/L bars per model) and
``qualitative`` (image + prompt, ground truth, re-predicted mask; see :mod:`evalsuite.engine.replay`).
Figures are drawn on an explicit Agg canvas — no pyplot, no global backend switch — and
saved without timestamps, so a figure depends only on its records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..errors import InputError
from ..protocols import load_protocols
from ..record import RunRecord
from .rules import check_columns, paper_value, unique_cells

KINDS = ("speed", "clicks", "sizes", "qualitative")
SUFFIXES = (".png", ".pdf")
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")
SIZE_COLORS = {"S": "#9ecae1", "M": "#4292c6", "L": "#08519c"}


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, outs: Sequence[Path], dpi: int = 100) -> list[Path]:
    """Write ``fig`` to each path (.png or .pdf) with no volatile metadata; returns the paths."""
    written = []
    for out in outs:
        out = Path(out)
        if out.suffix.lower() not in SUFFIXES:
            raise InputError(f"{out}: plot files end in .png or .pdf")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".png":
            fig.savefig(out, dpi=dpi, format="png", metadata={"Software": None})
        else:
            fig.savefig(out, format="pdf", metadata={"Creator": None, "Producer": None, "CreationDate": None})
        written.append(out)
    return written


def _records(records: Sequence[RunRecord]) -> dict[tuple[str, str], RunRecord]:
    cells = unique_cells(records)
    check_columns(cells.values())
    return cells


def _protocol_order(names: set[str]) -> list[str]:
    shipped = list(load_protocols())
    return sorted(names, key=lambda n: (shipped.index(n) if n in shipped else len(shipped), n))


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(max_cols, n)
    return math.ceil(n / cols), cols


def _model_colors(models: Sequence[str]) -> dict[str, str]:
    return {m: COLORS[i % len(COLORS)] for i, m in enumerate(sorted(set(models)))}


# -- accuracy vs throughput -----------------------------------------------------------------------
def throughput(record: RunRecord) -> float | None:
    """Images per second of the model (encoder + decoder, warm-up excluded) from the record's timing.

    Schema-1 records have no timing part: their whole-session rate (images / wall time, decoding
    and scoring included) is used, and the plot says so.
    """
    if record.timing is not None:
        return record.timing.model_images_per_s
    ex = record.execution
    if not ex.images_this_session or not ex.wall_s or ex.wall_s <= 0:
        return None
    return float(ex.images_this_session) * ex.world_size / ex.wall_s


def _session_key(r: RunRecord) -> tuple:
    return (r.name, r.dataset.name, r.execution.wall_s, r.execution.images_this_session)


def plot_speed(
    records: Sequence[RunRecord],
    outs: Sequence[Path],
    protocols: Sequence[str] = (),
    params: dict[str, float] | None = None,
    dpi: int = 100,
) -> list[str]:
    """One panel per protocol: headline metric vs images/s; marker area ∝ parameter count.

    ``params`` (model → millions of parameters) overrides the counted numbers. Refuses records
    from different devices (their speeds are not comparable). Returns notes for the user.
    """
    cells = _records(records)
    names = _protocol_order({p for _, p in cells}) if not protocols else list(protocols)
    if unknown := [p for p in names if not any(q == p for _, q in cells)]:
        raise InputError(f"no records for protocol(s) {', '.join(unknown)}")
    used = [r for r in cells.values() if r.protocol.name in names]
    devices = sorted({r.environment.device_name for r in used})
    if len(devices) > 1:
        raise InputError(
            f"records come from different devices ({', '.join(devices)}): their speeds are not comparable",
            hint="plot one device's records at a time",
        )
    notes: list[str] = []
    millions: dict[str, float | None] = {}
    params_noted: set[str] = set()
    for r in used:
        m = r.name
        if params and m in params:
            millions[m] = params[m]
        else:
            n = r.model.parameters
            millions[m] = None if n is None else n / 1e6
            if n is None and m not in params_noted:
                params_noted.add(m)
                notes.append(f"{m}: parameter count unknown (pass --params {m}=MILLIONS); smallest marker")
    biggest = max([v for v in millions.values() if v], default=1.0)
    sessions: dict[tuple, int] = {}
    for r in cells.values():  # every record given, so a shared session shows even for one protocol
        sessions[_session_key(r)] = sessions.get(_session_key(r), 0) + 1
    colors = _model_colors([r.name for r in used])
    rows, cols = _grid(len(names))
    fig = _new_figure(4.2 * cols, 3.4 * rows + 0.9)
    shared = False
    for i, proto in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for r in sorted((r for r in used if r.protocol.name == proto), key=lambda r: r.name):
            x, y = throughput(r), r.metric(r.primary_metric)
            if x is None or y is None:
                notes.append(f"{r.name} {r.protocol.id}: no throughput or metric in the record; not drawn")
                continue
            size = 25 + 475 * (millions[r.name] or 0) / biggest
            ax.scatter([x], [y], s=size, color=colors[r.name], alpha=0.75, edgecolors="black", linewidths=0.5)
            mark = "*" if sessions[_session_key(r)] > 1 else ""
            shared |= bool(mark)
            label = f"{r.name}{mark}" + (f" ({millions[r.name]:.0f} M)" if millions[r.name] else "")
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
        xs = [x for r in used if r.protocol.name == proto and (x := throughput(r)) is not None]
        ax.set_xscale("log")
        if xs:
            ax.set_xlim(min(xs) / 2.5, max(xs) * 2.5)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(proto, fontsize=9)
        ax.set_xlabel("images / s (evaluation session)", fontsize=8)
        ax.set_ylabel(("AP" if proto.endswith("vitdet") else "mIoU") + " (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    foot = (
        f"Device: {devices[0]}. Throughput = images evaluated / wall time of the run session "
        "(decode + model + scoring). Marker area ∝ parameters."
    )
    if shared:
        foot += " * session shared by several protocols: its time covers all of them."
    fig.text(0.01, 0.01, foot, fontsize=7, wrap=True)
    fig.suptitle("Accuracy vs evaluation throughput", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    save(fig, outs, dpi)
    return notes


# -- mIoU vs clicks -------------------------------------------------------------------------------
def _line_options(r: RunRecord) -> str:
    """Options (other than the click count) that differ from the shipped protocol, for labels."""
    shipped = load_protocols().get(r.protocol.name)
    base = shipped.options if shipped else {}
    diff = {k: v for k, v in r.protocol.options.items() if k != "clicks" and base.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in sorted(diff.items()))


def plot_clicks(records: Sequence[RunRecord], outs: Sequence[Path], dpi: int = 100) -> list[str]:
    """mIoU vs number of clicks, one panel per dataset, one line per model and click options.

    Paper values (1 and 3 clicks) are drawn dashed with hollow markers in the model's colour.
    """
    cells = _records(records)
    clicky = [
        r
        for r in cells.values()
        if r.protocol.task == "miou" and r.protocol.options.get("prompt") == "clicks"
    ]
    if not clicky:
        raise InputError("no click-protocol records (coco-1click, lvis-3click, ...) to plot")
    families = sorted({r.dataset.family for r in clicky})
    colors = _model_colors([r.name for r in clicky])
    fig = _new_figure(4.6 * len(families), 3.8)
    notes: list[str] = []
    for i, fam in enumerate(families):
        ax = fig.add_subplot(1, len(families), i + 1)
        lines: dict[tuple[str, str], list[tuple[int, float]]] = {}
        model_of: dict[str, RunRecord] = {}
        for r in clicky:
            y = r.metric("mIoU")
            if r.dataset.family == fam and y is not None:
                lines.setdefault((r.name, _line_options(r)), []).append(
                    (int(r.protocol.options["clicks"]), y)
                )
                model_of[r.name] = r
        ticks: set[int] = set()
        for (model, opts), pts in sorted(lines.items()):
            ref = model_of[model]
            pts.sort()
            ticks |= {x for x, _ in pts}
            label = model + (f" ({opts})" if opts else "")
            ax.plot(*zip(*pts, strict=True), marker="o", color=colors[model], label=label)
            paper = [
                (k, pv.value)
                for k in range(1, 21)
                if (pv := paper_value(ref.model.name, f"{fam}-{k}click", "mIoU")) is not None
            ]
            if paper and not opts and ref.model.official_weights:
                ticks |= {x for x, _ in paper}
                ax.plot(
                    *zip(*paper, strict=True),
                    linestyle="--",
                    marker="o",
                    markerfacecolor="none",
                    color=colors[model],
                    label=f"{model} (paper)",
                )
        ax.set_xticks(sorted(ticks))
        ax.set_title(fam.upper(), fontsize=9)
        ax.set_xlabel("clicks", fontsize=8)
        ax.set_ylabel("mIoU (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("mIoU vs number of clicks", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    save(fig, outs, dpi)
    return notes


# -- per-size bars --------------------------------------------------------------------------------
def plot_sizes(
    records: Sequence[RunRecord], outs: Sequence[Path], protocols: Sequence[str] = (), dpi: int = 100
) -> list[str]:
    """Per protocol, S / M / L bars for each model (mIoU_S/M/L, or APS/APM/APL)."""
    cells = _records(records)
    names = _protocol_order({p for _, p in cells}) if not protocols else list(protocols)
    if unknown := [p for p in names if not any(q == p for _, q in cells)]:
        raise InputError(f"no records for protocol(s) {', '.join(unknown)}")
    rows, cols = _grid(len(names), 4)
    fig = _new_figure(3.6 * cols, 3.0 * rows + 0.4)
    for i, proto in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        recs = sorted((r for r in cells.values() if r.protocol.name == proto), key=lambda r: r.name)
        x = np.arange(len(recs))
        width = 0.26
        for j, size in enumerate(("S", "M", "L")):
            vals = [r.metric(f"AP{size}" if r.protocol.task == "ap" else f"mIoU_{size}") for r in recs]
            heights = [np.nan if v is None else v for v in vals]
            ax.bar(x + (j - 1) * width, heights, width, color=SIZE_COLORS[size], label=size)
        ax.set_xticks(x, [r.name for r in recs], fontsize=7, rotation=20)
        ax.set_xlim(-0.6, max(len(recs), 2) - 0.4)
        ax.set_ylim(0, 105)
        ax.set_title(proto, fontsize=9)
        ax.set_ylabel(("AP" if recs and recs[0].protocol.task == "ap" else "mIoU") + " (%)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, title="size", title_fontsize=7)
    fig.suptitle("By object size (COCO areas: S < 32², M < 96², L ≥ 96²)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    save(fig, outs, dpi)
    return []


# -- qualitative grid -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Crop:
    r0: int
    r1: int
    c0: int
    c1: int


def _crop_around(masks: Sequence[np.ndarray], points: np.ndarray, shape: tuple[int, int]) -> _Crop:
    rows = [np.flatnonzero(m.any(axis=1)) for m in masks]
    cols = [np.flatnonzero(m.any(axis=0)) for m in masks]
    ys = np.concatenate([r[[0, -1]] for r in rows if r.size] + [points[:, 1]])
    xs = np.concatenate([c[[0, -1]] for c in cols if c.size] + [points[:, 0]])
    h, w = shape
    pad = max(16, int(0.25 * max(np.ptp(ys), np.ptp(xs))))
    return _Crop(
        max(0, int(ys.min()) - pad), min(h, int(ys.max()) + pad + 1),
        max(0, int(xs.min()) - pad), min(w, int(xs.max()) + pad + 1),
    )  # fmt: skip


def _overlay(image: np.ndarray, mask: np.ndarray, color: tuple[float, float, float]) -> np.ndarray:
    out = image.astype(np.float32) / 255.0
    out[mask] = 0.45 * out[mask] + 0.55 * np.asarray(color, dtype=np.float32)
    return out


def _draw_prompt(ax, prompt: dict, crop: _Crop) -> None:
    from matplotlib.patches import Rectangle

    if "box" in prompt:
        x0, y0, x1, y1 = prompt["box"]
        ax.add_patch(
            Rectangle(
                (x0 - crop.c0 - 0.5, y0 - crop.r0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1.5
            )
        )
        return
    for (x, y), lab in zip(prompt["points"], prompt["labels"], strict=True):
        ax.scatter(
            [x - crop.c0],
            [y - crop.r0],
            marker="*" if lab == 1 else "X",
            s=110,
            c="lime" if lab == 1 else "red",
            edgecolors="black",
            linewidths=0.6,
        )


def plot_qualitative(items, title: str, outs: Sequence[Path], dpi: int = 100) -> list[str]:
    """Rows of instances; columns: image with prompt, ground truth, prediction (all cropped to the object).

    ``items`` are :class:`evalsuite.engine.replay.Repredicted`. A row whose re-predicted IoU
    differs from the logged one says so in its title (another device or precision).
    """
    if not items:
        raise InputError("no instances to draw")
    fig = _new_figure(7.5, 2.45 * len(items) + 0.5)
    notes = []
    for i, it in enumerate(items):
        prompt = it.row["prompt"]
        pts = np.asarray(prompt.get("points") or np.zeros((0, 2)), dtype=np.float64).reshape(-1, 2)
        if "box" in prompt:
            x0, y0, x1, y1 = prompt["box"]
            pts = np.asarray([[x0, y0], [x1 - 1, y1 - 1]], dtype=np.float64)
        crop = _crop_around([it.gt, it.pred], pts, it.gt.shape)
        sl = (slice(crop.r0, crop.r1), slice(crop.c0, crop.c1))
        img = it.image[sl]
        panels = (
            (img.astype(np.float32) / 255.0, "image + prompt"),
            (_overlay(img, it.gt[sl], (0.1, 0.8, 0.2)), "ground truth"),
            (_overlay(img, it.pred[sl], (0.9, 0.2, 0.6)), f"prediction, IoU {it.iou:.3f}"),
        )
        for j, (pic, label) in enumerate(panels):
            ax = fig.add_subplot(len(items), 3, 3 * i + j + 1)
            ax.imshow(pic, interpolation="nearest")
            if j != 1:
                _draw_prompt(ax, prompt, crop)
            ax.set_xlim(-0.5, pic.shape[1] - 0.5)
            ax.set_ylim(pic.shape[0] - 0.5, -0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                r = it.row
                ax.set_title(f"{r['image_id']}/{r['ann_id']} {it.category} ({r['size']})", fontsize=7)
            else:
                ax.set_title(label, fontsize=7)
        if not it.matches_record:
            notes.append(
                f"{it.row['image_id']}/{it.row['ann_id']}: re-predicted IoU {it.iou:.4f} differs from the "
                f"logged {float(it.row['iou']):.4f} (other device or precision?)"
            )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    save(fig, outs, dpi)
    return notes
