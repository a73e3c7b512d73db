"""Images batched through the encoder, full-size masks made only for the chosen output.

Batching and lazy upscaling are speed-ups only: they must not change a single record. On the CPU the
batched embeddings are bitwise those of one image at a time (checked here with a 1e-6 tolerance so a
different BLAS cannot fail it spuriously; the records must still be byte-identical).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SetImageHook

from evalsuite.data.images import load_rgb
from evalsuite.data.locate import locate
from evalsuite.engine import RunConfig, run
from evalsuite.engine.loader import batched, iter_images
from evalsuite.models import build_model
from evalsuite.models.base import Prediction
from evalsuite.models.weights import save_official_format

MODELS = ["efficientsam-ti", "mobilesam"]


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    reader = locate("coco", "sample", None, None).open()
    out = []
    for image_id in reader.image_ids()[:3]:
        s = reader.sample(image_id)
        out.append(load_rgb(s.path, (s.height, s.width), image_id))
    return out


def _runner(name: str, fill):
    runner = build_model(name)
    fill.fill_module(runner.model)
    return runner


def _embedding(runner) -> torch.Tensor:
    return (runner.image_embedding).clone()


@pytest.mark.parametrize("name", MODELS)
def test_a_batch_of_images_embeds_like_one_at_a_time(name, fill, images):
    runner = _runner(name, fill)
    singles = []
    for image in images:
        runner.set_image(image)
        singles.append(_embedding(runner))
    transform = runner.image_transform()
    runner.set_images([transform(image) for image in images])
    boxes = np.array([[10.0, 20.0, 200.0, 300.0], [50.0, 60.0, 120.0, 90.5]])
    for k, image in enumerate(images):
        runner.use_image(k)
        torch.testing.assert_close(_embedding(runner), singles[k], rtol=0, atol=1e-6)
        # sizes travel with each image of the batch: masks come back at that image's size
        assert runner.predict(boxes=boxes).masks.shape[-2:] == image.shape[:2]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("multimask", [True, False])
def test_select_upscales_exactly_what_the_full_masks_hold(name, multimask, fill, images):
    runner = _runner(name, fill)
    runner.set_image(images[0])
    boxes = np.array([[10.0, 20.0, 200.0, 300.0], [50.0, 60.0, 120.0, 90.5], [0.0, 0.0, 640.0, 480.0]])
    lazy = runner.predict(boxes=boxes, multimask=multimask)
    chosen = lazy.iou_predictions.argmax(dim=1)
    selected = lazy.select(chosen)  # before the full masks exist: upscales 3 outputs, not 3×M
    rows = torch.arange(len(boxes))
    assert torch.equal(selected, lazy.masks[rows, chosen])
    assert lazy.masks.shape == (3, 3 if multimask else 1, *images[0].shape[:2])


def test_a_prediction_needs_masks_or_a_way_to_make_them():
    with pytest.raises(TypeError, match="masks"):
        Prediction(iou_predictions=torch.ones(1, 1))
    eager = Prediction(torch.zeros(2, 3, 4, 5, dtype=torch.bool), torch.rand(2, 3))
    assert eager.select(torch.tensor([2, 0])).shape == (2, 4, 5) and eager.num_outputs == 3


@pytest.mark.parametrize("items, size, expected", [(5, 2, [2, 2, 1]), (4, 4, [4]), (0, 3, []), (3, 8, [3])])
def test_batched_keeps_order_and_every_item(items, size, expected):
    out = list(batched(range(items), size))
    assert [len(b) for b in out] == expected and [x for b in out for x in b] == list(range(items))


def _logs(folder: Path) -> dict[str, str]:
    return {n: (folder / n).read_text() for n in ("instances.jsonl", "images.jsonl")}


@pytest.mark.slow
def test_image_batches_give_byte_identical_records(fill, tmp_path, monkeypatch):
    """One image per encoder pass against three: same logs and metrics, fewer encoder passes."""
    name = "efficientsam-ti"
    ckpt = save_official_format(name, _runner(name, fill).model.state_dict(), tmp_path)
    protocols = ["coco-box", "coco-1click"]
    outcomes, passes = {}, {}
    for batch in (1, 3):
        hook = SetImageHook(monkeypatch)
        cfg = RunConfig(
            protocols,
            name,
            data="sample",
            limit=4,
            checkpoint=str(ckpt),
            out=tmp_path / f"batch{batch}",
            progress=False,
            workers=0,
            image_batch=batch,
        )
        outcomes[batch] = run(cfg)
        passes[batch] = hook.batches
        hook.restore()
    assert passes == {1: [1] * 4, 3: [3, 1]}  # every image embedded once: a full and a partial batch
    for one, three in zip(outcomes[1], outcomes[3], strict=True):
        assert _logs(one.folder) == _logs(three.folder)
        assert one.record.to_json()["metrics"] == three.record.to_json()["metrics"]
        assert json.loads((three.folder / "record.json").read_text())["execution"]["image_batch"] == 3


def test_runners_without_batching_fall_back_to_one_image_at_a_time(tmp_path):
    """box-fill implements only set_image(): a batch of 4 must still give the batch-1 logs."""
    kw = dict(data="sample", progress=False, workers=0)
    a = run(RunConfig(["coco-box", "lvis-box"], "box-fill", out=tmp_path / "a", image_batch=1, **kw))
    b = run(RunConfig(["coco-box", "lvis-box"], "box-fill", out=tmp_path / "b", image_batch=4, **kw))
    for x, y in zip(a, b, strict=True):
        assert _logs(x.folder) == _logs(y.folder)


@pytest.mark.parametrize("name", ["mobilesam", "efficientsam-ti"])
def test_decode_workers_apply_the_runners_image_transform(name):
    """The transform is pickled into the worker processes and gives what it gives in-process."""
    reader = locate("coco", "sample", None, None).open()
    ids = reader.image_ids()[:2]
    transform = build_model(name).image_transform()
    here = list(iter_images(reader, ids, workers=0, transform=transform))
    there = list(iter_images(reader, ids, workers=1, transform=transform))
    for (s0, a, _), (s1, b, _) in zip(here, there, strict=True):
        assert s0.image_id == s1.image_id and type(a) is type(b)
        assert torch.equal(a.pixels, b.pixels) and a.pixels.dtype == torch.uint8


def test_use_image_outside_the_last_batch_is_a_clear_error():
    runner = build_model("mobilesam")
    runner.set_images([])  # a batch of unreadable images only
    with pytest.raises(RuntimeError, match="batch has 0 image"):
        runner.use_image(0)


def test_the_attention_form_is_reported_for_the_record(monkeypatch):
    from evalsuite.models.nn.sam_image_encoder import Attention

    assert build_model("mobilesam").execution_notes() == {}  # TinyViT: no relative-position bias
    vit = build_model("sam-vit-b")
    assert vit.execution_notes() == {"rel_pos_attention": "dense_mask"}  # the CPU default
    monkeypatch.setattr(Attention, "fold_rel_pos", True)
    assert vit.execution_notes() == {"rel_pos_attention": "folded"}


def _damaged_copy(tmp_path: Path, bad_positions: list[int]) -> Path:
    """The sample COCO set in the real layout, with the images at ``bad_positions`` truncated."""
    import shutil

    from evalsuite.data.locate import sample_root

    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copytree(sample_root() / "val2017", root / "val2017")
    ann = sample_root() / "annotations" / "instances_val2017.json"
    shutil.copy(ann, root / "annotations")
    images = json.loads(ann.read_text())["images"]
    for i in bad_positions:
        path = root / "val2017" / images[i]["file_name"]
        path.write_bytes(path.read_bytes()[:200])
    return root


@pytest.mark.parametrize("bad", [[1], [0, 1]])
def test_unreadable_images_inside_a_batch_are_skipped_like_alone(tmp_path, bad):
    """A bad image after a good one, and a batch that is all bad: the logs equal those of batch 1."""
    root = _damaged_copy(tmp_path, bad)
    logs = []
    for batch in (1, 2, 3):
        cfg = RunConfig(
            ["coco-box"],
            "oracle",
            data_root=root,
            limit=5,
            out=tmp_path / f"b{batch}",
            progress=False,
            workers=0,
            image_batch=batch,
            skip_bad=True,
        )
        (outcome,) = run(cfg)
        assert outcome.record.to_json()["counts"]["skipped"]["bad_image"] == len(bad)
        logs.append(_logs(outcome.folder))
    assert logs[0] == logs[1] == logs[2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_decode_workers_hand_over_pinned_memory_on_cuda():
    reader = locate("coco", "sample", None, None).open()
    transform = build_model("mobilesam").image_transform()
    items = list(iter_images(reader, reader.image_ids()[:2], workers=1, transform=transform, pin_memory=True))
    assert all(image.pixels.is_pinned() for _, image, _ in items)


def test_gpu_out_of_memory_halves_the_image_batch_and_loses_nothing(tmp_path, monkeypatch):
    """A batch that does not fit is retried in halves; the logs equal a run that never ran out."""
    from evalsuite.engine import naming as evaluator

    real_build = evaluator.build_model

    def build(*args, **kwargs):
        runner = real_build(*args, **kwargs)
        original = runner.set_images

        def set_images(images):
            if len(images) > 2:  # pretend a GPU that holds two images at a time
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            original(images)

        runner.set_images = set_images
        return runner

    kw = dict(data="sample", limit=7, progress=False, workers=0)
    ref = run(RunConfig(["coco-box"], "box-fill", out=tmp_path / "ref", image_batch=1, **kw))
    monkeypatch.setattr(evaluator, "build_model", build)
    (got,) = run(RunConfig(["coco-box"], "box-fill", out=tmp_path / "oom", image_batch=8, **kw))
    assert _logs(got.folder) == _logs(ref[0].folder)
    assert got.record.to_json()["execution"]["image_batch"] == 2
    assert got.record.to_json()["execution"]["image_batch_requested"] == 8


def test_gpu_out_of_memory_on_one_image_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from evalsuite.cli import main
    from evalsuite.engine import naming as evaluator

    real_build = evaluator.build_model

    def build(*args, **kwargs):
        runner = real_build(*args, **kwargs)

        def set_images(images):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

        runner.set_images = set_images
        return runner

    monkeypatch.setattr(evaluator, "build_model", build)
    args = [
        "run",
        "coco-box",
        "--model",
        "box-fill",
        "--data",
        "sample",
        "--out",
        str(tmp_path),
        "--image-batch",
        "2",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "ran out of memory embedding a single image" in err and "Traceback" not in err
