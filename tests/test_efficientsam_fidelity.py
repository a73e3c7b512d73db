"""EfficientSAM-Ti/-S are the official networks: state-dict layout and golden outputs.

The official checkpoints cannot be downloaded here, so fidelity rests on ../shared/fidelity: the key
manifests of the official builders, and golden outputs of the official code run with deterministic
filled weights (``fill.py``) on a synthetic image. The in-house runner, filled the same way, must
reproduce every golden array within the tolerances of ``tools/compare_golden.py``. Each model is built,
filled and encoded once per module (the encoder dominates the run time).
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_shared
from golden_arrays import check, prompt_kwargs, stats

from evalsuite.errors import InputError
from evalsuite.models import registry
from evalsuite.models.efficientsam import EFFICIENTSAM_S, EFFICIENTSAM_TI, EfficientSamRunner
from evalsuite.models.nn import efficientsam_net as net

MODELS = {"efficientsam-ti": EFFICIENTSAM_TI, "efficientsam-s": EFFICIENTSAM_S}
PROMPT_NAMES = ("box", "point1", "points3", "box_point")
SRC = Path(__file__).resolve().parent.parent / "evalsuite" / "models"


@pytest.fixture(scope="module")
def fidelity() -> types.SimpleNamespace:
    """../shared/fidelity with its ``fill`` and ``compare_golden`` modules imported from there."""
    root = require_shared("fidelity")
    for sub in (root, root / "tools"):
        if str(sub) not in sys.path:
            sys.path.insert(0, str(sub))
    import compare_golden
    import fill

    return types.SimpleNamespace(root=root, fill=fill, tolerances=compare_golden.TOLERANCES)


@dataclass
class Case:
    """One model filled with the fidelity weights, its golden file and the embedded synthetic image."""

    name: str
    runner: EfficientSamRunner
    golden: dict[str, np.ndarray]
    manifest: dict
    image: np.ndarray
    fill: types.ModuleType
    cache: dict = field(default_factory=dict)


@pytest.fixture(scope="module", params=list(MODELS))
def case(request: pytest.FixtureRequest, fidelity: types.SimpleNamespace) -> Case:
    name = request.param
    runner = MODELS[name].build()  # checkpoint=None: no weights loaded
    fidelity.fill.fill_module(runner.model)
    runner.model.eval()
    with np.load(fidelity.root / "golden" / f"{name}.npz") as npz:
        golden = {k: npz[k] for k in npz.files}
    manifest = json.loads((fidelity.root / "manifests" / f"{name}.json").read_text())
    image = fidelity.fill.make_image()
    runner.set_image(image)
    return Case(name, runner, golden, manifest, image, fidelity.fill)


# ---------------------------------------------------------------------------------------------------------
# helpers: produce arrays named like the golden file, compare them with the README tolerances
# ---------------------------------------------------------------------------------------------------------
def _batched_calls(multimask: bool) -> list[tuple[tuple[str, ...], dict]]:
    """The four golden prompts as two batched predict() calls; label -1 pads the shorter prompts.

    A (-1, -1)/-1 padding point is exactly what the official model appends itself (up to 6 points),
    so ``box`` + padding is the golden ``box`` query and ``point1`` + padding the golden ``point1``.
    """
    box, click = [200.0, 120.0, 420.0, 330.0], [300.0, 220.0]
    pad = [-1.0, -1.0]
    return [
        (
            ("box", "box_point"),
            {
                "boxes": np.array([box, box]),
                "points": np.array([[pad], [click]]),
                "point_labels": [[-1], [1]],
            },
        ),
        (
            ("point1", "points3"),
            {
                "points": np.array([[click, pad, pad], [click, [150.0, 380.0], [480.0, 330.0]]]),
                "point_labels": np.array([[1, -1, -1], [1, 0, 1]]),
            },
        ),
    ]


def _single_call(fill: types.ModuleType, name: str) -> list[tuple[tuple[str, ...], dict]]:
    """One golden prompt alone, as a caller without padding would pass it."""
    return [((name,), prompt_kwargs(fill, name))]


def _prompt_outputs(case: Case, calls: list[tuple[tuple[str, ...], dict]], mm: int) -> dict[str, np.ndarray]:
    """The per-prompt golden arrays of ``calls`` (predict() with multimask=mm), named as in the npz."""
    fill, r, out = case.fill, case.runner, {}
    for names, kw in calls:
        pred = r.predict(multimask=bool(mm), **kw)
        full = r.upscale(pred.low_res_logits).numpy()
        for i, name in enumerate(names):
            k = f"{name}__mm{mm}"
            masks = pred.masks[i].numpy()
            out[f"{k}__low_res_logits"] = pred.low_res_logits[i].numpy()
            out[f"{k}__iou"] = pred.iou_predictions[i].numpy()
            if mm:  # the official forward() IoUs equal predict_masks' (<= 4e-7): same runner output
                out[f"{k}__iou_forward"] = pred.iou_predictions[i].numpy()
            out[f"{k}__masks_shape"] = np.array(masks.shape)
            out[f"{k}__masks_packed"] = fill.pack_mask(masks)
            idx, sample = fill.strided_sample(full[i])
            out[f"{k}__mask_logits_sample_idx"], out[f"{k}__mask_logits_sample"] = idx, sample
    return out


def _produced(case: Case) -> dict[str, np.ndarray]:
    """Every non-meta golden array through the runner's public path (prompts: two batched calls per mm)."""
    if "produced" in case.cache:
        return case.cache["produced"]
    fill, r = case.fill, case.runner
    out: dict[str, np.ndarray] = {
        "input_size": np.array([net.IMG_SIZE, net.IMG_SIZE]),
        "original_size": np.array(case.image.shape[:2]),
    }
    out.update(stats("encoder_input", r.encoder_input(case.image).numpy(), fill))
    emb = r.image_embedding.numpy()
    out.update(stats("embedding", emb, fill))
    out["embedding__channel_mean"] = emb[0].mean(axis=(1, 2))
    out["embedding__spatial_mean"] = emb[0].mean(axis=0)
    for mm in (1, 0):
        out.update(_prompt_outputs(case, _batched_calls(bool(mm)), mm))
    case.cache["produced"] = out
    return out


