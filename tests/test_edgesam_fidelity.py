"""EdgeSAM and EdgeSAM-3x are the official network and predictor: golden outputs, options, key layout.

Why: the official checkpoints cannot be downloaded here. ../shared/fidelity holds the key manifests of
the official builder (so both checkpoints load strictly) and golden outputs of the official code (EdgeSAM
@ 03465ff) run with deterministic weights (``fill.py``) on a synthetic image, with
``num_multimask_outputs`` 3 (mm1) and 1 (mm0). The other values of the predictor's options (4 outputs,
the stability score) are checked against the same goldens: tokens 0..3 are the mm0 token followed by the
mm1 tokens. The network is built, filled and the image embedded once per module (~5 s on two cores).
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import require_shared
from golden_arrays import load_fidelity
from sam_golden import PROMPTS, GoldenCase, max_abs, prompt_kwargs
from torch import nn

from evalsuite.cli import main
from evalsuite.errors import InputError
from evalsuite.models import build_model, get_spec
from evalsuite.models.edgesam import EDGESAM, EDGESAM_3X, EdgeSamRunner, build_edgesam, stability_score
from evalsuite.models.nn.repvit import RepVGGDW, SqueezeExcite
from evalsuite.models.nn.sam_image_encoder import LayerNorm2d

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def fidelity() -> SimpleNamespace:
    return load_fidelity(require_shared("fidelity"))


@pytest.fixture(scope="module")
def case(fidelity) -> GoldenCase:
    return GoldenCase(fidelity, "edgesam")


# -- goldens (num_multimask_outputs = 3 / 1, IoU head) ---------------------------------------------------
def test_encoder_input_matches_golden(case):
    case.check_encoder_input()


def test_embedding_matches_golden(case):
    case.check_embedding()


@pytest.mark.parametrize("mm", [1, 0])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_prediction_matches_golden(case, prompt, mm):
    case.check_prediction(prompt, mm)


def test_golden_arrays_are_all_checked(case):
    assert case.unchecked_arrays() == set()


# -- the official predictor's options ------------------------------------------------------------------
def test_options_are_declared_with_predicts_defaults():
    """SamPredictor.predict(num_multimask_outputs=3, use_stability_score=False); both models, same options."""
    for spec in (EDGESAM, EDGESAM_3X):
        assert spec.resolve_options({}) == {"num_multimask_outputs": 3, "use_stability_score": False}
        assert spec.options["num_multimask_outputs"].choices == (1, 3, 4)
        assert not any(o.column for o in spec.options.values())  # a variant (row), never another column
    with pytest.raises(InputError, match="num_multimask_outputs=2 not one of 1, 3, 4"):
        build_model("edgesam", num_multimask_outputs=2)
    with pytest.raises(InputError, match="use_stability_score must be bool"):
        build_model("edgesam", use_stability_score="yes")
    runner = build_model("edgesam-3x", num_multimask_outputs=4, use_stability_score=True)
    assert isinstance(runner, EdgeSamRunner)
    assert (runner.num_multimask_outputs, runner.use_stability_score) == (4, True)
    plain = EDGESAM.build()  # built without the registry: the same defaults
    assert (plain.num_multimask_outputs, plain.use_stability_score) == (3, False)


@pytest.fixture
def options(case):
    """Set the golden runner's options for one test (same network and embedding), restored afterwards."""
    runner = case.runner
    saved = (runner.num_multimask_outputs, runner.use_stability_score)

    def set_(n: int, stability: bool = False) -> EdgeSamRunner:
        runner.num_multimask_outputs, runner.use_stability_score = n, stability
        return runner

    yield set_
    runner.num_multimask_outputs, runner.use_stability_score = saved


@pytest.mark.parametrize("prompt", PROMPTS)
def test_four_outputs_are_token_0_then_the_multimask_tokens(case, options, prompt):
    pred = options(4).predict(multimask=True, **prompt_kwargs(case.fill, prompt))
    assert pred.low_res_logits.shape == (1, 4, 256, 256) and pred.masks.shape == (1, 4, 480, 640)
    low, iou, masks = pred.low_res_logits[0], pred.iou_predictions[0], pred.masks[0]
    case.check_outputs(f"{prompt}__mm0__", low[:1], iou[:1], masks[:1])
    case.check_outputs(f"{prompt}__mm1__", low[1:], iou[1:], masks[1:])


def test_single_mask_call_is_token_0_whatever_the_option(case, options):
    kw = prompt_kwargs(case.fill, "points3")
    for n in (1, 3, 4):
        single = options(n).predict(multimask=False, **kw)
        case.check_outputs(
            "points3__mm0__", single.low_res_logits[0], single.iou_predictions[0], single.masks[0]
        )
    one = options(1).predict(multimask=True, **kw)  # the official evaluation script's default
    assert one.num_outputs == 1
    case.check_outputs("points3__mm0__", one.low_res_logits[0], one.iou_predictions[0], one.masks[0])


