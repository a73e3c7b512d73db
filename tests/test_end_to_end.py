"""The whole pipeline on the bundled sample: CLI, oracle = 100, box-fill vs numpy, resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import SetImageHook
from pycocotools.coco import COCO

from evalsuite.cli import main
from evalsuite.data.locate import sample_root
from evalsuite.engine import RunConfig, run
from evalsuite.models import build_model

MIOU_PROTOCOLS = ["coco-box", "coco-1click", "coco-3click", "lvis-box", "lvis-1click", "lvis-3click"]
RECORD_FIELDS = {"image_id", "ann_id", "category_id", "area", "size", "iou", "prompt", "mask_index", "score"}
VOLATILE = ("execution", "timing")  # wall-clock facts; everything else must be reproducible


def _stable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in VOLATILE}


def test_oracle_scores_100_on_every_protocol_from_the_cli(tmp_path, capsys):
    rc = main(["run", *MIOU_PROTOCOLS, "--model", "oracle", "--data", "sample", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    for name in MIOU_PROTOCOLS:
        record = json.loads((tmp_path / "oracle" / name / "record.json").read_text())
        assert record["metrics"]["mIoU"] == 100.0, name
        assert record["counts"]["instances"] > 0
        assert re.search(rf"\| {name}@1 +\| oracle +\|", out), out
        assert f"record: {tmp_path / 'oracle' / name / 'record.json'}" in out
    coco = json.loads((tmp_path / "oracle" / "coco-box" / "record.json").read_text())
    assert coco["counts"]["skipped"] == {"crowd": 3}
    assert coco["dataset"]["annotation_sha256"] and coco["protocol"]["id"] == "coco-box@1"
    for key in ("software", "environment", "seed", "model", "per_category"):
        assert key in coco


def test_empty_masks_are_dropped_and_counted(tmp_path):
    """A sliver polygon that covers no pixel centre: dropped from mIoU, counted in the record."""
    data = json.loads((sample_root() / "annotations" / "instances_val2017.json").read_text())
    image = data["images"][0]
    sliver = [[10.0, 10.3, 30.0, 10.31, 50.0, 10.32]]
    data["annotations"].append(
        {
            "id": 10**9,
            "image_id": image["id"],
            "category_id": data["categories"][0]["id"],
            "iscrowd": 0,
            "segmentation": sliver,
            "area": 0.0,
            "bbox": [10.0, 10.3, 40.0, 0.02],
        }
    )
    ann = tmp_path / "with_sliver.json"
    ann.write_text(json.dumps(data))
    (o,) = run(RunConfig(["coco-box"], "oracle", data="sample", ann=ann, out=tmp_path, progress=False))
    assert o.record.to_json()["counts"]["skipped"] == {"crowd": 3, "empty_mask": 1}
    assert o.record.to_json()["metrics"]["mIoU"] == 100.0


def test_box_fill_equals_an_independent_numpy_computation(tmp_path):
    (outcome,) = run(RunConfig(["coco-box"], "box-fill", data="sample", out=tmp_path, progress=False))
    ann_file = sample_root() / "annotations" / "instances_val2017.json"
    coco = COCO(str(ann_file))
    rows = [json.loads(line) for line in (outcome.folder / "instances.jsonl").read_text().splitlines()]
    assert len(rows) == outcome.record.to_json()["counts"]["instances"] > 100
    ious = []
    for row in rows:
        assert set(row) == RECORD_FIELDS
        gt = coco.annToMask(coco.anns[row["ann_id"]]).astype(bool)
        ys, xs = np.nonzero(gt)
        box = np.zeros_like(gt)
        box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
        expected = (gt & box).sum() / (gt | box).sum()
        assert row["iou"] == pytest.approx(expected, abs=1e-12)
        assert row["prompt"] == {"box": [xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0]}
        assert row["size"] == {True: "S", False: "M" if row["area"] < 96**2 else "L"}[row["area"] < 32**2]
        ious.append(expected)
    assert outcome.record.to_json()["metrics"]["mIoU"] == pytest.approx(100 * np.mean(ious), abs=1e-9)
    assert 30 < outcome.record.to_json()["metrics"]["mIoU"] < 100


def test_click_records_hold_the_exact_clicks(tmp_path):
    (o1,) = run(RunConfig(["coco-1click"], "oracle", data="sample", out=tmp_path, progress=False))
    (o3,) = run(RunConfig(["coco-3click"], "oracle", data="sample", out=tmp_path, progress=False))
    r1 = [json.loads(x) for x in (o1.folder / "instances.jsonl").read_text().splitlines()]
    r3 = [json.loads(x) for x in (o3.folder / "instances.jsonl").read_text().splitlines()]
    assert [r["ann_id"] for r in r1] == [r["ann_id"] for r in r3]
    for a, b in zip(r1, r3, strict=True):
        assert len(b["prompt"]["points"]) == 3 and b["prompt"]["labels"] == [1, 1, 1]
        assert b["prompt"]["points"][0] == a["prompt"]["points"][0]  # nested click sets


def _files(folder: Path) -> dict[str, str]:
    return {n: (folder / n).read_text() for n in ("instances.jsonl", "images.jsonl")}


@pytest.mark.parametrize("after", [1, 7])
def test_resume_after_interruption_gives_the_same_record(tmp_path, monkeypatch, after):
    protocols = ["coco-box", "coco-3click"]
    ref = run(RunConfig(protocols, "oracle", data="sample", out=tmp_path / "ref", progress=False))

    hook = SetImageHook(monkeypatch, interrupt_after=after)
    cfg = RunConfig(protocols, "oracle", data="sample", out=tmp_path / "resumed", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    partial = (tmp_path / "resumed" / "oracle" / "coco-box" / "images.rank0.jsonl").read_text().splitlines()
    assert len(partial) == after
    hook.restore()
    resumed = run(cfg)
    for a, b in zip(ref, resumed, strict=True):
        assert _stable(a.record.to_json()) == _stable(b.record.to_json())
        assert _files(a.folder) == _files(b.folder)
    assert (
        resumed[0].record.to_json()["execution"]["images_this_session"]
        == ref[0].record.to_json()["counts"]["images"] - after
    )


def test_torn_last_line_and_half_written_image_are_redone(tmp_path):
    cfg = RunConfig(["lvis-box"], "box-fill", data="sample", out=tmp_path, progress=False)
    (ref,) = run(cfg)
    expected = _files(ref.folder)
    inst = ref.folder / "instances.jsonl"
    images = ref.folder / "images.jsonl"
    # simulate a crash: last image's line lost, and the last instance line torn in half
    img_lines = images.read_text().splitlines(keepends=True)
    images.write_text("".join(img_lines[:-1]))
    text = inst.read_text()
    inst.write_text(text[: len(text) - 40])
    (ref.record_path).unlink()
    (again,) = run(cfg)
    assert _files(again.folder) == expected
    assert again.record.to_json()["execution"]["images_this_session"] == 1
    assert _stable(again.record.to_json()) == _stable(ref.record.to_json())


def test_decode_workers_give_the_same_records(tmp_path):
    a = run(
        RunConfig(["lvis-3click"], "oracle", data="sample", out=tmp_path / "a", progress=False, workers=0)
    )
    b = run(
        RunConfig(["lvis-3click"], "oracle", data="sample", out=tmp_path / "b", progress=False, workers=2)
    )
    assert _files(a[0].folder) == _files(b[0].folder)
    assert b[0].record.to_json()["execution"]["decode_workers"] == 2


def test_changed_settings_are_not_mixed_into_an_old_run(tmp_path, capsys):
    args = [
        "run",
        "coco-1click",
        "--model",
        "oracle",
        "--data",
        "sample",
        "--out",
        str(tmp_path),
        "--limit",
        "2",
    ]
    assert main(args) == 0
    assert main([*args, "--seed", "1"]) == 0  # a derived name carries the seed: a run of its own
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oracle+limit2", "oracle+limit2+seed1"]
    named = [*args, "--name", "mine"]
    assert main(named) == 0
    assert main([*named, "--seed", "1"]) == 2  # one name, other settings: refused, naming the field
    assert "another identity (seed: 0 then, 1 now)" in capsys.readouterr().err
    assert main([*named, "--seed", "1", "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "coco-bx", "--model", "oracle", "--data", "sample"], "Did you mean: coco-box"),
        (["run", "coco-box", "--model", "orcle", "--data", "sample"], "Did you mean: oracle"),
        (["run", "coco-1click", "--model", "box-fill", "--data", "sample"], "does not take points prompts"),
        (["run", "coco-box", "--model", "oracle", "--data-root", "/nonexistent"], "--data sample"),
        (["run", "coco-box", "--model", "oracle", "--data", "sample", "--set", "clicks=3"], "apply to none"),
        (
            ["run", "coco-1click", "--model", "oracle", "--data", "sample", "--set", "clicks=3"],
            "is protocol coco-3click",
        ),
        (
            ["run", "coco-1click", "--model", "oracle", "--data", "sample", "--set", "clicks=100000"],
            "maximum 100",
        ),
        (
            ["run", "coco-box", "--model", "oracle", "--data", "sample", "--device", "gpu"],
            "did you mean cuda",
        ),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(args, message, capsys, tmp_path):
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evalsuite: error: ") and message in err and "Traceback" not in err


def test_ls_lists_protocols_with_versions_and_models(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "coco-box@1" in out and "lvis-5click@1" in out and "click_rule=random" in out
    assert "oracle" in out and "box-fill" in out


def test_sam_click_rule_runs_iteratively(tmp_path):
    (o,) = run(
        RunConfig(
            ["coco-3click"],
            "oracle",
            data="sample",
            out=tmp_path,
            progress=False,
            limit=3,
            overrides={"click_rule": "sam"},
        )
    )
    assert o.record.to_json()["protocol"]["options"]["click_rule"] == "sam"
    assert o.record.to_json()["metrics"]["mIoU"] == 100.0
    rows = [json.loads(x) for x in (o.folder / "instances.jsonl").read_text().splitlines()]
    # with a perfect prediction after click 1, clicks 2 and 3 follow the tie rule (negative)
    assert all(r["prompt"]["labels"][0] == 1 for r in rows)


def test_runner_interface_shapes():
    r = build_model("box-fill")
    r.set_image(np.zeros((5, 6, 3), np.uint8))
    p = r.predict(boxes=np.array([[1, 1, 3, 4]]))
    assert p.masks.shape == (1, 1, 5, 6) and p.masks.dtype.is_floating_point is False
    assert int(p.masks.sum()) == 6
