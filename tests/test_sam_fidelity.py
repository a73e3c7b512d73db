"""The in-house SAM / MobileSAM against the official code, through ../shared/fidelity.

Why: the official checkpoints cannot be downloaded here. The manifests list every key, shape and
dtype of the official state dicts (so the checkpoints load strictly), and the goldens are the
official networks' outputs with deterministic weights (``fill.py``) on a fixed image and prompts,
so matching them within the README's tolerances proves the architecture and SamPredictor's pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import require_shared
from golden_arrays import load_fidelity

from evalsuite.errors import InputError
from evalsuite.models.nn.sam_image_encoder import Attention as ViTAttention
from evalsuite.models.nn.sam_image_encoder import decomposed_rel_pos_bias, rel_pos_attention_folded
from evalsuite.models.nn.tiny_vit import Attention as TinyViTAttention
from evalsuite.models.registry import get_spec
from evalsuite.models.sam import SamRunner, build_sam_model

pytestmark = pytest.mark.shared

VARIANTS = {"sam-vit-b": "vit_b", "sam-vit-l": "vit_l", "sam-vit-h": "vit_h", "mobilesam": "vit_t"}
# ViT-B's encoder takes ~20 s on two CPU cores: the heaviest check. "+folded": the relative-position
# bias folded into q and k (the CUDA default), checked against the same goldens on the CPU.
GOLDEN_MODELS = [
    pytest.param("sam-vit-b", marks=pytest.mark.slow),
    pytest.param("sam-vit-b+folded", marks=pytest.mark.slow),
    "mobilesam",
]
PROMPT_CASES = [(p, mm) for p in ("box", "point1", "points3", "box_point") for mm in (1, 0)]


@pytest.fixture(scope="module")
def fidelity() -> SimpleNamespace:
    """``fill`` and the README's tolerances, imported from ../shared/fidelity."""
    return load_fidelity(require_shared("fidelity"))


class GoldenRun:
    """One model filled with fill.py's weights, its golden file, and the synthetic image set."""

    def __init__(self, fid: SimpleNamespace, name: str) -> None:
        name, _, variant = name.partition("+")
        self.fill = fid.fill
        self.golden = np.load(fid.root / "golden" / f"{name}.npz")
        self.runner: SamRunner = get_spec(name).build()
        if variant == "folded":
            attention = [m for m in self.runner.model.modules() if isinstance(m, ViTAttention)]
            assert attention
            for m in attention:
                m.fold_rel_pos = True
        self.fill.fill_module(self.runner.model)
        self.runner.model.eval()  # after filling: TinyViT caches its attention biases on eval
        self.image = self.fill.make_image()
        self.runner.set_image(self.image)

    def prompt_kwargs(self, prompt: str) -> dict[str, np.ndarray]:
        p = self.fill.PROMPTS[prompt]
        kw: dict[str, np.ndarray] = {}
        if p["box"] is not None:
            kw["boxes"] = np.array([p["box"]])
        if p["points"] is not None:
            kw["points"] = np.array([p["points"]])
            kw["point_labels"] = np.array([p["labels"]])
        return kw


@pytest.fixture(scope="module")
def golden_run(fidelity):
    """Build, fill and encode each model once per module (lazily, so -m 'not slow' skips ViT-B)."""
    cache: dict[str, GoldenRun] = {}

    def get(name: str) -> GoldenRun:
        if name not in cache:
            cache[name] = GoldenRun(fidelity, name)
        return cache[name]

    return get


def _max_abs(a, b) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return float(np.abs(a.astype(np.float64) - np.asarray(b, dtype=np.float64)).max())


# -- goldens ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_encoder_input_matches_golden(golden_run, fidelity, name):
    run = golden_run(name)
    g, tol = run.golden, fidelity.tolerances["encoder_input__sample"]
    assert tuple(g["original_size"]) == run.fill.IMAGE_HW
    x = run.runner.encoder_input(run.image)
    input_size = run.runner.image_transform()(run.image).input_size
    assert input_size == tuple(g["input_size"])
    assert list(x.shape) == list(g["encoder_input__shape"])
    flat = x.reshape(-1)
    assert _max_abs(flat[g["encoder_input__sample_idx"]], g["encoder_input__sample"]) <= tol
    for stat in ("mean", "std", "min", "max"):
        assert abs(float(getattr(x.double(), stat)()) - float(g[f"encoder_input__{stat}"])) <= tol, stat


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_embedding_matches_golden(golden_run, fidelity, name):
    run = golden_run(name)
    g, tol = run.golden, fidelity.tolerances
    emb = run.runner.image_embedding
    assert list(emb.shape) == list(g["embedding__shape"])
    flat = emb.reshape(-1)
    assert _max_abs(flat[g["embedding__sample_idx"]], g["embedding__sample"]) <= tol["embedding__sample"]
    ch_tol, sp_tol = tol["embedding__channel_mean"], tol["embedding__spatial_mean"]
    assert _max_abs(emb.mean(dim=(0, 2, 3)), g["embedding__channel_mean"]) <= ch_tol
    assert _max_abs(emb.mean(dim=(0, 1)), g["embedding__spatial_mean"]) <= sp_tol
    for stat in ("mean", "std", "min", "max"):
        got = float(getattr(emb.double(), stat)())
        assert abs(got - float(g[f"embedding__{stat}"])) <= tol["embedding__sample"], stat


