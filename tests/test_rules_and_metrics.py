"""Prompt rules and metrics as registered plug-ins: the new rules, a rule and a metric added from outside,
metrics that see masks through the engine, old logs, and the options that only some conventions use."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import evalsuite
from evalsuite.data.types import Instance
from evalsuite.errors import InputError
from evalsuite.metrics.base import ItemField, MaskBatch, metric_classes
from evalsuite.metrics.miou import InstanceRecord
from evalsuite.prompts import sam_click
from evalsuite.prompts.strategies import PromptInput, PromptSet, PromptStrategy, strategies, strategy_for
from evalsuite.protocols import get_protocol

SAMPLE = Path(str(resources.files("evalsuite.data.sample_data")))


def _inp(*masks: np.ndarray, boxes=None) -> PromptInput:
    insts = [
        Instance(i + 1, 1, float(m.sum()), tuple(boxes[i]) if boxes else (0.0, 0.0, 1.0, 1.0), [])
        for i, m in enumerate(masks)
    ]
    return PromptInput(7, 0, insts, np.stack(masks))


def _ring() -> np.ndarray:
    yy, xx = np.mgrid[:40, :50]
    d2 = (yy - 20) ** 2 + (xx - 24) ** 2
    return (d2 <= 15**2) & (d2 > 8**2)


def test_centre_click_is_sams_first_click_and_box_centre_is_the_tight_box_centre():
    rng = np.random.default_rng(0)
    masks = [_ring(), rng.random((40, 50)) > 0.4, np.pad(np.ones((5, 9), bool), ((3, 32), (30, 11)))]
    centre = strategy_for({"prompt": "clicks", "click_rule": "center", "clicks": 1}).first(
        _inp(*masks), Counter()
    )
    for m, p, lab in zip(masks, centre.points, centre.labels, strict=True):
        assert (tuple(p[0]), int(lab[0])) == sam_click(m)  # the same point as SAM's clicker's first click
    box_centre = strategy_for({"prompt": "clicks", "click_rule": "box_center", "clicks": 1})
    pts = box_centre.first(_inp(*masks), Counter()).points[:, 0]
    # the ring's tight box is [9, 5, 40, 36] (pixel edges): its centre (24.5, 20.5), in the ring's hole
    assert tuple(pts[0]) == (24.5, 20.5) and not masks[0][20, 24]
    assert tuple(pts[2]) == (34.5, 5.5)  # columns 30..38, rows 3..7: edges [30, 3, 39, 8]
    with pytest.raises(InputError, match="above its maximum 1"):
        get_protocol("coco-3click").with_options({"click_rule": "center"})


def test_box_and_clicks_is_the_box_plus_the_k_click_protocols_clicks():
    masks = [_ring(), np.pad(np.ones((6, 6), bool), ((10, 24), (10, 34)))]
    opts = {"prompt": "box", "box_source": "tight", "box_click_rule": "random", "box_clicks": 3}
    both = strategy_for(opts).first(_inp(*masks), Counter())
    box = strategy_for({"prompt": "box", "box_source": "tight"}).first(_inp(*masks), Counter())
    clicks = strategy_for({"prompt": "clicks", "click_rule": "random", "clicks": 3}).first(
        _inp(*masks), Counter()
    )
    np.testing.assert_array_equal(both.boxes, box.boxes)
    np.testing.assert_array_equal(both.points, clicks.points)
    assert both.to_json()[0].keys() == {"box", "points", "labels"}
    again = PromptSet.from_json(both.to_json())  # what replay prompts with
    np.testing.assert_array_equal(again.points, both.points)
    np.testing.assert_array_equal(again.boxes, both.boxes)
    p = get_protocol("coco-box").with_options({"box_click_rule": "random", "box_clicks": 2})
    assert p.prompt_kinds == {"box", "points"} and p.overrides == {
        "box_click_rule": "random",
        "box_clicks": 2,
    }
    # a run of box and click protocols: click_rule and clicks stay the click protocols' own
    q = get_protocol("coco-box")
    assert q.accepts("box_clicks") and not q.accepts("clicks") and not q.accepts("click_rule")


class _Spiral(PromptStrategy):
    """A rule from outside the package: one click at the mask's first pixel."""

    prompt = "clicks"
    rule = "first_pixel"
    kinds = frozenset({"points"})
    options: ClassVar = {"clicks": strategies()["random"].options["clicks"]}
    count_option = "clicks"

    def first(self, inp, stats):
        pts = [np.argwhere(m)[0][::-1] for m in inp.masks]
        return PromptSet(
            points=np.asarray(pts, float)[:, None], labels=np.ones((len(pts), 1), dtype=np.int64)
        )


