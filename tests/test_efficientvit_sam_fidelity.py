"""EfficientViT-SAM L0/L1/L2/XL0/XL1 are the official networks: state-dict layout, norms, golden outputs.

Why: the official checkpoints cannot be downloaded here. ../shared/fidelity holds the key manifests of the
official builders (so the checkpoints load strictly) and golden outputs of the official code (L0) run with
deterministic weights (``fill.py``) on a synthetic image, so matching them within the README tolerances
checks the architecture and ``EfficientViTSamPredictor``'s pipeline. The goldens cannot see a decoder
LayerNorm eps of 1e-5 instead of 1e-6, so the eps values and GELU variants are read off the built models.
L0 is built, filled and encoded once per module; the other variants are built on the meta device.
"""

from __future__ import annotations

import json
import pickle
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import require_shared
from golden_arrays import load_fidelity
from torch import nn

from evalsuite.errors import InputError
from evalsuite.models.base import ModelSpec
from evalsuite.models.efficientvit_sam import (
    EFFICIENTVIT_SAM_L0,
    EFFICIENTVIT_SAM_L1,
    EFFICIENTVIT_SAM_L2,
    EFFICIENTVIT_SAM_XL0,
    EFFICIENTVIT_SAM_XL1,
    EfficientViTSamRunner,
)
from evalsuite.models.nn.efficientvit import LiteMLA
from evalsuite.models.nn.efficientvit_sam_net import build_efficientvit_sam
from evalsuite.models.nn.sam_decoder import MaskDecoder
from evalsuite.models.nn.sam_image_encoder import LayerNorm2d

pytestmark = pytest.mark.shared

SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        EFFICIENTVIT_SAM_L0,
        EFFICIENTVIT_SAM_L1,
        EFFICIENTVIT_SAM_L2,
        EFFICIENTVIT_SAM_XL0,
        EFFICIENTVIT_SAM_XL1,
    )
}
VARIANTS = {name: name.removeprefix("efficientvit-sam-") for name in SPECS}
PROMPTS = ("box", "point1", "points3", "box_point")


@pytest.fixture(scope="module")
def fidelity() -> SimpleNamespace:
    """``fill`` and the README's tolerances, imported from ../shared/fidelity."""
    return load_fidelity(require_shared("fidelity"))


