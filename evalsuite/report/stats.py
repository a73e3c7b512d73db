"""Statistics over per-instance results: paired bootstrap intervals and NoC.

Both are pure functions of small per-instance data (IoUs keyed by ``(image_id, ann_id)``,
per-click IoU sequences), so they can be recomputed offline from the logs. The one impure
helper, :func:`sam_click_ious`, produces those sequences by running a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: COCO size buckets as written in instances.jsonl
SIZES = ("S", "M", "L")
NOC_THRESHOLDS = (0.85, 0.90)
NOC_MAX_CLICKS = 20

Key = tuple[int, int]


@dataclass(frozen=True)
class BootstrapResult:
    """Mean paired difference A − B (in IoU points × 100) with its percentile interval."""

    n: int
    mean_a: float
    mean_b: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    seed: int


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    chunk_elements: int = 8_000_000,
) -> BootstrapResult:
    """Percentile bootstrap CI of mean(a − b) over paired instances (a[i], b[i] are one instance).

    Resampling the *instances* (with replacement, ``n`` per resample) keeps each pair together,
    so the interval reflects only the spread of per-instance differences — the right question
    when two models saw the very same prompts. Values are IoUs in [0, 1]; results are in
    percent points (× 100), like mIoU. The generator is ``np.random.default_rng(seed)`` and
    resamples are drawn in chunks of at most ``chunk_elements`` indices (memory stays bounded
    on LVIS); the draw sequence does not depend on the chunk size.
    """
    da = np.asarray(a, dtype=np.float64)
    db = np.asarray(b, dtype=np.float64)
    if da.shape != db.shape or da.ndim != 1:
        raise ValueError(
            f"paired_bootstrap: need two 1-D arrays of equal length, got {da.shape} and {db.shape}"
        )
    n = len(da)
    if n == 0:
        raise ValueError("paired_bootstrap: no instances")
    if not (np.all(np.isfinite(da)) and np.all(np.isfinite(db))):
        raise ValueError("paired_bootstrap: IoUs must be finite")
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError("paired_bootstrap: resamples must be >= 1 and confidence in (0, 1)")
    diff = da - db
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    per_chunk = max(1, chunk_elements // n)
    for start in range(0, resamples, per_chunk):
        stop = min(resamples, start + per_chunk)
        idx = rng.integers(0, n, size=(stop - start) * n).reshape(stop - start, n)
        means[start:stop] = diff[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return BootstrapResult(
        n=n,
        mean_a=100.0 * math.fsum(da) / n,
        mean_b=100.0 * math.fsum(db) / n,
        delta=100.0 * math.fsum(diff) / n,
        ci_low=100.0 * float(lo),
        ci_high=100.0 * float(hi),
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )


def pair_instances(
    a: Sequence[Mapping], b: Sequence[Mapping], same_prompts: bool = False
) -> tuple[list[Key], np.ndarray, np.ndarray]:
    """Join two per-instance logs on (image_id, ann_id); refuse when the instance sets differ.

    ``same_prompts``: also require each instance's logged prompt to be identical (true for box
    and random-click protocols at one seed; the ``sam`` clicker's later clicks depend on the
    model). Returns the sorted keys and the two IoU arrays in that order.
    """
    ka = _by_key(a, "A")
    kb = _by_key(b, "B")
    if set(ka) != set(kb):
        only_a = sorted(set(ka) - set(kb))
        only_b = sorted(set(kb) - set(ka))
        raise ValueError(
            f"the two runs scored different instances: {len(only_a)} only in A (first {only_a[:3]}), "
            f"{len(only_b)} only in B (first {only_b[:3]})"
        )
    keys = sorted(ka)
    if same_prompts and (bad := [k for k in keys if ka[k].get("prompt") != kb[k].get("prompt")]):
        raise ValueError(f"{len(bad)} instance(s) were prompted differently (first {bad[0]})")
    return keys, np.array([ka[k]["iou"] for k in keys]), np.array([kb[k]["iou"] for k in keys])


def _by_key(rows: Sequence[Mapping], name: str) -> dict[Key, Mapping]:
    out: dict[Key, Mapping] = {}
    for r in rows:
        key = (int(r["image_id"]), int(r["ann_id"]))
        if key in out:
            raise ValueError(f"run {name} scored instance {key} twice")
        out[key] = r
    return out


# -- NoC ------------------------------------------------------------------------------------------
def noc(ious: Sequence[float], threshold: float, max_clicks: int = NOC_MAX_CLICKS) -> int:
    """Number of clicks needed to reach IoU ≥ ``threshold`` (a fraction), capped at ``max_clicks``.

    ``ious[i]`` is the IoU after click ``i + 1``. An instance that never reaches the threshold
    within ``max_clicks`` clicks counts as ``max_clicks`` (the RITM / SAM convention). A sequence
    shorter than ``max_clicks`` that has not reached the threshold is undetermined: ValueError.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"noc: threshold is an IoU fraction in (0, 1], got {threshold}")
    if max_clicks < 1:
        raise ValueError("noc: max_clicks must be >= 1")
    for i, v in enumerate(ious[:max_clicks]):
        if not math.isfinite(v):
            raise ValueError(f"noc: IoU after click {i + 1} is not finite")
        if v >= threshold:
            return i + 1
    if len(ious) < max_clicks:
        raise ValueError(
            f"noc: {len(ious)} clicks never reach IoU {threshold}; need {max_clicks} to apply the cap"
        )
    return max_clicks