@pytest.mark.parametrize("prompt", ["box", "points3"])
def test_stability_score_replaces_the_iou_head(case, options, prompt):
    """calculate_stability_score(low_res, 0.0, 1.0): (logits > 1).sum / (logits > -1).sum per mask."""
    kw = prompt_kwargs(case.fill, prompt)
    pred = options(4, stability=True).predict(multimask=True, **kw)
    low = case.golden[f"{prompt}__mm1__low_res_logits"]
    low = np.concatenate([case.golden[f"{prompt}__mm0__low_res_logits"], low])
    want = (low > 1.0).sum(axis=(1, 2)) / (low > -1.0).sum(axis=(1, 2))  # from the official logits
    assert max_abs(pred.iou_predictions[0], want) <= 1e-3  # a logit within 1e-4 of ±1 moves it by ~1e-5
    head = options(4, stability=False).predict(multimask=True, **kw)
    assert torch.equal(head.low_res_logits, pred.low_res_logits)  # only the scores change
    assert not torch.allclose(head.iou_predictions, pred.iou_predictions)


def test_stability_score_definition():
    logits = torch.full((1, 2, 4, 4), -5.0)
    logits[0, 0, :2] = 3.0  # 8 pixels > +1, 8 > -1
    logits[0, 0, 2, :2] = 0.5  # 2 more > -1 only
    logits[0, 1, 0, 0] = 1.0  # not > 1 (strict), but > -1
    got = stability_score(logits)
    assert got.dtype == torch.float32
    assert got.tolist() == [[pytest.approx(8 / 10), 0.0]]
    assert torch.isnan(stability_score(torch.full((1, 1, 2, 2), -3.0))).all()  # 0 / 0, as officially


def test_batched_prompts_equal_one_by_one(case, options):
    r = options(4, stability=True)
    boxes = np.array([[200, 120, 420, 330], [60, 280, 230, 430], [400, 250, 560, 410.5]])
    points = np.array([[[300, 220], [150, 380]], [[480, 330], [10, 10]], [[140, 400], [479.5, 639]]])
    labels = np.array([[1, 0], [1, -1], [1, 1]])
    for kw in ({"boxes": boxes}, {"points": points, "point_labels": labels}):
        together = r.predict(**kw)
        for i in range(len(boxes)):
            alone = r.predict(**{k: v[i : i + 1] for k, v in kw.items()})
            assert max_abs(together.low_res_logits[i], alone.low_res_logits[0]) <= 1e-5
            assert max_abs(together.iou_predictions[i], alone.iou_predictions[0]) <= 1e-3


def test_mask_input_is_sams_refinement_input(case):
    r = case.runner
    kw = {"points": np.array([[[300.0, 220.0]]]), "point_labels": np.array([[1]])}
    first = r.predict(multimask=False, **kw)
    refined = r.predict(multimask=False, mask_input=first.low_res_logits, **kw)
    assert refined.masks.shape == first.masks.shape and torch.isfinite(refined.low_res_logits).all()
    assert max_abs(refined.low_res_logits, first.low_res_logits) > 1e-3  # the mask embedding is used


# -- what the goldens cannot see: norms and activations, read off the built model -----------------------
def test_module_counts_equal_the_official_builder(fidelity):
    """The golden records the official model's norm and activation modules: the same here (SE's ReLU is
    functional here, a module there; one per SqueezeExcite). No re-parameterisation: every BN is there."""
    config = json.loads(str(np.load(fidelity.root / "golden" / "edgesam.npz")["meta__config_json"]))
    with torch.device("meta"):
        model = build_edgesam()
    types = Counter(
        (type(m).__name__, getattr(m, "eps", None) or getattr(m, "approximate", None))
        for m in model.modules()
    )
    assert config["norm_modules"] == {
        "torch.BatchNorm2d eps=1e-05": types[("BatchNorm2d", 1e-5)],
        "edge_sam.LayerNorm2d eps=1e-06": types[("LayerNorm2d", 1e-6)],
        "torch.LayerNorm eps=1e-05": types[("LayerNorm", 1e-5)],
    }
    assert sum(isinstance(m, (nn.BatchNorm2d, LayerNorm2d, nn.LayerNorm)) for m in model.modules()) == 120
    assert config["activation_modules (functional calls not counted)"] == {
        "GELU(approximate='none')": types[("GELU", "none")],
        "ReLU(inplace=True)": types[("SqueezeExcite", None)],
        "ReLU()": types[("ReLU", None)],
    }
    dw = [m for m in model.modules() if isinstance(m, RepVGGDW)]
    assert len(dw) == 23 and all(m.bn is None for m in dw)  # EdgeSAM's form: no BatchNorm after the sum
    assert {m.fc1.out_channels for m in model.modules() if isinstance(m, SqueezeExcite)} == {16, 24, 48, 96}


