"""SAM 3's interactive path: official key layout, strict loading, RoPE, hole filling, options (fast checks).

The network is built on the meta device wherever only keys and shapes matter (it has 457 M parameters),
and official-layout state dicts are made of zero-stride tensors (full shapes, one stored value each), so
the whole official file (1,465 keys, 860 M values) costs a few kilobytes. The golden outputs are checked
in test_sam3_fidelity.py; the engine smoke run at the end is ``heavy`` (several minutes on two cores).
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_shared

from evalsuite.errors import InputError
from evalsuite.models import build_model, get_spec
from evalsuite.models.nn import sam3_net, sam3_vit
from evalsuite.models.nn.sam3_net import (
    UNUSED_MODULES,
    CheckpointMismatchError,
    Sam3Model,
    adapt_official_state_dict,
    fill_holes,
    image_model_keys,
    rope_buffers,
    unused_summary,
)
from evalsuite.models.sam3 import SAM3, Sam3Runner, sam3_input

# loading into the meta-device network checks keys and shapes; copying values there is a no-op (intended)
pytestmark = pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter:UserWarning")
TRACKER = "inst_interactive_predictor.model."
NOT_BUILT = ("backbone.vision_backbone.sam2_convs.3.",)  # "used" in the manifest, discarded officially
ADDED = (TRACKER + "sam_prompt_encoder.mask_downscaling.",)  # the mask_input path the runner offers


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((require_shared("fidelity") / "manifests" / "sam3.json").read_text())


@pytest.fixture(scope="module")
def meta_model() -> Sam3Model:
    with torch.device("meta"):
        return Sam3Model()


def _zeros(shape: list[int], dtype: str) -> torch.Tensor:
    """A full-shape tensor stored as one element (stride 0): the official file's shapes, bytes not."""
    return torch.zeros(1, dtype=getattr(torch, dtype)).expand(*shape) if shape else torch.zeros(())


def _official(manifest: dict, prefixed: bool = True) -> dict[str, torch.Tensor]:
    """All 1,465 official keys; ``prefixed``: as ``sam3.pt`` holds them (``detector.*`` / ``tracker.*``)."""
    out = {}
    for k, spec in manifest["keys"].items():
        name = k
        if prefixed:
            name = "tracker." + k.removeprefix(TRACKER) if k.startswith(TRACKER) else "detector." + k
        out[name] = _zeros(spec["shape"], spec["dtype"])
    return out


# ---------------------------------------------------------------------------------------------------------
# 1. layout
# ---------------------------------------------------------------------------------------------------------
def test_network_keys_are_the_manifests_used_keys(manifest: dict, meta_model: Sam3Model) -> None:
    keys, unused = manifest["keys"], set(manifest["unused_by_image_predictor"])
    used = [k for k in keys if k not in unused]
    assert len(keys) == 1465 and len(used) == 575
    sd = meta_model.state_dict()
    expected = [k for k in keys if (k in used and not k.startswith(NOT_BUILT)) or k.startswith(ADDED)]
    assert list(sd) == expected  # same keys, in the official order
    assert len(sd) == 575 - 4 + 10
    for k, v in sd.items():
        assert list(v.shape) == keys[k]["shape"], k
        assert str(v.dtype).removeprefix("torch.") == keys[k]["dtype"], k
    # the manifest's unused keys are exactly the named modules (mask_downscaling aside: kept here)
    dropped = {k for k in keys if sam3_net.unused_module(k) is not None}
    assert dropped == (unused - {k for k in keys if k.startswith(ADDED)}) | {
        k for k in keys if k.startswith(NOT_BUILT)
    }
    buffers = set(sd) - {n for n, _ in meta_model.named_parameters()}
    assert buffers == set(manifest["persistent_buffers"])
    params = sum(p.numel() for p in meta_model.parameters())
    assert params == 457_277_072 and SAM3.parameters == manifest["total_params"]


