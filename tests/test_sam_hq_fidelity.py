"""SAM-HQ ViT-B/L/H and Light HQ-SAM against the official sam-hq code, through ../shared/fidelity.

The goldens (sam-hq-vit-b, light-hq-sam) are the official ``SamPredictor`` outputs on the shared fill
weights (hq_token_only=False, multimask True and False), the manifests the official key layouts of all four.
SAM-HQ logits are ~50× larger than SAM's under the fill, so the logit limit is 1e-3 absolute
(NEW_MODELS3.md §5: the official code's own 1-vs-2-thread noise is 1.9e-4 there); IoU, embedding and mask
limits are the shared ones.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import require_shared
from golden_arrays import load_fidelity
from test_sam_fidelity import GoldenRun, _max_abs

from evalsuite.cli import main
from evalsuite.errors import InputError
from evalsuite.models import build_model, get_spec
from evalsuite.models.nn.sam_hq_decoder import HQ_INDEX, MaskDecoderHQ
from evalsuite.models.sam_hq import SamHQModel, SamHQRunner, build_sam_hq_model

pytestmark = pytest.mark.shared

VARIANTS = {
    "sam-hq-vit-b": "vit_b",
    "sam-hq-vit-l": "vit_l",
    "sam-hq-vit-h": "vit_h",
    "light-hq-sam": "vit_tiny",
}
#: NEW_MODELS3.md §5: absolute limit on low-res and full-res logits of the HQ models
HQ_LOGIT_TOL = 1e-3
# sam-hq-vit-b's encoder takes ~20-40 s on two CPU cores
GOLDEN_MODELS = [pytest.param("sam-hq-vit-b", marks=pytest.mark.slow), "light-hq-sam"]
PROMPTS = ("box", "point1", "points3", "box_point")


@pytest.fixture(scope="module")
def fidelity() -> SimpleNamespace:
    return load_fidelity(require_shared("fidelity"))


@pytest.fixture(scope="module")
def golden_run(fidelity):
    """Build, fill and encode each model once per module (lazily, so -m 'not slow' skips ViT-B)."""
    cache: dict[str, GoldenRun] = {}

    def get(name: str) -> GoldenRun:
        if name not in cache:
            cache[name] = GoldenRun(fidelity, name)
            assert isinstance(cache[name].runner, SamHQRunner)
        return cache[name]

    return get


# -- goldens ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_encoder_input_and_embedding_match_golden(golden_run, fidelity, name):
    run = golden_run(name)
    g, tol = run.golden, fidelity.tolerances
    x = run.runner.encoder_input(run.image)
    assert list(x.shape) == list(g["encoder_input__shape"])
    idx = g["encoder_input__sample_idx"]
    assert _max_abs(x.reshape(-1)[idx], g["encoder_input__sample"]) <= tol["encoder_input__sample"]
    emb = run.runner.image_embedding
    assert list(emb.shape) == list(g["embedding__shape"])
    assert (
        _max_abs(emb.reshape(-1)[g["embedding__sample_idx"]], g["embedding__sample"])
        <= tol["embedding__sample"]
    )
    assert _max_abs(emb.mean(dim=(0, 2, 3)), g["embedding__channel_mean"]) <= tol["embedding__channel_mean"]
    assert _max_abs(emb.mean(dim=(0, 1)), g["embedding__spatial_mean"]) <= tol["embedding__spatial_mean"]


@pytest.mark.parametrize("mm", [1, 0])
@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_prediction_matches_golden(golden_run, fidelity, name, prompt, mm):
    """One mask per prompt in both modes (best-IoU SAM token + HQ mask, or token 0 + HQ mask)."""
    run = golden_run(name)
    g, tol, key = run.golden, fidelity.tolerances, f"{prompt}__mm{mm}__"
    kw = run.prompt_kwargs(prompt)
    pred = run.runner.predict(multimask=bool(mm), **kw)
    assert pred.masks.dtype == torch.bool and pred.masks.shape == (1, 1, 480, 640)
    assert pred.iou_predictions.shape == (1, 1) and pred.low_res_logits.shape == (1, 1, 256, 256)
    assert _max_abs(pred.low_res_logits[0], g[key + "low_res_logits"]) <= HQ_LOGIT_TOL
    assert _max_abs(pred.iou_predictions[0], g[key + "iou"]) <= tol["iou"]
    want = run.fill.unpack_mask(g[key + "masks_packed"], g[key + "masks_shape"])
    flipped = float((pred.masks[0].numpy() != want).mean())
    assert flipped <= tol["masks_packed"], f"{flipped:.2e} of the mask pixels differ"
    logits = run.runner.predict(multimask=bool(mm), return_logits=True, **kw).masks[0].reshape(-1)
    assert _max_abs(logits[g[key + "mask_logits_sample_idx"]], g[key + "mask_logits_sample"]) <= HQ_LOGIT_TOL


# -- the official output selection and hq_token_only (Light HQ-SAM: the cheap encoder) -------------------
def _all_outputs(runner: SamHQRunner, kw: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's five masks (SAM's four, HQ) and four IoUs for one prompt set, before selection."""
    image = runner.current
    pts, box_t, mask_t = runner._prompt_tensors(
        kw.get("boxes"), kw.get("points"), kw.get("point_labels"), None
    )
    with torch.inference_mode():
        sparse, dense = runner.model.prompt_encoder(points=pts, boxes=box_t, masks=mask_t)
        pe = runner.model.prompt_encoder.get_dense_pe()
        return runner.hq_model.hq_decoder.predict_masks_hq(
            image.features, pe, sparse, dense, image.hq_features
        )