def _manifest(fidelity: SimpleNamespace, name: str) -> dict:
    return json.loads((fidelity.root / "manifests" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def l0(fidelity: SimpleNamespace) -> SimpleNamespace:
    """L0 filled with fill.py's weights (eval() after filling, as the goldens), the test image embedded."""
    runner = EFFICIENTVIT_SAM_L0.build()
    assert isinstance(runner, EfficientViTSamRunner)
    fidelity.fill.fill_module(runner.model)
    runner.model.eval()
    image = fidelity.fill.make_image()
    runner.set_image(image)
    with np.load(fidelity.root / "golden" / "efficientvit-sam-l0.npz") as npz:
        golden = {k: npz[k] for k in npz.files}
    return SimpleNamespace(runner=runner, image=image, golden=golden, cache={})


def _prompt_kwargs(fill, prompt: str) -> dict[str, np.ndarray]:
    p = fill.PROMPTS[prompt]
    kw: dict[str, np.ndarray] = {}
    if p["box"] is not None:
        kw["boxes"] = np.array([p["box"]])
    if p["points"] is not None:
        kw["points"], kw["point_labels"] = np.array([p["points"]]), np.array([p["labels"]])
    return kw


def _max_abs(a, b) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return float(np.abs(a.astype(np.float64) - np.asarray(b, dtype=np.float64)).max())


# -- goldens ---------------------------------------------------------------------------------------------
def test_encoder_input_matches_golden(l0, fidelity):
    g, tol = l0.golden, fidelity.tolerances["encoder_input__sample"]
    assert tuple(g["original_size"]) == fidelity.fill.IMAGE_HW == l0.image.shape[:2]
    x = l0.runner.encoder_input(l0.image)
    assert l0.runner.current.input_size == tuple(g["input_size"]) == (768, 1024)  # the prompts' 1024 frame
    assert list(x.shape) == list(g["encoder_input__shape"]) == [1, 3, 512, 512]
    assert _max_abs(x.reshape(-1)[g["encoder_input__sample_idx"]], g["encoder_input__sample"]) <= tol
    for stat in ("mean", "std", "min", "max"):
        assert abs(float(getattr(x.double(), stat)()) - float(g[f"encoder_input__{stat}"])) <= tol, stat


def test_embedding_matches_golden(l0, fidelity):
    g, tol = l0.golden, fidelity.tolerances
    emb = l0.runner.image_embedding
    assert list(emb.shape) == list(g["embedding__shape"])
    assert (
        _max_abs(emb.reshape(-1)[g["embedding__sample_idx"]], g["embedding__sample"])
        <= tol["embedding__sample"]
    )
    assert _max_abs(emb.mean(dim=(0, 2, 3)), g["embedding__channel_mean"]) <= tol["embedding__channel_mean"]
    assert _max_abs(emb.mean(dim=(0, 1)), g["embedding__spatial_mean"]) <= tol["embedding__spatial_mean"]
    for stat in ("mean", "std", "min", "max"):
        got = float(getattr(emb.double(), stat)())
        assert abs(got - float(g[f"embedding__{stat}"])) <= tol["embedding__sample"], stat


@pytest.mark.parametrize("mm", [1, 0])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_prediction_matches_golden(l0, fidelity, prompt, mm):
    g, tol, key = l0.golden, fidelity.tolerances, f"{prompt}__mm{mm}__"
    kw = _prompt_kwargs(fidelity.fill, prompt)
    pred = l0.runner.predict(multimask=bool(mm), **kw)
    n_out = 3 if mm else 1
    assert pred.masks.dtype == torch.bool and tuple(pred.masks.shape) == (1, n_out, 480, 640)
    assert pred.iou_predictions.shape == (1, n_out) and pred.low_res_logits.shape == (1, n_out, 256, 256)
    assert _max_abs(pred.low_res_logits[0], g[key + "low_res_logits"]) <= tol["low_res_logits"]
    assert _max_abs(pred.iou_predictions[0], g[key + "iou"]) <= tol["iou"]  # raw, no sigmoid
    want = fidelity.fill.unpack_mask(g[key + "masks_packed"], g[key + "masks_shape"])
    flipped = float((pred.masks[0].numpy() != want).mean())
    assert flipped <= tol["masks_packed"], f"{flipped:.2e} of the mask pixels differ"
    # Prediction.select upscales one output per prompt: the same masks
    assert torch.equal(pred.select(torch.tensor([n_out - 1])), pred.masks[:, n_out - 1])

    logits = l0.runner.predict(multimask=bool(mm), return_logits=True, **kw).masks[0].reshape(-1)
    sample = logits[g[key + "mask_logits_sample_idx"]]
    assert _max_abs(sample, g[key + "mask_logits_sample"]) <= tol["mask_logits_sample"]


def test_golden_arrays_are_all_checked(l0):
    """Every non-meta golden array is one the tests above compare (a new golden key must get a check)."""
    checked = {"input_size", "original_size", "embedding__channel_mean", "embedding__spatial_mean"}
    for prefix in ("encoder_input", "embedding"):
        checked |= {f"{prefix}__{s}" for s in ("shape", "mean", "std", "min", "max", "sample_idx", "sample")}
    for prompt in PROMPTS:
        for mm in (1, 0):
            k = f"{prompt}__mm{mm}__"
            checked |= {k + s for s in ("low_res_logits", "iou", "masks_shape", "masks_packed")}
            checked |= {k + "mask_logits_sample", k + "mask_logits_sample_idx"}
    assert {k for k in l0.golden if not k.startswith("meta__")} == checked


# -- what the goldens cannot see: norm eps values and activation variants --------------------------------
def _norms_and_acts(model: nn.Module) -> tuple[Counter, Counter]:
    norms: Counter = Counter()
    acts: Counter = Counter()
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, LayerNorm2d)):
            norms[(type(m).__name__, m.eps)] += 1
        elif isinstance(m, nn.GELU):
            acts[f"GELU({m.approximate})"] += 1
        elif isinstance(m, nn.ReLU):
            acts["ReLU"] += 1
    return norms, acts


