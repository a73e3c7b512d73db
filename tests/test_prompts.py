"""Tests for evalsuite.prompts: box and click prompts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_utils

from evalsuite.prompts import (
    ann_box,
    distance_transform_padded,
    random_clicks,
    sam_click,
    sam_click_center,
    tight_box,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

FAST = settings(max_examples=100, deadline=None)


# ---------------------------------------------------------------------------
# strategies and independent references
# ---------------------------------------------------------------------------


@st.composite
def masks(draw, max_side: int = 40, nonempty: bool = True) -> np.ndarray:
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    m = draw(hnp.arrays(dtype=bool, shape=(h, w)))
    if nonempty:
        m[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = True
    return m


@st.composite
def mask_pairs(draw, max_side: int = 16) -> tuple[np.ndarray, np.ndarray]:
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    return draw(hnp.arrays(dtype=bool, shape=(h, w))), draw(hnp.arrays(dtype=bool, shape=(h, w)))


def brute_force_padded_dt(mask: np.ndarray) -> np.ndarray:
    """O(n²) distance from each pixel to the nearest zero of the 1-px zero-padded mask."""
    padded = np.pad(mask, 1)
    zr, zc = np.nonzero(~padded)
    out = np.zeros(mask.shape, dtype=np.float64)
    for r, c in zip(*np.nonzero(mask), strict=True):
        out[r, c] = np.sqrt(np.min((zr - (r + 1)) ** 2 + (zc - (c + 1)) ** 2))
    return out


def reference_sam_click(gt, pred=None, clicked=()):
    """Straightforward restatement of the RITM rule using the brute-force distances."""
    pred = np.zeros_like(gt) if pred is None else pred
    dt_fn = brute_force_padded_dt(gt & ~pred)
    dt_fp = brute_force_padded_dt(~gt & pred)
    for x, y in clicked:
        dt_fn[int(y), int(x)] = 0
        dt_fp[int(y), int(x)] = 0
    positive = dt_fn.max() > dt_fp.max()
    dt = dt_fn if positive else dt_fp
    best = dt.max()
    for r in range(gt.shape[0]):
        for c in range(gt.shape[1]):
            if dt[r, c] == best:
                return (float(c), float(r)), int(positive)
    raise AssertionError("unreachable")


def reference_random_clicks(mask, k, seed, image_id, ann_id):
    """The protocol's definition taken literally: one scalar draw at a time."""
    pixels = np.flatnonzero(mask)
    rng = np.random.default_rng([seed, image_id, ann_id])
    picked: list[int] = []
    while len(picked) < k:
        i = int(rng.integers(pixels.size))
        if i not in picked:
            picked.append(i)
    rows, cols = np.divmod(pixels[picked], mask.shape[1])
    return np.stack([cols, rows], axis=1).astype(np.float64).reshape(k, 2)