@pytest.mark.parametrize(("prompt", "mm"), PROMPT_CASES)
@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_prediction_matches_golden(golden_run, fidelity, name, prompt, mm):
    run = golden_run(name)
    g, tol, key = run.golden, fidelity.tolerances, f"{prompt}__mm{mm}__"
    kw = run.prompt_kwargs(prompt)

    pred = run.runner.predict(multimask=bool(mm), **kw)
    n_out = 3 if mm else 1
    assert pred.masks.dtype == torch.bool and pred.masks.shape == (1, n_out, 480, 640)
    assert pred.iou_predictions.shape == (1, n_out) and pred.low_res_logits.shape == (1, n_out, 256, 256)
    assert _max_abs(pred.low_res_logits[0], g[key + "low_res_logits"]) <= tol["low_res_logits"]
    assert _max_abs(pred.iou_predictions[0], g[key + "iou"]) <= tol["iou"]
    want = run.fill.unpack_mask(g[key + "masks_packed"], g[key + "masks_shape"])
    flipped = float((pred.masks[0].numpy() != want).mean())
    assert flipped <= tol["masks_packed"], f"{flipped:.2e} of the mask pixels differ"

    logits = run.runner.predict(multimask=bool(mm), return_logits=True, **kw).masks[0].reshape(-1)
    sample = logits[g[key + "mask_logits_sample_idx"]]
    assert _max_abs(sample, g[key + "mask_logits_sample"]) <= tol["mask_logits_sample"]


def _attention_case(hw: tuple[int, int], dim: int, batch: int):
    g = torch.Generator().manual_seed(0)
    n = hw[0] * hw[1]
    q, k, v = (torch.randn(batch, 2, n, dim, generator=g) for _ in range(3))
    rel_h = 0.3 * torch.randn(2 * hw[0] - 1, dim, generator=g)
    rel_w = 0.3 * torch.randn(2 * hw[1] - 1, dim, generator=g)
    scale = dim**-0.5
    bias = decomposed_rel_pos_bias(q, rel_h, rel_w, hw)
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    return (q, k, v, rel_h, rel_w, hw, scale), dense


# windowed 14×14 (ViT-B/L head dim 64, ViT-H 80: padded to a multiple of 8), a non-square grid, and the
# global 64×64 grid (64 + 64 + 64 = 192: no padding)
ATTENTION_CASES = [((14, 14), 64, 3), ((14, 14), 80, 3), ((16, 12), 72, 3), ((64, 64), 64, 1)]


@pytest.mark.parametrize(("hw", "dim", "batch"), ATTENTION_CASES)
def test_folded_rel_pos_attention_equals_the_dense_mask(hw, dim, batch):
    args, dense = _attention_case(hw, dim, batch)
    folded = rel_pos_attention_folded(*args)
    assert folded.shape == dense.shape
    torch.testing.assert_close(folded, dense, rtol=0, atol=1e-5)


