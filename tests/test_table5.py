"""Table 5 (detector-box AP) end to end: detections in, masks out, scored by the official evaluators."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SetImageHook, run_folder
from loopback import loopback_server
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from evalsuite.cli import main
from evalsuite.data.gt import MaskCache
from evalsuite.data.locate import locate, sample_root
from evalsuite.data.pseudo import make_pseudo_detections
from evalsuite.engine import RunConfig, run
from evalsuite.errors import InputError, UnsupportedPromptError
from evalsuite.fetch.boxes import BOX_FILES, download_boxes
from evalsuite.models import build_model
from evalsuite.models.base import Prediction, Runner
from evalsuite.protocols import get_protocol
from evalsuite.tasks import APTask, TaskContext


def _write(path: Path, dets: list) -> Path:
    path.write_text(json.dumps(dets))
    return path


@pytest.fixture(scope="module")
def exact_boxes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("boxes")
    return {
        fam: _write(folder / f"{fam}.json", make_pseudo_detections(locate(fam, "sample").open(), exact=True))
        for fam in ("coco", "lvis")
    }


@pytest.mark.parametrize("backend", ["official", "faster"])
@pytest.mark.parametrize(("protocol", "family"), [("coco-vitdet", "coco"), ("lvis-vitdet", "lvis")])
def test_oracle_with_ground_truth_boxes_scores_ap_100(protocol, family, backend, exact_boxes, tmp_path):
    cfg = RunConfig(
        [protocol],
        "oracle",
        data="sample",
        boxes=exact_boxes[family],
        out=tmp_path,
        progress=False,
        ap_backend=backend,
    )
    (o,) = run(cfg)
    assert o.record.to_json()["metrics"]["AP"] == pytest.approx(100.0, abs=1e-9)
    assert o.record.to_json()["metrics"]["AP50"] == pytest.approx(100.0, abs=1e-9)
    assert o.record.to_json()["boxes"]["sha256"] and o.record.to_json()["scoring"]["backend"] == backend
    if family == "lvis":
        assert set(o.record.to_json()["metrics"]) >= {"APr", "APc", "APf"}


def test_cli_box_fill_on_made_boxes_and_independent_rescoring(tmp_path, capsys):
    boxes = tmp_path / "pseudo.json"
    assert main(["make-boxes", "coco", "--out", str(boxes), "--seed", "3"]) == 0
    assert "not a detector" in capsys.readouterr().out
    out = tmp_path / "runs"
    rc = main(
        [
            "run",
            "coco-vitdet",
            "--model",
            "box-fill",
            "--data",
            "sample",
            "--boxes",
            str(boxes),
            "--out",
            str(out),
        ]
    )
    stdout = capsys.readouterr().out
    assert rc == 0 and re.search(r"\| coco-vitdet@1 +\| box-fill +\|", stdout), stdout
    folder = out / "box-fill" / "coco-vitdet"
    record = json.loads((folder / "record.json").read_text())
    results = json.loads((folder / "segm_results.json").read_text())
    assert len(results) == record["counts"]["detections_scored"] == len(json.loads(boxes.read_text()))
    # re-score the saved masks with pycocotools directly: same numbers as the record
    gt = COCO(str(sample_root() / "annotations" / "instances_val2017.json"))
    ev = COCOeval(gt, gt.loadRes(results), "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    for i, key in enumerate(["AP", "AP50", "AP75", "APS", "APM", "APL"]):
        assert record["metrics"][key] == pytest.approx(100 * ev.stats[i], abs=1e-9)
    assert 0 < record["metrics"]["AP"] < 100


def _some_dets(n=3):
    data = json.loads((sample_root() / "annotations" / "instances_val2017.json").read_text())
    img, cat = data["images"][0]["id"], data["categories"][0]["id"]
    return [{"image_id": img, "category_id": cat, "bbox": [10, 10, 30, 20], "score": 0.5} for _ in range(n)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_id": 12345678}, "image_id is not in the annotation file"),
        ({"category_id": 9999}, "category_id is not in the annotation file"),
        ({"score": float("nan")}, "score is NaN, infinite or beyond the range of a float"),
        ({"score": float("inf")}, "score is NaN, infinite or beyond the range of a float"),
        ({"bbox": [1, 2, 0, 5]}, "width/height <= 0"),
        ({"bbox": [1, 2, 3]}, "not an object with numeric"),
        ({"score": "high"}, "not an object with numeric"),
    ],
)
def test_bad_detection_files_name_the_first_offender(change, message, tmp_path, capsys):
    dets = _some_dets(4)
    dets[1].update(change)
    dets[3].update(change)
    boxes = _write(tmp_path / "bad.json", dets)
    args = [
        "run",
        "coco-vitdet",
        "--model",
        "box-fill",
        "--data",
        "sample",
        "--boxes",
        str(boxes),
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(boxes) in err and "detection #1" in err and message in err and "1 more bad" in err
    assert "--skip-bad" in err and "Traceback" not in err
    assert main([*args, "--skip-bad", "--limit", "1"]) == 0
    record = json.loads((run_folder(tmp_path, "box-fill", "coco-vitdet") / "record.json").read_text())
    assert sum(record["counts"]["skipped"].values()) == 2 and record["counts"]["detections_scored"] == 2


def test_detection_file_that_is_not_a_list(tmp_path, capsys):
    boxes = tmp_path / "d.json"
    boxes.write_text('{"annotations": []}')
    assert main(["run", "coco-vitdet", "--model", "box-fill", "--data", "sample", "--boxes", str(boxes)]) == 2
    assert "expected a JSON list" in capsys.readouterr().err


def test_ap_protocol_without_boxes_says_how_to_get_them(capsys, tmp_path):
    assert (
        main(["run", "lvis-vitdet", "--model", "box-fill", "--data", "sample", "--out", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err
    assert "--boxes" in err and "evalsuite download boxes lvis-vitdet" in err and "make-boxes" in err


def test_max_dets_keeps_the_highest_scores(tmp_path):
    dets = _some_dets(1)[0]
    many = [dict(dets, score=float(s), bbox=[5 + s, 5, 20, 20]) for s in np.linspace(0.01, 0.99, 130)]
    (o,) = run(
        RunConfig(
            ["coco-vitdet"],
            "box-fill",
            data="sample",
            boxes=_write(tmp_path / "m.json", many),
            out=tmp_path,
            progress=False,
            limit=1,
        )
    )
    assert o.record.to_json()["counts"]["skipped"] == {"over_max_dets": 30}
    kept = json.loads((o.folder / "segm_results.json").read_text())
    assert len(kept) == 100 and min(r["score"] for r in kept) == pytest.approx(
        np.linspace(0.01, 0.99, 130)[30]
    )


class _ThreeMasks(Runner):
    """Fake model: three nested square masks per box with fixed predicted IoUs; records its calls."""

    prompt_kinds = frozenset({"box"})
    takes_mask_prompt = True

    def __init__(self):
        self.calls = []

    def set_image(self, image):
        self.hw = image.shape[:2]

    def predict(self, boxes=None, points=None, point_labels=None, multimask=True, mask_input=None):
        self.calls.append({"multimask": multimask, "mask_input": mask_input})
        n, (h, w) = len(boxes), self.hw
        masks = torch.zeros(n, 3, h, w, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes).astype(int)):
            masks[i, 0, y0:y1, x0:x1] = True  # exactly the box
            masks[i, 1, y0 : y0 + 2, x0 : x0 + 2] = True  # tiny
            masks[i, 2] = True  # whole image
        scores = torch.tensor([[0.1, 0.5, 0.9]]).repeat(n, 1)
        logits = torch.arange(3.0).view(1, 3, 1, 1).expand(n, 3, 4, 4).clone()
        if not multimask:
            return Prediction(masks[:, :1], scores[:, :1], logits[:, :1])
        return Prediction(masks, scores, logits)


def _ap_task(tmp_path, **options) -> tuple[APTask, MaskCache]:
    reader = locate("coco", "sample").open()
    image_id = reader.image_ids()[0]
    dets = [
        {
            "image_id": image_id,
            "category_id": next(iter(reader.categories)),
            "bbox": [8, 6, 20, 10],
            "score": 0.9,
        }
    ]
    ctx = TaskContext(reader=reader, image_ids=[image_id], boxes=_write(tmp_path / "d.json", dets))
    return APTask(get_protocol("coco-vitdet").with_options(options), ctx), MaskCache(reader.sample(image_id))


@pytest.mark.parametrize(("choice", "index"), [("score", 2), ("box_iou", 0), ("single", 0)])
def test_mask_choice_rules(choice, index, tmp_path):
    task, cache = _ap_task(tmp_path, mask_choice=choice)
    runner = _ThreeMasks()
    runner.set_image(np.zeros((cache.sample.height, cache.sample.width, 3), np.uint8))
    (rec,), _ = task.run_image(runner, cache)
    assert rec.mask_index == index
    assert runner.calls[0]["multimask"] is (choice != "single")


def test_refine_feeds_the_chosen_low_res_logits_back_with_the_box(tmp_path):
    task, cache = _ap_task(tmp_path, refine=1)
    runner = _ThreeMasks()
    runner.set_image(np.zeros((cache.sample.height, cache.sample.width, 3), np.uint8))
    task.run_image(runner, cache)
    first, second = runner.calls
    assert first["mask_input"] is None and second["multimask"] is False
    assert torch.equal(second["mask_input"], torch.full((1, 1, 4, 4), 2.0))  # logits of the most confident


def test_refine_is_refused_for_models_without_a_mask_prompt(tmp_path, capsys):
    with pytest.raises(UnsupportedPromptError, match="no mask prompt"):
        APTask.check_runner(get_protocol("coco-vitdet").with_options({"refine": 1}), build_model("box-fill"))
    with pytest.raises(InputError, match="oracle"):
        _ap_task(tmp_path, mask_choice="oracle")


def test_ap_run_resumes_to_the_same_results(tmp_path, monkeypatch, exact_boxes):
    cfg = RunConfig(["lvis-vitdet"], "box-fill", data="sample", boxes=exact_boxes["lvis"], progress=False)
    (ref,) = run(RunConfig(**{**cfg.__dict__, "out": tmp_path / "a"}))
    hook = SetImageHook(monkeypatch, interrupt_after=5)
    resumed_cfg = RunConfig(**{**cfg.__dict__, "out": tmp_path / "b"})
    with pytest.raises(KeyboardInterrupt):
        run(resumed_cfg)
    hook.restore()
    (again,) = run(resumed_cfg)
    assert (ref.folder / "segm_results.json").read_text() == (again.folder / "segm_results.json").read_text()
    assert ref.record.to_json()["metrics"] == again.record.to_json()["metrics"]


@pytest.fixture
def file_server(tmp_path):
    with loopback_server(tmp_path / "served") as state:
        yield state.root, state.url


def test_download_boxes_records_the_sha256_on_first_download(file_server, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))
    root, url = file_server
    name = BOX_FILES["coco-vitdet"].filename
    (root / name).write_text(json.dumps(_some_dets(2)))
    path = download_boxes("coco-vitdet", base_url=url, progress=False)
    assert path.read_text() == (root / name).read_text()
    recorded = json.loads((path.parent / "sha256.json").read_text())[name]
    path.write_text("[]")  # tampered afterwards
    with pytest.raises(InputError, match="recorded at first use"):
        download_boxes("coco-vitdet", base_url=url, progress=False)
    path.unlink()
    (root / name).write_text("[]")  # the server now serves another file
    with pytest.raises(Exception, match="SHA-256"):
        download_boxes("coco-vitdet", base_url=url, progress=False)
    assert len(recorded["sha256"]) == 64 and recorded["how"] == "first use"  # a mirror: not the official file