def test_full_official_file_layout_loads_through_the_adapter(manifest: dict, meta_model: Sam3Model) -> None:
    """``sam3.pt`` layout (detector./tracker.), and the image-model names of the manifest: both load;
    the 890 − 10 + 4 unused keys are dropped by module name, counted per module."""
    for prefixed in (True, False):
        official = _official(manifest, prefixed)
        state = adapt_official_state_dict(official)
        assert list(state) == list(meta_model.state_dict())
        meta_model.load_state_dict(state, strict=True, assign=False)
        counts = unused_summary(official)
        assert set(counts) == set(UNUSED_MODULES)
        assert sum(counts.values()) == len(official) - len(state) == 884
        assert counts["backbone.language_backbone"] == 295
        assert counts[TRACKER + "sam_mask_decoder.pred_obj_score_head"] == 6
        assert counts["backbone.vision_backbone.sam2_convs.3"] == 4


def test_image_model_keys_follow_the_official_loader(manifest: dict) -> None:
    """As ``_load_checkpoint``: "detector." removed, "tracker." → "inst_interactive_predictor.model.", any
    other key left out (the official loader skips it)."""
    official = _official(manifest)
    official["video_only.bias"] = torch.zeros(3)
    image, left = image_model_keys(official)
    assert set(image) == set(manifest["keys"]) and left == ["video_only.bias"]
    adapt_official_state_dict(official)  # still loads


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda sd: sd.pop("tracker.sam_mask_decoder.conv_s0.bias"), r"1 missing key\(s\): " + TRACKER),
        (
            lambda sd: sd.pop("detector.backbone.vision_backbone.trunk.blocks.3.mlp.fc2.weight"),
            r"missing key\(s\): backbone\.vision_backbone\.trunk\.blocks\.3\.mlp\.fc2\.weight",
        ),
        (
            lambda sd: sd.pop("tracker.sam_prompt_encoder.mask_downscaling.0.weight"),
            r"missing.*mask_downscaling\.0\.weight",
        ),
        (
            lambda sd: sd.update({"detector.extra_head.weight": torch.zeros(2)}),
            r"unexpected key\(s\): extra_head",
        ),
        (
            lambda sd: sd.update({"tracker.no_mem_embed": torch.zeros(1, 256)}),
            r"wrong shape: inst_interactive_predictor\.model\.no_mem_embed \(1, 256\)",
        ),
    ],
    ids=["missing-decoder", "missing-trunk", "missing-mask-encoder", "unexpected", "shape"],
)
def test_mismatches_are_refused_by_name(manifest: dict, edit, match: str) -> None:
    sd = _official(manifest)
    edit(sd)
    with pytest.raises(CheckpointMismatchError, match=match):
        adapt_official_state_dict(sd)


def test_a_file_without_rope_rotations_gets_the_computed_ones(manifest: dict) -> None:
    """The official image loader is strict=False and keeps its constructor's rotations: so do we."""
    sd = {k: v for k, v in _official(manifest).items() if not k.endswith("attn.freqs_cis")}
    state = adapt_official_state_dict(sd)
    for k, v in rope_buffers().items():
        assert torch.equal(state[k], v)
    with_rope = _official(manifest)
    key = "detector.backbone.vision_backbone.trunk.blocks.0.attn.freqs_cis"
    with_rope[key] = torch.ones(576, 32, dtype=torch.complex64)
    state = adapt_official_state_dict(with_rope)  # a file's own rotations win
    assert torch.equal(state[key.removeprefix("detector.")], with_rope[key])


def test_official_file_loads_through_the_factory(manifest: dict, tmp_path: Path) -> None:
    """``sam3.pt`` as the official loader reads it (raw, or under "model"), weights_only, SHA-256 recorded;
    a missing used key is a one-line InputError naming the file and the key."""
    sd = _official(manifest)
    for payload in (sd, {"model": sd}):
        path = tmp_path / "sam3.pt"
        torch.save(payload, path)
        assert path.stat().st_size < 2_000_000  # zero-stride tensors: the layout without the bytes
        with torch.device("meta"):
            runner = SAM3.build(checkpoint=str(path), device="meta")
        assert isinstance(runner, Sam3Runner)
        assert runner.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    broken = dict(sd)
    broken.pop("tracker.sam_mask_decoder.iou_token.weight")
    torch.save(broken, tmp_path / "broken.pt")
    missing = r"broken\.pt: .*missing key\(s\): .*iou_token\.weight"
    with pytest.raises(InputError, match=missing) as err, torch.device("meta"):
        SAM3.build(checkpoint=str(tmp_path / "broken.pt"), device="meta")
    assert "\n" not in err.value.message