@pytest.mark.parametrize("name", list(SPECS))
def test_norm_eps_and_activations_are_the_official_ones(fidelity, name):
    """sam_model_zoo.py: set_norm_eps(model, 1e-6) on every LayerNorm/GroupNorm/BatchNorm (incl. SAM's
    two-way transformer); act.py: "gelu" = GELU(tanh) in backbone/neck; SAM's own modules keep exact GELU;
    ops.py LiteMLA: ReLU kernels, eps 1e-15; backbone.py: scales (5,) for "att" (L), (3,) for "att@3" (XL)."""
    with torch.device("meta"):
        model = build_efficientvit_sam(VARIANTS[name])
    manifest = _manifest(fidelity, name)
    n_bn = sum(k.endswith("num_batches_tracked") for k in manifest["keys"])
    norms, _ = _norms_and_acts(model)
    assert norms == {("BatchNorm2d", 1e-6): n_bn, ("LayerNorm", 1e-6): 9, ("LayerNorm2d", 1e-6): 4}
    transformer_norms = [m for m in model.mask_decoder.transformer.modules() if isinstance(m, nn.LayerNorm)]
    assert len(transformer_norms) == 9 and all(m.eps == 1e-6 for m in transformer_norms)
    assert model.image_encoder.norm.eps == 1e-6

    _, encoder_acts = _norms_and_acts(model.image_encoder)
    assert set(encoder_acts) == {"GELU(tanh)", "ReLU"}  # ReLU: the LiteMLA kernels
    _, sam_acts = _norms_and_acts(nn.ModuleList([model.prompt_encoder, model.mask_decoder]))
    assert sam_acts == {"GELU(none)": 4, "ReLU": 2}  # mask encoder + upscaler GELUs, transformer MLP ReLUs

    mlas = [m for m in model.modules() if isinstance(m, LiteMLA)]
    assert mlas and all(m.eps == 1e-15 and isinstance(m.kernel_func, nn.ReLU) and m.dim == 32 for m in mlas)
    assert encoder_acts["ReLU"] == len(mlas)
    scale = 3 if name.startswith("efficientvit-sam-xl") else 5
    assert {tuple(op[0].kernel_size) for m in mlas for op in m.aggreg} == {(scale, scale)}


def test_l0_module_counts_equal_the_official_builders(fidelity):
    """The golden records the official model's norm/activation modules by class and eps: the same here."""
    config = json.loads(
        str(np.load(fidelity.root / "golden" / "efficientvit-sam-l0.npz")["meta__config_json"])
    )
    with torch.device("meta"):
        model = build_efficientvit_sam("l0")
    norms, acts = _norms_and_acts(model)
    assert config["norm_modules"] == {
        "torch.BatchNorm2d eps=1e-06": norms[("BatchNorm2d", 1e-6)],
        "efficientvit.LayerNorm2d eps=1e-06": 1,  # image_encoder.norm
        "segment_anything.LayerNorm2d eps=1e-06": norms[("LayerNorm2d", 1e-6)] - 1,
        "torch.LayerNorm eps=1e-06": norms[("LayerNorm", 1e-6)],
    }
    counted = {k: v for k, v in config.items() if k.startswith("activation_modules")}
    assert list(counted.values()) == [
        {"GELU(approximate='tanh')": acts["GELU(tanh)"], "ReLU": acts["ReLU"], "GELU(approximate='none')": 4}
    ]
    assert acts["GELU(none)"] == 4
    assert config["image_size"] == [1024, 512] and config["mask_threshold"] == 0.0


def test_sam_v1_decoder_keeps_its_layernorm_eps():
    """The eps parameter added for EfficientViT-SAM defaults to SAM v1's 1e-5 (SAM / MobileSAM unchanged)."""
    with torch.device("meta"):
        decoder = MaskDecoder()
    eps = {m.eps for m in decoder.modules() if isinstance(m, nn.LayerNorm)}
    assert eps == {1e-5}


# -- state-dict layout and checkpoints ------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SPECS))
def test_state_dict_equals_manifest(fidelity, name):
    manifest = _manifest(fidelity, name)
    with torch.device("meta"):
        model = build_efficientvit_sam(VARIANTS[name])
    sd = model.state_dict()
    got = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()}
    want = {k: (v["shape"], v["dtype"]) for k, v in manifest["keys"].items()}
    assert sorted(set(want) - set(got)) == [], "missing keys"
    assert sorted(set(got) - set(want)) == [], "unexpected keys"
    assert got == want
    buffers = {k for k, v in manifest["keys"].items() if v["kind"] == "buffer"}
    assert buffers == set(manifest["persistent_buffers"])
    assert {k for k in sd if k not in dict(model.named_parameters())} == buffers
    assert sum(p.numel() for p in model.parameters()) == manifest["total_params"] == SPECS[name].parameters
    assert set(manifest["unused_by_image_predictor"]) <= set(sd)  # kept for the strict load
    assert model.load_state_dict(sd, strict=True)  # meta tensors: checks keys and shapes only


