"""Point (click) prompts.

Two rules are implemented:

* :func:`random_clicks` — the EfficientSAM paper's rule: k distinct foreground
  pixels drawn uniformly at random. The generator is seeded from
  ``(seed, image_id, ann_id)`` only, so the clicks for an object do not depend on
  the model, the run, the shard layout or the order objects are visited in, and
  the k-click set is a prefix of the (k+1)-click set.
* :func:`sam_click` — one click of the SAM paper's iterative clicker (RITM style,
  as used by EfficientViT-SAM's evaluation): each click goes to the interior-most
  pixel of the larger error region. The rounds (click, predict, click again) are
  run by :class:`evalsuite.prompts.strategies.SamClicks` and the task that owns the model.

Pixel ``(row r, col c)`` is handed to a model as the point ``(x=c, y=r)`` in
original image coordinates (no +0.5 shift). Points are float64 ``(n, 2)`` arrays
of ``(x, y)``; labels are int64, 1 for a positive (foreground) click and 0 for a
negative one.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from ..data import values as seeds
from ..data.values import NEGATIVE_MARKER

__all__ = [
    "NEGATIVE_MARKER",
    "distance_transform_padded",
    "random_clicks",
    "sam_click",
    "sam_click_center",
    "seed_material",
]


def _as_mask(mask: ArrayLike, name: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D mask, got shape {m.shape}")
    return np.ascontiguousarray(m, dtype=bool)


def _as_seed_int(value: int, name: str) -> int:
    """Seed material must be an integer (numpy ints and big ints are fine; any sign)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"random_clicks: {name} must be an integer, got {value!r}")
    return int(value)


def seed_material(seed: int, image_id: int, ann_id: int) -> list[int]:
    """What ``np.random.default_rng`` is seeded with for the clicks of one instance.

    Non-negative ``(seed, image_id, ann_id)``: the list ``[seed, image_id, ann_id]`` itself, as
    since the first release, so every recorded click (and the gates pinned on them) stays the same.
    A triple with a negative member maps to a word list no non-negative triple makes
    (:func:`evalsuite.data.values.seed_material` has the mapping and why it is injective).
    """
    return seeds.seed_material(seed, image_id, ann_id)


# ---------------------------------------------------------------------------
# Random clicks (EfficientSAM)
# ---------------------------------------------------------------------------


def random_clicks(
    mask: ArrayLike, k: int, seed: int, image_id: int, ann_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """k distinct mask pixels drawn uniformly without replacement, as positive clicks.

    The draw is a fixed sequence: ``rng = np.random.default_rng([seed, image_id, ann_id])``
    (for non-negative values; see :func:`seed_material` for negative ones),
    then ``rng.integers(n)`` repeatedly into ``np.flatnonzero(mask)`` (row-major pixel
    order, ``n`` pixels), skipping indices already drawn, until k distinct ones are
    chosen. Since the sequence never depends on k, the clicks are nested (the k-click
    set is the first k of the (k+1)-click set) and reproducible for any run layout.
    (Draws are made in vectorised chunks; numpy's ``Generator.integers`` yields the
    same stream in chunks as one at a time, which the tests check.)

    Returns ``(points, labels)``: float64 ``(k, 2)`` of ``(x, y)`` and int64 ``(k,)`` of ones.
    Raises ValueError for an empty mask, negative k, or a mask with fewer than k
    pixels — the caller decides what a too-small object means for its protocol
    (skip it, or ask for fewer clicks); silently returning fewer clicks would make
    "k-click" results mix different k.
    """
    m = _as_mask(mask, "random_clicks")
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"random_clicks: k must be a non-negative integer, got {k!r}")
    k = int(k)
    material = seed_material(
        _as_seed_int(seed, "seed"),
        _as_seed_int(image_id, "image_id"),
        _as_seed_int(ann_id, "ann_id"),
    )
    pixels = np.flatnonzero(m)
    n = pixels.size
    if n == 0:
        raise ValueError("random_clicks: the mask is empty, there is no pixel to click")
    if k > n:
        raise ValueError(f"random_clicks: asked for {k} distinct clicks but the mask has only {n} pixel(s)")

    rng = np.random.default_rng(material)
    seen = np.zeros(n, dtype=bool)
    chosen: list[np.ndarray] = []
    need = k
    while need > 0:
        # Enough draws to usually finish in one go (coupon-collector margin when k is close to n).
        chunk = rng.integers(n, size=max(16, 2 * need + (n if 2 * k > n else 0)))
        # First occurrence of each value within the chunk, kept in draw order.
        _, first = np.unique(chunk, return_index=True)
        fresh = chunk[np.sort(first)]
        fresh = fresh[~seen[fresh]][:need]
        seen[fresh] = True
        chosen.append(fresh)
        need -= fresh.size
    order = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    rows, cols = np.divmod(pixels[order], m.shape[1])
    points = np.stack([cols, rows], axis=1).astype(np.float64).reshape(k, 2)
    labels = np.ones(k, dtype=np.int64)
    return points, labels


