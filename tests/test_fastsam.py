"""FastSAM: the official selection rules on hand-built candidates, and the runner end to end.

The rule tests need neither Ultralytics nor weights. The integration tests need the optional extra
(``pip install 'evalsuite[fastsam]'``) and are skipped, with the reason, where it is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evalsuite.errors import InputError
from evalsuite.models import build_model, fastsam
from evalsuite.models.fastsam import (
    FASTSAM_S,
    FASTSAM_X,
    MISSING_EXTRA,
    SEGMENT_ARGS,
    FastSamRunner,
    box_bounds,
    box_ious,
    select_by_box,
    select_by_boxes,
    select_by_points,
    select_by_points_batch,
    snap_boxes,
)

HAVE_ULTRALYTICS = importlib.util.find_spec("ultralytics") is not None


def rect(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


# -- independent references --------------------------------------------------------------------------
def brute_force_box_choice(cands: np.ndarray, box) -> int:
    """Box rule from its definition: exact rational IoU of pixel sets, first maximum wins."""
    _, h, w = cands.shape
    r = np.round(np.asarray(box, float))  # numpy rounds half to even, like Python's round
    x1, y1 = max(int(r[0]), 0), max(int(r[1]), 0)
    x2, y2 = min(int(r[2]), w), min(int(r[3]), h)
    in_box = np.zeros((h, w), bool)
    in_box[y1:y2, x1:x2] = True
    ious = [Fraction(int((m & in_box).sum()), int((m | in_box).sum())) for m in cands]
    return max(range(len(ious)), key=lambda k: (ious[k], -k))


def literal_point_rule(cands: np.ndarray, points, labels) -> np.ndarray:
    """A literal transcription of the official loop: sort by area (largest first), paint 1/0 per point."""
    order = sorted(range(len(cands)), key=lambda k: cands[k].sum(), reverse=True)
    canvas = np.zeros(cands.shape[1:])
    for k in order:
        for (x, y), lab in zip(points, labels, strict=True):
            if cands[k][int(y), int(x)] and lab == 1:
                canvas[cands[k]] = 1
            if cands[k][int(y), int(x)] and lab == 0:
                canvas[cands[k]] = 0
    return canvas >= 1


# -- box rule ----------------------------------------------------------------------------------------
def test_box_bounds_round_half_to_even_and_clamp_only_the_outer_side():
    assert box_bounds([0.5, 1.5, 2.5, 3.5], 10, 10) == (0, 2, 2, 4)
    assert box_bounds([-3.2, -0.6, 12.7, 9.4], 10, 10) == (0, 0, 10, 9)
    assert box_bounds([2.4999, 2.5001, 7.5, 8.5], 10, 10) == (2, 3, 8, 8)
    # official: x1 is never lowered to W nor x2 raised to 0, so a box off the image stays off it
    assert box_bounds([12, 0, 15, 5], 10, 10) == (12, 0, 10, 5)


def test_box_rule_picks_highest_iou_not_largest_overlap():
    h, w = 20, 20
    big = rect(h, w, 0, 20, 0, 20)  # covers the box, but the union is the whole image
    tight = rect(h, w, 5, 10, 5, 10)
    part = rect(h, w, 5, 10, 5, 8)
    cands = np.stack([big, part, tight])
    assert select_by_box(cands, [5, 5, 10, 10]) == 2
    ious = box_ious(cands, [5, 5, 10, 10])
    assert ious.dtype == torch.float32
    assert ious.tolist() == pytest.approx([25 / 400, 15 / 25, 1.0])


def test_box_rule_ties_go_to_the_first_candidate():
    h, w = 10, 10
    left = rect(h, w, 2, 6, 2, 4)
    right = rect(h, w, 2, 6, 4, 6)  # the same IoU with the box, listed second
    assert select_by_box(np.stack([left, right]), [2, 2, 6, 6]) == 0
    assert select_by_box(np.stack([right, left]), [2, 2, 6, 6]) == 0
    same = np.stack([left, left, right])
    assert select_by_boxes(same, [[2, 2, 4, 6], [4, 2, 6, 6]]).tolist() == [0, 2]


def test_box_rule_at_image_edges_and_half_pixels():
    h, w = 8, 8
    corner = rect(h, w, 0, 3, 5, 8)
    centre = rect(h, w, 3, 6, 3, 6)
    cands = np.stack([centre, corner])
    # a box hanging over the top-right corner: [5, 0, 8, 2] (2.5 rounds half to even, down to 2)
    assert select_by_box(cands, [4.6, -2.0, 11.0, 2.5]) == 1
    assert box_ious(cands, [4.6, -2.0, 11.0, 2.5])[1] == pytest.approx(6 / 9)
    assert box_ious(cands, [4.6, -2.0, 11.0, 3.5])[1] == pytest.approx(9 / 12)  # 3.5 rounds up to 4
    # x2 = 5.5 rounds to 6 (half to even), x1 = 2.5 to 2: box [2, 3, 6, 6] holds all of centre
    assert box_ious(cands, [2.5, 3, 5.5, 6])[0] == pytest.approx(9 / 12)


def test_box_rule_without_candidates():
    empty = np.zeros((0, 5, 6), bool)
    assert select_by_box(empty, [0, 0, 3, 3]) == -1
    assert select_by_boxes(empty, np.zeros((3, 4))).tolist() == [-1, -1, -1]


def test_box_rule_float32_ties_resolve_as_the_official_float32_argmax():
    # IoU 1516/6063 < 1515/6059 exactly, but the two are the same float32: official torch.argmax
    # over float32 IoUs keeps the first, and so must we.
    assert Fraction(1516, 6063) < Fraction(1515, 6059)
    assert np.float32(1516) / np.float32(6063) == np.float32(1515) / np.float32(6059)
    h = w = 100
    inside = np.flatnonzero(rect(h, w, 0, 50, 0, 50))
    outside = np.flatnonzero(~rect(h, w, 0, 50, 0, 50))
    cands = np.zeros((2, h * w), bool)
    cands[0, inside[:1516]] = cands[0, outside[:3563]] = True
    cands[1, inside[:1515]] = cands[1, outside[:3559]] = True
    cands = cands.reshape(2, h, w)
    assert select_by_box(cands, [0, 0, 50, 50]) == 0
    assert brute_force_box_choice(cands, [0, 0, 50, 50]) == 1  # exact arithmetic would differ


@st.composite
def candidates_and_box(draw):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    k = draw(st.integers(1, 5))
    bits = draw(st.lists(st.booleans(), min_size=k * h * w, max_size=k * h * w))
    cands = np.array(bits, bool).reshape(k, h, w)
    coord = st.floats(-3, 15, allow_nan=False).map(lambda v: round(v * 4) / 4)  # hits .5 often
    box = [draw(coord), draw(coord), draw(coord), draw(coord)]
    x1, y1, x2, y2 = box_bounds(box, h, w)
    # the official formula is IoU only for a box that overlaps the image with positive area
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        box = [0, 0, w, h]
    return cands, box


@settings(max_examples=300, deadline=None)
@given(candidates_and_box())
def test_box_rule_matches_brute_force_pixel_set_iou(case):
    cands, box = case
    assert select_by_box(cands, box) == brute_force_box_choice(cands, box)
    assert select_by_box(torch.from_numpy(cands), box) == select_by_box(cands.astype(np.uint8), box)


# -- point rule --------------------------------------------------------------------------------------
def test_point_rule_single_positive_point_selects_its_candidate():
    a = rect(10, 10, 0, 4, 0, 4)
    b = rect(10, 10, 5, 9, 5, 9)
    out = select_by_points(np.stack([a, b]), [[6, 7]], [1])
    assert out.dtype == torch.bool and out.shape == (10, 10)
    assert np.array_equal(out.numpy(), b)


def test_point_rule_takes_the_union_of_every_candidate_hit():
    big = rect(10, 10, 0, 8, 0, 8)
    small = rect(10, 10, 6, 10, 6, 10)  # overlaps big, sticks out of it
    out = select_by_points(np.stack([small, big]), [[7, 7]], [1]).numpy()
    assert np.array_equal(out, big | small)


def test_point_rule_smaller_candidates_paint_last():
    big = rect(10, 10, 0, 10, 0, 10)
    hole = rect(10, 10, 3, 6, 3, 6)
    cands = np.stack([hole, big])  # list order does not matter: area order does
    # a negative click in the hole also lies in big, so the order of the clicks matters:
    # negative then positive: big's last click is positive → 1; then the hole paints 0 over it
    assert np.array_equal(select_by_points(cands, [[4, 4], [1, 1]], [0, 1]).numpy(), big & ~hole)
    # positive then negative: big's last click is negative → 0; the hole's only click → 1
    assert np.array_equal(select_by_points(cands, [[1, 1], [4, 4]], [1, 0]).numpy(), np.zeros_like(big))
    # positive in the hole, negative outside it: big takes its last click, 0; the hole paints 1
    assert np.array_equal(select_by_points(cands, [[4, 4], [1, 1]], [1, 0]).numpy(), hole)


def test_point_rule_last_point_in_a_candidate_decides_it():
    big = rect(10, 10, 0, 10, 0, 10)
    cands = big[None]
    assert select_by_points(cands, [[1, 1], [8, 8]], [1, 0]).sum() == 0
    assert np.array_equal(select_by_points(cands, [[8, 8], [1, 1]], [0, 1]).numpy(), big)


def test_point_rule_equal_areas_keep_the_candidate_order():
    left = rect(6, 6, 0, 6, 0, 4)
    right = rect(6, 6, 0, 6, 2, 6)  # same area, overlapping columns 2..3
    pts, labs = [[0, 0], [5, 5]], [1, 0]  # positive in left only, negative in right only
    # stable sort: left then right → right's 0 wins on the overlap
    assert np.array_equal(select_by_points(np.stack([left, right]), pts, labs).numpy(), left & ~right)
    # right then left → left's 1 wins on the overlap
    assert np.array_equal(select_by_points(np.stack([right, left]), pts, labs).numpy(), left)


def test_point_rule_edge_cases():
    a = rect(5, 5, 0, 5, 0, 5)
    assert select_by_points(np.zeros((0, 5, 5), bool), [[1, 1]], [1]).sum() == 0  # no candidates
    assert select_by_points(a[None], [[1, 1]], [0]).sum() == 0  # only a negative point
    assert select_by_points(a[None], [[1, 1]], [-1]).sum() == 0  # padding labels do nothing
    assert select_by_points(a[None], [[1.9, 4.99]], None).sum() == 25  # floored; None = positive
    assert select_by_points(rect(5, 5, 4, 5, 4, 5)[None], [[9, 9]], [1]).sum() == 1  # clipped in


@st.composite
def candidates_and_points(draw):
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    k = draw(st.integers(0, 6))
    cands = np.zeros((k, h, w), bool)
    for i in range(k):  # rectangles overlap and nest often, which is what the rule is about
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        cands[i, y0 : draw(st.integers(y0 + 1, h)), x0 : draw(st.integers(x0 + 1, w))] = True
    n = draw(st.integers(1, 4))
    pts = [[draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))] for _ in range(n)]
    labs = draw(st.lists(st.sampled_from([0, 1, 1, -1]), min_size=n, max_size=n))
    return cands, pts, labs


@settings(max_examples=300, deadline=None)
@given(candidates_and_points())
def test_point_rule_matches_the_literal_official_loop(case):
    cands, pts, labs = case
    expected = literal_point_rule(cands, pts, labs)
    assert np.array_equal(select_by_points(cands, pts, labs).numpy(), expected)


@settings(max_examples=200, deadline=None)
@given(candidates_and_points())
def test_point_rule_with_only_positive_points_is_the_union_of_the_hit_candidates(case):
    cands, pts, _ = case
    union = np.zeros(cands.shape[1:], bool)
    for m in cands:
        if any(m[y, x] for x, y in pts):
            union |= m
    assert np.array_equal(select_by_points(cands, pts, [1] * len(pts)).numpy(), union)


def test_point_rule_batch_equals_one_by_one():
    a, b = rect(6, 6, 0, 3, 0, 3), rect(6, 6, 2, 6, 2, 6)
    cands = np.stack([a, b])
    pts = np.array([[[1, 1], [4, 4]], [[4, 4], [5, 0]]], float)
    labs = np.array([[1, 0], [1, 1]])
    out = select_by_points_batch(cands, pts, labs)
    assert out.shape == (2, 6, 6)
    for n in range(2):
        assert torch.equal(out[n], select_by_points(cands, pts[n], labs[n]))
    assert select_by_points_batch(cands, np.zeros((0, 1, 2)), np.zeros((0, 1))).shape == (0, 6, 6)


# -- the official box adjustment before mask cropping ----------------------------------------------
def test_snap_boxes_moves_near_border_edges_and_near_full_boxes():
    boxes = torch.tensor(
        [
            [100.0, 100.0, 200.0, 200.0],  # untouched
            [19.9, 5.0, 300.0, 300.0],  # x1, y1 within 20 px: snapped to 0
            [20.0, 30.0, 620.0, 460.0],  # exactly 20 px away: not snapped (strict < / >)
            [15.0, 25.0, 630.0, 470.0],  # → [0, 25, 640, 480], IoU 0.948 > 0.9 → the whole input
        ]
    )
    out = snap_boxes(boxes, 480, 640)
    assert out.tolist() == [
        [100, 100, 200, 200],
        [0, 0, 300, 300],
        [20, 30, 620, 460],
        [0, 0, 640, 480],
    ]
    assert boxes[1, 0] == 19.9  # the input is not modified


# -- the runner, with a stand-in for Ultralytics --------------------------------------------------------
class FakeYolo:
    """Returns fixed candidates as Ultralytics' Results would, and records how it was called."""

    def __init__(self, masks: np.ndarray, conf: list[float]) -> None:
        self.model = torch.nn.Identity()
        self.masks, self.conf, self.calls = masks, conf, []

    def predict(self, source, **kwargs):
        self.calls.append((source, kwargs))
        masks = (
            None
            if len(self.masks) == 0
            else SimpleNamespace(data=torch.from_numpy(self.masks.astype(np.uint8)))
        )
        return [SimpleNamespace(masks=masks, boxes=SimpleNamespace(conf=torch.tensor(self.conf)))]