def _official_state_dict(fidelity: SimpleNamespace, name: str) -> dict[str, torch.Tensor]:
    """A state dict built from the manifest alone (keys, shapes, dtypes), filled with fill.py's values."""
    out = {}
    for key, entry in _manifest(fidelity, name)["keys"].items():
        dtype = getattr(torch, entry["dtype"])
        arr = fidelity.fill.fill_array(key, entry["shape"], dtype.is_floating_point)
        out[key] = torch.from_numpy(arr).to(dtype)
    return out


@pytest.fixture(scope="module")
def l0_checkpoints(fidelity, tmp_path_factory) -> SimpleNamespace:
    """The manifest-filled L0 state dict saved raw and as ``{"state_dict": …}`` (both official formats)."""
    sd = _official_state_dict(fidelity, "efficientvit-sam-l0")
    folder = tmp_path_factory.mktemp("efficientvit_sam")
    raw, wrapped = folder / "efficientvit_sam_l0.pt", folder / "wrapped.pt"
    torch.save(sd, raw)
    torch.save({"state_dict": sd, "epoch": 0}, wrapped)
    return SimpleNamespace(sd=sd, raw=raw, wrapped=wrapped, folder=folder)


@pytest.mark.parametrize("fmt", ["raw", "wrapped"])
def test_official_layout_checkpoint_loads_strictly(l0, l0_checkpoints, fmt):
    path = str(getattr(l0_checkpoints, fmt))
    if fmt == "raw":  # named like the official file but not it: loaded (a fine-tune may be), with a warning
        with pytest.warns(UserWarning, match="official name"):
            runner = EFFICIENTVIT_SAM_L0.build(checkpoint=path)
    else:
        runner = EFFICIENTVIT_SAM_L0.build(checkpoint=path)
    assert isinstance(runner, EfficientViTSamRunner) and not runner.model.training
    assert runner.checkpoint_sha256 and len(runner.checkpoint_sha256) == 64
    loaded = runner.model.state_dict()
    assert list(loaded) == list(l0_checkpoints.sd)
    filled = l0.runner.model.state_dict()  # fill_module(): the same values, so the golden model
    assert all(torch.equal(loaded[k], filled[k]) for k in loaded)


def test_checkpoint_with_wrong_keys_is_refused(l0_checkpoints):
    sd = dict(l0_checkpoints.sd)
    del sd["mask_decoder.iou_token.weight"]
    sd["image_encoder.extra.weight"] = torch.ones(1)
    bad = l0_checkpoints.folder / "bad.pt"
    torch.save(sd, bad)
    with pytest.raises(
        InputError, match=r"1 missing key\(s\) \['mask_decoder\.iou_token\.weight'\], 1 unexpected"
    ):
        EFFICIENTVIT_SAM_L0.build(checkpoint=str(bad))
    del sd["image_encoder.extra.weight"]
    sd["mask_decoder.iou_token.weight"] = torch.ones(2, 256)  # right keys, a wrong shape
    torch.save({"state_dict": sd}, bad)
    with pytest.raises(InputError, match="does not fit"):
        EFFICIENTVIT_SAM_L0.build(checkpoint=str(bad))
    with pytest.raises(InputError, match="not found"):
        EFFICIENTVIT_SAM_L0.build(checkpoint=str(l0_checkpoints.folder / "absent.pt"))


def test_checkpoint_facts():
    for name, spec in SPECS.items():
        info = spec.weights
        assert spec.name == name and info is not None and info.format == "state_dict_key_or_plain"
        assert info.filename == name.replace("-", "_") + ".pt"  # efficientvit_sam_l0.pt …
        assert info.url == "https://huggingface.co/mit-han-lab/efficientvit-sam/resolve/main/" + info.filename
        assert info.sha256 is None or (len(info.sha256) == 64 and int(info.sha256, 16) >= 0)


# -- the runner's contract (L0) -------------------------------------------------------------------------
def test_factory_and_image_transform(l0):
    runner = EFFICIENTVIT_SAM_L0.build()
    assert runner.name == "efficientvit-sam-l0" and runner.checkpoint_sha256 is None
    assert runner.takes_mask_prompt and runner.prompt_kinds == {"box", "points"}
    assert not runner.model.training  # the official zoo returns train mode: BatchNorm would use batch stats
    transform = pickle.loads(pickle.dumps(runner.image_transform()))  # runs in the decode workers
    item = transform(l0.image)
    assert tuple(item.pixels.shape) == (384, 512, 3) and item.original_size == (480, 640)
    with torch.device("meta"):  # the XL models encode at 1024: their resize, without building weights
        xl = EfficientViTSamRunner(build_efficientvit_sam("xl0"), device="meta")
    assert tuple(xl.image_transform()(l0.image).pixels.shape) == (768, 1024, 3)


