"""The lvis/numpy-2 shim, protocol definitions, paper reference values and the model registry."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from evalsuite.compat import patch_lvis_numpy_float
from evalsuite.data.registry import dataset_names
from evalsuite.engine import resolve_protocols
from evalsuite.errors import InputError, UnknownNameError
from evalsuite.models import build_model, model_names
from evalsuite.models import registry as model_registry
from evalsuite.protocols import get_protocol, load_protocols, parse_override
from evalsuite.report.rules import paper_value


def test_lvis_eval_runs_on_numpy2_with_the_shim(realdata, tmp_path):
    """LVISEval.accumulate uses np.float; with the shim the official evaluator completes.

    Ground truth scored against itself (score 1) must give AP 1 on the categories present.
    """
    from lvis import LVIS, LVISEval, LVISResults

    patch_lvis_numpy_float()
    patch_lvis_numpy_float()  # idempotent
    assert np.float is float
    gt = LVIS(str(realdata / "lvis_val_100" / "lvis_val_100.json"))
    dets = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "segmentation": a["segmentation"],
            "bbox": a["bbox"],
            "score": 1.0,
        }
        for a in gt.dataset["annotations"]
    ]
    ev = LVISEval(gt, LVISResults(gt, dets), iou_type="segm")
    ev.run()
    results = ev.get_results()
    assert results["AP"] == pytest.approx(1.0, abs=1e-9)


def test_every_protocol_loads_with_a_version_and_known_options():
    protocols = load_protocols()
    names = {f"{d}-{k}" for d in ("coco", "lvis") for k in ("box", "1click", "3click", "5click")}
    assert names <= set(protocols)
    for p in protocols.values():
        assert p.version >= 1 and p.dataset in dataset_names() and p.metrics
        assert p.id == f"{p.name}@{p.version}"
    assert get_protocol("lvis-3click").options["clicks"] == 3
    assert get_protocol("coco-box").options == {
        "prompt": "box",
        "box_source": "tight",
        "include_crowd": False,
        "mask_choice": "score",
    }


def test_unknown_protocol_suggests_a_name():
    with pytest.raises(UnknownNameError, match="Did you mean: coco-box"):
        get_protocol("coco-bx")


def test_overrides_apply_where_they_belong_and_change_the_hash():
    box, clicks = resolve_protocols(["coco-box", "coco-3click"], {"click_rule": "sam", "include_crowd": True})
    assert "click_rule" not in box.options and box.options["include_crowd"] is True
    assert clicks.options["click_rule"] == "sam"
    assert clicks.options_hash != get_protocol("coco-3click").options_hash
    with pytest.raises(InputError, match="apply to none"):
        resolve_protocols(["coco-box"], {"clicks": 2})
    with pytest.raises(InputError, match="not one of"):
        resolve_protocols(["coco-box"], {"mask_choice": "best"})
    assert parse_override("include_crowd=yes") == ("include_crowd", True)
    assert parse_override("clicks=4") == ("clicks", 4)
    with pytest.raises(InputError):
        parse_override("clicks=four")


def test_paper_values_are_quoted_with_their_source():
    v = paper_value("efficientsam-s", "coco-box", "mIoU")
    assert v.value == 76.9 and "Table 4" in v.source
    v = paper_value("sam-vit-h", "lvis-vitdet", "APL")
    assert v.value == 65.5 and "refinement" in v.source
    assert paper_value("efficientsam-s", "coco-5click", "mIoU") is None  # the paper has no 5-click column
    assert paper_value("box-fill", "coco-box", "mIoU") is None


def test_a_paper_value_belongs_to_the_column_its_options_define():
    # EfficientViT-SAM quotes XL1's box mIoU with the annotation box and crowd annotations included:
    # that number stands beside that column only, never beside the shipped tight-box column
    assert paper_value("efficientvit-sam-xl1", "coco-box", "mIoU") is None
    v = paper_value("efficientvit-sam-xl1", "coco-box", "mIoU", {"box_source": "ann", "include_crowd": True})
    assert v.value == 79.9 and "EfficientViT-SAM" in v.source
    assert paper_value("efficientvit-sam-xl1", "coco-box", "mIoU", {"box_source": "ann"}) is None
    assert paper_value("efficientvit-sam-xl1", "lvis-box", "mIoU", {"box_source": "ann"}).value == 79.9
    # a row option (SAM's refinement step) does not move the value out of the shipped column
    assert paper_value("sam-vit-h", "coco-vitdet", "AP").options == {"refine": 1}


def test_efficientvit_sam_ap_is_quoted_but_their_own_boxes_forbid_a_delta():
    v = paper_value("efficientvit-sam-l0", "coco-vitdet", "AP")
    assert v.value == 45.7 and v.boxes  # measured with EfficientViT-SAM's own ViTDet file
    assert paper_value("efficientvit-sam-xl1", "lvis-vitdet", "AP").value == 44.4
    # the EfficientSAM paper's tables come first where two papers quote one model
    assert paper_value("mobilesam", "lvis-vitdet", "AP").value == 34.4


def test_builtin_models_come_from_entry_points():
    assert {"oracle", "box-fill"} <= set(model_names())
    with pytest.raises(UnknownNameError, match="Did you mean: box-fill"):
        build_model("boxfill")
    with pytest.raises(InputError, match="no weights"):
        build_model("box-fill", checkpoint="x.pt")


def test_third_party_package_registers_a_model_through_an_entry_point(tmp_path, monkeypatch):
    """A package evalsuite has never heard of adds a model with one entry point, no edit to evalsuite."""
    pkg = tmp_path / "acme_seg.py"
    pkg.write_text(
        textwrap.dedent('''
        import torch
        from evalsuite.models import Prediction, Runner

        class FullImage(Runner):
            prompt_kinds = frozenset({"box", "points"})
            def set_image(self, image):
                self.hw = image.shape[:2]
            def predict(self, boxes=None, points=None, point_labels=None, multimask=True):
                n = len(boxes) if boxes is not None else len(points)
                return Prediction(torch.ones(n, 1, *self.hw, dtype=torch.bool), torch.ones(n, 1))

        def build(checkpoint=None, device="cpu"):
            """Whole image as the mask."""
            return FullImage()
    ''')
    )
    dist = tmp_path / "acme_seg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-seg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[evalsuite.models]\nacme-full = acme_seg:build\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model_registry._entry_points.cache_clear()
    try:
        assert "acme-full" in model_names()
        assert model_registry.get_spec("acme-full").summary == "Whole image as the mask."
        runner = build_model("acme-full")
        runner.set_image(np.zeros((3, 4, 3), np.uint8))
        assert runner.predict(boxes=np.zeros((2, 4))).masks.shape == (2, 1, 3, 4)
        assert runner.name == "acme-full"
    finally:
        sys.modules.pop("acme_seg", None)
        model_registry._entry_points.cache_clear()


def test_callable_runner_wraps_a_function_and_checks_its_masks():
    from evalsuite.models import CallableRunner

    def segment(image, boxes=None, points=None, point_labels=None):
        n = len(boxes) if boxes is not None else len(points)
        return np.ones((n, *image.shape[:2]), bool)

    runner = CallableRunner(segment, name="ones")
    runner.set_image(np.zeros((4, 5, 3), np.uint8))
    pred = runner.predict(points=np.zeros((2, 1, 2)), point_labels=np.ones((2, 1)))
    assert pred.masks.shape == (2, 1, 4, 5) and pred.iou_predictions.tolist() == [[1.0], [1.0]]
    broken = CallableRunner(lambda image, **_: np.ones((1, 2, 2), bool), name="broken")
    broken.set_image(np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(InputError, match="expected"):
        broken.predict(boxes=np.zeros((1, 4)))