def coco_box_xyxy(mask: np.ndarray) -> np.ndarray:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = mask_utils.toBbox(rle)
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def rect(shape, r0, r1, c0, c1) -> np.ndarray:
    """Mask with rows r0..r1-1 and cols c0..c1-1 set."""
    m = np.zeros(shape, dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


# ---------------------------------------------------------------------------
# boxes
# ---------------------------------------------------------------------------


@FAST
@given(masks())
def test_tight_box_matches_pycocotools(mask):
    box = tight_box(mask)
    assert box.dtype == np.float64
    np.testing.assert_array_equal(box, coco_box_xyxy(mask))


def test_tight_box_single_pixel_and_rectangle():
    m = np.zeros((5, 7), dtype=bool)
    m[2, 3] = True
    np.testing.assert_array_equal(tight_box(m), [3, 2, 4, 3])
    np.testing.assert_array_equal(tight_box(rect((10, 10), 1, 4, 2, 9)), [2, 1, 9, 4])


def test_tight_box_rejects_empty_and_non_2d():
    with pytest.raises(ValueError, match="empty"):
        tight_box(np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="2-D"):
        tight_box(np.ones((2, 2, 2), dtype=bool))


def test_ann_box_and_converters():
    box = ann_box([10, 20, 30.5, 40])
    assert box.dtype == np.float64
    np.testing.assert_array_equal(box, [10, 20, 40.5, 60])
    stack = np.array([[0, 0, 1, 1], [2, 3, 4, 5]], dtype=np.float64)
    np.testing.assert_array_equal(xywh_to_xyxy(stack), [[0, 0, 1, 1], [2, 3, 6, 8]])
    np.testing.assert_array_equal(xyxy_to_xywh(xywh_to_xyxy(stack)), stack)
    src = [1.0, 2.0, 3.0, 4.0]
    xywh_to_xyxy(src)
    assert src == [1.0, 2.0, 3.0, 4.0]  # no mutation of the input
    with pytest.raises(ValueError):
        ann_box([1, 2, 3])
    with pytest.raises(ValueError):
        xywh_to_xyxy([[1, 2, 3]])


@FAST
@given(hnp.arrays(np.float64, (4,), elements=st.floats(-1e4, 1e4)))
def test_box_converters_round_trip(box):
    np.testing.assert_allclose(xyxy_to_xywh(xywh_to_xyxy(box)), box, atol=1e-9)


# ---------------------------------------------------------------------------
# random clicks
# ---------------------------------------------------------------------------


@FAST
@given(masks(), st.integers(0, 8), st.integers(0, 2**32), st.integers(0, 10**6), st.integers(0, 10**12))
def test_random_clicks_inside_distinct_deterministic(mask, k, seed, image_id, ann_id):
    k = min(k, int(mask.sum()))
    points, labels = random_clicks(mask, k, seed, image_id, ann_id)
    assert points.shape == (k, 2) and points.dtype == np.float64
    assert labels.shape == (k,) and labels.dtype == np.int64 and np.all(labels == 1)
    xs, ys = points[:, 0].astype(int), points[:, 1].astype(int)
    assert np.all(mask[ys, xs])
    assert len({(x, y) for x, y in zip(xs, ys, strict=True)}) == k
    again, _ = random_clicks(mask.copy(), k, seed, image_id, ann_id)
    np.testing.assert_array_equal(points, again)


@FAST
@given(masks(max_side=12), st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000))
def test_random_clicks_nested(mask, seed, image_id, ann_id):
    n = int(mask.sum())
    top = min(5, n)
    full, _ = random_clicks(mask, top, seed, image_id, ann_id)
    for k in range(1, top + 1):
        np.testing.assert_array_equal(random_clicks(mask, k, seed, image_id, ann_id)[0], full[:k])


@FAST
@given(masks(max_side=10), st.data())
def test_random_clicks_follow_the_literal_scalar_definition(mask, data):
    # Covers k close to the pixel count, where many draws repeat and chunks run out.
    n = int(mask.sum())
    k = data.draw(st.integers(0, n))
    seed, image_id, ann_id = data.draw(st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)))
    np.testing.assert_array_equal(
        random_clicks(mask, k, seed, image_id, ann_id)[0],
        reference_random_clicks(mask, k, seed, image_id, ann_id),
    )


def test_random_clicks_all_pixels_is_a_permutation():
    mask = rect((20, 30), 3, 17, 5, 25)
    points, _ = random_clicks(mask, int(mask.sum()), 0, 1, 2)
    assert {(int(x), int(y)) for x, y in points} == {(c, r) for r, c in zip(*np.nonzero(mask), strict=True)}


def test_random_clicks_depend_on_each_seed_component():
    mask = np.ones((100, 100), dtype=bool)
    base, _ = random_clicks(mask, 5, 0, 139, 42)
    for args in [(1, 139, 42), (0, 140, 42), (0, 139, 43)]:
        other, _ = random_clicks(mask, 5, *args)
        assert not np.array_equal(base, other), args


def test_random_clicks_seed_is_a_vector_not_a_sum():
    mask = np.ones((100, 100), dtype=bool)
    a, _ = random_clicks(mask, 5, 0, 1, 2)
    b, _ = random_clicks(mask, 5, 0, 2, 1)
    assert not np.array_equal(a, b)