def _clear_registries() -> None:
    from evalsuite import entrypoints as eps
    from evalsuite.metrics import base as metrics_base
    from evalsuite.prompts import strategies as strategies_module

    for cached in (eps._claims, strategies_module.strategies, metrics_base.metric_classes):
        cached.cache_clear()


def _with_entry_point(monkeypatch, wanted: str, name: str, value: str) -> None:
    """Register an entry point as an installed plugin would (for this test only)."""
    import evalsuite.entrypoints as eps

    real = eps.entry_points

    def patched(group: str):
        found = list(real(group=group))
        if group == wanted:
            found.append(EntryPoint(name, value, group))
        return found

    monkeypatch.setattr(eps, "entry_points", patched)
    _clear_registries()


@pytest.fixture
def fresh_registries():
    yield
    _clear_registries()


def test_a_prompt_rule_from_outside_runs_end_to_end(monkeypatch, fresh_registries):
    _with_entry_point(monkeypatch, "evalsuite.prompts", "first-pixel", f"{__name__}:_Spiral")
    assert strategies()["first-pixel"] is _Spiral
    res = evalsuite.evaluate(
        "oracle", "coco-1click", data="sample", limit=2, options={"click_rule": "first_pixel"}, progress=False
    )
    (r,) = res.records
    assert r.metrics["mIoU"] == 100.0 and r.protocol.options["click_rule"] == "first_pixel"
    first = res.instances.iloc[0]
    assert first["prompt"]["labels"] == [1]


class _Area(evalsuite.metrics.Metric):
    """A metric from outside the package: the mean predicted area, in pixels."""

    higher_is_better: ClassVar = {"mArea": True}
    task_kinds = frozenset({"miou"})
    fields = (ItemField("pred_area", lambda v: isinstance(v, int) and v >= 0, "pixels of the chosen mask"),)

    def measure(self, batch: MaskBatch):
        p, _ = batch.host()
        return {"pred_area": [int(m.sum()) for m in p]}

    def evaluate(self):
        vals = [r.extra["pred_area"] for r in self._records]
        return evalsuite.metrics.MetricResult({"mArea": float(np.mean(vals))}, {"mArea": True})


def test_a_metric_from_outside_sees_the_masks_and_logs_its_field(monkeypatch, fresh_registries, tmp_path):
    _with_entry_point(monkeypatch, "evalsuite.metrics", "mArea", f"{__name__}:_Area")
    assert metric_classes()["mArea"] is _Area
    res = evalsuite.evaluate(
        "oracle",
        "coco-box",
        data="sample",
        limit=2,
        out=tmp_path,
        options={"metrics": "+mArea"},
        progress=False,
    )
    (r,) = res.records
    rows = r.items()
    assert all(row["pred_area"] == row["area"] or row["pred_area"] > 0 for row in rows)
    assert r.metrics["mArea"] == pytest.approx(np.mean([row["pred_area"] for row in rows]))
    assert list(r.metrics)[:4] == ["mIoU", "mIoU_S", "mIoU_M", "mIoU_L"] and "mArea" in r.metrics
    # the run is resumable: its log is read back with the declared field
    again = evalsuite.evaluate(
        "oracle",
        "coco-box",
        data="sample",
        limit=2,
        out=tmp_path,
        options={"metrics": "+mArea"},
        progress=False,
    )
    assert again.records[0].metrics == r.metrics
    with pytest.raises(InputError, match="no metric reports 'mAreaa'"):
        get_protocol("coco-box").with_options({"metrics": "+mAreaa"})


def test_old_logs_read_as_before_and_a_damaged_extra_field_is_named():
    old = {
        "image_id": 1,
        "ann_id": 2,
        "category_id": 3,
        "area": 10.0,
        "size": "S",
        "iou": 0.5,
        "prompt": {"box": [0, 0, 1, 1]},
        "mask_index": 0,
        "score": 0.9,
    }
    rec = InstanceRecord.from_json(old)
    assert rec.to_json() == old and list(rec.to_json()) == list(old)  # the same row, the same order
    biou = evalsuite.metrics.BoundaryIoUMetric.fields
    new = {**old, "biou": 0.25}
    assert InstanceRecord.from_json(new, biou).extra == {"biou": 0.25}
    with pytest.raises(InputError, match="a logged instance is damaged"):
        InstanceRecord.from_json(old, biou)  # a run with mBIoU needs the field
    with pytest.raises(InputError, match=r"biou 1\.5 is not a valid value"):
        InstanceRecord.from_json({**old, "biou": 1.5}, biou)