# ---------------------------------------------------------------------------
# SAM / RITM clicker
# ---------------------------------------------------------------------------


def distance_transform_padded(mask: ArrayLike) -> np.ndarray:
    """Exact Euclidean distance from each mask pixel to the nearest non-mask pixel, border included.

    The mask is zero-padded by one pixel before ``scipy.ndimage.distance_transform_edt``
    and the padding is cropped afterwards, so the image border acts as object
    boundary: a pixel on the edge of the image is at distance 1, as in the RITM
    clicker. Returns float64 of the mask's shape (0 outside the mask).
    """
    m = _as_mask(mask, "distance_transform_padded")
    padded = np.pad(m, 1, mode="constant", constant_values=False)
    dt = ndimage.distance_transform_edt(padded)
    return np.ascontiguousarray(dt[1:-1, 1:-1], dtype=np.float64)


# Already-clicked points for sam_click: a sequence of (x, y) pairs or an (n, 2) array.
Clicked = Sequence[Sequence[float]] | np.ndarray | None

#: above this distance (pixels) the deepest pixel is found with scipy's exact transform instead of
#: OpenCV's: OpenCV's float32 distances are within 1.1e-7 (relative) of the exact ones, which recovers the
#: exact squared distance ``round(d**2)`` only while ``2 * 1.1e-7 * d**2`` stays well below 0.5
_CV2_MAX_DISTANCE = 512.0
#: OpenCV distances this close (relative) to the largest may be the exact maximum: each is checked
_CV2_CANDIDATES = 4e-6


