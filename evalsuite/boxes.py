"""Detector-box files: the published ViTDet-H results (download) and pseudo-detections (make-boxes).

The paper's Table 5 prompts with ViTDet-H boxes. Prebuilt result files are published by
TinySAM (PROTOCOLS.md §4); nobody publishes their SHA-256, so the first download's value is
recorded and checked afterwards. ``make_pseudo_detections`` writes boxes derived from the
ground truth — clearly not a detector — so the AP protocols can run on the bundled sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data.readers import DatasetReader
from .download import ShaRecord, download
from .errors import InputError, UnknownNameError, did_you_mean
from .models.checkpoints import home


@dataclass(frozen=True)
class BoxFile:
    """A published detection file for one detector-box protocol."""

    protocol: str
    filename: str
    url: str
    detector: str
    detections: int | None = None  # entries in the file, where known


BOX_FILES: dict[str, BoxFile] = {
    "coco-vitdet": BoxFile(
        "coco-vitdet",
        "coco_instances_results_vitdet.json",
        # TinySAM release 2.0 (README: "detection boxes produced by ViTDet model"); 92,850 detections
        "https://github.com/xinghaochen/TinySAM/releases/download/2.0/coco_instances_results_vitdet.json",
        "ViTDet-H Cascade Mask R-CNN (detectron2 cascade_mask_rcnn_vitdet_h_75ep), COCO val2017",
        92_850,
    ),
    "lvis-vitdet": BoxFile(
        "lvis-vitdet",
        "lvis_instances_results_vitdet.json",
        "https://github.com/xinghaochen/TinySAM/releases/download/3.0/lvis_instances_results_vitdet.json",
        "ViTDet-H Cascade Mask R-CNN (detectron2 cascade_mask_rcnn_vitdet_h_100ep), LVIS v1 val",
    ),
}


def _box_file(name: str) -> BoxFile:
    if name not in BOX_FILES:
        raise UnknownNameError(f"no published boxes for {name!r}.{did_you_mean(name, list(BOX_FILES))}")
    return BOX_FILES[name]


def boxes_dir() -> Path:
    return home() / "boxes"


def default_boxes_path(name: str) -> Path:
    return boxes_dir() / _box_file(name).filename


def download_boxes(
    name: str, dest_dir: Path | None = None, progress: bool = True, base_url: str | None = None
) -> Path:
    """Fetch a published detection file (resumable); its SHA-256 is recorded on first download."""
    info = _box_file(name)
    dest_dir = Path(dest_dir) if dest_dir else boxes_dir()
    dest = dest_dir / info.filename
    record = ShaRecord(dest_dir / "sha256.json")
    expected = record.get(info.filename)
    url = info.url if base_url is None else base_url.rstrip("/") + "/" + info.filename
    if dest.is_file():
        from .data.jsonio import sha256_file

        got = sha256_file(dest)
        if expected is not None and got != expected:
            raise InputError(
                f"{dest}: SHA-256 {got} differs from the one recorded at first download ({expected})",
                hint=f"delete the file (and its entry in {record.path}) and download it again",
            )
    else:
        got = download(url, dest, sha256=expected, progress=progress)
    if expected is None:
        record.set(info.filename, got)
    return dest


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
    Deterministic in (seed, image id).
    """
    categories = np.asarray(sorted(reader.categories), dtype=np.int64)
    out: list[dict] = []
    for image_id in image_ids if image_ids is not None else reader.image_ids():
        sample = reader.sample(image_id)
        rng = np.random.default_rng([seed, image_id])
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