def _custom_annotations(tmp_path: Path) -> Path:
    """The COCO sample's first image with two extra annotations: one whose polygon lies outside the image
    (it decodes to an empty mask, area 50 as stored) and one of area exactly 32² (a bucket edge)."""
    data = json.loads((SAMPLE / "annotations" / "instances_val2017.json").read_text())
    first = data["images"][0]
    data["images"] = [first]
    data["annotations"] = [
        a for a in data["annotations"] if a["image_id"] == first["id"] and not a["iscrowd"]
    ]
    w = first["width"]
    data["annotations"] += [
        {
            "id": 990001,
            "image_id": first["id"],
            "category_id": 1,
            "iscrowd": 0,
            "area": 50.0,
            "bbox": [w + 10, 10.0, 5.0, 10.0],
            "segmentation": [[w + 10, 10, w + 15, 10, w + 15, 20, w + 10, 20]],
        },
        {
            "id": 990002,
            "image_id": first["id"],
            "category_id": 1,
            "iscrowd": 0,
            "area": 1024.0,
            "bbox": [10.0, 10.0, 32.0, 32.0],
            "segmentation": [[10, 10, 42, 10, 42, 42, 10, 42]],
        },
    ]
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(data))
    return path


def test_empty_masks_and_inclusive_buckets_change_what_is_scored(tmp_path):
    ann = _custom_annotations(tmp_path)
    common = {"data": "real", "data_root": SAMPLE, "ann": ann, "progress": False, "workers": 0}
    plain = evalsuite.evaluate("oracle", "coco-box", **common).records[0]
    zero = evalsuite.evaluate(
        "oracle", "coco-box", options={"empty_mask": "zero", "box_source": "ann"}, **common
    ).records[0]
    assert plain.counts.skipped.get("empty_mask") == 1 and "empty_mask" not in zero.counts.skipped
    assert zero.counts.instances == plain.counts.instances + 1
    rows = {r["ann_id"]: r for r in zero.items()}
    assert rows[990001]["iou"] == 0.0  # an empty ground truth overlaps nothing
    assert zero.metrics["mIoU"] == pytest.approx(100 * (zero.counts.instances - 1) / zero.counts.instances)
    with pytest.raises(InputError, match="cannot prompt"):
        evalsuite.evaluate("oracle", "coco-box", options={"empty_mask": "zero"}, **common)  # a tight box
    inclusive = evalsuite.evaluate(
        "oracle", "coco-box", options={"size_buckets": "inclusive"}, **common
    ).records[0]
    by_size = plain.counts.instances_by_size
    assert by_size is not None and inclusive.counts.instances_by_size == {**by_size, "S": by_size["S"] + 1}


def test_metric_batch_moves_the_ground_truth_once():
    import torch

    gt = np.zeros((2, 4, 5), dtype=bool)
    batch = MaskBatch(torch.zeros(2, 4, 5, dtype=torch.bool), gt)
    assert batch.gt_on(torch.device("cpu")) is batch.gt_on(torch.device("cpu"))
    with pytest.raises(ValueError, match="mask shapes differ"):
        MaskBatch(torch.zeros(2, 4, 5, dtype=torch.bool), gt[:, :3])


def test_ls_shows_every_rule_metric_and_preset_with_its_options_help(capsys):
    from evalsuite.cli import main

    assert main(["ls", "prompts"]) == 0
    out = capsys.readouterr().out
    for name, rule in strategies().items():
        assert f"  {name} " in out
        for key, spec in rule.options.items():
            assert spec.line(key) in out and spec.help in out
    assert main(["ls", "metrics"]) == 0
    out = capsys.readouterr().out
    assert "per-item field biou" in out and "dilation_ratio (float 0.001..0.5; default 0.02" in out
    assert main(["ls", "presets"]) == 0
    out = capsys.readouterr().out
    assert "not reproduced: the image and the label squashed to 1024×1024" in out
    assert main(["ls", "protocols"]) == 0
    assert "empty_mask (one of skip, zero; default skip; changes the column)" in capsys.readouterr().out