@dataclass(frozen=True)
class NocSummary:
    """NoC@t (mean clicks), failures (never reached within the cap) and mIoU after each click."""

    n: int
    max_clicks: int
    noc: dict[float, float]
    failures: dict[float, int]
    miou_at: list[float]  # percent, after click 1..max_clicks


def summarize_noc(
    sequences: Sequence[Sequence[float]],
    thresholds: Sequence[float] = NOC_THRESHOLDS,
    max_clicks: int = NOC_MAX_CLICKS,
) -> NocSummary:
    """Mean NoC per threshold over instances, with failure counts and the mIoU-vs-clicks curve."""
    if not sequences:
        raise ValueError("summarize_noc: no instances")
    if any(len(s) < max_clicks for s in sequences):
        raise ValueError(f"summarize_noc: every sequence needs {max_clicks} IoUs")
    nocs = {t: [noc(s, t, max_clicks) for s in sequences] for t in thresholds}
    failures = {t: sum(1 for s in sequences if max(s[:max_clicks]) < t) for t in thresholds}
    arr = np.asarray([list(s[:max_clicks]) for s in sequences], dtype=np.float64)
    return NocSummary(
        n=len(sequences),
        max_clicks=max_clicks,
        noc={t: math.fsum(v) / len(v) for t, v in nocs.items()},
        failures=failures,
        miou_at=[100.0 * math.fsum(col) / len(col) for col in arr.T],
    )


@dataclass(frozen=True)
class ClickSequence:
    """The SAM clicker run on one instance: the clicks and the IoU after each."""

    points: np.ndarray  # (k, 2) x, y
    labels: np.ndarray  # (k,) 1 positive, 0 negative
    ious: list[float]


def sam_click_ious(runner, gt: np.ndarray, clicks: int, mask_choice: str = "score") -> ClickSequence:
    """Run the ``sam`` click rule for ``clicks`` rounds on the image set on ``runner``; IoU after each.

    Exactly the evaluator's ``click_rule=sam`` loop (:func:`evalsuite.prompts.sam_clicks_sequence`):
    each round passes all clicks so far together, picks one output by ``mask_choice`` and
    places the next click in that mask's larger error region; so the IoU after click k equals
    what the ``k``-click protocol with ``click_rule=sam`` scores for the instance.
    """
    import torch

    from ..metrics.iou import mask_iou
    from ..prompts import sam_clicks_sequence
    from ..tasks.choice import choose_masks

    g = np.asarray(gt, dtype=bool)
    gt_t = torch.from_numpy(g[None])

    def predict(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if runner.uses_ground_truth:
            runner.set_targets(g[None])
        pred = runner.predict(
            points=points[None], point_labels=labels[None], multimask=mask_choice != "single"
        )
        idx = choose_masks(pred, mask_choice, gt=gt_t.to(pred.device))
        return pred.select(idx)[0].cpu().numpy()

    points, labels, preds = sam_clicks_sequence(g, predict, clicks)
    ious = [float(mask_iou(torch.from_numpy(p[None]), gt_t)[0]) for p in preds]
    return ClickSequence(points, labels, ious)