@pytest.mark.parametrize("prompt", PROMPTS)
def test_output_is_the_selected_sam_mask_plus_the_hq_mask(golden_run, fidelity, prompt):
    """mm1 = best of tokens 1..3 (by IoU) + HQ, mm0 = token 0 + HQ, hq_token_only = HQ alone (both modes)."""
    run = golden_run("light-hq-sam")
    runner, g, kw = run.runner, run.golden, run.prompt_kwargs(prompt)
    masks, iou = _all_outputs(runner, kw)
    best = int(iou[0, 1:4].argmax()) + 1
    assert float(iou[0, best]) == pytest.approx(
        float(g[f"{prompt}__mm1__iou"][0]), abs=fidelity.tolerances["iou"]
    )
    assert float(iou[0, 0]) == pytest.approx(
        float(g[f"{prompt}__mm0__iou"][0]), abs=fidelity.tolerances["iou"]
    )
    hq = masks[0, HQ_INDEX]
    for mm, token in ((1, best), (0, 0)):
        assert _max_abs(masks[0, token] + hq, g[f"{prompt}__mm{mm}__low_res_logits"][0]) <= HQ_LOGIT_TOL
    runner.hq_token_only = True
    try:
        only = [runner.predict(multimask=bool(mm), **kw) for mm in (1, 0)]
    finally:
        runner.hq_token_only = False
    assert torch.equal(only[0].low_res_logits, only[1].low_res_logits)  # the HQ mask ignores the mode
    assert _max_abs(only[0].low_res_logits[0, 0], hq) == 0.0
    assert float(only[0].iou_predictions[0, 0]) == float(iou[0, best])  # the IoU stays the SAM token's
    assert _max_abs(only[1].low_res_logits[0], g[f"{prompt}__mm1__low_res_logits"]) > 0.1  # not the default


def test_hq_token_only_is_a_model_option_with_the_official_default():
    for name in VARIANTS:
        decl = get_spec(name).options["hq_token_only"]
        assert decl.default is False and decl.column is False and decl.help
    runner = get_spec("light-hq-sam").build()
    assert isinstance(runner, SamHQRunner) and runner.hq_token_only is False
    assert build_model("light-hq-sam", hq_token_only=True).hq_token_only is True
    with pytest.raises(InputError, match="hq_token_only must be bool"):
        build_model("light-hq-sam", hq_token_only="yes")
    with pytest.raises(InputError, match="has no option masks"):
        build_model("light-hq-sam", masks=3)


