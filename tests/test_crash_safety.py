"""Crash safety and fuzzing: a killed run loses nothing and counts nothing twice; any file either loads
or fails with a clear InputError."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from evalsuite.data.detections import load_detections
from evalsuite.data.gt import MaskCache, select_instances
from evalsuite.data.readers import CocoReader, LvisReader
from evalsuite.errors import InputError
from evalsuite.tasks.ap import _check_ground_truth

PROTOCOLS = ["coco-box", "coco-3click", "lvis-1click"]


def _command(out: Path) -> list[str]:
    args = ["run", *PROTOCOLS, "--model", "oracle", "--data", "sample", "--out", str(out), "--workers", "0"]
    return [sys.executable, "-m", "evalsuite", *args]


def _finished_lines(out: Path) -> int:
    folder = out / "oracle" / "coco-box"
    return sum(len(f.read_text().splitlines()) for f in folder.glob("images*.jsonl") if f.is_file())


def _kill_when(out: Path, lines: int, timeout: float = 120.0) -> bool:
    """Start a run and SIGKILL it once ``lines`` images are logged; False if it finished first."""
    proc = subprocess.Popen(_command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if out.exists() and _finished_lines(out) >= lines:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _snapshot(out: Path) -> dict:
    snap = {}
    for p in PROTOCOLS:
        folder = out / "oracle" / p
        record = json.loads((folder / "record.json").read_text())
        record.pop("execution")
        record.pop("timing", None)
        snap[p] = (record, (folder / "instances.jsonl").read_text(), (folder / "images.jsonl").read_text())
    return snap


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_equals_an_uninterrupted_run(tmp_path):
    ref = tmp_path / "ref"
    subprocess.run(_command(ref), check=True, capture_output=True)
    expected = _snapshot(ref)
    n_images = expected["coco-box"][0]["counts"]["images"]
    killed = 0
    for point in (1, 7, n_images - 2):
        out = tmp_path / f"killed_at_{point}"
        killed += _kill_when(out, point)
        done = subprocess.run(_command(out), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert _snapshot(out) == expected, f"kill at {point} images changed the result"
    assert killed >= 2, "the runs finished before they could be killed; the test proved nothing"


# --- fuzzing -----------------------------------------------------------------------------------

_numbers = st.one_of(
    st.integers(-5, 60),
    st.floats(-5, 60),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    # beyond what a float holds, sums that overflow, coordinates far outside any image
    st.sampled_from([10**400, -(10**400), 1.7e308, -1.7e308, 3e8, 2**63, -(2**63) - 1]),
)
#: replaced in the JSON text by arrays nested this deep (Python's recursion limit is about 1000)
_DEEP = {"__DEEP_50__": 50, "__DEEP_900__": 900, "__DEEP_100000__": 100000}
_junk = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.booleans(),
    _numbers,
    st.lists(_numbers, max_size=3),
    st.sampled_from(sorted(_DEEP)),
)


def _dumps(data) -> str:
    """JSON text of a drawn file, with the deep-nesting markers expanded."""
    text = json.dumps(data)
    for marker, depth in _DEEP.items():
        text = text.replace(f'"{marker}"', "[" * depth + "]" * depth)
    return text


@st.composite
def _segmentation(draw, h: int, w: int):
    kind = draw(st.sampled_from(["poly", "rle_list", "rle_str", "rle_compressed", "junk"]))
    if kind == "poly":
        return draw(st.lists(st.lists(_numbers, min_size=0, max_size=10), min_size=0, max_size=3))
    if kind == "rle_list":
        counts = draw(st.lists(st.integers(-2, h * w), max_size=6))
        return {"counts": counts, "size": draw(st.sampled_from([[h, w], [w, h], [h]]))}
    if kind == "rle_str":
        return {"counts": draw(st.text(alphabet="0123456789:;<=>?@ABCabc", max_size=8)), "size": [h, w]}
    if kind == "rle_compressed":  # a real encoding, of the image's size or not, maybe cut or altered
        mh, mw = draw(st.sampled_from([(h, w), (h, max(1, w - 1)), (h + 1, w)]))
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        mask = np.asfortranarray((rng.random((mh, mw)) < 0.5).astype(np.uint8))
        counts = mask_utils.encode(mask)["counts"].decode()
        cut = draw(st.integers(0, len(counts)))
        tail = draw(st.text(alphabet="0O_`op~!", max_size=2))
        return {"counts": counts[:cut] + tail, "size": [h, w]}
    return draw(_junk)


@st.composite
def _annotation_file(draw, lvis: bool):
    images, anns = [], []
    sign = draw(st.sampled_from([1, -1]))  # converted datasets use negative ids
    for i in range(draw(st.integers(1, 3))):
        h, w = draw(st.integers(1, 30)), draw(st.integers(1, 30))
        img = {
            "id": sign * (i + 1),
            "height": h,
            "width": w,
            "file_name": f"{i}.jpg",
            "coco_url": f"http://images.cocodataset.org/val2017/{i}.jpg",
        }
        if lvis:
            img.update(neg_category_ids=[], not_exhaustive_category_ids=[])
        images.append(img)
        for _ in range(draw(st.integers(0, 3))):
            ann = {
                "id": sign * (len(anns) + 1),
                "image_id": sign * (i + 1),
                "category_id": 1,
                "area": draw(st.sampled_from([1.0, 0, -1.0, 5000.0])),
                "bbox": [0, 0, 1, 1],
                "segmentation": draw(_segmentation(h, w)),
            }
            if not lvis:
                ann["iscrowd"] = draw(st.sampled_from([0, 1]))
            anns.append(ann)
    data = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x", "frequency": "f"}]}
    # a few random corruptions: drop or replace a field anywhere
    for _ in range(draw(st.integers(0, 2))):
        section = draw(st.sampled_from(["images", "annotations", "categories"]))
        if not data[section]:
            continue
        entry = data[section][draw(st.integers(0, len(data[section]) - 1))]
        key = draw(st.sampled_from(sorted(entry)))
        if draw(st.booleans()):
            del entry[key]
        else:
            entry[key] = draw(_junk)
    return data


def _load_all(reader_cls, data) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ann.json"
        path.write_text(_dumps(data))
        try:
            reader = reader_cls(path, Path(tmp))
        except InputError:
            return  # a clear, specific error is the other acceptable outcome
        for sample in reader:
            for skip_bad in (False, True):
                try:
                    gt = select_instances(MaskCache(sample), include_crowd=True, skip_bad=skip_bad)
                except InputError:
                    assert not skip_bad
                    continue
                # what the mIoU protocols log per instance must be JSON (no NaN / infinity)
                json.dumps([(i.area, list(i.bbox)) for i in gt.instances], allow_nan=False)
        # what an AP protocol checks before any work (the official evaluators check nothing)
        for backend in ("official", "faster"):
            with contextlib.suppress(InputError):
                _check_ground_truth(reader, reader.image_ids(), reader.family, backend)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_annotation_file(lvis=False))
def test_fuzzed_coco_files_load_or_fail_clearly(data):
    _load_all(CocoReader, data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_annotation_file(lvis=True))
def test_fuzzed_lvis_files_load_or_fail_clearly(data):
    _load_all(LvisReader, data)


_detection = st.fixed_dictionaries(
    {},
    optional={
        "image_id": st.one_of(st.integers(-1, 3), _junk),
        "category_id": st.one_of(st.integers(0, 2), _junk),
        "bbox": st.one_of(st.lists(_numbers, min_size=0, max_size=5), _junk),
        "score": st.one_of(_numbers, _junk),
    },
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.lists(st.one_of(_detection, _junk), max_size=6), _junk))
def test_fuzzed_detection_files_load_or_fail_clearly(dets):
    sizes = {-1: (10, 20), 1: (30, 30), 2: (5, 60), 3: (1, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dets.json"
        text = _dumps(dets)
        path.write_text(text)
        try:
            parsed = json.loads(text)
        except RecursionError:
            parsed = None  # nested too deeply to read: an InputError naming the file
        for skip_bad in (False, True):
            try:
                loaded = load_detections(path, set(sizes), {1, 2}, skip_bad=skip_bad, image_sizes=sizes)
            except InputError:
                assert not skip_bad or not isinstance(parsed, list)
                continue
            assert isinstance(parsed, list)
            kept = sum(len(v) for v in loaded.by_image.values())
            assert kept + sum(loaded.skipped.values()) == len(parsed)
            for image_id, d in loaded.by_image.items():  # what is kept is a finite prompt inside the image
                h, w = sizes[image_id]
                xyxy = np.concatenate(
                    [d.boxes_xywh[:, :2], d.boxes_xywh[:, :2] + d.boxes_xywh[:, 2:]], axis=1
                )
                assert np.isfinite(xyxy).all() and np.isfinite(d.scores).all()
                assert (xyxy[:, [0, 2]] >= -w).all() and (xyxy[:, [0, 2]] <= 2 * w).all()
                assert (xyxy[:, [1, 3]] >= -h).all() and (xyxy[:, [1, 3]] <= 2 * h).all()


_row = st.one_of(
    _junk,
    st.fixed_dictionaries(
        {},
        optional={
            "image_id": st.one_of(st.integers(-2, 2), _junk),
            "records": st.one_of(st.integers(-1, 2), _junk),
            "skipped": st.one_of(
                st.dictionaries(st.text(max_size=3), st.one_of(st.integers(0, 2), _junk)), _junk
            ),
            "ann_id": st.one_of(st.integers(0, 2), _junk),
            "iou": _numbers,
            "score": st.one_of(_numbers, st.none()),
            "segmentation": st.one_of(
                _junk,
                st.fixed_dictionaries(
                    {
                        "size": st.sampled_from([[2, 3], [3, 2], [0, 1], [2]]),
                        "counts": st.text(alphabet="0123O_`op~!P5", max_size=6),
                    }
                ),
            ),
        },
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["config.json", "images.jsonl", "instances.jsonl"]),
    st.lists(st.one_of(_row, st.text(max_size=5)), max_size=4),
)
def test_fuzzed_run_folder_files_load_or_fail_clearly(name, rows):
    """A hand-damaged run folder: resuming from it loads, or fails with one clear InputError."""
    from evalsuite.engine.runfolder import RunFolder
    from evalsuite.metrics.miou import InstanceRecord

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        RunFolder(folder, {"a": 1}, "instances.jsonl").release()
        lines = [_dumps(r) if not isinstance(r, str) else r for r in rows]
        (folder / name).write_text("\n".join(lines) + "\n")
        try:
            run = RunFolder(folder, {"a": 1}, "instances.jsonl")
            run.consolidate()
            _, logged = run.load_finished()
            for row in logged:
                InstanceRecord.from_json(row)
        except InputError:
            pass


def test_kill_helper_sees_progress(tmp_path):
    assert _finished_lines(tmp_path) == 0 and os.path.isdir(tmp_path)