def test_runner_segments_once_in_bgr_with_the_official_settings_and_selects():
    h, w = 12, 16
    a, b = rect(h, w, 0, 6, 0, 8), rect(h, w, 4, 12, 6, 16)
    yolo = FakeYolo(np.stack([a, b]), [0.9, 0.6])
    runner = FastSamRunner(yolo, name="fastsam-s")
    assert runner.takes_mask_prompt is False and runner.model is yolo.model
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = 200  # red in RGB
    runner.set_image(image)
    source, kwargs = yolo.calls[0]
    assert source[0, 0].tolist() == [0, 0, 200] and source.flags.c_contiguous  # BGR
    assert {k: kwargs[k] for k in SEGMENT_ARGS} == {
        "imgsz": 1024,
        "conf": 0.4,
        "iou": 0.9,
        "max_det": 300,
        "retina_masks": True,
    }
    pred = runner.predict(boxes=np.array([[6, 4, 16, 12], [0, 0, 8, 6]], float))
    assert pred.masks.shape == (2, 1, h, w) and pred.masks.dtype == torch.bool
    assert np.array_equal(pred.masks[0, 0].numpy(), b) and np.array_equal(pred.masks[1, 0].numpy(), a)
    assert pred.iou_predictions.dtype == torch.float32
    assert pred.iou_predictions[:, 0].tolist() == pytest.approx([0.6, 0.9])
    pred = runner.predict(points=np.array([[[7, 5]], [[1, 11]]], float), point_labels=np.array([[1], [1]]))
    assert np.array_equal(pred.masks[0, 0].numpy(), a | b) and pred.masks[1, 0].sum() == 0
    assert pred.iou_predictions[:, 0].tolist() == pytest.approx([0.9, 0.0])
    assert len(yolo.calls) == 1  # predict() never re-runs the network
    with pytest.raises(InputError, match="either box prompts or point prompts"):
        runner.predict(boxes=np.zeros((1, 4)), points=np.zeros((1, 1, 2)), point_labels=np.ones((1, 1)))