def test_batched_prompts_equal_one_by_one(golden_run, fidelity):
    """The best-IoU token is chosen per prompt row."""
    r = golden_run("light-hq-sam").runner
    boxes = np.array([[200, 120, 420, 330], [60, 280, 230, 430], [400, 250, 560, 410.5]])
    points = np.array([[[300, 220], [150, 380]], [[480, 330], [10, 10]], [[140, 400], [479.5, 639]]])
    labels = np.array([[1, 0], [1, -1], [1, 1]])
    for kw in ({"boxes": boxes}, {"points": points, "point_labels": labels}):
        together = r.predict(multimask=True, **kw)
        assert together.low_res_logits.shape == (3, 1, 256, 256)
        for i in range(len(boxes)):
            alone = r.predict(multimask=True, **{k: v[i : i + 1] for k, v in kw.items()})
            assert _max_abs(together.low_res_logits[i], alone.low_res_logits[0]) <= HQ_LOGIT_TOL
            assert _max_abs(together.iou_predictions[i], alone.iou_predictions[0]) <= 1e-6


def test_mask_input_is_taken(golden_run):
    r = golden_run("light-hq-sam").runner
    assert r.takes_mask_prompt
    kw = {"points": np.array([[[300.0, 220.0]]]), "point_labels": np.array([[1]])}
    first = r.predict(multimask=False, **kw)
    refined = r.predict(multimask=False, mask_input=first.low_res_logits / 50, **kw)
    assert refined.masks.shape == first.masks.shape and torch.isfinite(refined.low_res_logits).all()
    assert _max_abs(refined.low_res_logits, first.low_res_logits) > 1e-3


@pytest.mark.slow
def test_batch_of_images_equals_one_at_a_time(golden_run, fidelity):
    """The HQ feature maps are made per batch of images: each equals the one-image result."""
    run = golden_run("light-hq-sam")
    r = run.runner
    alone = r.predict(boxes=np.array([[200, 120, 420, 330]]))
    other = np.ascontiguousarray(run.image[::-1])
    r.set_images([r.image_transform()(other), r.image_transform()(run.image)])
    r.use_image(1)
    together = r.predict(boxes=np.array([[200, 120, 420, 330]]))
    assert _max_abs(together.low_res_logits, alone.low_res_logits) <= HQ_LOGIT_TOL
    assert _max_abs(together.iou_predictions, alone.iou_predictions) <= fidelity.tolerances["iou"]
    r.set_image(run.image)  # leave the module's shared run as it was


# -- key layout and strict loading -----------------------------------------------------------------------
def _manifest(fidelity, name: str) -> dict:
    return json.loads((fidelity.root / "manifests" / f"{name}.json").read_text())


@pytest.mark.parametrize("name", list(VARIANTS))
def test_state_dict_equals_manifest(fidelity, name):
    manifest = _manifest(fidelity, name)
    with torch.device("meta"):  # shapes only: ViT-H would need 2.6 GB
        model = build_sam_hq_model(VARIANTS[name])
    sd = model.state_dict()
    got = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()}
    want = {k: (v["shape"], v["dtype"]) for k, v in manifest["keys"].items()}
    assert sorted(set(want) - set(got)) == [], "missing keys"
    assert sorted(set(got) - set(want)) == [], "unexpected keys"
    assert got == want
    assert list(sd) == list(manifest["keys"])  # the official registration order, too
    buffers = {k for k, v in manifest["keys"].items() if v["kind"] == "buffer"}
    assert buffers == set(manifest["persistent_buffers"])
    total = sum(p.numel() for p in model.parameters())
    assert total == manifest["total_params"] == get_spec(name).parameters
    assert isinstance(model.mask_decoder, MaskDecoderHQ)


