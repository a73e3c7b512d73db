"""Each preset against its peer's own evaluation loop, re-implemented from the peer's code (preset_harness).

Both sides run one deterministic fake model on the COCO sample; the per-instance IoUs and the means must
agree. Each test also checks that the preset matters (evalsuite's defaults give other numbers), and says
which of the peer's steps the harness replaces because no option expresses them (docs/presets.md).
"""

from __future__ import annotations

import pytest
from preset_harness import (
    SAMPLE,
    FakeRunner,
    FakeSam,
    edgesam_loop,
    efficientvit_loop,
    efficientvit_summary,
    loose_boxes,
    samhq_loop,
)

import evalsuite
from evalsuite.cli import main
from evalsuite.engine.presets import PRESETS, preset_overrides
from evalsuite.errors import InputError


def _run(protocol: str, preset: str | None = None, options: dict | None = None, ann=None):
    where = {"data": "sample"} if ann is None else {"data": "real", "data_root": SAMPLE, "ann": ann}
    res = evalsuite.evaluate(
        FakeRunner(),
        protocol,
        **where,
        name="fake-sam",
        version="1",
        preset=preset,
        options=options,
        progress=False,
        workers=0,
    )
    (record,) = res.records
    rows = {(int(r["image_id"]), int(r["ann_id"])): r for r in record.items()}
    return record, rows


@pytest.mark.parametrize(
    ("protocol", "prompt", "clicks"), [("coco-box", "box", 0), ("coco-3click", "point", 3)]
)
def test_efficientvit_sam_preset_reproduces_its_evaluation_loop(protocol, prompt, clicks, tmp_path):
    # box prompts on a copy of the sample with looser annotation boxes: the sample's own boxes equal the
    # masks' boxes, so only there does the annotation box (box_source=ann) prompt differently
    ann = loose_boxes(tmp_path) if prompt == "box" else None
    theirs = efficientvit_loop(FakeSam(), prompt, clicks, ann)
    record, ours = _run(protocol, preset="efficientvit-sam", ann=ann)
    assert set(ours) == set(theirs) and len(ours) == 205  # every annotation of area >= 1, crowd (3) kept
    for key, row in ours.items():
        # their IoU has a 1e-7 in the denominator (not an option): it moves an IoU by less than 1e-7
        assert row["iou"] == pytest.approx(theirs[key]["iou"] / 100, abs=2e-7), key
    summary = efficientvit_summary(theirs)
    for ours_name, their_name in zip(
        ("mIoU", "mIoU_S", "mIoU_M", "mIoU_L"), ("all", "small", "medium", "large"), strict=True
    ):
        assert record.metrics[ours_name] == pytest.approx(summary[their_name], abs=1e-5)
    # the preset matters: evalsuite's own conventions give other numbers for the same model
    plain, rows = _run(protocol, ann=ann)
    assert len(rows) == 202 and plain.metrics["mIoU"] != pytest.approx(record.metrics["mIoU"], abs=1e-3)
    if ann is not None:  # and the annotation box itself does, crowd aside
        tight_box = _run(protocol, options={"include_crowd": True}, ann=ann)[0]
        assert tight_box.metrics["mIoU"] != pytest.approx(record.metrics["mIoU"], abs=1e-3)


@pytest.mark.parametrize(("protocol", "prompt"), [("coco-box", "box"), ("coco-1click", "point")])
def test_edgesam_preset_reproduces_its_evaluation_loop_at_the_original_size(protocol, prompt, tmp_path):
    # replaced in the harness (no option expresses them): the ground truth's resize round trip to the
    # 1024 input and back, the image resize, kornia's approximate distance transform at the 1024 scale
    ann = loose_boxes(tmp_path) if prompt == "box" else None
    theirs = edgesam_loop(FakeSam(), prompt, ann)
    record, ours = _run(protocol, preset="edgesam", ann=ann)
    assert set(ours) == set(theirs) and len(ours) == 202  # crowd dropped
    for key, row in ours.items():
        assert row["iou"] == pytest.approx(theirs[key], abs=1e-12), key
    assert record.metrics["mIoU"] == pytest.approx(100 * sum(theirs.values()) / len(theirs), abs=1e-9)
    plain, _ = _run(protocol, ann=ann)
    assert plain.metrics["mIoU"] != pytest.approx(record.metrics["mIoU"], abs=1e-3)


def test_sam_hq_preset_reproduces_its_evaluation_loop_with_boundary_iou():
    # replaced in the harness: the 1024×1024 squashed input and the box taken from the squashed label
    theirs = samhq_loop(FakeSam())
    record, ours = _run("coco-box", preset="sam-hq", options={"metrics": "mIoU,mBIoU"})
    assert set(ours) == set(theirs)
    for key, row in ours.items():
        assert (row["iou"], row["biou"]) == pytest.approx(theirs[key], abs=1e-12), key
    n = len(theirs)
    assert record.metrics["mIoU"] == pytest.approx(100 * sum(v[0] for v in theirs.values()) / n, abs=1e-9)
    assert record.metrics["mBIoU"] == pytest.approx(100 * sum(v[1] for v in theirs.values()) / n, abs=1e-9)
    assert list(record.metrics) == ["mIoU", "mBIoU"]
    plain, _ = _run("coco-box", options={"metrics": "mIoU,mBIoU"})
    assert plain.metrics["mBIoU"] != pytest.approx(record.metrics["mBIoU"], abs=1e-3)


def test_presets_apply_where_options_exist_and_let_set_win():
    assert preset_overrides("sam-hq", ["coco-box"], "sam-hq-vit-b", {}) == {
        "box_source": "tight_inclusive",
        "mask_choice": "single",
        "hq_token_only": True,  # the model's own option, where the model has it
    }
    assert "hq_token_only" not in preset_overrides("sam-hq", ["coco-box"], "box-fill", {})
    got = preset_overrides("efficientvit-sam", ["coco-box"], "box-fill", {"include_crowd": False})
    assert got["include_crowd"] is False and "click_rule" not in got  # --set wins; no click protocol here
    assert preset_overrides("efficientvit-sam", ["coco-noc20"], "oracle", {}) == {
        "include_crowd": True,
        "click_rule": "sam",
        "mask_choice": "score",
    }
    with pytest.raises(InputError, match=r"preset edgesam on coco-3click: .*clicks=3 is above its maximum 1"):
        preset_overrides("edgesam", ["coco-3click"], "oracle", {})
    with pytest.raises(InputError, match="Did you mean: edgesam"):
        preset_overrides("edge-sam", ["coco-box"], "oracle", {})
    assert all(p.not_reproduced for p in PRESETS.values())  # each says what it does not reproduce


def test_preset_and_mbiou_from_the_command_line(capsys, tmp_path):
    args = ["run", "coco-box", "--model", "oracle", "--data", "sample", "--limit", "3", "--no-progress"]
    assert (
        main([*args, "--out", str(tmp_path), "--set", "metrics=+mBIoU", "--preset", "efficientvit-sam"]) == 0
    )
    out = capsys.readouterr().out
    assert "mBIoU" in out and "box_source=ann" in out  # the preset's options name the run
    record = evalsuite.load(tmp_path).records[0]
    assert record.metrics["mBIoU"] == 100.0 and record.metrics["mIoU"] == 100.0  # the oracle's masks
    assert (
        record.protocol.options["include_crowd"] is True
        and record.protocol.options["size_buckets"] == "inclusive"
    )
