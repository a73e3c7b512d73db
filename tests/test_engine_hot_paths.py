"""The engine's hot paths give exactly what the straightforward torch computations gave: IoU counted in
numpy, box masks by slices, selection as views, C-order ground truth in one stack, records as dicts,
decoding in a thread or in processes, logs written in batches."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_utils

from evalsuite.data.gt import MaskCache, select_instances
from evalsuite.data.locate import locate
from evalsuite.data.masks import box_bounds, box_masks, decode_segmentation
from evalsuite.data.types import Instance, Sample
from evalsuite.engine import runfolder
from evalsuite.engine.loader import iter_images
from evalsuite.engine.runfolder import RunFolder
from evalsuite.metrics.iou import box_iou_of_masks, iou_per_output, iou_with_truth, mask_iou
from evalsuite.metrics.miou import InstanceRecord
from evalsuite.metrics.noc import ClickRecord
from evalsuite.models.base import Prediction

FAST = settings(max_examples=80, deadline=None)


def torch_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The engine's IoU before numpy: torch int64 sums, float64 division."""
    inter = (pred & gt).flatten(-2).sum(-1, dtype=torch.int64)
    union = (pred | gt).flatten(-2).sum(-1, dtype=torch.int64)
    return torch.where(
        union > 0, inter.double() / union.clamp(min=1).double(), torch.zeros_like(inter).double()
    )


def torch_box_masks(boxes, h: int, w: int) -> torch.Tensor:
    """box_masks as it was: float64 comparisons of every pixel centre."""
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float64)).reshape(-1, 4)
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    inx = (xs[None] >= b[:, 0:1]) & (xs[None] < b[:, 2:3])
    iny = (ys[None] >= b[:, 1:2]) & (ys[None] < b[:, 3:4])
    return iny[:, :, None] & inx[:, None, :]


@st.composite
def mask_stacks(draw, lead: int = 1):
    shape = (
        *[draw(st.integers(0, 3)) for _ in range(lead)],
        draw(st.integers(1, 9)),
        draw(st.integers(1, 9)),
    )
    return draw(hnp.arrays(bool, shape)), draw(hnp.arrays(bool, shape))


@FAST
@given(mask_stacks(lead=2))
def test_numpy_iou_is_bit_identical_to_the_torch_sums(pair):
    a, b = pair
    got = mask_iou(torch.from_numpy(a), torch.from_numpy(b))
    want = torch_iou(torch.from_numpy(a), torch.from_numpy(b))
    assert got.dtype == torch.float64 and torch.equal(got, want)
    if a.ndim == 4 and a.shape[0]:
        flat_a, flat_b = a[0], b[0]
        assert iou_with_truth(torch.from_numpy(flat_a), flat_b) == want[0].tolist()


@FAST
@given(mask_stacks(lead=2), st.data())
def test_oracle_and_box_choices_are_the_rasterised_ones(pair, data):
    masks, _ = pair
    n, _, h, w = masks.shape
    gt = data.draw(hnp.arrays(bool, (n, h, w)))
    t = torch.from_numpy(masks)
    want = torch_iou(t, torch.from_numpy(gt)[:, None].expand_as(t))
    assert torch.equal(iou_per_output(t, gt), want)
    coord = st.one_of(
        st.floats(-12, 20, allow_nan=False), st.sampled_from([float("nan"), float("inf"), -1e300])
    )
    boxes = np.array(data.draw(st.lists(st.lists(coord, min_size=4, max_size=4), min_size=n, max_size=n)))
    boxes = boxes.reshape(n, 4)
    rect = torch_box_masks(boxes, h, w)
    assert torch.equal(box_masks(boxes, h, w), rect)
    assert torch.equal(box_iou_of_masks(t, boxes), torch_iou(t, rect[:, None].expand_as(t)))


