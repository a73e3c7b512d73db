"""Pseudo-detections derived from the ground truth: NOT a detector, a way to run the AP protocols.

``evalsuite make-boxes`` writes them so the Table 5 protocols can run on the bundled sample (and
tests can build detection files with known answers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .readers import DatasetReader
from .values import seed_material


def make_pseudo_detections(
    reader: DatasetReader,
    seed: int = 0,
    jitter: float = 0.1,
    false_positives: int = 1,
    exact: bool = False,
    image_ids: list[int] | None = None,
) -> list[dict]:
    """Detections derived from the ground truth: NOT a detector, a way to exercise the AP protocols.

    Every non-crowd annotation with a positive-size box gives one detection of its category:
    with ``exact``, its box with score 1 (an oracle model must then reach AP 100); otherwise
    the box with Gaussian jitter of ``jitter`` × its size per edge, a random score, plus
    ``false_positives`` random boxes of random categories per image with lower scores.
    Deterministic in (seed, image id) (negative ones too: :func:`evalsuite.data.values.seed_material`).
    """
    categories = np.asarray(sorted(reader.categories), dtype=np.int64)
    out: list[dict] = []
    for image_id in image_ids if image_ids is not None else reader.image_ids():
        sample = reader.sample(image_id)
        rng = np.random.default_rng(seed_material(seed, image_id))
        for inst in sample.instances:
            x, y, w, h = inst.bbox
            if inst.iscrowd or w <= 0 or h <= 0:
                continue
            if exact:
                out.append(_det(image_id, inst.category_id, (x, y, w, h), 1.0))
                continue
            x0, y0, x1, y1 = np.array([x, y, x + w, y + h]) + rng.normal(0.0, jitter, 4) * [w, h, w, h]
            x0, y0 = max(0.0, x0), max(0.0, y0)
            x1, y1 = min(float(sample.width), x1), min(float(sample.height), y1)
            if x1 - x0 >= 1 and y1 - y0 >= 1:
                out.append(
                    _det(image_id, inst.category_id, (x0, y0, x1 - x0, y1 - y0), rng.uniform(0.3, 1.0))
                )
        if exact:
            continue
        for _ in range(false_positives):
            w, h = rng.uniform(0.05, 0.5) * sample.width, rng.uniform(0.05, 0.5) * sample.height
            x, y = rng.uniform(0, sample.width - w), rng.uniform(0, sample.height - h)
            out.append(_det(image_id, int(rng.choice(categories)), (x, y, w, h), rng.uniform(0.01, 0.4)))
    return out


def _det(image_id: int, category_id: int, xywh, score: float) -> dict:
    return {
        "image_id": int(image_id),
        "category_id": int(category_id),
        "bbox": [round(float(v), 2) for v in xywh],
        "score": round(float(score), 4),
    }


#: the note `make-boxes` leaves beside its output, so a run can say its detections are not a detector's
ABOUT_SUFFIX = ".about.json"


def about_path(path: Path) -> Path:
    return path.with_name(path.name + ABOUT_SUFFIX)


def write_about(path: Path, sha256: str, settings: dict) -> Path:
    """Record beside ``path`` that it holds pseudo-detections (with its SHA-256: a later edit voids it)."""
    about = about_path(path)
    about.write_text(
        json.dumps(
            {"made_by": "evalsuite make-boxes", "kind": "pseudo", "sha256": sha256, **settings}, indent=1
        )
        + "\n",
        encoding="utf-8",
    )
    return about


def is_pseudo(path: Path, sha256: str) -> bool:
    """``path`` (with this SHA-256) was written by `make-boxes`, according to the note beside it."""
    try:
        about = json.loads(about_path(Path(path)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(about, dict) and about.get("kind") == "pseudo" and about.get("sha256") == sha256