def test_random_clicks_large_and_numpy_ids():
    mask = np.ones((30, 30), dtype=bool)
    big = 2**63 + 12345
    a, _ = random_clicks(mask, 3, 7, big, 10**20)
    b, _ = random_clicks(mask, 3, np.int64(7), big, 10**20)
    np.testing.assert_array_equal(a, b)
    c, _ = random_clicks(mask, 3, np.uint64(7), np.uint64(5), np.int32(9))
    np.testing.assert_array_equal(c, random_clicks(mask, 3, 7, 5, 9)[0])


def test_random_clicks_roughly_uniform():
    mask = np.zeros((6, 6), dtype=bool)
    mask.flat[[0, 3, 7, 8, 14, 20, 22, 29, 33, 35]] = True  # 10 pixels
    trials = 5000
    counts_first = np.zeros(mask.shape, dtype=int)
    counts_any = np.zeros(mask.shape, dtype=int)
    for ann_id in range(trials):
        pts, _ = random_clicks(mask, 3, 2024, 77, ann_id)
        xs, ys = pts[:, 0].astype(int), pts[:, 1].astype(int)
        counts_first[ys[0], xs[0]] += 1
        np.add.at(counts_any, (ys, xs), 1)
    assert counts_first[~mask].sum() == 0 and counts_any[~mask].sum() == 0
    for counts, total in [(counts_first[mask], trials), (counts_any[mask], 3 * trials)]:
        expected = total / 10
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 40.0, (chi2, counts)  # 9 dof: p(chi2 > 40) ~ 1e-5


def test_random_clicks_errors():
    with pytest.raises(ValueError, match="empty"):
        random_clicks(np.zeros((5, 5), dtype=bool), 1, 0, 0, 0)
    small = np.zeros((5, 5), dtype=bool)
    small[1, 1:4] = True
    with pytest.raises(ValueError, match="only 3 pixel"):
        random_clicks(small, 4, 0, 0, 0)
    with pytest.raises(ValueError):
        random_clicks(small, -1, 0, 0, 0)
    # a negative seed or id is seed material like any other (see seed_material), not an error
    np.testing.assert_array_equal(random_clicks(small, 1, -1, 0, 0)[0], random_clicks(small, 1, -1, 0, 0)[0])
    with pytest.raises(ValueError):
        random_clicks(small, 1, 0, 0, 1.5)
    with pytest.raises(ValueError):
        random_clicks(np.ones((2, 2, 2), dtype=bool), 1, 0, 0, 0)
    points, labels = random_clicks(small, 0, 0, 0, 0)
    assert points.shape == (0, 2) and labels.shape == (0,)


# ---------------------------------------------------------------------------
# distance transform and SAM clicks
# ---------------------------------------------------------------------------


@FAST
@given(masks(max_side=12, nonempty=False))
def test_distance_transform_padded_matches_brute_force(mask):
    dt = distance_transform_padded(mask)
    assert dt.dtype == np.float64 and dt.shape == mask.shape
    np.testing.assert_allclose(dt, brute_force_padded_dt(mask), rtol=0, atol=1e-12)


def test_border_counts_as_boundary():
    dt = distance_transform_padded(np.ones((3, 5), dtype=bool))
    np.testing.assert_array_equal(dt, [[1, 1, 1, 1, 1], [1, 2, 2, 2, 1], [1, 1, 1, 1, 1]])


@FAST
@given(masks(max_side=12))
def test_first_click_is_the_brute_force_centre(gt):
    point, label = sam_click(gt)
    assert label == 1
    assert (point, label) == reference_sam_click(gt)
    assert sam_click_center(gt) == point
    x, y = point
    dt = brute_force_padded_dt(gt)
    assert dt[int(y), int(x)] == dt.max()


def test_first_click_touching_the_border():
    # A square in the image corner: without border-as-boundary the farthest pixel would be the corner.
    gt = rect((9, 12), 0, 5, 0, 5)
    assert sam_click(gt) == ((2.0, 2.0), 1)
    assert sam_click_center(np.ones((7, 7), dtype=bool)) == (3.0, 3.0)


