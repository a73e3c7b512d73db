"""An example evalsuite plugin: a weightless colour-similarity segmenter.

For each prompt, the mask is the set of pixels whose colour is within ``TOLERANCE`` of the
mean colour at the prompt (the box's central quarter, or the positive clicks), restricted to
the box (box prompts) or to a window around the clicks (point prompts). Not a good model —
a real one, in a dozen lines, wired into evalsuite through one entry point.
"""

from __future__ import annotations

import numpy as np

from evalsuite.models import CallableRunner, ModelSpec

TOLERANCE = 40.0  # max Euclidean RGB distance to the reference colour


def _box_masks(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    out = np.zeros((len(boxes), h, w), dtype=bool)
    rgb = image.astype(np.float32)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=float)):
        c0, r0, c1, r1 = (
            int(x0),
            int(y0),
            max(int(np.ceil(x1)), int(x0) + 1),
            max(int(np.ceil(y1)), int(y0) + 1),
        )
        cw, ch = max((c1 - c0) // 4, 1), max((r1 - r0) // 4, 1)
        mc, mr = (c0 + c1) // 2, (r0 + r1) // 2
        ref = rgb[max(mr - ch, 0) : mr + ch, max(mc - cw, 0) : mc + cw].reshape(-1, 3).mean(0)
        crop = rgb[r0:r1, c0:c1]
        out[i, r0:r1, c0:c1] = np.linalg.norm(crop - ref, axis=-1) <= TOLERANCE
    return out


def _point_masks(image: np.ndarray, points: np.ndarray, labels: np.ndarray, window: int = 64) -> np.ndarray:
    h, w = image.shape[:2]
    out = np.zeros((len(points), h, w), dtype=bool)
    rgb = image.astype(np.float32)
    for i, (pts, lab) in enumerate(zip(points, labels, strict=True)):
        pos = np.asarray(pts)[np.asarray(lab) == 1].astype(int)
        if not len(pos):
            continue
        ref = rgb[pos[:, 1].clip(0, h - 1), pos[:, 0].clip(0, w - 1)].mean(0)
        r0, c0 = max(pos[:, 1].min() - window, 0), max(pos[:, 0].min() - window, 0)
        r1, c1 = min(pos[:, 1].max() + window, h), min(pos[:, 0].max() + window, w)
        out[i, r0:r1, c0:c1] = np.linalg.norm(rgb[r0:r1, c0:c1] - ref, axis=-1) <= TOLERANCE
    return out


def segment(image, boxes=None, points=None, point_labels=None) -> np.ndarray:
    """N×H×W masks for N box prompts or N point-sets."""
    if boxes is not None:
        return _box_masks(image, boxes)
    return _point_masks(image, points, point_labels)


def build(checkpoint=None, device="cpu", **_):
    """Colour-similarity region growing (weightless example plugin)."""
    return CallableRunner(segment, name="colour-grow")


COLOUR_GROW = ModelSpec("colour-grow", "colour-similarity region growing (example plugin, no weights)", build)
