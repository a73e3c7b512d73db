"""Tiny synthetic datasets, one per format, written by the tests (no committed binaries).

Each writer puts a few small images and their annotations in the layout of one catalogue entry
(or of a user's TOML dataset) under a root, and returns what the annotations hold, so a test can
compute expected numbers independently of the readers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

H, W = 24, 32


def _image(path: Path, seed: int, size: tuple[int, int] = (H, W)) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)


def _blob(top: int, left: int, bottom: int, right: int, notch: bool = True) -> np.ndarray:
    """A filled rectangle with a notch cut out (so the tight box is not the mask)."""
    m = np.zeros((H, W), dtype=bool)
    m[top:bottom, left:right] = True
    if notch:
        m[top : (top + bottom) // 2, left : (left + right) // 2] = False
    return m


def box_fill_iou(mask: np.ndarray) -> float:
    """IoU of the filled tight box of ``mask`` with ``mask`` (what the box-fill model scores)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (rows[-1] + 1 - rows[0]) * (cols[-1] + 1 - cols[0])
    return float(mask.sum()) / float(box)


def write_mask_folder(root: Path, masks_dir: str, images_dir: str) -> list[np.ndarray]:
    """Three images and 8-bit mask PNGs (values 0 / 100 / 128 / 200 / 255; one RGB, one palette):
    returns the objects under the ``> 128`` rule (first channel)."""
    objects = []
    for i, (mask, rgb) in enumerate(
        [(_blob(2, 3, 20, 28), False), (_blob(5, 10, 15, 30, notch=False), True), (_blob(0, 0, 12, 9), False)]
    ):
        values = np.where(mask, 200 + 55 * (i % 2), 0).astype(np.uint8)
        values[-1, :5] = 100  # below the threshold: background
        values[-2, :5] = 128  # exactly the threshold (RITM's ignore band): background
        stem = f"img_{i:02d}"
        _image(root / images_dir / f"{stem}.jpg", i)
        out = root / masks_dir / f"{stem}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if rgb:  # a 3-channel mask: the first channel decides (other channels are noise)
            noise = np.full((H, W), 255, dtype=np.uint8)
            Image.fromarray(np.stack([values, noise, 255 - noise], axis=2)).save(out)
        elif i == 2:  # a palette PNG: read as its colours
            im = Image.fromarray(values, mode="L").convert("P")
            im.save(out)
        else:
            Image.fromarray(values).save(out)
        objects.append(values > 128)
    return objects


def write_instance_folder(root: Path, masks_dir: str, images_dir: str) -> list[dict[int, np.ndarray]]:
    """Two images with palette id maps: ids 1 and 2, and a void band of 255; returns {id: mask}."""
    out = []
    for i in range(2):
        ids = np.zeros((H, W), dtype=np.uint8)
        ids[_blob(2, 2, 12, 14)] = 1
        ids[_blob(10 + i, 16, 22, 30, notch=False)] = 2
        ids[0, :] = 255  # void
        stem = f"frame{i}"
        _image(root / images_dir / f"{stem}.jpg", 10 + i)
        im = Image.fromarray(ids, mode="P")
        im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0, 0, 0] * 252 + [255, 255, 255])
        path = root / masks_dir / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path)
        out.append({k: ids == k for k in (1, 2)})
    return out


def write_sa1b(root: Path, folder: str = "sa_000130", images: int = 2, per_image: int = 3) -> dict[str, list]:
    """SA-1B per-image JSON (compressed RLE, area, bbox, point_coords) beside its JPEGs."""
    out: dict[str, list] = {}
    for i in range(images):
        stem = f"sa_{100 + i}"
        _image(root / folder / f"{stem}.jpg", 20 + i)
        anns, masks = [], []
        for k in range(per_image):
            m = _blob(2 + 2 * k, 3 + 4 * k, 12 + 3 * k, 14 + 5 * k, notch=k % 2 == 0)
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append(
                {
                    "id": 1000 * i + k,
                    "segmentation": {"size": [H, W], "counts": rle["counts"].decode("ascii")},
                    "area": int(m.sum()),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "predicted_iou": 0.9,
                    "point_coords": [[5.0, 5.0]],
                    "stability_score": 0.95,
                    "crop_box": [0, 0, W, H],
                }
            )
            masks.append(m)
        doc = {
            "image": {"image_id": 100 + i, "width": W, "height": H, "file_name": f"{stem}.jpg"},
            "annotations": anns,
        }
        (root / folder / f"{stem}.json").write_text(json.dumps(doc))
        out[stem] = masks
    return out