def test_box_bounds_of_pixel_edge_boxes_are_the_box():
    assert box_bounds(np.array([[2, 1, 5, 4]]), 10, 10) == [(1, 4, 2, 5)]
    assert box_bounds(np.array([[2.5, 1.5, 2.5, 9.9]]), 10, 10) == [(1, 10, 2, 2)]  # no column inside
    assert box_bounds(np.array([[-5, -5, 50, 50]]), 3, 4) == [(0, 3, 0, 4)]


def test_select_is_a_view_for_one_output_and_a_numpy_gather_otherwise():
    rng = np.random.default_rng(0)
    one = torch.from_numpy(rng.random((4, 1, 6, 7)) < 0.5)
    pred = Prediction(masks=one, iou_predictions=torch.ones(4, 1))
    chosen = pred.select(torch.zeros(4, dtype=torch.long))
    assert chosen.data_ptr() == one.data_ptr() and torch.equal(chosen, one[:, 0])
    three = torch.from_numpy(rng.random((4, 3, 6, 7)) < 0.5)
    index = torch.tensor([2, 0, 1, 2])
    pred = Prediction(masks=three, iou_predictions=torch.ones(4, 3))
    assert torch.equal(pred.select(index), three[torch.arange(4), index])


def _sample(segs: list, h: int = 20, w: int = 30) -> Sample:
    insts = [Instance(k + 1, 1, 10.0, (0, 0, 1, 1), s) for k, s in enumerate(segs)]
    return Sample(image_id=1, path=Path("x.jpg"), height=h, width=w, instances=tuple(insts))


def test_ground_truth_is_c_order_in_one_stack_and_selected_without_a_copy():
    box = [[2, 2, 12, 2, 12, 9, 2, 9]]
    other = [[20, 1, 28, 1, 28, 15, 20, 15]]
    bad = [[1, 2, 3]]  # odd number of coordinates
    sample = _sample([box, other, bad, box])
    decoded = MaskCache(sample).decode_stacked()
    assert decoded.stack.flags["C_CONTIGUOUS"] and decoded.stack.shape == (3, 20, 30)
    assert sorted(decoded.rows) == [1, 2, 4] and list(decoded.errors) == [3]
    coco = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(box, 20, 30))).astype(bool)
    assert np.array_equal(decode_segmentation(box, 20, 30), coco)
    assert decode_segmentation(box, 20, 30).flags["C_CONTIGUOUS"]
    cache = MaskCache(sample, decoded)
    assert np.array_equal(cache.get(sample.instances[0]), coco)
    gt = select_instances(cache, include_crowd=False, skip_bad=True)
    assert gt.skipped == Counter({"bad_annotation": 1})
    # the kept instances are rows 0, 1, 2 of the stack (the bad one has no row): a view
    assert np.shares_memory(gt.masks, decoded.stack)
    assert np.array_equal(gt.masks, np.stack([coco, cache.get(sample.instances[1]), coco]))
    plain = select_instances(MaskCache(sample), include_crowd=False, skip_bad=True)
    assert np.array_equal(plain.masks, gt.masks)


def _as_row(rec) -> dict:
    """asdict, with the metrics' extra fields in place of ``extra`` (after the record's measured field)."""
    d = asdict(rec)
    extra = d.pop("extra")
    out = {}
    for k, v in d.items():
        out[k] = v
        if k in ("iou", "ious"):
            out.update(extra)
    return out


def test_records_are_written_as_asdict_would():
    rec = InstanceRecord(1, 2, 3, 4.5, "S", 0.25, {"box": [1.0, 2.0, 3.0, 4.0]}, 1, None)
    assert rec.to_json() == _as_row(rec) and list(rec.to_json()) == list(_as_row(rec))
    click = ClickRecord(1, 2, 3, 4.5, "S", {"points": [[1.0, 2.0]], "labels": [1]}, [0.5], 0, 0.9)
    assert click.to_json() == _as_row(click) and list(click.to_json()) == list(_as_row(click))
    rec = InstanceRecord(1, 2, 3, 4.5, "S", 0.25, {"box": [1.0, 2.0, 3.0, 4.0]}, 1, None, {"biou": 0.5})
    assert list(rec.to_json()) == list(_as_row(rec)) and rec.to_json()["biou"] == 0.5