def test_first_click_rectangle_centre():
    # Odd square: the exact centre.
    assert sam_click_center(rect((30, 40), 5, 16, 10, 21)) == (15.0, 10.0)
    # Even side lengths: the first (top-left) of the four central pixels.
    assert sam_click_center(rect((30, 40), 4, 8, 10, 14)) == (11.0, 5.0)
    # Elongated rectangle: the maxima form a central ridge; the first in row-major order is taken.
    assert sam_click_center(rect((30, 40), 5, 16, 10, 31)) == (15.0, 10.0)
    assert sam_click_center(rect((40, 30), 10, 31, 5, 16)) == (10.0, 15.0)


def test_sam_click_center_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        sam_click_center(np.zeros((4, 4), dtype=bool))


def test_click_goes_to_the_larger_error():
    gt = rect((30, 30), 2, 20, 2, 20)
    # Prediction misses a big chunk of gt (FN) and spills a little outside (FP).
    pred = rect((30, 30), 2, 8, 2, 20) | rect((30, 30), 24, 27, 24, 27)
    (x, y), label = sam_click(gt, pred)
    assert label == 1 and gt[int(y), int(x)] and not pred[int(y), int(x)]
    # Prediction covers gt and spills a lot outside (FP bigger).
    pred = gt | rect((30, 30), 20, 30, 0, 30)
    (x, y), label = sam_click(gt, pred)
    assert label == 0 and pred[int(y), int(x)] and not gt[int(y), int(x)]
    assert ((x, y), label) == reference_sam_click(gt, pred)


def test_tie_is_negative():
    # Two 3x3 error blocks, both with maximal distance 2: FN left, FP right.
    gt = rect((9, 15), 3, 6, 2, 5)
    pred = rect((9, 15), 3, 6, 9, 12)
    assert distance_transform_padded(gt).max() == distance_transform_padded(pred).max() == 2.0
    assert sam_click(gt, pred) == ((10.0, 4.0), 0)


def test_perfect_prediction_edge_case_is_literal():
    gt = rect((6, 6), 1, 4, 1, 4)
    assert sam_click(gt, gt.copy()) == ((0.0, 0.0), 0)
    assert sam_click(np.zeros((3, 3), dtype=bool)) == ((0.0, 0.0), 0)


def test_clicked_pixels_are_never_chosen_again():
    gt = rect((8, 9), 1, 6, 2, 8)
    clicked: list[tuple[float, float]] = []
    for _ in range(int(gt.sum())):
        point, label = sam_click(gt, None, clicked)
        assert label == 1
        assert point not in clicked
        assert gt[int(point[1]), int(point[0])]
        assert (point, label) == reference_sam_click(gt, None, clicked)
        clicked.append(point)
    # Every error pixel has been clicked: literal rule, negative at the first pixel.
    assert sam_click(gt, None, clicked) == ((0.0, 0.0), 0)
    # An (n, 2) array is accepted as well as a list.
    assert sam_click(gt, None, np.array(clicked[:3])) == sam_click(gt, None, clicked[:3])


def test_sam_click_validates_inputs():
    gt = rect((5, 5), 1, 4, 1, 4)
    with pytest.raises(ValueError, match="shape"):
        sam_click(gt, np.zeros((5, 6), dtype=bool))
    with pytest.raises(ValueError, match="outside"):
        sam_click(gt, None, [(5.0, 0.0)])
    with pytest.raises(ValueError, match="integral"):
        sam_click(gt, None, [(1.5, 0.0)])