def test_batched_images_equal_one_at_a_time(l0, fidelity):
    """set_images() encodes a batch in one pass; each image's results equal set_image() of it alone."""
    other = fidelity.fill.make_image(300, 200)  # portrait: the long side is the height
    kw = {
        "boxes": np.array([[20.0, 30.0, 150.0, 260.0]]),
        "points": np.array([[[90.0, 120.0]]]),
        "point_labels": np.array([[1]]),
    }
    batch = EfficientViTSamRunner(l0.runner.model, name="batch")  # same network, its own current image
    transform = batch.image_transform()
    batch.set_images([transform(other), transform(l0.image)])
    with pytest.raises(RuntimeError):
        batch.use_image(2)
    alone = EfficientViTSamRunner(l0.runner.model, name="alone")
    for i, (image, single) in enumerate(((other, alone), (l0.image, l0.runner))):
        if single is alone:
            alone.set_image(image)
        batch.use_image(i)
        assert _max_abs(batch.image_embedding, single.image_embedding) <= 1e-5
        got, want = batch.predict(**kw), single.predict(**kw)
        assert _max_abs(got.low_res_logits, want.low_res_logits) <= 1e-4
        assert tuple(got.masks.shape[-2:]) == image.shape[:2]
        assert float((got.masks != want.masks).float().mean()) <= fidelity.tolerances["masks_packed"]


def test_batched_prompts_equal_one_by_one(l0, fidelity):
    r = l0.runner
    boxes = np.array([[200, 120, 420, 330], [60, 280, 230, 430], [400, 250, 560, 410.5]])
    points = np.array([[[300, 220], [150, 380]], [[480, 330], [10, 10]], [[140, 400], [479.5, 639]]])
    labels = np.array([[1, 0], [1, -1], [1, 1]])
    for kw in (
        {"boxes": boxes},
        {"points": points, "point_labels": labels},
        {"boxes": boxes, "points": points[:, :1], "point_labels": labels[:, :1]},
    ):
        together = r.predict(**kw)
        for i in range(len(boxes)):
            alone = r.predict(**{k: v[i : i + 1] for k, v in kw.items()})
            assert _max_abs(together.low_res_logits[i], alone.low_res_logits[0]) <= 1e-5
            assert _max_abs(together.iou_predictions[i], alone.iou_predictions[0]) <= 1e-6
            assert (
                float((together.masks[i] != alone.masks[0]).float().mean())
                <= fidelity.tolerances["masks_packed"]
            )


def test_mask_input_is_sams_refinement_input(l0):
    r = l0.runner
    kw = {"points": np.array([[[300.0, 220.0]]]), "point_labels": np.array([[1]])}
    first = r.predict(multimask=False, **kw)
    refined = r.predict(multimask=False, mask_input=first.low_res_logits, **kw)
    assert refined.masks.shape == first.masks.shape and torch.isfinite(refined.low_res_logits).all()
    assert _max_abs(refined.low_res_logits, first.low_res_logits) > 1e-3  # the mask embedding is used
    with pytest.raises(InputError):
        r.predict(mask_input=torch.zeros(2, 1, 256, 256), **kw)  # N disagrees


def test_runner_rejects_bad_input(l0):
    r = l0.runner
    with pytest.raises(InputError):
        r.encoder_input(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(InputError):
        r.set_image(np.zeros((8, 8), dtype=np.uint8))
    assert r.image_embedding is not None  # a refused image leaves the current one in place
    with pytest.raises(InputError):
        r.predict(boxes=np.zeros((2, 4)), points=np.zeros((3, 1, 2)), point_labels=np.ones((3, 1)))
    with pytest.raises(InputError):
        r.predict(points=np.zeros((1, 1, 2)))
    with pytest.raises(InputError):
        r.predict(boxes=np.zeros((1, 3)))
    with pytest.raises(InputError):
        r.predict()
    fresh = EfficientViTSamRunner(r.model)
    with pytest.raises(RuntimeError, match="set_image"):
        fresh.predict(boxes=np.zeros((1, 4)))


def test_sources_stay_in_house():
    """No dependency on the official packages (efficientvit, segment_anything) nor on torchvision."""
    root = Path(__file__).resolve().parent.parent / "evalsuite" / "models"
    files = [root / "efficientvit_sam.py", *sorted((root / "nn").glob("efficientvit*.py"))]
    imports = re.compile(r"^\s*(?:import|from)\s+(efficientvit|segment_anything|torchvision)\b", re.MULTILINE)
    for f in files:
        assert not imports.findall(f.read_text()), f.name
