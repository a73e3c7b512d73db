"""Golden arrays: the runner's outputs named like the golden files, compared with compare_golden's limits.

``errors`` / ``check`` compare any golden file (EfficientSAM's, SAM 2.1's, SAM 3's); ``produced`` names the
outputs of the SAM2ImagePredictor-style models (SAM 2.1, SAM 3's interactive path), whose goldens hold the
same arrays (NEW_MODELS.md §2, NEW_MODELS3.md §2): the encoder input, the embedding and the two
high-resolution maps as summary statistics and a strided sample, then, per golden prompt and
``multimask_output`` 1 / 0, the low-res logits, the IoU predictions and the full-resolution masks.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

PROMPT_NAMES = ("box", "point1", "points3", "box_point")
MAPS = ("encoder_input", "embedding", "high_res_s0_embedding", "high_res_s1_embedding")
GROUPS = ("sizes", *MAPS, *PROMPT_NAMES)


def load_fidelity(root: Path) -> types.SimpleNamespace:
    """../shared/fidelity with its ``fill`` and ``compare_golden`` modules imported from there."""
    for sub in (root, root / "tools"):
        if str(sub) not in sys.path:
            sys.path.insert(0, str(sub))
    import compare_golden
    import fill

    return types.SimpleNamespace(root=root, fill=fill, tolerances=dict(compare_golden.TOLERANCES))


def stats(prefix: str, arr: np.ndarray, fill: types.ModuleType) -> dict[str, np.ndarray]:
    idx, sample = fill.strided_sample(arr)
    a64 = arr.astype(np.float64)
    return {
        f"{prefix}__shape": np.array(arr.shape),
        f"{prefix}__mean": np.array(a64.mean()),
        f"{prefix}__std": np.array(a64.std()),
        f"{prefix}__min": np.array(arr.min()),
        f"{prefix}__max": np.array(arr.max()),
        f"{prefix}__sample_idx": idx,
        f"{prefix}__sample": sample,
    }


def prompt_kwargs(fill: types.ModuleType, name: str) -> dict:
    """One golden prompt as a caller passes it: N = 1, no padding."""
    p = fill.PROMPTS[name]
    kw: dict = {}
    if p["box"] is not None:
        kw["boxes"] = np.array([p["box"]])
    if p["points"] is not None:
        kw["points"], kw["point_labels"] = np.array([p["points"]]), np.array([p["labels"]])
    return kw


def prompt_outputs(runner, fill: types.ModuleType, name: str, mm: int) -> dict[str, np.ndarray]:
    """One golden prompt through ``predict()`` as the golden was made: ``return_logits=True`` for the
    full-resolution logits; the golden masks are ``logits > 0`` (the lazy masks of a plain predict() are
    checked against that separately)."""
    k = f"{name}__mm{mm}"
    pred = runner.predict(multimask=bool(mm), return_logits=True, **prompt_kwargs(fill, name))
    full = pred.masks[0].numpy()
    idx, sample = fill.strided_sample(full)
    return {
        f"{k}__low_res_logits": pred.low_res_logits[0].numpy(),
        f"{k}__iou": pred.iou_predictions[0].numpy(),
        f"{k}__masks_shape": np.array(full.shape),
        f"{k}__masks_packed": fill.pack_mask(full > 0),
        f"{k}__mask_logits_sample_idx": idx,
        f"{k}__mask_logits_sample": sample,
    }


def produced(runner, image: np.ndarray, fill: types.ModuleType, input_size: int) -> dict[str, np.ndarray]:
    """Every non-meta golden array through the runner's public path (one predict() per prompt and mm);
    ``runner`` has embedded ``image`` already."""
    out: dict[str, np.ndarray] = {
        "input_size": np.array([input_size, input_size]),
        "original_size": np.array(image.shape[:2]),
    }
    out.update(stats("encoder_input", runner.encoder_input(image).numpy(), fill))
    feats = runner.features
    emb = feats.embedding.numpy()
    out.update(stats("embedding", emb, fill))
    out["embedding__channel_mean"] = emb[0].mean(axis=(1, 2))
    out["embedding__spatial_mean"] = emb[0].mean(axis=0)
    out.update(stats("high_res_s0_embedding", feats.high_res_s0.numpy(), fill))
    out.update(stats("high_res_s1_embedding", feats.high_res_s1.numpy(), fill))
    for name in PROMPT_NAMES:
        for mm in (1, 0):
            out.update(prompt_outputs(runner, fill, name, mm))
    return out


def tolerance(key: str, tolerances: dict[str, float]) -> float | None:
    for suffix, tol in tolerances.items():
        if key.endswith(suffix):
            return tol
    # summary statistics share the limit of their sample (compare_golden.py leaves them unchecked);
    # the high-res maps' names end in "embedding__...", so they get the embedding limit, as there
    for prefix, limit in (("encoder_input", "encoder_input__sample"), ("embedding", "embedding__sample")):
        if key.startswith(prefix + "__") or (prefix == "embedding" and "_embedding__" in key):
            return tolerances[limit]
    return None


def errors(
    golden: dict,
    produced: dict,
    keys: list[str],
    fidelity: types.SimpleNamespace,
    tolerance_of: Callable[[str, dict[str, float]], float | None] = tolerance,
) -> dict:
    """(max |Δ| or flipped-pixel fraction, tolerance) per key; integer arrays must be equal (asserted)."""
    out = {}
    unpack = fidelity.fill.unpack_mask
    for k in keys:
        g, p = golden[k], produced[k]
        if k.endswith("masks_packed"):
            shape = golden[k.replace("masks_packed", "masks_shape")]
            err = float((unpack(g, shape) != unpack(p, shape)).mean())
        elif g.dtype.kind == "f":
            assert g.shape == p.shape, k
            err = float(np.abs(g.astype(np.float64) - p.astype(np.float64)).max()) if g.size else 0.0
        else:
            assert np.array_equal(g, p), f"{k}: {p} != {g}"
            continue
        tol = tolerance_of(k, fidelity.tolerances)
        assert tol is not None, f"no tolerance for {k}"
        out[k] = (err, tol)
    return out


def check(
    golden: dict,
    produced: dict,
    keys: list[str],
    fidelity: types.SimpleNamespace,
    tolerance_of: Callable[[str, dict[str, float]], float | None] = tolerance,
) -> dict[str, float]:
    """Max |Δ| (or flipped-pixel fraction) per key; asserts each is within its tolerance."""
    found = errors(golden, produced, keys, fidelity, tolerance_of)
    failures = [f"{k}: {e:.3e} > {t:.0e}" for k, (e, t) in found.items() if e > t]
    assert not failures, "\n".join(failures)
    return {k: e for k, (e, _) in found.items()}


def group_keys(golden: dict, group: str) -> list[str]:
    if group == "sizes":
        return ["input_size", "original_size"]
    return sorted(k for k in golden if k.startswith(group + "__"))
