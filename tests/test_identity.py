"""One run identity, one comparability rule, no silent Δ (issue 19).

Each numbered case of the issue is a test here: every one of them gave a silent wrong result before
:mod:`evalsuite.identity` existed (at 5b6561d). The runs are the weightless baselines on a few sample
images, so the whole module takes seconds.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from records_fixtures import synthetic_record

import evalsuite
from evalsuite.cli import main
from evalsuite.data.catalog import DEFAULT_FOR_FAMILY
from evalsuite.engine import RunConfig, run
from evalsuite.errors import InputError
from evalsuite.identity import paper_comparability, select_cells
from evalsuite.models.base import Prediction
from evalsuite.models.baselines import BoxFillRunner
from evalsuite.models.wrap import CallableRunner
from evalsuite.paper import quoted_values
from evalsuite.record import find_records, read_record
from evalsuite.report.table_build import build_tables

SAMPLE_ANN = (
    Path(evalsuite.__file__).parent / "data" / "sample_data" / "annotations" / "instances_val2017.json"
)


def _fill(image, boxes=None, points=None, point_labels=None):
    """A box-filling callable (the tests' stand-in for a user's model)."""
    masks = np.zeros((len(boxes), *image.shape[:2]), dtype=bool)
    for m, (x0, y0, x1, y1) in zip(masks, np.asarray(boxes).round().astype(int), strict=True):
        m[y0:y1, x0:x1] = True
    return masks


def _empty(image, boxes=None, points=None, point_labels=None):
    return np.zeros((len(boxes), *image.shape[:2]), dtype=bool)


def _one_image_file(tmp_path: Path) -> Path:
    data = json.loads(SAMPLE_ANN.read_text())
    keep = data["images"][0]["id"]
    data["images"] = [i for i in data["images"] if i["id"] == keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] == keep]
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(data))
    return path


def _official_record(tmp_path: Path, **dataset) -> evalsuite.RunRecord:
    """A record of efficientsam-s with official weights on COCO box (a paper value exists for it)."""
    path = synthetic_record(tmp_path, "efficientsam-s", "coco-box", {"mIoU": 70.0})
    data = json.loads(path.read_text())
    data["model"]["weights"] = "official"
    data["dataset"].update(dataset)
    path.write_text(json.dumps(data))
    return read_record(path)


# -- 1. a custom annotation file is never called coco-val2017, never gets a paper Δ ------------------------
def test_a_custom_annotation_file_is_named_by_its_content_and_gets_no_paper_value(tmp_path):
    ann = _one_image_file(tmp_path)
    root = ann.parent
    (root / "val2017").symlink_to(SAMPLE_ANN.parent.parent / "val2017")
    [out] = run(RunConfig(["coco-box"], "box-fill", data_root=root, ann=ann, out=None, progress=False))
    rec = out.record
    assert rec.dataset.name.startswith("coco-file-") and rec.dataset.official is False
    assert rec.dataset.name != DEFAULT_FOR_FAMILY["coco"].name
    # the same rule for any record that claims the official name with another file
    forged = _official_record(tmp_path / "f", official=False)
    [qv] = [q for q in quoted_values("efficientsam-s", "coco-box", "mIoU") if not q.options]
    fair = paper_comparability(forged, qv)
    assert not fair.ok and "custom annotation file" in fair.reason


def test_skipped_images_and_limits_withhold_the_paper_value_and_say_why(tmp_path):
    [qv] = [q for q in quoted_values("efficientsam-s", "coco-box", "mIoU") if not q.options]
    assert paper_comparability(_official_record(tmp_path / "a", official=True), qv).ok
    limited = _official_record(tmp_path / "b", official=True, limit=2)
    assert "--limit 2" in paper_comparability(limited, qv).reason
    path = synthetic_record(tmp_path / "c", "efficientsam-s", "coco-box", {"mIoU": 70.0})
    data = json.loads(path.read_text())
    data["model"]["weights"] = "official"
    data["counts"] = {"images": 26, "skipped": {"bad_image": 23, "crowd": 3}}
    path.write_text(json.dumps(data))
    reason = paper_comparability(read_record(path), qv).reason
    assert "23 bad_image skipped" in reason and "crowd" not in reason  # crowds are the protocol's rule


# -- 2. a Python callable cannot borrow a registered model's name ----------------------------------------
def test_a_callable_named_like_a_registered_model_is_refused():
    with pytest.raises(InputError, match="name of a registered model"):
        evalsuite.evaluate(_fill, "coco-box", data="sample", limit=1, name="efficientsam-s", progress=False)


def test_a_callable_is_recorded_with_its_fingerprint():
    res = evalsuite.evaluate(_fill, "coco-box", data="sample", limit=1, name="my-fill", progress=False)
    assert res.records[0].model.fingerprint.startswith("probe:")
    given = evalsuite.evaluate(
        _fill, "coco-box", data="sample", limit=1, name="my-fill", version="v2", progress=False
    )
    assert given.records[0].model.fingerprint == "version:v2"
    assert "a model passed from Python" in given.summary["note"].iloc[0]


# -- 3. resuming refuses another model under the same name -----------------------------------------------
def test_resume_refuses_another_callable_under_the_same_name(tmp_path):
    evalsuite.evaluate(_fill, "coco-box", data="sample", limit=2, name="mine", out=tmp_path, progress=False)
    with pytest.raises(InputError, match=r"another identity .*model fingerprint"):
        evalsuite.evaluate(
            _empty, "coco-box", data="sample", limit=2, name="mine", out=tmp_path, progress=False
        )
    # an interrupted run (log without a record) is refused the same way: the folder's settings decide
    folder = next(tmp_path.glob("mine*/coco-box"))
    (folder / "record.json").unlink()
    with pytest.raises(InputError, match="model fingerprint"):
        evalsuite.evaluate(
            _empty, "coco-box", data="sample", limit=2, name="mine", out=tmp_path, progress=False
        )


# -- 4. one name, two models ------------------------------------------------------------------------------
def test_one_name_for_two_models_is_refused_at_run_time(tmp_path):
    common = {"data": "sample", "out": tmp_path, "progress": False, "limit": 2, "name": "mix"}
    run(RunConfig(["coco-box"], "box-fill", **common))
    with pytest.raises(
        InputError, match=r"already holds a run of another model .*model: box-fill then, oracle now"
    ):
        run(RunConfig(["coco-1click"], "oracle", **common))


def test_a_report_leaves_out_a_name_used_by_two_models_and_says_why(tmp_path):
    synthetic_record(tmp_path, "box-fill", "coco-box", {"mIoU": 60.1}, name="mix", folder="a")
    synthetic_record(tmp_path, "oracle", "coco-1click", {"mIoU": 100.0}, name="mix", folder="b")
    synthetic_record(tmp_path, "oracle", "coco-box", {"mIoU": 100.0})
    [table] = build_tables(find_records([tmp_path]), "4")
    assert [r.name for r in table.rows] == ["oracle"]
    assert len(table.excluded) == 2 and all("holds runs of different models" in e for e in table.excluded)


# -- 5. load() applies the report's rule -------------------------------------------------------------------
def test_load_leaves_out_disagreeing_records_instead_of_blending_them(tmp_path):
    synthetic_record(tmp_path, "box-fill", "coco-box", {"mIoU": 60.4}, name="x", folder="a")
    b = synthetic_record(tmp_path, "box-fill", "coco-box", {"mIoU": 100.0}, name="x", folder="b")
    data = json.loads(b.read_text())
    data["run_id"] += "-other"
    b.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="disagree"):
        res = evalsuite.load(tmp_path)
    assert res.records == [] and len(res.excluded) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.name for r in evalsuite.load(tmp_path / "a").records] == ["x"]


# -- 6. masks that are not boolean ---------------------------------------------------------------------------
def test_masks_that_are_not_boolean_are_refused_or_thresholded():
    def logits(image, boxes=None, points=None, point_labels=None):
        return np.where(_fill(image, boxes), 4.0, -4.0).astype(np.float32)

    with pytest.raises(
        InputError, match=r"model 'logits' returned masks of dtype float32 with values in \[-4, 4\]"
    ):
        evalsuite.evaluate(logits, "coco-box", data="sample", limit=1, progress=False)
    thresholded = evalsuite.evaluate(
        logits, "coco-box", data="sample", limit=1, threshold=0.0, progress=False
    )
    plain = evalsuite.evaluate(_fill, "coco-box", data="sample", limit=1, name="plain", progress=False)
    assert thresholded.records[0].metrics["mIoU"] == plain.records[0].metrics["mIoU"]

    class Probabilities(BoxFillRunner):
        """A Runner of the user's that hands back probabilities as its masks."""

        def predict(self, *args, **kwargs):
            pred = super().predict(*args, **kwargs)
            return Prediction(masks=pred.masks.float() * 0.9, iou_predictions=pred.iou_predictions)

    runner = Probabilities()
    runner.name = "probs"
    with pytest.raises(
        InputError, match=r"a runner's predict\(\) returned masks of dtype float32 with values in \[0, 0\.9\]"
    ):
        evalsuite.evaluate(runner, "coco-box", data="sample", limit=1, version="1", progress=False)
    ints = CallableRunner(lambda im, boxes=None, **_: _fill(im, boxes).astype(np.uint8), name="ints")
    ints.set_image(np.zeros((8, 8, 3), np.uint8))
    assert ints.predict(boxes=np.array([[1, 1, 4, 4]])).masks.dtype.is_floating_point is False