# -- state-dict layout and checkpoints ------------------------------------------------------------------
def _manifest(fidelity: SimpleNamespace, name: str) -> dict:
    return json.loads((fidelity.root / "manifests" / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["edgesam", "edgesam-3x"])
def test_state_dict_equals_manifest(fidelity, name):
    manifest = _manifest(fidelity, name)
    with torch.device("meta"):
        model = build_edgesam()
    sd = model.state_dict()
    got = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()}
    want = {k: (v["shape"], v["dtype"]) for k, v in manifest["keys"].items()}
    assert list(got) == list(want)  # same keys, same order
    assert got == want
    buffers = {k for k, v in manifest["keys"].items() if v["kind"] == "buffer"}
    assert buffers == set(manifest["persistent_buffers"])
    assert {k for k in sd if k not in dict(model.named_parameters())} == buffers
    assert sum(p.numel() for p in model.parameters()) == manifest["total_params"] == get_spec(name).parameters
    # kept for the strict load: the mask encoder (used with a mask prompt) and the BN counters
    unused = set(manifest["unused_by_image_predictor"])
    assert unused <= set(sd)
    assert {k for k in unused if not k.endswith("num_batches_tracked")} == {
        k for k in sd if k.startswith("prompt_encoder.mask_downscaling.")
    }
    assert model.load_state_dict(sd, strict=True)


@pytest.fixture(scope="module")
def official_file(fidelity, tmp_path_factory):
    """The manifest, filled with fill.py's values, saved as the official file is (a raw state dict)."""
    sd = {}
    for key, entry in _manifest(fidelity, "edgesam")["keys"].items():
        dtype = getattr(torch, entry["dtype"])
        sd[key] = torch.from_numpy(fidelity.fill.fill_array(key, entry["shape"], dtype.is_floating_point)).to(
            dtype
        )
    folder = tmp_path_factory.mktemp("edgesam")
    torch.save(sd, folder / "weights.pth")
    return SimpleNamespace(sd=sd, path=folder / "weights.pth", folder=folder)


@pytest.mark.parametrize("spec", [EDGESAM, EDGESAM_3X], ids=lambda s: s.name)
def test_official_layout_checkpoint_loads_strictly(case, official_file, spec):
    runner = spec.build(checkpoint=str(official_file.path))
    assert isinstance(runner, EdgeSamRunner) and not runner.model.training
    assert runner.checkpoint_sha256 and len(runner.checkpoint_sha256) == 64
    loaded = runner.model.state_dict()
    filled = case.runner.model.state_dict()  # fill_module(): the same values, so the golden model
    assert list(loaded) == list(official_file.sd)
    assert all(torch.equal(loaded[k], filled[k]) for k in loaded)


def test_checkpoint_with_wrong_keys_is_refused(official_file):
    sd = dict(official_file.sd)
    del sd["image_encoder.fuse_stage2.weight"]
    sd["image_encoder.features.1.token_mixer.0.bn.weight"] = torch.ones(48)  # RepViT-SAM's RepVGGDW form
    bad = official_file.folder / "bad.pth"
    torch.save(sd, bad)
    with pytest.raises(InputError, match=r"1 missing key\(s\) \['image_encoder\.fuse_stage2\.weight'\]"):
        EDGESAM.build(checkpoint=str(bad))


def test_checkpoint_facts():
    hf = "https://huggingface.co/spaces/chongzhou/EdgeSAM/resolve/main/weights/"
    for spec, filename in ((EDGESAM, "edge_sam.pth"), (EDGESAM_3X, "edge_sam_3x.pth")):
        info = spec.weights
        assert info is not None and info.filename == filename and info.url == hf + filename
        assert info.format == "state_dict" and info.sha256 is None  # none published: recorded on first use
        assert spec.licence.startswith("S-Lab License 1.0") and "non-commercial" in spec.licence
        assert spec.parameters == 9_582_112


# -- smoke: the README's command through the CLI, random weights, offline ---------------------------------
def test_smoke_run_with_random_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))  # empty cache: a download would fail
    out = tmp_path / "runs"
    argv = shlex.split("run coco-box --model edgesam --data sample --weights random --limit 1")
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    record = json.loads((out / "edgesam+random0+limit1" / "coco-box" / "record.json").read_text())
    assert record["model"]["weights"] == "random:0" and record["model"]["checkpoint_sha256"] is None
    assert record["counts"]["images"] == 1 and record["counts"]["instances"] > 0
    assert 0.0 <= record["metrics"]["mIoU"] <= 100.0

    # issue 20: the model's own published numbers stand beside it with --paper-rows (EdgeSAM Tables 2 and 3:
    # annotation boxes and SAM-rule clicks), quoted in italics with their source; the measured random-weight
    # row gets no paper value and no Δ
    capsys.readouterr()
    assert main(["report", str(out), "--table", "4", "--paper-rows"]) == 0
    text = capsys.readouterr().out
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "*76.7* [" in lines["EdgeSAM (EdgeSAM Table 2)"]  # COCO, box_source=ann
    assert "*48.0* [" in lines["EdgeSAM (EdgeSAM Table 3)"]  # COCO, 1 click, click_rule=sam
    assert "[" not in lines["edgesam+random0+limit1"] and "EdgeSAM (Zhou et al." in text