def _clicked_points(clicked: Clicked, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the already-clicked pixels, checked."""
    none = np.zeros(0, dtype=np.int64)
    if clicked is None:
        return none, none
    pts = np.asarray(clicked, dtype=np.float64)
    if pts.size == 0:
        return none, none
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"sam_click: clicked must be a list of (x, y) points, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)) or not np.array_equal(pts, np.round(pts)):
        raise ValueError("sam_click: clicked points must lie on pixel coordinates (integral x, y)")
    xs = pts[:, 0].astype(np.int64)
    ys = pts[:, 1].astype(np.int64)
    h, w = shape
    if np.any((xs < 0) | (xs >= w) | (ys < 0) | (ys >= h)):
        raise ValueError(f"sam_click: a clicked point lies outside the {w}x{h} (width x height) image")
    return ys, xs


def _deepest(region: np.ndarray, done_rows: np.ndarray, done_cols: np.ndarray) -> tuple[int, int, int]:
    """The interior-most pixel of ``region`` (not among the clicked pixels): ``(squared distance, row,
    col)``, the first in row-major order among equals; ``(0, 0, 0)`` when no such pixel is left.

    The padded Euclidean distance of :func:`distance_transform_padded`, computed exactly but cheaply:

    * only the region's bounding box plus a one-pixel zero border is transformed: every pixel outside
      the box is background, and the nearest background pixel of any pixel in the box lies in the box
      or on that border (clamp it onto the border: no coordinate gets farther), where the image edge
      counts as background as in the padded transform;
    * the transform is OpenCV's (the one the RITM / EfficientViT-SAM clicker calls), 4-6x faster than
      scipy's; its float32 distances can differ from the exact ones in the last bit, and not always
      alike for equal distances, so the pixels near its maximum are re-ranked by their exact squared
      distance ``round(d**2)`` (an integer). Beyond ``_CV2_MAX_DISTANCE``, scipy's exact transform.
    """
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size == 0:
        return 0, 0, 0
    cols = np.flatnonzero(region.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = np.zeros((r1 - r0 + 2, c1 - c0 + 2), dtype=np.uint8)
    crop[1:-1, 1:-1] = region[r0:r1, c0:c1]
    inside = (done_rows >= r0) & (done_rows < r1) & (done_cols >= c0) & (done_cols < c1)
    at_rows, at_cols = done_rows[inside] - r0 + 1, done_cols[inside] - c0 + 1
    dist = cv2.distanceTransform(crop, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    if float(dist.max()) > _CV2_MAX_DISTANCE:
        return _deepest_exact(crop, r0, c0, at_rows, at_cols)
    dist[at_rows, at_cols] = 0
    top = float(dist.max())
    if top <= 0:
        return 0, 0, 0
    flat = dist.ravel()
    near = np.flatnonzero(flat >= top * (1.0 - _CV2_CANDIDATES))
    values = flat[near].astype(np.float64) ** 2
    squared = np.rint(values)
    if np.abs(values - squared).max() > 0.25:  # OpenCV outside its measured bound: take no chance
        return _deepest_exact(crop, r0, c0, at_rows, at_cols)
    best = squared.max()
    k = int(near[int(np.argmax(squared == best))])  # the first in row-major order among equals
    r, c = divmod(k, crop.shape[1])
    return int(best), r - 1 + r0, c - 1 + c0


def _deepest_exact(
    crop: np.ndarray, r0: int, c0: int, rows: np.ndarray, cols: np.ndarray
) -> tuple[int, int, int]:
    """:func:`_deepest` on a padded crop with scipy's exact transform (clicked pixels at rows, cols)."""
    dist = ndimage.distance_transform_edt(crop)
    dist[rows, cols] = 0
    k = int(np.argmax(dist))
    if dist.flat[k] <= 0:
        return 0, 0, 0
    r, c = divmod(k, crop.shape[1])
    return int(np.rint(dist.flat[k] ** 2)), r - 1 + r0, c - 1 + c0


def sam_click(
    gt: ArrayLike,
    pred: ArrayLike | None = None,
    clicked: Clicked = None,
) -> tuple[tuple[float, float], int]:
    """Next click of the SAM/RITM clicker: the interior-most pixel of the larger error region.

    FN = gt & ~pred and FP = ~gt & pred (``pred=None`` means nothing predicted yet,
    so the first click lands at the object's centre). Each gets
    :func:`distance_transform_padded`; pixels in ``clicked`` — a sequence of
    ``(x, y)`` points as previously returned, or an ``(n, 2)`` array — are zeroed in
    both, so no pixel is clicked twice. The click is positive (label 1) iff
    ``max(DT_FN) > max(DT_FP)``; a tie is negative (label 0). It is placed at the
    first pixel in row-major order attaining the chosen maximum.

    Edge case, kept literal rather than special-cased: when both maxima are 0 (a
    perfect prediction, an empty gt with no prediction, or every error pixel
    already clicked) the rule yields a negative click at the first pixel of the
    image, ``(0.0, 0.0)``, whatever lies there. Callers that want to stop instead
    should check the error regions themselves.

    The distances are computed on the error regions' bounding boxes with OpenCV and checked
    exactly near the maximum (:func:`_deepest`): the same clicks as the full scipy transform
    (a hypothesis test holds them to it), several times faster.

    Returns ``((x, y), label)`` with float x, y and int label.
    """
    g = _as_mask(gt, "sam_click")
    if pred is None:
        p = np.zeros_like(g)
    else:
        p = _as_mask(pred, "sam_click")
        if p.shape != g.shape:
            raise ValueError(f"sam_click: pred shape {p.shape} differs from gt shape {g.shape}")
    done_rows, done_cols = _clicked_points(clicked, g.shape)
    wrong = g ^ p
    if not wrong.any():  # a perfect prediction: both maxima are 0
        return (0.0, 0.0), 0
    fn_depth, fn_r, fn_c = _deepest(wrong & g, done_rows, done_cols)
    fp_depth, fp_r, fp_c = _deepest(wrong & p, done_rows, done_cols)
    if fn_depth > fp_depth:
        return (float(fn_c), float(fn_r)), 1
    return (float(fp_c), float(fp_r)), 0


def sam_click_center(gt: ArrayLike) -> tuple[float, float]:
    """First SAM click: ``(x, y)`` of the first row-major pixel maximising the padded EDT of gt.

    Same point as ``sam_click(gt)`` (which is always positive for a non-empty gt),
    offered on its own for protocols that only need the object's centre click.
    Raises ValueError for an empty gt, which has no centre.
    """
    g = _as_mask(gt, "sam_click_center")
    if not g.any():
        raise ValueError("sam_click_center: the gt mask is empty, it has no centre")
    none = np.zeros(0, dtype=np.int64)
    _, r, c = _deepest(g, none, none)
    return float(c), float(r)
