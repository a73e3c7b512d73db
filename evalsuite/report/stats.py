"""Statistics over per-item results: paired bootstrap intervals of a difference between two runs.

Pure functions of small per-item data (IoUs keyed by ``(image_id, ann_id)``), so they can be recomputed
offline from the logs. Which two runs may be paired at all is :func:`evalsuite.identity.pairing_problems`.
The AP protocols' image bootstrap is :mod:`evalsuite.metrics.ap_bootstrap` (it re-accumulates the
official evaluator's matches).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..metrics.noc import noc

#: COCO size buckets as written in instances.jsonl
SIZES = ("S", "M", "L")

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
    scale: float = 100.0,
) -> BootstrapResult:
    """Percentile bootstrap CI of mean(a − b) over paired instances (a[i], b[i] are one instance).

    Resampling the *instances* (with replacement, ``n`` per resample) keeps each pair together,
    so the interval reflects only the spread of per-instance differences — the right question
    when two models saw the very same prompts. Values are IoUs in [0, 1]; results are in
    percent points (× ``scale`` = 100), like mIoU (clicks to a target: ``scale=1``).
    The generator is ``np.random.default_rng(seed)`` and
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
        mean_a=scale * math.fsum(da) / n,
        mean_b=scale * math.fsum(db) / n,
        delta=scale * math.fsum(diff) / n,
        ci_low=scale * float(lo),
        ci_high=scale * float(hi),
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
    keys, ra, rb = pair_rows(a, b)
    if same_prompts and (
        bad := [k for k, x, y in zip(keys, ra, rb, strict=True) if x.get("prompt") != y.get("prompt")]
    ):
        raise ValueError(f"{len(bad)} instance(s) were prompted differently (first {bad[0]})")
    return keys, np.array([r["iou"] for r in ra]), np.array([r["iou"] for r in rb])


def pair_rows(a: Sequence[Mapping], b: Sequence[Mapping]) -> tuple[list[Key], list[Mapping], list[Mapping]]:
    """The rows of two per-instance logs joined on (image_id, ann_id), in key order; refused (ValueError)
    when an instance is logged twice or the two sets differ."""
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
    return keys, [ka[k] for k in keys], [kb[k] for k in keys]


def clicks_to_reach(rows: Sequence[Mapping], threshold: float, max_clicks: int) -> np.ndarray:
    """Per NoC instance row (its ``ious`` after each click): the clicks it needed to reach IoU ≥
    ``threshold`` (a fraction), the cap where it never did (:func:`evalsuite.metrics.noc.noc`)."""
    return np.array([noc(r["ious"], threshold, max_clicks) for r in rows], dtype=np.float64)


def _by_key(rows: Sequence[Mapping], name: str) -> dict[Key, Mapping]:
    out: dict[Key, Mapping] = {}
    for r in rows:
        key = (int(r["image_id"]), int(r["ann_id"]))
        if key in out:
            raise ValueError(f"run {name} scored instance {key} twice")
        out[key] = r
    return out