def _tolerance(key: str, tolerances: dict[str, float]) -> float | None:
    for suffix, tol in tolerances.items():
        if key.endswith(suffix) or (suffix == "iou" and key.endswith("iou_forward")):
            return tol
    # summary statistics share the limit of their sample (compare_golden.py leaves them unchecked)
    for prefix in ("encoder_input", "embedding"):
        if key.startswith(prefix + "__"):
            return tolerances[f"{prefix}__sample"]
    return None


def _check(
    golden: dict, produced: dict, keys: list[str], fidelity: types.SimpleNamespace
) -> dict[str, float]:
    """Max |Δ| (or flipped-pixel fraction) per key, within EfficientSAM's tolerances (asserted)."""
    return check(golden, produced, keys, fidelity, _tolerance)


# ---------------------------------------------------------------------------------------------------------
# 1. layout: the official checkpoints load strictly
# ---------------------------------------------------------------------------------------------------------
def test_state_dict_equals_the_official_manifest(case: Case) -> None:
    sd = case.runner.model.state_dict()
    keys = case.manifest["keys"]
    assert list(sd) == list(keys)  # same keys, same order
    for k, spec in keys.items():
        assert list(sd[k].shape) == spec["shape"], k
        assert str(sd[k].dtype).removeprefix("torch.") == spec["dtype"], k
    params = dict(case.runner.model.named_parameters())
    buffers = {k for k in sd if k not in params}
    assert buffers == set(case.manifest["persistent_buffers"])
    assert all(spec["kind"] == ("buffer" if k in buffers else "parameter") for k, spec in keys.items())
    assert sum(p.numel() for p in params.values()) == case.manifest["total_params"]
    assert sum(t.numel() for t in sd.values()) == case.manifest["state_dict_numel"]