# -- 7. a plugin that takes a built-in's name ----------------------------------------------------------------
def test_a_plugin_claiming_a_builtin_name_is_an_error_naming_both(monkeypatch):
    from importlib.metadata import EntryPoint

    from evalsuite.models import registry

    real = list(registry.entry_points(group=registry.ENTRY_POINT_GROUP))
    evil = EntryPoint("box-fill", "evil_plugin:BOX_FILL", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [*real, evil])
    registry._entry_points.cache_clear()
    registry.get_spec.cache_clear()
    try:
        with pytest.raises(
            InputError, match=r"'box-fill' is registered by 2 packages: evalsuite .* and .*evil_plugin"
        ):
            registry.get_spec("box-fill")
    finally:
        monkeypatch.undo()
        registry._entry_points.cache_clear()
        registry.get_spec.cache_clear()


# -- 8. tables say what they measured ----------------------------------------------------------------------
def test_table5_names_its_pseudo_detections_and_sample_rows_carry_no_paper_value(tmp_path, capsys):
    boxes = tmp_path / "pseudo.json"
    assert main(["make-boxes", "coco", "--data", "sample", "--seed", "0", "--out", str(boxes)]) == 0
    common = {"data": "sample", "out": tmp_path / "runs", "progress": False, "limit": 3}
    run(RunConfig(["coco-vitdet"], "box-fill", boxes=boxes, **common))
    capsys.readouterr()
    assert main(["report", str(tmp_path / "runs"), "--table", "5", "--paper-rows"]) == 0
    text = capsys.readouterr().out
    assert "with ViTDet-H boxes" not in text.splitlines()[0]
    assert "pseudo.json (pseudo-detections (make-boxes))" in text.splitlines()[0]
    assert "Data: sample-coco, --limit 3 (3 images)" in text
    # quoted rows say the paper's dataset, not the run's
    assert main(["report", str(tmp_path / "runs"), "--table", "5", "--paper-rows", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    quoted = [r for r in rows if ",True," in r]
    assert quoted and all("coco-val2017" in r and "sample" not in r for r in quoted)


def test_a_report_of_a_folder_with_limited_and_other_seed_runs_gives_tables_not_a_refusal(tmp_path, capsys):
    common = {"data": "sample", "out": tmp_path, "progress": False}
    run(RunConfig(["coco-box", "coco-1click"], "oracle", **common))
    run(RunConfig(["coco-box", "coco-1click"], "oracle", limit=2, **common))
    run(RunConfig(["coco-1click"], "oracle", seed=1, **common))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oracle", "oracle+limit2", "oracle+seed1"]
    assert main(["report", str(tmp_path), "--table", "all", "--paper-rows"]) == 0
    text = capsys.readouterr().out
    assert text.count("**Table 4 (evalsuite, measured).") == 3  # full, limited, other seed
    assert re.search(r"Data: sample-coco, --limit 2 \(2 images\)", text)
    assert "seed 1" in text
    assert " [1], " not in text  # no paper Δ beside any sample row
    # select instead of refusing: --name / --exclude globs
    assert main(["report", str(tmp_path), "--table", "4", "--exclude", "*+*"]) == 0
    assert capsys.readouterr().out.count("**Table 4") == 1
    assert main(["report", str(tmp_path), "--table", "4", "--name", "oracle+seed*"]) == 0
    only = capsys.readouterr().out
    assert "oracle+seed1" in only and "| oracle " not in only


def test_gate_write_accepts_a_checkpoint_run_and_pins_its_sha(tmp_path, capsys):
    path = synthetic_record(tmp_path, "efficientsam-ti", "coco-box", {"mIoU": 50.0}, name="ft")
    data = json.loads(path.read_text())
    data["model"].update(weights="file", checkpoint_sha256="e" * 64)
    path.write_text(json.dumps(data))
    gates = tmp_path / "ft.toml"
    assert main(["gate", "--write", str(gates), str(tmp_path), "--tolerance", "1e-6"]) == 0
    assert 'checkpoint_sha256 = "' + "e" * 64 in gates.read_text()
    assert main(["gate", str(gates), str(tmp_path)]) == 0
    data["model"]["checkpoint_sha256"] = "f" * 64  # another checkpoint under the same name
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["gate", str(gates), str(tmp_path)]) == 1
    assert "gate wants file sha256 eeee" in capsys.readouterr().out


def test_select_cells_collapses_identical_copies(tmp_path):
    a = synthetic_record(tmp_path, "oracle", "coco-box", {"mIoU": 100.0}, folder="a")
    b = tmp_path / "copy" / "record.json"
    b.parent.mkdir()
    b.write_text(a.read_text())
    sel = select_cells(find_records([tmp_path]))
    assert len(sel.cells) == 1 and not sel.excluded


def test_the_six_comparability_rules_are_one():
    """Nobody but evalsuite/identity.py defines what makes two runs comparable."""
    root = Path(evalsuite.__file__).parent
    banned = re.compile(
        r"def (data_key|check_columns|comparison_problems|difference|paper_comparability|unique_cells"
        r"|_same_result|same_result|column_key|pairing_problems|resume_problems)\b"
    )
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.name != "identity.py" and banned.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    runfolder = (root / "engine" / "runfolder.py").read_text()
    assert "resume_problems(" in runfolder and "existing != config" not in runfolder