def test_checkpoint_and_spec_facts() -> None:
    info = SAM3.weights
    assert info is not None and info.filename == "sam3.pt" and info.format == "state_dict"
    assert info.url == "https://huggingface.co/facebook/sam3/resolve/main/sam3.pt"
    assert info.token_env == ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") and info.sha256 is None
    assert SAM3.licence == "SAM License" and SAM3.input_size == "1008² stretched"
    assert get_spec("sam3").weights == info  # the entry point is registered


# ---------------------------------------------------------------------------------------------------------
# 2. architecture facts that the golden cannot see (NEW_MODELS3.md §2: eps, GELU; RoPE, see below)
# ---------------------------------------------------------------------------------------------------------
def test_norms_activations_and_trunk_config(meta_model: Sam3Model) -> None:
    ln2d = type(meta_model.tracker.sam_mask_decoder.output_upscaling[1])
    n_ln = 0
    for name, mod in meta_model.named_modules():
        if isinstance(mod, torch.nn.LayerNorm):
            n_ln += 1
            assert mod.eps == 1e-5, name  # trunk (LayerNorm "eps=1e-5") and decoder transformer
        if isinstance(mod, ln2d):
            assert mod.eps == 1e-6, name
        if isinstance(mod, torch.nn.GELU):
            assert mod.approximate == "none", name
    assert n_ln == 1 + 2 * 32 + 4 * 2 + 1  # ln_pre, the blocks, two-way blocks, final attention norm
    trunk = meta_model.backbone.vision_backbone.trunk
    windows = [b.window for b in trunk.blocks]
    assert [i for i, w in enumerate(windows) if w == 0] == [7, 15, 23, 31] and set(windows) == {0, 24}
    assert trunk.patch_embed.proj.bias is None and trunk.patch_embed.proj.stride == (14, 14)
    mlp = meta_model.tracker.sam_mask_decoder.transformer.layers[0].mlp
    assert isinstance(mlp.act, torch.nn.ReLU)
    assert meta_model.tracker.sam_mask_decoder.pred_obj_score_head is None
    pe = meta_model.tracker.sam_prompt_encoder
    assert pe.image_embedding_size == (72, 72) and pe.input_image_size == (1008, 1008)


def test_rope_rotations_are_the_axial_formula() -> None:
    """Independent float64 reference: token t at (x, y) = (t mod s, t div s)·scale; entry j < 16 turns by
    x·θ^(−4j/64), entry 16 + j by y·θ^(−4j/64). Windowed blocks: s = 24, scale 1; global: s = 72, 24/72."""
    f = 10000.0 ** (-np.arange(0, 64, 4) / 64.0)
    for index, (side, scale) in ((0, (24, 1.0)), (7, (72, 1 / 3))):
        t = np.arange(side * side)
        x, y = (t % side) * scale, (t // side) * scale
        ref = np.exp(1j * np.concatenate([np.outer(x, f), np.outer(y, f)], axis=1))
        got = sam3_vit.block_rope(index).numpy()
        assert got.shape == (side * side, 32) and got.dtype == np.complex64
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5)


def test_rope_is_a_rotation_of_channel_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 5, 8, generator=g), torch.randn(2, 3, 5, 8, generator=g)
    angles = torch.rand(5, 4, generator=g) * 6.0
    rot = torch.polar(torch.ones_like(angles), angles)
    q_out, k_out = sam3_vit.apply_rope(q, k, rot)
    for x, out in ((q, q_out), (k, k_out)):
        a, b = x[..., 0::2], x[..., 1::2]
        c, s = torch.cos(angles), torch.sin(angles)
        torch.testing.assert_close(out[..., 0::2], a * c - b * s, rtol=0, atol=1e-6)
        torch.testing.assert_close(out[..., 1::2], a * s + b * c, rtol=0, atol=1e-6)
    # rotations keep norms; the product q·k depends only on the difference of the angles
    shift = torch.polar(torch.ones_like(angles), angles + 0.7)
    q2, k2 = sam3_vit.apply_rope(q, k, shift)
    torch.testing.assert_close((q2 * k2).sum(-1), (q_out * k_out).sum(-1), rtol=1e-5, atol=1e-5)