@FAST
@given(mask_pairs(), st.data())
def test_sam_click_lands_in_the_error_it_targets(pair, data):
    gt, pred = pair
    h, w = gt.shape
    n_clicked = data.draw(st.integers(0, min(6, h * w)))
    flat = data.draw(st.lists(st.integers(0, h * w - 1), min_size=n_clicked, max_size=n_clicked, unique=True))
    clicked = [(float(i % w), float(i // w)) for i in flat]

    point, label = sam_click(gt, pred, clicked)
    assert (point, label) == reference_sam_click(gt, pred, clicked)
    x, y = int(point[0]), int(point[1])
    fn, fp = gt & ~pred, ~gt & pred
    done = np.zeros_like(gt)
    for cx, cy in clicked:
        done[int(cy), int(cx)] = True
    if label == 1:
        assert fn[y, x] and not done[y, x]
    elif (fp & ~done).any():
        assert fp[y, x] and not done[y, x]
    if ((fn | fp) & ~done).any():
        assert not done[y, x]
        assert (fn if label == 1 else fp)[y, x]


def _sam_strategy_rounds(gt: np.ndarray, predict, k: int):
    """Drive SamClicks (the suite's one SAM clicker) for one instance: its clicks and predictions."""
    from evalsuite.data.types import Instance
    from evalsuite.prompts.strategies import PromptInput, strategy_for

    strategy = strategy_for({"prompt": "clicks", "click_rule": "sam", "clicks": k})
    inp = PromptInput(1, 0, [Instance(1, 1, float(gt.sum()), (0, 0, 1, 1), [])], gt[None])
    prompts = strategy.first(inp, Counter())
    preds = []
    for r in range(strategy.rounds):
        if r:
            prompts = strategy.next(inp, prompts, preds[-1][None])
        preds.append(np.asarray(predict(prompts.points[0].copy(), prompts.labels[0].copy()), dtype=bool))
    return prompts.points[0], prompts.labels[0], preds


def test_sam_strategy_with_fixed_prediction():
    gt = rect((20, 20), 2, 7, 2, 7)  # 5x5, centre (4, 4)
    fixed = gt | rect((20, 20), 10, 17, 10, 17)  # covers gt, plus a 7x7 FP block centred at (13, 13)
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    def predict(points, labels):
        calls.append((points, labels))
        points[:] = -1  # mutating the arguments must not disturb the driver
        return fixed

    points, labels, preds = _sam_strategy_rounds(gt, predict, 3)
    np.testing.assert_array_equal(points, [[4, 4], [13, 13], [12, 12]])
    np.testing.assert_array_equal(labels, [1, 0, 0])
    assert points.dtype == np.float64 and labels.dtype == np.int64
    assert len(preds) == 3 and all(np.array_equal(p, fixed) for p in preds)
    assert [len(lab) for _, lab in calls] == [1, 2, 3]
    np.testing.assert_array_equal(calls[2][1], [1, 0, 0])


def test_sam_strategy_matches_stepwise_clicks():
    gt = rect((16, 16), 3, 13, 2, 9)

    def predict(points, labels):
        # A toy model: a disc of radius 3 around each positive click, minus one around each negative.
        yy, xx = np.mgrid[:16, :16]
        out = np.zeros((16, 16), dtype=bool)
        for (x, y), lab in zip(points, labels, strict=True):
            disc = (xx - x) ** 2 + (yy - y) ** 2 <= 9
            out = out | disc if lab == 1 else out & ~disc
        return out

    points, labels, preds = _sam_strategy_rounds(gt, predict, 5)
    pred = None
    for i in range(5):
        assert sam_click(gt, pred, points[:i]) == ((points[i, 0], points[i, 1]), labels[i])
        np.testing.assert_array_equal(preds[i], predict(points[: i + 1], labels[: i + 1]))
        pred = preds[i]
    assert len({tuple(p) for p in points}) == 5


def test_sam_strategy_bounds_and_one_round_strategies():
    from evalsuite.errors import InputError
    from evalsuite.prompts.strategies import strategy_class, strategy_for

    assert strategy_for({"prompt": "clicks", "click_rule": "sam", "clicks": 4}).rounds == 4
    assert strategy_for({"prompt": "clicks", "click_rule": "random", "clicks": 4}).rounds == 1
    assert strategy_for({"prompt": "box", "box_source": "tight"}).rounds == 1
    with pytest.raises(InputError, match="no prompt strategy"):
        strategy_class({"prompt": "clicks", "click_rule": "spiral"})
