"""Point labels that stay inside their axes and clear of each other, without adjustText.

A small deterministic greedy placement: each label tries positions around its point (or, for a
run drawn as several points, around each of them in turn) — right, diagonals, above, below, left
— close to the marker first, then farther out with a thin leader line, and keeps the first whose
box lies inside the axes and overlaps neither a label placed before it nor a marker. A label that
must leave the axes or cover another label is a failure; covering a marker only costs. When no
position is clean, the least bad one is kept (or, for optional labels, the label is left out) and
failures are reported. Text sizes are measured with the figure's
own renderer and the axes must not move afterwards, so the layout is frozen first
(:func:`evalsuite.report.plot_base.freeze_layout`); offsets are in points, so the placement holds
at any dpi.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.transforms import Bbox

#: tag of every placed label (tests find them by it)
LABEL_GID = "point-label"

# (dx, dy) unit offsets and the text alignment that makes the label grow away from its point;
# diagonals use 1 (not 0.71) so the box clears the marker's square, not only its circle
_DIRECTIONS = (
    (1.0, 0.0, "left", "center"),
    (1.0, 1.0, "left", "bottom"),
    (1.0, -1.0, "left", "top"),
    (0.0, 1.0, "center", "bottom"),
    (0.0, -1.0, "center", "top"),
    (-1.0, 0.0, "right", "center"),
    (-1.0, 1.0, "right", "bottom"),
    (-1.0, -1.0, "right", "top"),
)
#: distance (points) beyond the marker's edge of each ring of candidates; rings past the first get a leader
_RINGS = (2.5, 12.0, 26.0, 44.0)
_PAD_PX = 1.5  # clearance between boxes


@dataclass(frozen=True)
class Anchor:
    """A marker: data coordinates and its radius in points."""

    x: float
    y: float
    radius: float


@dataclass(frozen=True)
class Label:
    """A text for one or more markers (tried in order: the label sits beside one of them)."""

    anchors: tuple[Anchor, ...]
    text: str
    color: str


def _overlap(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _outside(box: Bbox, frame: Bbox) -> float:
    """Area of ``box`` outside ``frame`` (0 when it lies within)."""
    return box.width * box.height - _overlap(box, frame)


def _marker_box(ax: Axes, a: Anchor, px: float) -> Bbox:
    cx, cy = ax.transData.transform((a.x, a.y))
    r = a.radius * px
    return Bbox.from_extents(cx - r, cy - r, cx + r, cy + r)


def _padded(box: Bbox) -> Bbox:
    return Bbox.from_extents(box.x0 - _PAD_PX, box.y0 - _PAD_PX, box.x1 + _PAD_PX, box.y1 + _PAD_PX)


@dataclass(frozen=True)
class _Spot:
    """One candidate position of a label: its offset (points), alignment and box (display pixels)."""

    anchor: Anchor
    dx: float
    dy: float
    ha: str
    va: str
    leader: bool
    box: Bbox


def _spots(ax: Axes, lab: Label, size: tuple[float, float], px: float) -> list[_Spot]:
    """Every candidate position of ``lab``, nearest ring first; boxes computed from the text's size."""
    w, h = size
    out = []
    for ring, extra in enumerate(_RINGS):
        for a in lab.anchors:
            cx, cy = ax.transData.transform((a.x, a.y))
            dist = a.radius + extra
            for ux, uy, ha, va in _DIRECTIONS:
                x = cx + ux * dist * px - {"left": 0.0, "center": w / 2, "right": w}[ha]
                y = cy + uy * dist * px - {"bottom": 0.0, "center": h / 2, "top": h}[va]
                box = Bbox.from_extents(x, y, x + w, y + h)
                out.append(_Spot(a, ux * dist, uy * dist, ha, va, ring > 0, box))
    return out


#: what a spot costs given the boxes already taken: (failure, covered markers); (0, 0) is clean
Cost = Callable[[_Spot, list[Bbox]], tuple[float, float]]