def test_window_partition_round_trip_and_order() -> None:
    x = torch.arange(2 * 72 * 72 * 3, dtype=torch.float32).reshape(2, 72, 72, 3)
    windows = sam3_vit.window_partition(x, 24)
    assert windows.shape == (18, 24, 24, 3)
    assert torch.equal(windows[1], x[0, :24, 24:48])  # row-major windows within an image
    assert torch.equal(windows[9 + 3], x[1, 24:48, :24])
    assert torch.equal(sam3_vit.window_unpartition(windows, 24, (72, 72)), x)


def test_tiled_position_embedding() -> None:
    trunk = sam3_vit.ViT.__new__(sam3_vit.ViT)
    torch.nn.Module.__init__(trunk)
    trunk.pos_embed = torch.nn.Parameter(torch.arange(577 * 2, dtype=torch.float32).reshape(1, 577, 2))
    tiled = trunk.tiled_pos_embed(72, 72)
    grid = trunk.pos_embed[0, 1:].reshape(24, 24, 2)  # the class entry (index 0) is dropped
    assert tiled.shape == (1, 72, 72, 2)
    for i, j in ((0, 0), (5, 30), (71, 71), (24, 47)):
        assert torch.equal(tiled[0, i, j], grid[i % 24, j % 24])


# ---------------------------------------------------------------------------------------------------------
# 3. hole filling (SAM2Transforms.postprocess_masks; officially skimage.measure.label, full connectivity)
# ---------------------------------------------------------------------------------------------------------
def _map(rows: list[str]) -> torch.Tensor:
    """'#' foreground (logit 1), '.' background (−1), '0' a logit of exactly 0 (background: <= 0)."""
    values = {"#": 1.0, ".": -1.0, "0": 0.0}
    return torch.tensor([[values[c] for c in row] for row in rows])


def test_holes_are_8_connected_background_components_up_to_the_area() -> None:
    logits = _map(
        [
            "######",
            "#.####",
            "##.###",  # two background pixels touching diagonally: one component of 2
            "######",
            "####0#",  # a zero logit is background: a hole of 1
            ".#####",  # a background pixel on the border is filled too
        ]
    )
    out = fill_holes(logits[None, None], max_hole_area=2)[0, 0]
    assert torch.equal(out > 0, torch.ones(6, 6, dtype=torch.bool))
    assert out[1, 1] == 10.0 and out[4, 4] == 10.0 and out[0, 0] == 1.0  # filled holes become 10
    out = fill_holes(logits[None, None], max_hole_area=1)[0, 0]
    assert out[1, 1] < 0 and out[2, 2] < 0  # the diagonal pair (2 pixels) stays
    assert out[4, 4] == 10.0 and out[5, 0] == 10.0
    assert torch.equal(fill_holes(logits[None, None], max_hole_area=0), logits[None, None])


def test_area_limit_is_inclusive_and_maps_are_independent() -> None:
    logits = torch.ones(2, 1, 40, 40)
    logits[0, 0, 5:21, 5:21] = -1.0  # 16 × 16 = 256 pixels: filled at the default limit
    logits[1, 0, 5:21, 5:21] = -1.0
    logits[1, 0, 21, 5] = -1.0  # 257 pixels: kept
    out = fill_holes(logits)
    assert (out[0] > 0).all() and int((out[1] <= 0).sum()) == 257
    specks = torch.full((1, 1, 10, 10), -1.0)
    specks[0, 0, 2, 2] = specks[0, 0, 3, 3] = 1.0  # a diagonal pair: one component of 2
    assert int((fill_holes(specks, 0, max_sprinkle_area=1) > 0).sum()) == 2
    assert int((fill_holes(specks, 0, max_sprinkle_area=2) > 0).sum()) == 0


def _reference_cv2(maps: np.ndarray, max_area: int) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    out = maps.copy()
    for i, m in enumerate(maps):
        n, labels, stats, _ = cv2.connectedComponentsWithStats((m <= 0).astype(np.uint8), connectivity=8)
        small = (stats[:, cv2.CC_STAT_AREA] <= max_area) & (np.arange(n) > 0)
        out[i][small[labels]] = 10.0
    return out