def test_folded_rel_pos_attention_under_bf16_autocast():
    """bf16 (the fast mode): the folded form stays within bf16 rounding of the fp32 dense result."""
    args, dense = _attention_case((14, 14), 80, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, k, v, *rest = args
        folded = rel_pos_attention_folded(q.bfloat16(), k.bfloat16(), v.bfloat16(), *rest)
    assert folded.dtype == torch.bfloat16
    err = (folded.float() - dense).abs()
    assert float(err.max()) < 0.1 and float(err.mean()) < 0.01


# -- batching and the runner's contract (MobileSAM: the cheapest encoder) ---------------------------
def test_batched_prompts_equal_one_by_one(golden_run, fidelity):
    run = golden_run("mobilesam")
    r = run.runner
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


def test_mask_input_is_sams_refinement_input(golden_run):
    r = golden_run("mobilesam").runner
    assert r.takes_mask_prompt
    kw = {"points": np.array([[[300.0, 220.0]]]), "point_labels": np.array([[1]])}
    first = r.predict(multimask=False, **kw)
    refined = r.predict(multimask=False, mask_input=first.low_res_logits, **kw)
    assert refined.masks.shape == first.masks.shape and torch.isfinite(refined.low_res_logits).all()
    assert _max_abs(refined.low_res_logits, first.low_res_logits) > 1e-3  # the mask embedding is used
    with pytest.raises(InputError):
        r.predict(mask_input=torch.zeros(2, 1, 256, 256), **kw)  # N disagrees


def test_runner_rejects_bad_input(golden_run):
    r = golden_run("mobilesam").runner
    with pytest.raises(InputError):
        r.encoder_input(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(InputError):
        r.encoder_input(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(InputError):
        r.predict(boxes=np.zeros((2, 4)), points=np.zeros((3, 1, 2)), point_labels=np.ones((3, 1)))
    with pytest.raises(InputError):
        r.predict(points=np.zeros((1, 1, 2)))
    with pytest.raises(InputError):
        r.predict()
    fresh = SamRunner(r.model)
    with pytest.raises(RuntimeError):
        fresh.predict(boxes=np.zeros((1, 4)))


# -- state-dict layout -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(VARIANTS))
def test_state_dict_equals_manifest(fidelity, name):
    manifest = json.loads((fidelity.root / "manifests" / f"{name}.json").read_text())
    with torch.device("meta"):  # shapes only: ViT-H would need 2.5 GB
        model = build_sam_model(VARIANTS[name])
    sd = model.state_dict()
    got = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()}
    want = {k: (v["shape"], v["dtype"]) for k, v in manifest["keys"].items()}
    assert sorted(set(want) - set(got)) == [], "missing keys"
    assert sorted(set(got) - set(want)) == [], "unexpected keys"
    assert got == want
    buffers = {k for k, v in manifest["keys"].items() if v["kind"] == "buffer"}
    assert buffers == set(manifest["persistent_buffers"])
    assert {k for k in sd if k not in dict(model.named_parameters())} == buffers
    assert sum(p.numel() for p in model.parameters()) == manifest["total_params"]


def test_tinyvit_bias_cache_follows_loaded_weights():
    """The official module would keep eval()-time biases after a later load (README §8); ours refreshes."""
    attn = TinyViTAttention(dim=8, num_heads=2, window=3).eval()
    sd = {k: v.clone() for k, v in attn.state_dict().items()}
    sd["attention_biases"] = torch.arange(attn.attention_biases.numel(), dtype=torch.float32).view(2, -1)
    attn.load_state_dict(sd)
    assert torch.equal(attn.ab, sd["attention_biases"][:, attn.attention_bias_idxs])
    attn.train()
    assert attn.ab is None


# -- factory and checkpoints -----------------------------------------------------------------------
def test_specs_and_factory():
    for name in VARIANTS:
        spec = get_spec(name)
        assert spec.name == name and spec.needs_weights
    assert get_spec("sam-vit-h").label == "SAM ViT-H" and get_spec("mobilesam").label == "MobileSAM"
    runner = get_spec("mobilesam").build(checkpoint=None, device="cpu")
    assert isinstance(runner, SamRunner) and runner.checkpoint_sha256 is None and runner.takes_mask_prompt
    assert not runner.model.training
    for sub in ("image_encoder", "prompt_encoder", "mask_decoder"):
        assert isinstance(getattr(runner.model, sub), torch.nn.Module)


def test_checkpoint_loads_strictly(tmp_path: Path):
    source = build_sam_model("vit_t")
    sd = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in source.state_dict().items()}
    good = tmp_path / "mine.pt"
    torch.save(sd, good)
    runner = get_spec("mobilesam").build(checkpoint=str(good))
    assert runner.checkpoint_sha256 and len(runner.checkpoint_sha256) == 64
    assert torch.all(runner.model.image_encoder.neck[1].weight == 0.5)
    block = runner.model.image_encoder.layers[1].blocks[0].attn
    assert torch.all(block.ab == 0.5)  # cached after loading

    bad = tmp_path / "bad.pt"
    torch.save(
        {k: v for k, v in sd.items() if not k.startswith("mask_decoder.")} | {"extra.w": torch.ones(1)}, bad
    )
    with pytest.raises(InputError, match=r"bad\.pt.*missing.*mask_decoder"):
        get_spec("mobilesam").build(checkpoint=str(bad))
