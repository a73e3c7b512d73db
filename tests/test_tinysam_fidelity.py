"""TinySAM against the official TinySAM code, through ../shared/fidelity.

TinySAM's float network is MobileSAM's (same keys, same code); what is its own is the predictor, which
always returns masks 1..3. The golden holds only those (``*__mm1__*``) arrays, checked with the shared
limits; a single-mask request is refused.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import require_shared
from golden_arrays import load_fidelity
from test_sam_fidelity import GoldenRun, _max_abs

from evalsuite.errors import InputError
from evalsuite.models import get_spec
from evalsuite.models.sam import build_sam_model
from evalsuite.models.tinysam import TinySamRunner

pytestmark = pytest.mark.shared

PROMPTS = ("box", "point1", "points3", "box_point")


@pytest.fixture(scope="module")
def fidelity() -> SimpleNamespace:
    return load_fidelity(require_shared("fidelity"))


@pytest.fixture(scope="module")
def run(fidelity) -> GoldenRun:
    r = GoldenRun(fidelity, "tinysam")
    assert isinstance(r.runner, TinySamRunner)
    return r


def test_encoder_input_and_embedding_match_golden(run, fidelity):
    g, tol = run.golden, fidelity.tolerances
    x = run.runner.encoder_input(run.image)
    assert list(x.shape) == list(g["encoder_input__shape"])
    idx = g["encoder_input__sample_idx"]
    assert _max_abs(x.reshape(-1)[idx], g["encoder_input__sample"]) <= tol["encoder_input__sample"]
    emb = run.runner.image_embedding
    assert (
        _max_abs(emb.reshape(-1)[g["embedding__sample_idx"]], g["embedding__sample"])
        <= tol["embedding__sample"]
    )
    assert _max_abs(emb.mean(dim=(0, 2, 3)), g["embedding__channel_mean"]) <= tol["embedding__channel_mean"]
    assert _max_abs(emb.mean(dim=(0, 1)), g["embedding__spatial_mean"]) <= tol["embedding__spatial_mean"]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_prediction_matches_golden(run, fidelity, prompt):
    g, tol, key = run.golden, fidelity.tolerances, f"{prompt}__mm1__"
    assert f"{prompt}__mm0__iou" not in g.files  # the official predictor has no single-mask mode
    kw = run.prompt_kwargs(prompt)
    pred = run.runner.predict(multimask=True, **kw)
    assert pred.masks.dtype == torch.bool and pred.masks.shape == (1, 3, 480, 640)
    assert _max_abs(pred.low_res_logits[0], g[key + "low_res_logits"]) <= tol["low_res_logits"]
    assert _max_abs(pred.iou_predictions[0], g[key + "iou"]) <= tol["iou"]
    want = run.fill.unpack_mask(g[key + "masks_packed"], g[key + "masks_shape"])
    flipped = float((pred.masks[0].numpy() != want).mean())
    assert flipped <= tol["masks_packed"], f"{flipped:.2e} of the mask pixels differ"
    logits = run.runner.predict(multimask=True, return_logits=True, **kw).masks[0].reshape(-1)
    sample_tol = tol["mask_logits_sample"]
    assert _max_abs(logits[g[key + "mask_logits_sample_idx"]], g[key + "mask_logits_sample"]) <= sample_tol


def test_single_mask_is_refused_in_one_line(run):
    with pytest.raises(InputError, match=r"tinysam: .*no single-mask output.*mask_choice=score") as e:
        run.runner.predict(multimask=False, boxes=np.array([[200.0, 120.0, 420.0, 330.0]]))
    assert "\n" not in str(e.value)


def test_mask_input_is_taken_with_the_multimask_output(run):
    """The official predict() takes mask_input (SAM's refinement input) and still returns masks 1..3."""
    kw = {"points": np.array([[[300.0, 220.0]]]), "point_labels": np.array([[1]])}
    first = run.runner.predict(**kw)
    refined = run.runner.predict(mask_input=first.low_res_logits[:, :1], **kw)
    assert refined.low_res_logits.shape == (1, 3, 256, 256)
    assert _max_abs(refined.low_res_logits, first.low_res_logits) > 1e-3


def test_state_dict_equals_manifest_which_is_mobilesams(fidelity):
    manifests = {
        n: json.loads((fidelity.root / "manifests" / f"{n}.json").read_text())
        for n in ("tinysam", "mobilesam")
    }
    want = {k: (v["shape"], v["dtype"]) for k, v in manifests["tinysam"]["keys"].items()}
    assert want == {k: (v["shape"], v["dtype"]) for k, v in manifests["mobilesam"]["keys"].items()}
    with torch.device("meta"):
        model = build_sam_model("vit_t")
    got = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()}
    assert got == want
    total = sum(p.numel() for p in model.parameters())
    assert total == manifests["tinysam"]["total_params"] == get_spec("tinysam").parameters


def test_spec_facts():
    spec = get_spec("tinysam")
    assert spec.weights is not None and spec.weights.filename == "tinysam_42.3.pth"
    assert spec.weights.url == "https://github.com/xinghaochen/TinySAM/releases/download/3.0/tinysam_42.3.pth"
    assert spec.licence == "Apache-2.0" and spec.verification.startswith("golden")


@pytest.mark.heavy
def test_cli_smoke_run_with_random_weights(tmp_path, monkeypatch, capsys):
    """Not in CI (the family's representative smoke run is light-hq-sam's); `pytest -m heavy`."""
    from evalsuite.cli import main

    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))
    out = tmp_path / "runs"
    argv = [
        "run",
        "coco-box",
        "--model",
        "tinysam",
        "--data",
        "sample",
        "--weights",
        "random",
        "--limit",
        "1",
    ]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    record = json.loads((out / "tinysam+random0+limit1" / "coco-box" / "record.json").read_text())
    assert record["model"]["weights"] == "random:0" and 0.0 <= record["metrics"]["mIoU"] <= 100.0
