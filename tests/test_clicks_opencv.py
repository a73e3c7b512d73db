"""SAM's clicker on OpenCV's distance transform and bounding-box crops chooses exactly the clicks of the
rule computed with scipy's exact transform on the whole image (the implementation it replaced, kept here
as the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

import evalsuite.prompts.clicks as clicks
from evalsuite.prompts import sam_click, sam_click_center


def scipy_sam_click(gt: np.ndarray, pred: np.ndarray | None = None, clicked=()) -> tuple:
    """The rule as evalsuite computed it before OpenCV: exact EDT of the zero-padded FN / FP masks of the
    whole image, clicked pixels zeroed, positive iff max FN > max FP, first row-major pixel at the max."""
    p = np.zeros_like(gt) if pred is None else pred
    fn = ndimage.distance_transform_edt(np.pad(gt & ~p, 1))[1:-1, 1:-1]
    fp = ndimage.distance_transform_edt(np.pad(~gt & p, 1))[1:-1, 1:-1]
    for x, y in clicked:
        fn[int(y), int(x)] = 0
        fp[int(y), int(x)] = 0
    positive = bool(fn.max() > fp.max())
    dt = fn if positive else fp
    r, c = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return (float(c), float(r)), int(positive)


@st.composite
def shaped_masks(draw, h: int, w: int) -> np.ndarray:
    """Masks with the shapes that make ties and edge cases: rectangles (ridges of equal distance),
    discs, lines, single pixels, blobs touching the border, noise, and unions of them."""
    m = np.zeros((h, w), dtype=bool)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["rect", "disc", "line", "pixel", "border", "noise", "diamond"]))
        if kind == "rect":
            r0, c0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
            m[r0 : r0 + draw(st.integers(1, h)), c0 : c0 + draw(st.integers(1, w))] = True
        elif kind == "disc":
            cy, cx = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
            rad = draw(st.integers(0, max(h, w) // 2))
            yy, xx = np.ogrid[:h, :w]
            m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= rad * rad
        elif kind == "diamond":
            cy, cx = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
            yy, xx = np.ogrid[:h, :w]
            m |= np.abs(yy - cy) + np.abs(xx - cx) <= draw(st.integers(0, max(h, w) // 2))
        elif kind == "line":
            if draw(st.booleans()):
                m[draw(st.integers(0, h - 1)), :] = True
            else:
                m[:, draw(st.integers(0, w - 1))] = True
        elif kind == "pixel":
            m[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = True
        elif kind == "border":
            m[: draw(st.integers(1, h)), : draw(st.integers(1, w))] = True
        else:
            rng = np.random.default_rng(draw(st.integers(0, 2**16)))
            m |= rng.random((h, w)) < draw(st.sampled_from([0.05, 0.5, 0.95]))
    return m


@st.composite
def click_cases(draw):
    h, w = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    gt = draw(shaped_masks(h, w))
    pred = draw(st.one_of(st.none(), shaped_masks(h, w), st.just(gt.copy())))
    n = draw(st.integers(0, 6))
    flat = draw(
        st.lists(st.integers(0, h * w - 1), min_size=min(n, h * w), max_size=min(n, h * w), unique=True)
    )
    return gt, pred, [(float(i % w), float(i // w)) for i in flat]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(click_cases())
def test_opencv_clicker_chooses_the_scipy_click(case):
    gt, pred, clicked = case
    assert sam_click(gt, pred, clicked) == scipy_sam_click(gt, pred, clicked)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**16), st.integers(3, 8))
def test_click_sequences_on_coco_sized_masks_are_identical(seed, rounds):
    """Whole sequences as a NoC run makes them: each round's prediction derived from the last click."""
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    yy, xx = np.ogrid[:h, :w]
    cy, cx, ry, rx = rng.integers(0, h), rng.integers(0, w), rng.integers(2, 200), rng.integers(2, 200)
    gt = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    gt[rng.integers(0, h) :, : rng.integers(1, 60)] = rng.random() < 0.5  # sometimes a border blob
    pred, done = None, []
    for k in range(rounds):
        got = sam_click(gt, pred, done)
        assert got == scipy_sam_click(gt, pred, done), (seed, k)
        done.append(got[0])
        x, y = got[0]
        shift = int(rng.integers(-9, 10))
        pred = np.roll(gt, shift, axis=int(k % 2)) | ((yy - y) ** 2 + (xx - x) ** 2 <= 25)


def test_large_distances_use_the_exact_transform(monkeypatch):
    """Beyond the distance where OpenCV's float32 values could blur the exact order, scipy decides."""
    gt = np.zeros((60, 70), dtype=bool)
    gt[5:50, 3:61] = True
    calls = []
    real = clicks._deepest_exact

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(clicks, "_deepest_exact", spy)
    monkeypatch.setattr(clicks, "_CV2_MAX_DISTANCE", 5.0)
    assert sam_click(gt) == scipy_sam_click(gt)
    assert sam_click(gt, None, [sam_click(gt)[0]]) == scipy_sam_click(gt, None, [sam_click(gt)[0]])
    assert calls
    monkeypatch.setattr(clicks, "_CV2_MAX_DISTANCE", 512.0)
    calls.clear()
    assert sam_click(gt) == scipy_sam_click(gt) and not calls


def test_centre_of_a_full_image_and_of_the_edge_cases():
    full = np.ones((31, 44), dtype=bool)
    assert sam_click_center(full) == scipy_sam_click(full)[0]
    assert sam_click(full, full) == ((0.0, 0.0), 0)  # perfect: the literal rule
    one = np.zeros((5, 5), dtype=bool)
    one[4, 4] = True
    assert sam_click(one) == scipy_sam_click(one) == ((4.0, 4.0), 1)
    assert sam_click(one, None, [(4.0, 4.0)]) == ((0.0, 0.0), 0)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 2)])
def test_tiny_images(shape):
    for gt in (np.ones(shape, dtype=bool), np.zeros(shape, dtype=bool)):
        for pred in (None, ~gt, gt):
            assert sam_click(gt, pred) == scipy_sam_click(gt, pred)