def test_norms_and_activations_are_the_official_ones(case: Case) -> None:
    """The goldens barely see LayerNorm eps (README §5), so check it by reading: 1e-6 in the encoder
    (blocks and neck), PyTorch's 1e-5 in the decoder (LayerNorm, GroupNorm); exact GELU everywhere."""
    model = case.runner.model
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.LayerNorm, net.LayerNorm2d, torch.nn.GroupNorm)):
            assert mod.eps == (1e-6 if name.startswith("image_encoder.") else 1e-5), name
        if isinstance(mod, torch.nn.GroupNorm):
            assert mod.num_groups == 1 and mod.num_channels == 64, name
        if isinstance(mod, (torch.nn.ReLU, torch.nn.Tanh)):
            raise AssertionError(f"{name}: EfficientSAM uses GELU only")
        if isinstance(mod, torch.nn.GELU):
            assert mod.approximate == "none", name
    n_gelu = sum(isinstance(m, torch.nn.GELU) for m in model.modules())
    assert n_gelu == 12 + 2 + 2 + 4 * 2 + 2  # ViT MLPs, transformer MLPs, upscaling, hypernets, IoU head


def test_synthetic_image_is_the_golden_one(case: Case) -> None:
    assert hashlib.sha256(case.image.tobytes()).hexdigest() == str(case.golden["meta__image_sha256"])
    assert int(case.golden["meta__fill_version"]) == case.fill.FILL_VERSION


# ---------------------------------------------------------------------------------------------------------
# 2. numerics: every golden array
# ---------------------------------------------------------------------------------------------------------
GROUPS = ("sizes", "encoder_input", "embedding", *PROMPT_NAMES)


def _group_keys(golden: dict, group: str) -> list[str]:
    if group == "sizes":
        return ["input_size", "original_size"]
    return sorted(k for k in golden if k.startswith(group + "__"))


@pytest.mark.parametrize("group", GROUPS)
def test_golden_outputs(case: Case, fidelity: types.SimpleNamespace, group: str) -> None:
    keys = _group_keys(case.golden, group)
    assert keys
    _check(case.golden, _produced(case), keys, fidelity)


@pytest.mark.parametrize("name", ["box", "point1"])
def test_single_unpadded_prompts(case: Case, fidelity: types.SimpleNamespace, name: str) -> None:
    """The prompts that the batched calls pad with label -1, passed alone without padding."""
    produced = {}
    for mm in (1, 0):
        produced.update(_prompt_outputs(case, _single_call(case.fill, name), mm))
    keys = _group_keys(case.golden, name)
    assert set(produced) == set(keys)
    _check(case.golden, produced, keys, fidelity)


def test_every_golden_array_is_checked(case: Case) -> None:
    golden = {k for k in case.golden if not k.startswith("meta__")}
    grouped = {k for g in GROUPS for k in _group_keys(case.golden, g)}
    assert grouped == golden
    assert set(_produced(case)) == golden