def _greedy(
    order: Sequence[int], spots: Sequence[Sequence[_Spot]], costs: Sequence[Cost]
) -> dict[int, tuple[tuple[float, float], _Spot]]:
    """Each label in ``order`` takes its first clean spot, else its least bad one."""
    placed: list[Bbox] = []
    chosen: dict[int, tuple[tuple[float, float], _Spot]] = {}
    for i in order:
        best: tuple[tuple[float, float], _Spot] | None = None
        for spot in spots[i]:
            cost = costs[i](spot, placed)
            if best is None or cost < best[0]:
                best = (cost, spot)
            if cost == (0.0, 0.0):
                break
        assert best is not None
        chosen[i] = best
        placed.append(_padded(best[1].box))
    return chosen


def place_labels(
    ax: Axes,
    labels: Sequence[Label],
    obstacles: Sequence[Anchor] = (),
    fontsize: float = 9.0,
    required: bool = True,
) -> list[str]:
    """Draw ``labels`` beside their anchors; returns the texts that leave the axes or cover a label.

    ``obstacles`` are every marker of the axes (a label's own marker is cleared by construction).
    Labels are placed in the given order; if some find no clean spot, the placement is tried again
    with those first, then longest first, and the attempt with the fewest failures, then the least
    covered, is kept. A required label that fails is drawn at its least bad spot; an optional one
    (``required=False``) is left out.
    """
    chosen = _placement(ax, labels, obstacles, fontsize)
    left: list[str] = []
    for i, lab in enumerate(labels):
        (failure, _), spot = chosen[i]
        if failure > 0:
            left.append(lab.text)
            if not required:
                continue
        _annotate(ax, lab, spot, fontsize)
    return left


def _placement(
    ax: Axes, labels: Sequence[Label], obstacles: Sequence[Anchor], fontsize: float
) -> dict[int, tuple[tuple[float, float], _Spot]]:
    """The best of up to three greedy attempts (given order; unclean first; longest first)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    px = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    frame = Bbox.from_extents(frame.x0 + 2, frame.y0 + 2, frame.x1 - 2, frame.y1 - 2)
    marks = [_marker_box(ax, a, px) for a in obstacles]
    spots = []
    for lab in labels:
        probe = ax.text(0, 0, lab.text, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        spots.append(_spots(ax, lab, (extent.width, extent.height), px))

    def cost(spot: _Spot, placed: list[Bbox]) -> tuple[float, float]:
        padded = _padded(spot.box)
        own = _marker_box(ax, spot.anchor, px).bounds
        return (
            10.0 * _outside(spot.box, frame) + sum(_overlap(padded, p) for p in placed),
            sum(_overlap(padded, m) for m in marks if m.bounds != own),
        )

    costs = [cost] * len(labels)
    given = list(range(len(labels)))
    attempts = [_greedy(given, spots, costs)]
    unclean = [i for i in given if attempts[0][i][0] != (0.0, 0.0)]
    if unclean:
        attempts.append(_greedy(unclean + [i for i in given if i not in unclean], spots, costs))
        attempts.append(_greedy(sorted(given, key=lambda i: -len(labels[i].text)), spots, costs))

    def badness(attempt: dict[int, tuple[tuple[float, float], _Spot]]) -> tuple[int, float, float]:
        cs = [c for c, _ in attempt.values()]
        return (sum(f > 0 for f, _ in cs), sum(f for f, _ in cs), sum(m for _, m in cs))

    return min(attempts, key=badness)


def _annotate(ax: Axes, lab: Label, spot: _Spot, fontsize: float) -> None:
    leader = {"arrowstyle": "-", "color": lab.color, "lw": 0.7, "shrinkA": 1, "shrinkB": spot.anchor.radius}
    ax.annotate(
        lab.text,
        (spot.anchor.x, spot.anchor.y),
        xytext=(spot.dx, spot.dy),
        textcoords="offset points",
        ha=spot.ha,
        va=spot.va,
        fontsize=fontsize,
        color=lab.color,
        gid=LABEL_GID,
        annotation_clip=False,
        arrowprops=leader if spot.leader else None,
        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75},
    )