def test_hole_filling_equals_opencv_8_connectivity_on_random_maps() -> None:
    """An independent labelling (OpenCV, 8-connectivity) gives the same filled logits, exactly."""
    rng = np.random.default_rng(1)
    for trial in range(20):
        side = int(rng.integers(16, 96))
        maps = rng.standard_normal((3, side, side)).astype(np.float32) + np.float32(rng.uniform(-0.5, 0.5))
        area = int(rng.integers(1, 60))
        got = fill_holes(torch.from_numpy(maps), max_hole_area=area).numpy()
        assert np.array_equal(got, _reference_cv2(maps, area)), trial


def test_hole_filling_equals_the_official_skimage_path_where_installed() -> None:
    """The official CPU path itself (``connected_components_cpu``: skimage labels, per-pixel counts)."""
    measure = pytest.importorskip("skimage.measure")
    rng = np.random.default_rng(2)
    for trial in range(10):
        maps = rng.standard_normal((2, 48, 48)).astype(np.float32)
        hole, speck = int(rng.integers(1, 40)), int(rng.integers(0, 6))
        ref = maps.copy()
        for i, m in enumerate(maps):
            for region, limit, value in ((m <= 0, hole, 10.0), (m > 0, speck, -10.0)):
                labels, num = measure.label(region.astype(np.uint8), return_num=True)
                counts = np.bincount(labels.ravel(), minlength=num + 1)
                small = (counts[labels] <= limit) & (labels > 0)
                ref[i] = np.where(small, np.float32(value), ref[i])
        got = fill_holes(torch.from_numpy(maps), hole, speck).numpy()
        assert np.array_equal(got, ref), trial


# ---------------------------------------------------------------------------------------------------------
# 4. options and the runner's input checks
# ---------------------------------------------------------------------------------------------------------
def test_options_declare_the_official_defaults() -> None:
    opts = SAM3.options
    assert opts["max_hole_area"].default == 256 and opts["max_sprinkle_area"].default == 0
    assert not opts["max_hole_area"].column and not opts["max_sprinkle_area"].column
    with torch.device("meta"):
        runner = build_model("sam3", device="meta")
        assert (runner.max_hole_area, runner.max_sprinkle_area) == (256, 0)
        runner = build_model("sam3", device="meta", max_hole_area=0, max_sprinkle_area=16)
        assert (runner.max_hole_area, runner.max_sprinkle_area) == (0, 16)
    with pytest.raises(InputError, match="max_hole_area=-1 is below its minimum 0"):
        SAM3.resolve_options({"max_hole_area": -1})


def test_image_transform_stretches_on_the_cpu_and_keeps_the_original_size() -> None:
    image = np.zeros((30, 50, 3), dtype=np.uint8)
    image[:, 25:] = 200
    out = sam3_input(image)
    assert out.pixels.shape == (1008, 1008, 3) and out.pixels.dtype == torch.uint8
    assert out.size == (30, 50) and out.pin_memory is not None
    assert out.pixels[:, :400].max() == 0 and out.pixels[:, 600:].min() == 200  # stretched, not padded
    with pytest.raises(InputError, match=r"SAM 3 needs an H×W×3 uint8 RGB image"):
        sam3_input(np.zeros((4, 4), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------------------
# 5. the engine smoke run (heavy: a 457 M-parameter encoder on two CPU cores)
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.heavy
def test_random_weight_smoke_run_through_the_engine(tmp_path: Path, monkeypatch, capsys) -> None:
    from evalsuite.cli import main

    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))  # empty cache: nothing to download
    out = tmp_path / "runs"
    argv = shlex.split("run coco-box --model sam3 --data sample --weights random --limit 1")
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    record = json.loads((out / "sam3+random0+limit1" / "coco-box" / "record.json").read_text())
    assert record["model"]["weights"] == "random:0" and record["counts"]["images"] == 1
    assert math.isfinite(record["metrics"]["mIoU"]) and 0.0 <= record["metrics"]["mIoU"] <= 100.0
