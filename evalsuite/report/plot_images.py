"""Qualitative figures: masks drawn over their images.

``plot_qualitative`` (mIoU records): one row per instance — image with the prompt, ground truth,
re-predicted mask — cropped around the object so small objects are zoomed, with the full image as
an inset that marks the crop. ``plot_detections`` (AP records): a few images with the logged
detections coloured by match / miss against the ground truth, and the ground truth none matched.
Masks are contour outlines over a light fill, so the image under them stays visible and two masks
can be compared edge to edge. The masks come from :mod:`evalsuite.engine.replay`; this module only
draws (reports never build models or read datasets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.gridspec import GridSpec
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..errors import InputError
from .plot_base import SMALL, Plot, freeze_layout, header, new_figure, save
from .plot_labels import Anchor, Label, place_labels

GT_COLOR = "#009E73"
PRED_COLOR = "#CC79A7"
STATUS_COLORS = {"match": "#009E73", "unmatched": "#D55E00", "unscored": "#9E9E9E"}
MISSED_COLOR = "#F0E442"
SIZE_WORDS = {"S": "small", "M": "medium", "L": "large"}
_HALO: list[patheffects.AbstractPathEffect] = [patheffects.withStroke(linewidth=3.2, foreground="black")]
#: a crop smaller than this share of the image gets the full image as an inset
_INSET_BELOW = 0.45
_MIN_CROP = 48  # pixels: tiny objects are not blown up beyond recognition


class RepredictedLike(Protocol):
    """What the grid reads of :class:`evalsuite.engine.replay.Repredicted`."""

    row: dict[str, Any]
    category: str
    image: np.ndarray
    gt: np.ndarray
    pred: np.ndarray
    iou: float

    @property
    def matches_record(self) -> bool: ...


class DetectionLike(Protocol):
    category: str
    score: float
    box: list[float]
    mask: np.ndarray
    status: str


class DetectionImageLike(Protocol):
    """What the AP view reads of :class:`evalsuite.engine.replay.DetectionImage`."""

    image_id: int
    image: np.ndarray

    @property
    def detections(self) -> Sequence[DetectionLike]: ...

    @property
    def missed(self) -> Sequence[tuple[str, np.ndarray]]: ...

    below_threshold: int

    def count(self, status: str) -> int: ...


@dataclass(frozen=True)
class _Crop:
    r0: int
    r1: int
    c0: int
    c1: int


def _crop_around(masks: Sequence[np.ndarray], points: np.ndarray, shape: tuple[int, int]) -> _Crop:
    """The masks' and prompt points' extent, padded by a quarter (at least 16 px), at least _MIN_CROP wide."""
    rows = [np.flatnonzero(m.any(axis=1)) for m in masks]
    cols = [np.flatnonzero(m.any(axis=0)) for m in masks]
    ys = np.concatenate([r[[0, -1]] for r in rows if r.size] + [points[:, 1]])
    xs = np.concatenate([c[[0, -1]] for c in cols if c.size] + [points[:, 0]])
    h, w = shape
    if not ys.size:
        return _Crop(0, h, 0, w)
    pad = max(16, int(0.25 * max(np.ptp(ys), np.ptp(xs))))
    r0, r1 = int(ys.min()) - pad, int(ys.max()) + pad + 1
    c0, c1 = int(xs.min()) - pad, int(xs.max()) + pad + 1
    grow_r, grow_c = max(0, _MIN_CROP - (r1 - r0)), max(0, _MIN_CROP - (c1 - c0))
    r0, r1 = r0 - grow_r // 2, r1 + grow_r - grow_r // 2
    c0, c1 = c0 - grow_c // 2, c1 + grow_c - grow_c // 2
    return _Crop(max(0, r0), min(h, r1), max(0, c0), min(w, c1))


def _show(ax: Axes, image: np.ndarray) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])


def _outline(ax: Axes, mask: np.ndarray, color: str, fill: float = 0.28, dashed: bool = False) -> None:
    """A light fill and a haloed contour of ``mask`` (nothing for an empty mask)."""
    if not mask.any():
        return
    if fill > 0:
        rgba = np.zeros((*mask.shape, 4), dtype=np.float32)
        rgba[mask] = (*_rgb(color), fill)
        ax.imshow(rgba, interpolation="nearest")
    cs = ax.contour(
        np.pad(mask, 1).astype(np.float32),
        levels=[0.5],
        colors=[color],
        linewidths=1.8,
        linestyles="--" if dashed else "-",
        extent=(-1.5, mask.shape[1] + 0.5, mask.shape[0] + 0.5, -1.5),
        origin="upper",
    )
    cs.set_path_effects(_HALO)


def _rgb(color: str) -> tuple[float, float, float]:
    h = color.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255)


def _draw_prompt(ax: Axes, prompt: dict, crop: _Crop) -> None:
    if "box" in prompt:
        x0, y0, x1, y1 = prompt["box"]
        rect = Rectangle(
            (x0 - crop.c0 - 0.5, y0 - crop.r0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="#FFD700", lw=1.8
        )
        rect.set_path_effects(_HALO)
        ax.add_patch(rect)
        return
    for (x, y), lab in zip(prompt["points"], prompt["labels"], strict=True):
        ax.scatter(
            [x - crop.c0],
            [y - crop.r0],
            marker="*" if lab == 1 else "X",
            s=150,
            c="#39FF14" if lab == 1 else "#FF3030",
            edgecolors="black",
            linewidths=0.8,
            zorder=5,
        )


def _inset(ax: Axes, image: np.ndarray, crop: _Crop, masks: Sequence[np.ndarray]) -> None:
    """The full image in the emptiest corner of ``ax``, the crop marked on it."""
    h, w = crop.r1 - crop.r0, crop.c1 - crop.c0
    busy = np.zeros((h, w), dtype=bool)
    for m in masks:
        busy |= m[crop.r0 : crop.r1, crop.c0 : crop.c1]
    corners = {
        (0.0, 0.0): busy[h // 2 :, : w // 2].sum(),  # lower left
        (0.7, 0.0): busy[h // 2 :, w // 2 :].sum(),
        (0.0, 0.7): busy[: h // 2, : w // 2].sum(),
        (0.7, 0.7): busy[: h // 2, w // 2 :].sum(),
    }
    x, y = min(corners, key=lambda c: (corners[c], c))
    ins = ax.inset_axes((x, y, 0.3, 0.3))
    _show(ins, image)
    ins.add_patch(
        Rectangle((crop.c0 - 0.5, crop.r0 - 0.5), w, h, fill=False, ec="#FFD700", lw=1.4, path_effects=_HALO)
    )
    for spine in ins.spines.values():
        spine.set_edgecolor("white")
        spine.set_linewidth(1.2)


def plot_qualitative(
    items: Sequence[RepredictedLike], title: str, outs: Sequence[Path] = (), dpi: int = 100
) -> Plot:
    """Rows of instances; columns: image with prompt, ground truth, re-predicted mask.

    A row whose re-predicted IoU differs from the logged one is reported in the notes (another
    device or precision).
    """
    if not items:
        raise InputError("no instances to draw")
    fig = new_figure(9.0, 2.95 * len(items) + 0.8)
    notes = []
    for i, it in enumerate(items):
        prompt = it.row["prompt"]
        pts = np.asarray(prompt.get("points") or np.zeros((0, 2)), dtype=np.float64).reshape(-1, 2)
        if "box" in prompt:
            x0, y0, x1, y1 = prompt["box"]
            pts = np.asarray([[x0, y0], [x1 - 1, y1 - 1]], dtype=np.float64)
        crop = _crop_around([it.gt, it.pred], pts, it.gt.shape)
        sl = (slice(crop.r0, crop.r1), slice(crop.c0, crop.c1))
        img, gt, pred = it.image[sl], it.gt[sl], it.pred[sl]
        r = it.row
        size = SIZE_WORDS.get(str(r.get("size")), str(r.get("size")))
        ax = fig.add_subplot(len(items), 3, 3 * i + 1)
        _show(ax, img)
        _draw_prompt(ax, prompt, crop)
        if (crop.r1 - crop.r0) * (crop.c1 - crop.c0) < _INSET_BELOW * it.gt.size:
            _inset(ax, it.image, crop, [it.gt, it.pred])
        ax.set_title(f"{it.category} ({size})\nimage {r['image_id']}, ann {r['ann_id']}", fontsize=SMALL + 1)
        ax = fig.add_subplot(len(items), 3, 3 * i + 2)
        _show(ax, img)
        _outline(ax, gt, GT_COLOR)
        ax.set_title("ground truth", fontsize=SMALL + 1)
        ax = fig.add_subplot(len(items), 3, 3 * i + 3)
        _show(ax, img)
        _outline(ax, gt, GT_COLOR, fill=0.0, dashed=True)
        _outline(ax, pred, PRED_COLOR)
        if "box" not in prompt:  # clicks explain the prediction; a box would hide its outline
            _draw_prompt(ax, prompt, crop)
        ax.set_title(f"prediction · IoU {it.iou:.3f}", fontsize=SMALL + 1)
        if not it.matches_record:
            notes.append(
                f"{r['image_id']}/{r['ann_id']}: re-predicted IoU {it.iou:.4f} differs from the "
                f"logged {float(r['iou']):.4f} (other device or precision?)"
            )
    header(
        fig,
        title,
        [
            Line2D([], [], color=GT_COLOR, lw=2, label="ground truth"),
            Line2D([], [], color=PRED_COLOR, lw=2, label="prediction"),
            Line2D([], [], color=GT_COLOR, lw=2, ls="--", label="ground truth, over the prediction"),
        ],
        3,
    )
    freeze_layout(fig)
    save(fig, outs, dpi)
    return Plot(fig, notes)


def plot_detections(
    images: Sequence[DetectionImageLike], title: str, outs: Sequence[Path] = (), dpi: int = 100
) -> Plot:
    """AP record: each image with its shown detections (matched, unmatched, not scored) and the
    ground truth no detection matched (dashed)."""
    if not images:
        raise InputError("no images to draw")
    cols = 1 if len(images) == 1 else 2
    rows = -(-len(images) // cols)
    aspects = [
        max(im.image.shape[0] / im.image.shape[1] for im in images[r * cols : (r + 1) * cols])
        for r in range(rows)
    ]
    fig = new_figure(4.7 * cols + 0.3, sum(4.5 * a + 0.55 for a in aspects) + 1.1)
    gs = GridSpec(rows, 2 * cols, figure=fig, height_ratios=[4.5 * a + 0.55 for a in aspects])
    placements: list[tuple[Axes, list[Label]]] = []
    statuses: set[str] = set()
    for i, im in enumerate(images):
        row, pos = divmod(i, cols)
        start = (cols - min(cols, len(images) - row * cols)) + 2 * pos  # a short last row is centred
        ax = fig.add_subplot(gs[row, start : start + 2])
        _show(ax, im.image)
        for _, mask in im.missed:
            _outline(ax, mask, MISSED_COLOR, fill=0.0, dashed=True)
        labels = []
        for d in im.detections:
            statuses.add(d.status)
            _outline(ax, d.mask, STATUS_COLORS[d.status], fill=0.22)
            x0, y0 = d.box[0], d.box[1]
            labels.append(
                Label((Anchor(x0, y0, 0.0),), f"{d.category} {d.score:.2f}", STATUS_COLORS[d.status])
            )
        placements.append((ax, labels))
        parts = [f"{im.count('match')} matched", f"{im.count('unmatched')} unmatched"]
        if im.count("unscored"):
            parts.append(f"{im.count('unscored')} not scored")
        parts.append(f"{len(im.missed)} GT missed")
        heading = f"image {im.image_id}: " + ", ".join(parts)
        if im.below_threshold:
            heading += f"\n({im.below_threshold} lower-scoring detections not drawn)"
        ax.set_title(heading, fontsize=SMALL + 1)
    keys = [
        Line2D([], [], color=STATUS_COLORS["match"], lw=2.2, label="detection matching the GT"),
        Line2D([], [], color=STATUS_COLORS["unmatched"], lw=2.2, label="unmatched detection"),
    ]
    if "unscored" in statuses:
        keys.append(
            Line2D([], [], color=STATUS_COLORS["unscored"], lw=2.2, label="not scored (crowd / LVIS)")
        )
    keys.append(Line2D([], [], color=MISSED_COLOR, lw=2.2, ls="--", label="ground truth missed"))
    header(fig, title, keys, 2 if cols == 1 else len(keys))
    freeze_layout(fig)
    notes = []
    for ax, labels in placements:
        if left_out := place_labels(ax, labels, fontsize=SMALL - 0.5, required=False):
            notes.append(f"{ax.get_title()}: {len(left_out)} detection label(s) left out (no free space)")
    save(fig, outs, dpi)
    return Plot(fig, notes)