def test_runner_gives_empty_masks_for_an_image_without_candidates():
    runner = FastSamRunner(FakeYolo(np.zeros((0, 7, 9), bool), []))
    with pytest.raises(RuntimeError, match="set_image"):
        runner.predict(boxes=np.zeros((1, 4)))
    runner.set_image(np.zeros((7, 9, 3), np.uint8))
    for pred in (
        runner.predict(boxes=np.array([[0, 0, 3, 3], [1, 1, 9, 7]], float)),
        runner.predict(points=np.array([[[1, 1]], [[2, 2]]], float), point_labels=np.ones((2, 1))),
    ):
        assert pred.masks.shape == (2, 1, 7, 9) and pred.masks.dtype == torch.bool and not pred.masks.any()
        assert pred.iou_predictions.shape == (2, 1) and not pred.iou_predictions.any()


def test_specs_and_the_one_line_error_without_the_extra(monkeypatch):
    assert (FASTSAM_S.name, FASTSAM_S.needs_weights, FASTSAM_S.label) == ("fastsam-s", True, "FastSAM-s")
    assert (FASTSAM_X.name, FASTSAM_X.needs_weights, FASTSAM_X.label) == ("fastsam-x", True, "FastSAM-x")
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import fails as if not installed
    for var, value in (("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "0")):  # the factory sets them:
        monkeypatch.setenv(var, os.environ.get(var, value))  # restore them after the test
    with pytest.raises(InputError) as err:
        build_model("fastsam-x")
    assert str(err.value) == MISSING_EXTRA
    assert (
        str(err.value)
        == "FastSAM needs the optional extra: pip install 'evalsuite[fastsam]' (Ultralytics, AGPL-3.0)"
    )


# -- integration with the real Ultralytics (optional extra) -------------------------------------------
needs_ultralytics = pytest.mark.skipif(
    not HAVE_ULTRALYTICS,
    reason="ultralytics not installed (optional extra: pip install 'evalsuite[fastsam]')",
)


@pytest.fixture(scope="module")
def offline_ultralytics(tmp_path_factory):
    """Ultralytics offline, never installing packages, its settings file in a temporary folder.

    These are read when Ultralytics is first imported, so they are set before the factory imports it.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLO_OFFLINE", "1")
        mp.setenv("YOLO_AUTOINSTALL", "0")
        mp.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("ultralytics_config")))
        yield


def runner_with_candidates(image: np.ndarray) -> FastSamRunner:
    """fastsam-s with seeded random weights and ``conf=0`` that finds candidates in ``image``.

    Whether random weights give non-empty masks depends on the draw (the mask coefficients of an
    untrained head tend to share one sign), so seeds are tried in order: deterministic, and robust
    to a change of Ultralytics' initialisation.
    """
    for seed in range(8):
        with torch.random.fork_rng():  # seed without changing the RNG state other tests see
            torch.manual_seed(seed)
            runner = build_model("fastsam-s")
        runner.segment_args["conf"] = 0.0
        runner.set_image(image)
        if len(runner.candidates):
            return runner
    pytest.fail("no seed in 0..7 gave random-weight candidates")


def synthetic_image(h: int = 96, w: int = 128) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    image = np.stack([x * 255 // w, y * 255 // h, (x + 2 * y) % 256], axis=-1).astype(np.uint8)
    image[20:60, 30:90] = (230, 40, 40)
    return image


@needs_ultralytics
@pytest.mark.slow
def test_runner_with_ultralytics_yolov8_seg_from_yaml(offline_ultralytics, monkeypatch):
    snapped = []
    real_snap = fastsam.snap_boxes
    monkeypatch.setattr(fastsam, "snap_boxes", lambda b, h, w: snapped.append((h, w)) or real_snap(b, h, w))
    runner = build_model("fastsam-s")  # checkpoint=None: YOLOv8-s-seg from YAML, 1 class, random weights
    assert os.environ["YOLO_OFFLINE"] == "1"
    assert isinstance(runner, FastSamRunner) and runner.checkpoint_sha256 is None
    assert isinstance(runner.model, torch.nn.Module) and len(runner.model.names) == 1
    image = synthetic_image()
    h, w = image.shape[:2]
    runner.set_image(image)  # official settings: random weights give few or no candidates
    assert type(runner.yolo.predictor).__name__ == "FastSamEverythingPredictor"
    assert runner.candidates.dtype == torch.bool and runner.candidates.shape[1:] == (h, w)
    boxes = np.array([[30, 20, 90, 60], [0, 0, w, h]], float)
    points = np.array([[[50, 40], [5, 5]], [[100, 80], [60, 30]]], float)
    labels = np.array([[1, 0], [1, 1]])
    for pred in (runner.predict(boxes=boxes), runner.predict(points=points, point_labels=labels)):
        assert pred.masks.shape == (2, 1, h, w) and pred.masks.dtype == torch.bool
        assert pred.iou_predictions.shape == (2, 1) and pred.iou_predictions.dtype == torch.float32

    runner = runner_with_candidates(image)
    assert snapped[-1] == (768, 1024)  # the official box adjustment ran, in network-input pixels
    cand = runner.candidates
    assert len(cand) > 0 and cand.shape[1:] == (h, w) and cand.any(dim=(1, 2)).all()
    assert runner.scores.shape == (len(cand),)
    ys, xs = torch.nonzero(cand[0], as_tuple=True)
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], float)
    pred = runner.predict(boxes=box)
    assert torch.equal(pred.masks[0, 0], cand[select_by_box(cand, box[0])])
    pt = np.array([[[float(xs[0]), float(ys[0])]]])
    pred = runner.predict(points=pt, point_labels=np.ones((1, 1)))
    assert pred.masks[0, 0, ys[0], xs[0]] and torch.equal(pred.masks[0, 0], select_by_points(cand, pt[0]))


@needs_ultralytics
@pytest.mark.slow
# fastsam-x (68 M parameters) is heavy: CI's 20-minute budget
@pytest.mark.parametrize("name", ["fastsam-s", pytest.param("fastsam-x", marks=pytest.mark.heavy)])
def test_fastsam_runs_on_the_sample_with_random_weights(name, offline_ultralytics, tmp_path, monkeypatch):
    """The smoke run of every built-in network (``--weights random``): no download, a full record."""
    from evalsuite.cli import main

    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))  # no official file anywhere
    argv = ["run", "coco-box", "coco-1click", "--model", name, "--data", "sample", "--limit", "1"]
    assert main([*argv, "--weights", "random", "--out", str(tmp_path), "--no-progress"]) == 0
    for protocol in ("coco-box", "coco-1click"):
        record = json.loads((tmp_path / f"{name}+random0+limit1" / protocol / "record.json").read_text())
        assert record["model"]["weights"] == "random:0" and record["counts"]["images"] == 1
        assert record["counts"]["instances"] > 0  # random weights may find nothing: IoU 0, still scored
        assert 0.0 <= record["metrics"]["mIoU"] <= 100.0


@needs_ultralytics
@pytest.mark.slow
def test_a_pickled_checkpoint_reaches_ultralytics_only_once_trusted(
    offline_ultralytics, tmp_path, monkeypatch
):
    import ultralytics

    from evalsuite.data.jsonio import sha256_file

    ckpt = tmp_path / "my-fastsam-s.pt"
    build_model("fastsam-s").yolo.save(ckpt)  # an Ultralytics pickle whose SHA-256 nobody published
    opened = []
    real_yolo = ultralytics.YOLO
    monkeypatch.setattr(
        ultralytics, "YOLO", lambda path, **kw: opened.append(str(path)) or real_yolo(path, **kw)
    )
    with pytest.raises(InputError, match="--trust-checkpoint"):
        build_model("fastsam-s", checkpoint=str(ckpt))
    assert str(ckpt) not in opened  # refused before Ultralytics could unpickle it
    runner = build_model("fastsam-s", checkpoint=str(ckpt), trust_checkpoint=True)
    assert opened[-1] == str(ckpt) and runner.checkpoint_sha256 == sha256_file(ckpt)
    runner.set_image(synthetic_image())
    assert runner.candidates.shape[1:] == (96, 128)