def test_unused_keys_are_the_mask_encoder_and_the_classifier(fidelity):
    """What the official image predictor never reads: modules the network keeps (so files load strictly)."""
    prefixes = {"sam-hq-vit-b": ("prompt_encoder.mask_downscaling.",)}
    prefixes["light-hq-sam"] = (*prefixes["sam-hq-vit-b"], "image_encoder.head.", "image_encoder.norm_head.")
    for name, allowed in prefixes.items():
        unused = [
            k
            for k in _manifest(fidelity, name)["unused_by_image_predictor"]
            if "num_batches_tracked" not in k
        ]
        assert unused and all(k.startswith(allowed) for k in unused), name


@pytest.fixture(scope="module")
def official_tiny(fidelity, tmp_path_factory) -> Path:
    """A Light HQ-SAM file in the official layout (raw state dict of the fill), under the official name."""
    with torch.device("meta"):
        reference = build_sam_hq_model("vit_tiny").state_dict()
    folder = tmp_path_factory.mktemp("hq")
    path = folder / "sam_hq_vit_tiny.pth"
    torch.save({k: torch.as_tensor(v) for k, v in fidelity.fill.filled_state_dict(reference).items()}, path)
    return path


def test_official_layout_loads_strictly(official_tiny):
    runner = get_spec("light-hq-sam").build(checkpoint=str(official_tiny))
    assert isinstance(runner.model, SamHQModel) and not runner.model.training
    assert runner.checkpoint_sha256 and len(runner.checkpoint_sha256) == 64
    sd = torch.load(official_tiny, weights_only=True)
    key = "mask_decoder.compress_vit_feat.0.weight"
    assert torch.equal(runner.model.state_dict()[key], sd[key])


def test_missing_hq_key_extra_key_and_plain_sam_file_are_refused_by_name(official_tiny, tmp_path):
    sd = torch.load(official_tiny, weights_only=True)
    cases = {
        "missing": (
            {k: v for k, v in sd.items() if k != "mask_decoder.hf_token.weight"},
            r"missing.*hf_token",
        ),
        "extra": (sd | {"mask_decoder.hf_token2.weight": torch.zeros(1)}, r"unexpected.*hf_token2"),
        "plain_sam": (
            {
                k: v
                for k, v in sd.items()
                if not k.startswith(
                    ("mask_decoder.hf_", "mask_decoder.compress_vit_feat.", "mask_decoder.embedding_")
                )
            },
            "plain SAM checkpoint",
        ),
    }
    for label, (state, match) in cases.items():
        path = tmp_path / f"{label}.pth"
        torch.save(state, path)
        with pytest.raises(InputError, match=match):
            get_spec("light-hq-sam").build(checkpoint=str(path))


def test_weights_facts():
    for name, filename in (
        ("sam-hq-vit-b", "sam_hq_vit_b.pth"),
        ("sam-hq-vit-l", "sam_hq_vit_l.pth"),
        ("sam-hq-vit-h", "sam_hq_vit_h.pth"),
        ("light-hq-sam", "sam_hq_vit_tiny.pth"),
    ):
        spec = get_spec(name)
        assert spec.weights is not None and spec.weights.filename == filename
        assert spec.weights.url == f"https://huggingface.co/lkeab/hq-sam/resolve/main/{filename}"
        assert spec.weights.format == "state_dict" and spec.licence == "Apache-2.0"


# -- smoke run through the CLI (the representative model of the family) ----------------------------------
def test_cli_smoke_run_with_random_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))  # an empty cache: nothing to download
    out = tmp_path / "runs"
    argv = ["run", "coco-box", "--model", "light-hq-sam", "--data", "sample", "--weights", "random"]
    assert main([*argv, "--limit", "1", "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    record = json.loads((out / "light-hq-sam+random0+limit1" / "coco-box" / "record.json").read_text())
    assert record["model"]["weights"] == "random:0" and record["counts"]["images"] == 1
    assert math.isfinite(record["metrics"]["mIoU"]) and 0.0 <= record["metrics"]["mIoU"] <= 100.0
    rows = [
        json.loads(x)
        for x in (out / "light-hq-sam+random0+limit1" / "coco-box" / "instances.jsonl")
        .read_text()
        .splitlines()
    ]
    assert rows and all(r["mask_index"] == 0 for r in rows)  # one output per prompt
