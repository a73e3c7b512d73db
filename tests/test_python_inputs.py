"""Inputs from Python are checked like files: every bad argument or model output that evaluate() and
load() can meet is one ``InputError`` line, never a raw TypeError / ValueError / KeyError (issue 19)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalsuite
from evalsuite.errors import InputError
from evalsuite.report.render import to_csv

# -- bad callables, generated ---------------------------------------------------------------------------
_DTYPES = [np.bool_, np.uint8, np.int64, np.float32, np.float64]


@st.composite
def bad_outputs(draw):
    """What a user's segment() might hand back: wrong types, shapes, dtypes, values, score arrays."""
    kind = draw(
        st.sampled_from(
            ["none", "string", "scalar", "list", "wrong_n", "wrong_hw", "ndim5", "dtype", "scores", "dict"]
        )
    )
    dtype = draw(st.sampled_from(_DTYPES))
    value = draw(st.sampled_from([0.5, 2.0, -1.0, 255.0, float("nan"), float("inf")]))
    extra = draw(st.integers(1, 3))
    version = draw(st.sampled_from([None, "v1"]))  # with a version there is no probe: the run meets it

    def segment(image, boxes=None, points=None, point_labels=None):
        n = len(boxes) if boxes is not None else len(points)
        h, w = image.shape[:2]
        if kind == "none":
            return None
        if kind == "string":
            return "mask"
        if kind == "scalar":
            return value
        if kind == "list":
            return [[True]] * n
        if kind == "wrong_n":
            return np.ones((n + extra, h, w), dtype=bool)
        if kind == "wrong_hw":
            return np.ones((n, h + extra, w), dtype=bool)
        if kind == "ndim5":
            return np.ones((n, 1, 1, h, w), dtype=bool)
        if kind == "dtype":
            return np.full((n, h, w), value, dtype=np.float64).astype(dtype, casting="unsafe")
        if kind == "dict":
            return {"masks": np.ones((n, h, w), dtype=bool)}
        masks = np.ones((n, extra, h, w), dtype=bool)
        return masks, np.full((n, extra + (value > 1)), value)  # scores of another count, or NaN

    return kind, dtype, value, version, segment


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_outputs())
def test_generated_bad_callables_are_one_line_input_errors_or_run(case):
    kind, _dtype, _value, version, segment = case
    try:
        res = evalsuite.evaluate(
            segment, "coco-box", data="sample", limit=1, name="bad", version=version, progress=False
        )
    except InputError as e:
        assert "\n" not in e.message and "model 'bad'" in e.message
        return
    # what runs must be a legitimate output: 0/1 integer or boolean masks with finite-or-null scores
    assert kind in ("dtype", "scores"), kind
    assert res.records[0].counts.instances > 0


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"protocols": 5}, "protocols must be a protocol name"),
        ({"protocols": []}, "protocols must be a protocol name"),
        ({"limit": "3"}, "limit='3' has the wrong type"),
        ({"seed": 1.5}, "seed=1.5 has the wrong type"),
        ({"options": ["clicks", 3]}, "options="),
        ({"data": None}, "data=None"),
        ({"name": "../evil"}, "'../evil'"),
        ({"name": "a/b"}, "'a/b'"),
        ({"limit": 0}, "--limit must be at least 1"),
        ({"precision": "fp8"}, "--precision must be one of"),
        ({"options": {"clicks": "three"}}, "clicks"),
        ({"version": ""}, "version= must be a non-empty string"),
        ({"threshold": "0.5"}, "threshold must be a number"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_arguments_are_one_line_input_errors(kwargs, words):
    def fill(image, boxes=None, points=None, point_labels=None):
        return np.zeros((len(boxes), *image.shape[:2]), dtype=bool)

    args = {"protocols": "coco-box", "data": "sample", "limit": 1, "progress": False, **kwargs}
    model = fill if "threshold" not in kwargs else (lambda image, boxes=None, **_: fill(image, boxes) * 1.0)
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        evalsuite.evaluate(model, **{"name": "fill", **args})


def test_a_lambda_must_be_named():
    with pytest.raises(InputError, match=r"'<lambda>'.*letters, digits"):
        evalsuite.evaluate(lambda image, boxes=None: None, "coco-box", data="sample", limit=1, progress=False)


def test_load_of_bad_paths_and_selections_is_one_line(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        evalsuite.load(tmp_path / "nowhere")
    bad = tmp_path / "r" / "record.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"schema_version": 3, "run_id": "x", "protocol": 5}))
    with pytest.raises(InputError, match="not a run record of schema 3"):
        evalsuite.load(tmp_path)


# -- files: lock links, record mode, CSV formulas, COCO for LVIS -------------------------------------------
def test_the_run_lock_never_follows_a_symbolic_link(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    folder = tmp_path / "out" / "box-fill+limit1" / "coco-box"
    folder.mkdir(parents=True)
    (folder / "run.lock").symlink_to(target)
    with pytest.raises(InputError, match="is a symbolic link"):
        evalsuite.evaluate(
            "box-fill", "coco-box", data="sample", limit=1, out=tmp_path / "out", progress=False
        )
    assert target.read_text() == "keep me"


def test_records_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        evalsuite.evaluate("box-fill", "coco-box", data="sample", limit=1, out=tmp_path, progress=False)
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "box-fill+limit1" / "coco-box" / "record.json").stat().st_mode)
    assert mode == 0o644


def test_csv_cells_that_a_spreadsheet_would_run_are_defused():
    import pandas as pd

    text = to_csv(
        pd.DataFrame({"name": ["=HYPERLINK(1)", "+1", "-x", "@SUM", "ok"], "v": [-1.5, 1, 2, 3, 4]})
    )
    lines = text.splitlines()[1:]
    assert [line.split(",")[0] for line in lines] == ["'=HYPERLINK(1)", "'+1", "'-x", "'@SUM", "ok"]
    assert lines[0].endswith(",-1.5")  # numbers are numbers


def test_a_coco_file_for_an_lvis_protocol_is_refused(tmp_path):
    ann = Path(evalsuite.__file__).parent / "data" / "sample_data" / "annotations" / "instances_val2017.json"
    with pytest.raises(InputError, match="not an LVIS annotation file"):
        evalsuite.evaluate("box-fill", "lvis-box", data="sample", ann=ann, limit=1, progress=False)
    lvis = ann.with_name("lvis_v1_val.json")
    with pytest.raises(InputError, match="an LVIS annotation file, but a COCO protocol"):
        evalsuite.evaluate("box-fill", "coco-box", data="sample", ann=lvis, limit=1, progress=False)
