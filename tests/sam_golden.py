"""Golden checks shared by the SamPredictor-style models of the RepViT family (EdgeSAM, RepViT-SAM).

A :class:`GoldenCase` builds a registered model, fills it with ``fill.py``'s deterministic weights (strict,
every key), calls ``eval()`` afterwards as the goldens did, embeds ``fill.make_image()`` once, and compares
every golden array with the limits of ``compare_golden.py`` (``tol``; a test may widen one limit, and must
then say why beside it).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from evalsuite.models.registry import get_spec

PROMPTS = ("box", "point1", "points3", "box_point")
STATS = ("mean", "std", "min", "max")


def max_abs(a, b) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return float(np.abs(a.astype(np.float64) - np.asarray(b, dtype=np.float64)).max())


def prompt_kwargs(fill, prompt: str) -> dict[str, np.ndarray]:
    """One fill.PROMPTS entry as a batch of one prompt for ``Runner.predict``."""
    p = fill.PROMPTS[prompt]
    kw: dict[str, np.ndarray] = {}
    if p["box"] is not None:
        kw["boxes"] = np.array([p["box"]])
    if p["points"] is not None:
        kw["points"], kw["point_labels"] = np.array([p["points"]]), np.array([p["labels"]])
    return kw


class GoldenCase:
    """One model, filled and with the test image embedded, and its golden arrays."""

    def __init__(self, fid: SimpleNamespace, name: str, tol: dict[str, float] | None = None) -> None:
        self.fill = fid.fill
        self.tol = dict(tol or fid.tolerances)
        with np.load(fid.root / "golden" / f"{name}.npz") as npz:
            self.golden = {k: npz[k] for k in npz.files}
        self.runner = get_spec(name).build()
        self.fill.fill_module(self.runner.model)  # strict: every official key
        self.runner.model.eval()
        self.image = self.fill.make_image()
        self.runner.set_image(self.image)

    def check_encoder_input(self) -> None:
        g, tol = self.golden, self.tol["encoder_input__sample"]
        assert tuple(g["original_size"]) == self.fill.IMAGE_HW == self.image.shape[:2]
        x = self.runner.encoder_input(self.image)
        assert self.runner.current.input_size == tuple(g["input_size"]) == (768, 1024)
        assert list(x.shape) == list(g["encoder_input__shape"]) == [1, 3, 1024, 1024]
        assert max_abs(x.reshape(-1)[g["encoder_input__sample_idx"]], g["encoder_input__sample"]) <= tol
        for stat in STATS:
            assert abs(float(getattr(x.double(), stat)()) - float(g[f"encoder_input__{stat}"])) <= tol, stat

    def check_embedding(self) -> None:
        g, tol = self.golden, self.tol
        emb = self.runner.image_embedding
        assert list(emb.shape) == list(g["embedding__shape"]) == [1, 256, 64, 64]
        sample = emb.reshape(-1)[g["embedding__sample_idx"]]
        assert max_abs(sample, g["embedding__sample"]) <= tol["embedding__sample"]
        assert (
            max_abs(emb.mean(dim=(0, 2, 3)), g["embedding__channel_mean"]) <= tol["embedding__channel_mean"]
        )
        assert max_abs(emb.mean(dim=(0, 1)), g["embedding__spatial_mean"]) <= tol["embedding__spatial_mean"]
        for stat in STATS:
            got = float(getattr(emb.double(), stat)())
            assert abs(got - float(g[f"embedding__{stat}"])) <= tol["embedding__sample"], stat

    def check_prediction(self, prompt: str, mm: int) -> None:
        """Low-res logits, IoU, masks and full-resolution logits of one prompt, mm1 (3 outputs) or mm0 (1)."""
        g, tol, key = self.golden, self.tol, f"{prompt}__mm{mm}__"
        kw = prompt_kwargs(self.fill, prompt)
        pred = self.runner.predict(multimask=bool(mm), **kw)
        n_out = 3 if mm else 1
        assert pred.masks.dtype == torch.bool and tuple(pred.masks.shape) == (1, n_out, 480, 640)
        assert pred.iou_predictions.shape == (1, n_out) and pred.low_res_logits.shape == (1, n_out, 256, 256)
        self.check_outputs(key, pred.low_res_logits[0], pred.iou_predictions[0], pred.masks[0])
        assert torch.equal(pred.select(torch.tensor([n_out - 1])), pred.masks[:, n_out - 1])
        logits = self.runner.predict(multimask=bool(mm), return_logits=True, **kw).masks[0].reshape(-1)
        sample = logits[g[key + "mask_logits_sample_idx"]]
        assert max_abs(sample, g[key + "mask_logits_sample"]) <= tol["mask_logits_sample"]

    def check_outputs(self, key: str, low_res, iou, masks) -> None:
        """C×256×256 logits, C IoU predictions and C×H×W masks against the golden arrays ``key*``."""
        g, tol = self.golden, self.tol
        assert max_abs(low_res, g[key + "low_res_logits"]) <= tol["low_res_logits"]
        assert max_abs(iou, g[key + "iou"]) <= tol["iou"]
        want = self.fill.unpack_mask(g[key + "masks_packed"], g[key + "masks_shape"])
        flipped = float((masks.cpu().numpy() != want).mean())
        assert flipped <= tol["masks_packed"], f"{flipped:.2e} of the mask pixels differ"

    def unchecked_arrays(self) -> set[str]:
        """Golden arrays the checks above do not read (a new golden key must get a check)."""
        checked = {"input_size", "original_size", "embedding__channel_mean", "embedding__spatial_mean"}
        for prefix in ("encoder_input", "embedding"):
            checked |= {f"{prefix}__{s}" for s in ("shape", *STATS, "sample_idx", "sample")}
        for prompt in PROMPTS:
            for mm in (1, 0):
                k = f"{prompt}__mm{mm}__"
                checked |= {k + s for s in ("low_res_logits", "iou", "masks_shape", "masks_packed")}
                checked |= {k + "mask_logits_sample", k + "mask_logits_sample_idx"}
        return {k for k in self.golden if not k.startswith("meta__")} ^ checked