@pytest.mark.parametrize("workers", [-1, 1])
def test_decoding_in_a_thread_or_a_process_gives_the_in_process_items(workers):
    reader = locate("coco", "sample", None, None).open()
    ids = reader.image_ids()[:4]
    here = list(iter_images(reader, ids, workers=0))
    there = list(iter_images(reader, ids, workers=workers))
    assert [s.image_id for s, _, _ in there] == ids
    for (s1, im1, c1), (_, im2, c2) in zip(here, there, strict=True):
        assert isinstance(im2, np.ndarray) and np.array_equal(im1, im2)
        for inst in s1.instances:
            assert np.array_equal(c1.get(inst), c2.get(inst))
            assert c2.get(inst).flags["C_CONTIGUOUS"]


def test_logs_are_written_in_growing_batches_and_a_kill_loses_at_most_the_batch(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path, {"a": 1}, "instances.jsonl")
    on_disk = []
    for image_id in range(1, 12):
        folder.append_image({"image_id": image_id, "records": 1, "skipped": {}}, [{"image_id": image_id}])
        on_disk.append(len((tmp_path / "images.rank0.jsonl").read_text().splitlines()))
    assert on_disk == [1, 1, 3, 3, 3, 3, 7, 7, 7, 7, 7]  # batches of 1, 2, 4, then 8 pending
    folder.release()  # a SIGKILL now: images 8-11 were never written
    again = RunFolder(tmp_path, {"a": 1}, "instances.jsonl")
    again.consolidate()
    done, rows = again.load_finished()
    assert sorted(done) == list(range(1, 8)) and [r["image_id"] for r in rows] == list(range(1, 8))
    # a batch is also written once it holds a second's work, and by flush()
    monkeypatch.setattr(runfolder, "MAX_BATCH_SECONDS", 0.0)
    again.append_image({"image_id": 8, "records": 0, "skipped": {}}, [])
    assert len((tmp_path / "images.rank0.jsonl").read_text().splitlines()) == 1
    monkeypatch.setattr(runfolder, "MAX_BATCH_SECONDS", 1e9)
    again.append_image({"image_id": 9, "records": 0, "skipped": {}}, [])
    again.flush()
    assert json.loads((tmp_path / "images.rank0.jsonl").read_text().splitlines()[-1])["image_id"] == 9
    again.release()


def test_a_run_that_fails_stops_its_decode_thread(monkeypatch):
    import threading

    from evalsuite.engine import loader

    monkeypatch.setattr(loader.os, "cpu_count", lambda: 2)  # the plan of a 2-core machine: a decode thread
    assert loader.decode_plan() == loader.DecodePlan(0, thread=True)
    assert loader.decode_plan(cores=16) == loader.DecodePlan(8) and loader.decode_plan(
        0
    ) == loader.DecodePlan(0)

    from evalsuite.engine import RunConfig, run
    from evalsuite.models.wrap import CallableRunner

    calls = {"n": 0}

    def segment(image, boxes=None, points=None, point_labels=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the model failed")
        return np.zeros((len(boxes), *image.shape[:2]), dtype=bool)

    runner = CallableRunner(segment, name="fails")
    cfg = RunConfig(
        ["coco-box"], runner, data="sample", out=None, progress=False, workers=None, model_version="1"
    )  # a version: no probe calls to count
    with pytest.raises(RuntimeError, match="the model failed"):
        run(cfg)
    for thread in threading.enumerate():
        if thread.name == "evalsuite-decode":
            thread.join(timeout=5)
    assert not [t for t in threading.enumerate() if t.name == "evalsuite-decode" and t.is_alive()]