def test_official_forward_end_to_end(
    case: Case, fidelity: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``model(images, points, labels)`` exactly as the goldens called it: the 4 prompts as 4 queries.

    Covers the model's own ``preprocess`` + ``forward`` (always multimask, bicubic to the input size).
    The encoder is not run a second time: its input must equal the runner's bit for bit, and then
    its (deterministic) output is the embedding already computed by ``set_image``.
    """
    fill = case.fill
    expected_input = case.runner.encoder_input(case.image)

    def cached_encoder(x: torch.Tensor) -> torch.Tensor:
        assert torch.equal(x, expected_input)
        return case.runner.image_embedding

    monkeypatch.setattr(case.runner.model.image_encoder, "forward", cached_encoder)
    pts = np.full((1, 4, 3, 2), -1.0, dtype=np.float32)
    labels = np.full((1, 4, 3), -1, dtype=np.int64)
    for q, name in enumerate(PROMPT_NAMES):
        p = fill.PROMPTS[name]
        xy, lb = [], []
        if p["box"] is not None:
            xy += [p["box"][:2], p["box"][2:]]
            lb += [2, 3]
        if p["points"] is not None:
            xy += p["points"]
            lb += p["labels"]
        pts[0, q, : len(xy)], labels[0, q, : len(lb)] = xy, lb
    x = torch.from_numpy(case.image).permute(2, 0, 1).float().div(255)[None]
    with torch.inference_mode():
        logits, iou = case.runner.model(x, torch.from_numpy(pts), torch.from_numpy(labels))
    produced = {}
    for q, name in enumerate(PROMPT_NAMES):
        full = logits[0, q].numpy()
        produced[f"{name}__mm1__iou_forward"] = iou[0, q].numpy()
        produced[f"{name}__mm1__masks_packed"] = fill.pack_mask(full >= 0)
        produced[f"{name}__mm1__mask_logits_sample"] = fill.strided_sample(full)[1]
    _check(case.golden, produced, sorted(produced), fidelity)


# ---------------------------------------------------------------------------------------------------------
# 3. official prompt semantics (cheap, on the filled model)
# ---------------------------------------------------------------------------------------------------------
def test_prediction_shapes_and_types(case: Case) -> None:
    h, w = case.image.shape[:2]
    boxes = np.array([[10, 20, 300, 400], [200, 120, 420, 330], [0, 0, 640, 480]], dtype=float)
    for multimask, m in ((True, 3), (False, 1)):
        pred = case.runner.predict(boxes=boxes, multimask=multimask)
        assert pred.masks.shape == (3, m, h, w) and pred.masks.dtype == torch.bool
        assert pred.iou_predictions.shape == (3, m)
        assert pred.low_res_logits.shape == (3, m, 256, 256)
    empty = case.runner.predict(boxes=np.zeros((0, 4)))
    assert empty.masks.shape == (0, 3, h, w) and empty.iou_predictions.shape == (0, 3)


def test_label_zero_gets_positional_encoding_only(case: Case) -> None:
    pe = case.runner.model.prompt_encoder
    coords = torch.tensor([[[100.0, 200.0]] * 5])
    labels = torch.tensor([[-1, 0, 1, 2, 3]])
    with torch.inference_mode():
        out = pe(coords, labels)[0]
        pos = pe.pe_layer.encode((coords + 0.5) / net.IMG_SIZE)[0]  # same batch shape: same rounding
    torch.testing.assert_close(out[1], pos[1], rtol=0, atol=0)
    learned = {
        0: pe.invalid_points,  # label -1
        2: pe.point_embeddings,  # label 1
        3: pe.bbox_top_left_embeddings,  # label 2
        4: pe.bbox_bottom_right_embeddings,  # label 3
    }
    for i, emb in learned.items():
        torch.testing.assert_close(out[i], pos[i] + emb.weight[0], rtol=0, atol=0)


def test_prompts_are_truncated_to_six_points_box_first(case: Case) -> None:
    box = np.array([[200.0, 120.0, 420.0, 330.0]])
    clicks = np.array([[[300, 220], [250, 200], [350, 300], [260, 150], [400, 310], [210, 320]]], dtype=float)
    labels = np.array([[1, 0, 1, 1, 0, 1]])
    r = case.runner
    with_six = r.predict_low_res(boxes=box, points=clicks, point_labels=labels)
    with_four = r.predict_low_res(boxes=box, points=clicks[:, :4], point_labels=labels[:, :4])
    for a, b in zip(with_six, with_four, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_points_are_stretched_per_axis_and_negatives_become_minus_one(case: Case) -> None:
    pts = torch.tensor([[[320.0, 240.0], [-3.0, 480.0], [640.0, -0.5]]])
    out = case.runner.model.rescale_points(pts, 480, 640)
    torch.testing.assert_close(out, torch.tensor([[[512.0, 512.0], [-1.0, 1024.0], [1024.0, -1.0]]]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "box or points"),
        ({"boxes": np.zeros((2, 3))}, "N×4"),
        ({"points": np.zeros((1, 1, 2))}, "point_labels"),
        ({"points": np.zeros((1, 1, 2)), "point_labels": [[2]]}, "labels must be in"),
        ({"points": np.zeros((1, 2, 2)), "point_labels": [[1]]}, "N×P×2"),
        ({"boxes": np.zeros((2, 4)), "points": np.zeros((1, 1, 2)), "point_labels": [[1]]}, "2 boxes but 1"),
    ],
)
def test_bad_prompts_are_input_errors(case: Case, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        case.runner.predict(**kwargs)


def test_bad_images_are_input_errors(case: Case) -> None:
    before = case.runner.image_embedding
    for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)):
        with pytest.raises(InputError, match="uint8 RGB"):
            case.runner.set_image(bad)
        assert case.runner.image_embedding is before  # rejected before the current image is replaced


# ---------------------------------------------------------------------------------------------------------
# 4. packaging: registry, checkpoint loading, no torchvision
# ---------------------------------------------------------------------------------------------------------
def test_registry_builds_the_runner() -> None:
    rows = {"efficientsam-ti": "EfficientSAM-Ti", "efficientsam-s": "EfficientSAM-S"}
    for name, spec in MODELS.items():
        assert registry.get_spec(name) is spec
        assert spec.needs_weights and spec.label == rows[name]
    runner = registry.build_model("efficientsam-ti")
    assert isinstance(runner, EfficientSamRunner) and runner.name == "efficientsam-ti"
    assert runner.checkpoint_sha256 is None and not runner.model.training and not runner.takes_mask_prompt


@pytest.fixture
def fake_checkpoints(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Stand-in for ``load_checkpoint``: returns whatever state_dict the test puts in ``box``."""
    box: dict = {}

    def read_checkpoint(spec, path: str, trust: bool = False) -> types.SimpleNamespace:
        spec = registry.get_spec(spec) if isinstance(spec, str) else spec
        box["called"] = (spec.name, path, trust)
        return types.SimpleNamespace(
            state_dict=box["state_dict"],
            sha256="ab" * 32,
            path=Path(path),
            spec=spec,
            confirm=lambda: None,
            notes={},
        )

    from evalsuite.models import weights

    monkeypatch.setattr(weights, "read_checkpoint", read_checkpoint)
    return box


def test_checkpoint_loads_strictly_and_records_its_hash(case: Case, fake_checkpoints: dict) -> None:
    sd = case.runner.model.state_dict()
    fake_checkpoints["state_dict"] = sd
    runner = MODELS[case.name].build(checkpoint="official.pt", trust_checkpoint=True)
    assert fake_checkpoints["called"] == (case.name, "official.pt", True)
    assert runner.checkpoint_sha256 == "ab" * 32 and not runner.model.training
    for k, v in runner.model.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_checkpoint_key_mismatches_are_input_errors(case: Case, fake_checkpoints: dict) -> None:
    sd = dict(case.runner.model.state_dict())
    sd["prompt_encoder.not_a_point_embed.weight"] = sd.pop("prompt_encoder.invalid_points.weight")
    fake_checkpoints["state_dict"] = sd
    with pytest.raises(InputError, match=r"official\.pt.*invalid_points.*not_a_point_embed"):
        MODELS[case.name].build(checkpoint="official.pt")
    other = "efficientsam-s" if case.name == "efficientsam-ti" else "efficientsam-ti"
    fake_checkpoints["state_dict"] = case.runner.model.state_dict()
    with pytest.raises(InputError, match=r"official\.pt: does not fit"):
        MODELS[other].build(checkpoint="official.pt")


def test_official_file_layout_loads_through_the_real_loader(tmp_path: Path) -> None:
    """The official file layout ``{"model": state_dict}`` (``torch.load(f)["model"]``) via the real loader."""
    pytest.importorskip("evalsuite.models.weights")
    weights = EFFICIENTSAM_TI.build().model.state_dict()  # random init: any weights will do
    path = tmp_path / "finetuned_vitt.pt"
    torch.save({"model": weights}, path)
    runner = registry.build_model("efficientsam-ti", checkpoint=str(path))
    assert runner.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = runner.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())


def test_torchvision_is_never_imported() -> None:
    for path in (SRC / "efficientsam.py", SRC / "nn" / "efficientsam_net.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "torchvision"], path
