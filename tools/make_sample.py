"""Deterministic generator of the small synthetic COCO / LVIS sample dataset.

The sample lets the whole suite (readers, prompt generation, models, metrics)
run end to end without downloading COCO or LVIS.  It is committed under
``evalsuite/data/sample_data`` (package data: this generator is a development
tool, not part of the installed package; run ``python tools/make_sample.py``)
and must be reproducible byte for byte, so:

* every random draw comes from ``np.random.default_rng([_SEED, image_id])``
  (only ``integers`` / ``random`` / ``permutation``, whose streams are the
  most stable across numpy versions);
* pixel maths is integer (fixed-point gradients, bilinear noise and triangle
  waves instead of ``sin``) so no platform-dependent libm call reaches a pixel;
  the only trigonometry is on polygon vertices, which are rounded to 2 decimals;
* JSON is written compactly with a fixed key order and no timestamps;
* JPEGs use fixed encoder settings; their bytes still depend on the libjpeg
  bundled with Pillow, which is why ``MANIFEST.json`` records Pillow's version.

Layout written by :func:`generate` (``OUT`` = output directory)::

    OUT/__init__.py                          one-line docstring (data package)
    OUT/val2017/<12-digit id>.jpg            images of the COCO file (and most LVIS ones)
    OUT/train2017/<12-digit id>.jpg          images only in the LVIS file
    OUT/annotations/instances_val2017.json   COCO instances format
    OUT/annotations/lvis_v1_val.json         LVIS v1 format
    OUT/MANIFEST.json                        version, Pillow version, sha256 + size of every other file

Annotation policy (what a mask means):

* Annotations are *modal* (visible part only), as in COCO: the decoded mask of
  every annotation is exactly the set of pixels where that object was painted
  and is still visible.  Objects are placed with a gap of a few pixels so most
  of them are not occluded at all and keep their exact polygon.
* In some images one object is placed on purpose over a large earlier object.
  The occluded object's visible part is no longer the polygon, so its COCO
  annotation is an RLE of the visible pixels (compressed, except for the first
  one, which is written as uncompressed RLE to cover that format too).
* Crowds (``iscrowd: 1``) are clusters of overlapping blobs, stored as
  uncompressed RLE of their union, as COCO does.
* Every annotation decodes to a non-empty mask, so detections equal to the
  ground truth score AP 100 with the official evaluators (an empty ground-truth
  mask can never be matched). Empty-mask filtering is tested on small files
  that the tests write themselves.
* LVIS has polygons only, so the LVIS file annotates only objects whose
  visible mask is their polygon; an image's category with skipped instances
  (occluded or crowd) is listed in ``not_exhaustive_category_ids`` (every third
  LVIS image also flags one annotated category, so the list is often non-empty);
  ``neg_category_ids`` only ever names categories absent from the image.

``area`` is always the pixel count of the decoded mask (``mask.area``) and
``bbox`` its ``mask.toBbox`` (xywh floats), for polygons too.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL
import pycocotools.mask as mask_utils
from PIL import Image, features

SAMPLE_VERSION: int = 2
SAMPLE_DIR: Path = Path(__file__).resolve().parent.parent / "evalsuite" / "data" / "sample_data"
#: The generator's name when the committed sample was made: it is written into the data (package
#: docstring, licence and contributor fields), so changing it would change the sample's bytes and
#: with them every annotation SHA-256 and run id made on the sample.
_GENERATOR = "evalsuite.data.sample_gen"

_SEED = 20_170_417
_JPEG_QUALITY = 90
_JPEG_SUBSAMPLING = 2  # 4:2:0, stated explicitly so a Pillow default change cannot alter the bytes
_GAP_PX = 3  # free pixels kept around every placed object (except deliberate occluders)
_MAX_TRIES = 400
_PACKAGE_DOC = f'"""Synthetic COCO/LVIS sample data written by {_GENERATOR} (do not edit)."""\n'

# (width, height) of the images, cycled; COCO-like sizes incl. portrait ones.
_SIZES: tuple[tuple[int, int], ...] = (
    (640, 480),
    (480, 640),
    (500, 375),
    (427, 640),
    (320, 240),
    (640, 427),
    (375, 500),
    (400, 300),
    (512, 384),
    (360, 480),
)
_N_VAL = 26
_N_TRAIN_ONLY = 5

# COCO categories: (id, name, supercategory); ids are not contiguous, as in COCO.
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"),
    (3, "car", "vehicle"),
    (17, "cat", "animal"),
    (18, "dog", "animal"),
    (44, "bottle", "kitchen"),
    (47, "cup", "kitchen"),
    (52, "banana", "food"),
    (53, "apple", "food"),
    (62, "chair", "furniture"),
    (63, "couch", "furniture"),
    (75, "remote", "electronic"),
    (88, "teddy bear", "indoor"),
)


@dataclass(frozen=True)
class LvisCategory:
    """One LVIS category and the COCO category its objects also belong to."""

    id: int
    name: str
    synset: str
    frequency: str  # "r" | "c" | "f"
    definition: str
    coco_id: int


# LVIS is finer than COCO: several LVIS categories refine one COCO category.
# Ids follow the names alphabetically with gaps, like a subset of real LVIS.
LVIS_CATEGORIES: tuple[LvisCategory, ...] = (
    LvisCategory(4, "apple", "apple.n.01", "f", "fruit with red or yellow or green skin", 53),
    LvisCategory(9, "armchair", "armchair.n.01", "c", "chair with a support on each side for arms", 62),
    LvisCategory(15, "banana", "banana.n.02", "f", "elongated crescent-shaped yellow fruit", 52),
    LvisCategory(21, "beer_bottle", "beer_bottle.n.01", "c", "a bottle that holds beer", 44),
    LvisCategory(27, "bottle", "bottle.n.01", "f", "a glass or plastic vessel used for storing drinks", 44),
    LvisCategory(33, "cab_(taxi)", "cab.n.03", "c", "a car driven by a person whose job is to take fares", 3),
    LvisCategory(38, "car_(automobile)", "car.n.01", "f", "a motor vehicle with four wheels", 3),
    LvisCategory(42, "cat", "cat.n.01", "f", "a domestic house cat", 17),
    LvisCategory(47, "chair", "chair.n.01", "f", "a seat for one person, with a support for the back", 62),
    LvisCategory(55, "crabapple", "crab_apple.n.03", "r", "small sour apple", 53),
    LvisCategory(61, "cup", "cup.n.01", "f", "a small open container usually used for drinking", 47),
    LvisCategory(66, "dog", "dog.n.01", "f", "a common domesticated dog", 18),
    LvisCategory(73, "futon", "futon.n.01", "r", "mattress that can be used as a couch", 63),
    LvisCategory(79, "limousine", "limousine.n.01", "r", "long luxurious car", 3),
    LvisCategory(84, "mug", "mug.n.04", "c", "with handle and usually cylindrical", 47),
    LvisCategory(90, "person", "person.n.01", "f", "a human being", 1),
    LvisCategory(97, "remote_control", "remote_control.n.01", "f", "a device that controls a machine", 75),
    LvisCategory(103, "sofa", "sofa.n.01", "f", "an upholstered seat for more than one person", 63),
    LvisCategory(110, "teddy_bear", "teddy.n.01", "f", "a stuffed toy bear", 88),
)
_PERSON = next(i for i, c in enumerate(LVIS_CATEGORIES) if c.name == "person")

# Saturated object colours; backgrounds are muted, so every object stands out.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40),
    (40, 170, 60),
    (40, 70, 210),
    (235, 200, 30),
    (200, 60, 200),
    (30, 190, 200),
    (250, 130, 20),
    (120, 40, 160),
    (20, 110, 90),
    (160, 230, 60),
    (240, 120, 170),
    (90, 50, 20),
    (20, 20, 80),
    (250, 240, 200),
    (130, 0, 40),
    (0, 90, 170),
)
# Grey levels for grayscale images: far from the mid-grey background in luma.
_GREYS: tuple[int, ...] = (15, 35, 55, 75, 185, 205, 225, 245)

# Area ranges (pixels) a placed object must land in; COCO buckets are split at 32² and 96².
_AREA_OK: dict[str, tuple[int, int]] = {
    "small": (60, 1000),
    "medium": (1100, 9000),
    "large": (9300, 10**9),
}


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ImageSpec:
    """What one image is: id, split folder, size and which special cases it shows."""

    index: int
    image_id: int
    split: str  # "val2017" or "train2017"
    width: int
    height: int
    gray: bool
    in_coco: bool
    in_lvis: bool
    multi: bool = False  # one multi-part polygon object
    crowd: bool = False  # one iscrowd region
    occlusion: bool = False  # one object deliberately occludes a large one

    @property
    def file_name(self) -> str:
        return f"{self.image_id:012d}.jpg"

    @property
    def coco_url(self) -> str:
        return f"http://images.cocodataset.org/{self.split}/{self.file_name}"


@dataclass(frozen=True)
class Texture:
    """Parameters of one surface: base colour plus an integer-maths pattern."""

    colour: tuple[int, int, int]
    pattern: str  # "stripes" | "checker" | "rings" | "dots" | "smooth"
    period: int
    direction: tuple[int, int]
    centre: tuple[int, int]
    amplitude: int
    noise: np.ndarray  # small integer grid, upsampled for "smooth" shading


@dataclass
class SceneObject:
    """One painted object: category, geometry as annotated, and its full mask."""

    lvis_index: int  # index into LVIS_CATEGORIES (gives the COCO category too)
    kind: str  # "poly" | "multi" | "crowd"
    size_class: str  # "small" | "medium" | "large" | "crowd"
    polygons: list[list[float]]  # as written to JSON (empty for crowds)
    mask: np.ndarray  # bool HxW, the decoded geometry
    texture: Texture | None = None
    visible: np.ndarray | None = None  # filled once all objects are placed


@dataclass
class Scene:
    """One image's background and objects in paint order."""

    spec: ImageSpec
    background: Texture
    background_far: tuple[int, int, int]
    objects: list[SceneObject] = field(default_factory=list)


# --------------------------------------------------------------------------- image list


def image_specs() -> list[ImageSpec]:
    """All images: COCO val images (most also in LVIS) and LVIS-only train2017 images.

    Special cases are spread over different images so each reader path
    (multi-part, crowd, empty mask, occlusion / RLE) is exercised.
    """
    specs: list[ImageSpec] = []
    for k in range(_N_VAL):
        width, height = _SIZES[k % len(_SIZES)]
        specs.append(
            ImageSpec(
                index=k,
                image_id=100_003 + 7_919 * k,
                split="val2017",
                width=width,
                height=height,
                gray=k == 7,
                in_coco=True,
                in_lvis=k % 4 != 3,
                multi=k in (1, 6, 9, 13, 20),
                crowd=k in (4, 12, 21),
                occlusion=k % 3 == 2,
            )
        )
    for k in range(_N_TRAIN_ONLY):
        width, height = _SIZES[(3 * k + 1) % len(_SIZES)]
        specs.append(
            ImageSpec(
                index=_N_VAL + k,
                image_id=300_007 + 6_007 * k,
                split="train2017",
                width=width,
                height=height,
                gray=k == 2,
                in_coco=False,
                in_lvis=True,
                multi=k == 1,
                crowd=k == 3,
                occlusion=k in (0, 4),
            )
        )
    return specs


# --------------------------------------------------------------------------- integer textures


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index arrays (int64) that broadcast to (height, width)."""
    return np.arange(height, dtype=np.int64)[:, None], np.arange(width, dtype=np.int64)[None, :]


def upsample_noise(noise: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinearly upsample a small integer grid to (height, width) in 8-bit fixed point.

    Integer-only so the result is identical on every platform.
    """
    gh, gw = noise.shape
    ys = (np.arange(height, dtype=np.int64) * ((gh - 1) * 256)) // max(height - 1, 1)
    xs = (np.arange(width, dtype=np.int64) * ((gw - 1) * 256)) // max(width - 1, 1)
    y0, fy = ys >> 8, ys & 255
    x0, fx = xs >> 8, xs & 255
    y1, x1 = np.minimum(y0 + 1, gh - 1), np.minimum(x0 + 1, gw - 1)
    g = noise.astype(np.int64)
    top = g[y0][:, x0] * (256 - fx) + g[y0][:, x1] * fx
    bottom = g[y1][:, x0] * (256 - fx) + g[y1][:, x1] * fx
    return (top * (256 - fy)[:, None] + bottom * fy[:, None]) >> 16


def triangle_wave(t: np.ndarray, period: int, amplitude: int) -> np.ndarray:
    """Integer triangle wave in [-amplitude, amplitude]; smooth enough to compress well."""
    phase = np.abs(np.mod(t, 2 * period) - period)  # 0..period
    return (2 * amplitude * phase) // period - amplitude


def pattern_offsets(tex: Texture, height: int, width: int) -> np.ndarray:
    """Signed brightness offsets (height, width) of a texture pattern."""
    ys, xs = _grid(height, width)
    a, b = tex.direction
    amp = tex.amplitude
    if tex.pattern == "stripes":
        out = triangle_wave(a * xs + b * ys, tex.period, amp)
    elif tex.pattern == "checker":
        out = (((xs // tex.period) + (ys // tex.period)) % 2) * amp - amp // 2
    elif tex.pattern == "rings":
        cx, cy = tex.centre
        out = triangle_wave(((xs - cx) ** 2 + (ys - cy) ** 2) // (4 * tex.period), tex.period, amp)
    elif tex.pattern == "dots":
        half = tex.period // 2
        d2 = (xs % tex.period - half) ** 2 + (ys % tex.period - half) ** 2
        out = np.where(d2 * 9 < tex.period**2, -amp, amp // 3)
    elif tex.pattern == "smooth":
        out = np.zeros((height, width), dtype=np.int64)
    else:  # pragma: no cover - guarded by random_texture
        raise ValueError(tex.pattern)
    return np.broadcast_to(out, (height, width)) + upsample_noise(tex.noise, height, width)


def paint_texture(tex: Texture, height: int, width: int, gray: bool) -> np.ndarray:
    """Full-frame RGB int64 rendering of ``tex`` (callers copy only the masked pixels)."""
    offsets = pattern_offsets(tex, height, width)
    colour = np.asarray(tex.colour, dtype=np.int64)
    rgb = colour[None, None, :] + offsets[:, :, None]
    if gray:
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
    return rgb


def random_texture(
    rng: np.random.Generator, colour: tuple[int, int, int], centre: tuple[int, int], smooth_only: bool = False
) -> Texture:
    """Draw pattern parameters for an object (objects get stronger patterns than backgrounds)."""
    patterns = ("smooth",) if smooth_only else ("stripes", "checker", "rings", "dots", "smooth")
    pattern = patterns[int(rng.integers(len(patterns)))]
    directions = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 1), (1, 2))
    return Texture(
        colour=colour,
        pattern=pattern,
        period=int(rng.integers(5, 13)),
        direction=directions[int(rng.integers(len(directions)))],
        centre=centre,
        amplitude=int(rng.integers(14, 24)),
        noise=rng.integers(-14, 15, size=(4, 4)),
    )


def background_texture(rng: np.random.Generator, gray: bool) -> tuple[Texture, tuple[int, int, int]]:
    """Muted background: colour gradient + low-frequency noise + faint wide stripes.

    Returns the texture (near-side colour) and the far-side colour of the gradient.
    """

    def muted() -> tuple[int, int, int]:
        level = int(rng.integers(110, 151))
        if gray:
            return (level, level, level)
        tint = rng.integers(-22, 23, size=3)
        return (level + int(tint[0]), level + int(tint[1]), level + int(tint[2]))

    near, far = muted(), muted()
    directions = ((1, 0), (0, 1), (1, 1), (2, -1), (1, 3))
    tex = Texture(
        colour=near,
        pattern="stripes",
        period=int(rng.integers(20, 48)),
        direction=directions[int(rng.integers(len(directions)))],
        centre=(0, 0),
        amplitude=6,
        noise=rng.integers(-16, 17, size=(int(rng.integers(4, 8)), int(rng.integers(4, 8)))),
    )
    return tex, far


def paint_background(scene: Scene) -> np.ndarray:
    """RGB int64 background: gradient from near to far colour plus the stripe/noise pattern."""
    spec = scene.spec
    h, w = spec.height, spec.width
    ys, xs = _grid(h, w)
    a, b = scene.background.direction
    t = a * xs + b * ys
    lo = min(0, a * (w - 1)) + min(0, b * (h - 1))
    hi = max(0, a * (w - 1)) + max(0, b * (h - 1))
    frac = ((t - lo) * 1024) // max(hi - lo, 1)  # 0..1024 fixed point along the gradient
    near = np.asarray(scene.background.colour, dtype=np.int64)
    far = np.asarray(scene.background_far, dtype=np.int64)
    rgb = near[None, None, :] + ((far - near)[None, None, :] * frac[:, :, None]) // 1024
    return rgb + pattern_offsets(scene.background, h, w)[:, :, None]


# --------------------------------------------------------------------------- geometry


def round_polygon(points: Sequence[tuple[float, float]], width: int, height: int) -> list[float]:
    """Clamp vertices into the image and round to 2 decimals, as the JSON stores them."""
    flat: list[float] = []
    for x, y in points:
        flat.append(round(min(max(x, 0.0), float(width)), 2))
        flat.append(round(min(max(y, 0.0), float(height)), 2))
    return flat


def shoelace_area(points: Sequence[tuple[float, float]]) -> float:
    """Geometric area of a simple polygon (used to scale shapes to a target area)."""
    total = 0.0
    for (x0, y0), (x1, y1) in zip(points, [*points[1:], points[0]], strict=True):
        total += x0 * y1 - x1 * y0
    return abs(total) / 2.0


def unit_shape(rng: np.random.Generator) -> list[tuple[float, float]]:
    """A star-shaped (hence simple) polygon around the origin: blob, ellipse, star or rectangle.

    Vertices are at increasing angles, so the polygon never self-intersects;
    aspect scaling and rotation keep it simple.
    """
    kind = int(rng.integers(4))
    if kind == 0:  # irregular blob
        n, jitter, spikes = int(rng.integers(9, 17)), 0.25, 0.0
    elif kind == 1:  # ellipse
        n, jitter, spikes = 28, 0.0, 0.0
    elif kind == 2:  # star
        n, jitter, spikes = 2 * int(rng.integers(5, 8)), 0.05, 0.45
    else:  # rectangle
        n, jitter, spikes = 4, 0.0, 0.0
    aspect = 0.6 + 0.8 * float(rng.random())
    rotation = 2.0 * math.pi * float(rng.random())
    step = 2.0 * math.pi / n
    cos_r, sin_r = math.cos(rotation), math.sin(rotation)
    points: list[tuple[float, float]] = []
    for i in range(n):
        if n == 4:
            theta = step * i + step / 2.0
            radius = 1.0
        else:
            theta = step * i + (float(rng.random()) - 0.5) * 0.6 * step
            radius = 1.0 + jitter * (2.0 * float(rng.random()) - 1.0) - (spikes if i % 2 else 0.0)
        x = radius * math.cos(theta) * aspect
        y = radius * math.sin(theta) / aspect
        points.append((x * cos_r - y * sin_r, x * sin_r + y * cos_r))
    return points


def place_shape(
    unit: Sequence[tuple[float, float]], area: float, cx: float, cy: float
) -> list[tuple[float, float]]:
    """Scale a unit shape to ``area`` square pixels and move it to (cx, cy)."""
    scale = math.sqrt(area / shoelace_area(unit))
    return [(cx + x * scale, cy + y * scale) for x, y in unit]


def polygons_to_rle(polygons: list[list[float]], height: int, width: int) -> dict:
    """Merge polygons exactly as pycocotools' COCO/LVIS readers do."""
    return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))


def segmentation_to_rle(segm: list | dict, height: int, width: int) -> dict:
    """Any COCO segmentation (polygons, uncompressed or compressed RLE) to one RLE."""
    if isinstance(segm, list):
        return polygons_to_rle(segm, height, width)
    if isinstance(segm["counts"], list):
        return mask_utils.frPyObjects(segm, height, width)
    return {"size": segm["size"], "counts": segm["counts"].encode("ascii")}


def decode_polygons(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Boolean mask of the polygons as written (after rounding)."""
    return mask_utils.decode(polygons_to_rle(polygons, height, width)).astype(bool)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square dilation by ``radius`` pixels, separable, numpy only."""
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        out = grown
    return out


def compressed_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE with ``counts`` as str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths in column-major order, starting with a 0-run."""
    flat = mask.astype(np.uint8).ravel(order="F")
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


# --------------------------------------------------------------------------- scene building


def _target_area(rng: np.random.Generator, size_class: str, spec: ImageSpec) -> float:
    """Random area for a size class, kept well inside its COCO bucket."""
    if size_class == "small":
        return 150.0 + 650.0 * float(rng.random())
    if size_class == "medium":
        return 1500.0 + 5500.0 * float(rng.random())
    upper = max(14_000.0, min(45_000.0, 0.16 * spec.width * spec.height))
    return 11_500.0 + (upper - 11_500.0) * float(rng.random())


def _random_centre(rng: np.random.Generator, spec: ImageSpec) -> tuple[float, float]:
    return (
        spec.width * (0.08 + 0.84 * float(rng.random())),
        spec.height * (0.08 + 0.84 * float(rng.random())),
    )


def _single_shape(
    rng: np.random.Generator, spec: ImageSpec, size_class: str, centre: tuple[float, float] | None = None
) -> list[list[float]]:
    cx, cy = centre if centre is not None else _random_centre(rng, spec)
    points = place_shape(unit_shape(rng), _target_area(rng, size_class, spec), cx, cy)
    return [round_polygon(points, spec.width, spec.height)]


def _multi_shape(rng: np.random.Generator, spec: ImageSpec, size_class: str) -> list[list[float]]:
    """2-3 parts in a row, spaced so they are disjoint (checked after decoding)."""
    n_parts = int(rng.integers(2, 4))
    part_area = _target_area(rng, size_class, spec) / n_parts
    cx, cy = _random_centre(rng, spec)
    angle = 2.0 * math.pi * float(rng.random())
    spacing = 3.0 * math.sqrt(part_area / math.pi)
    polygons = []
    for i in range(n_parts):
        offset = (i - (n_parts - 1) / 2.0) * spacing
        points = place_shape(
            unit_shape(rng), part_area, cx + offset * math.cos(angle), cy + offset * math.sin(angle)
        )
        polygons.append(round_polygon(points, spec.width, spec.height))
    return polygons


def _parts_disjoint(polygons: list[list[float]], spec: ImageSpec) -> bool:
    """True when no two parts share or touch a pixel (so the annotation really is multi-part)."""
    seen = np.zeros((spec.height, spec.width), dtype=bool)
    for poly in polygons:
        part = decode_polygons([poly], spec.height, spec.width)
        if not part.any() or (dilate(part, 1) & seen).any():
            return False
        seen |= part
    return True


def _crowd_mask(rng: np.random.Generator, spec: ImageSpec) -> np.ndarray:
    """A cluster of overlapping small ellipses (a 'crowd' of people) as one mask."""
    cx, cy = _random_centre(rng, spec)
    mask = np.zeros((spec.height, spec.width), dtype=bool)
    for _ in range(int(rng.integers(7, 12))):
        bx = cx + 40.0 * (2.0 * float(rng.random()) - 1.0)
        by = cy + 18.0 * (2.0 * float(rng.random()) - 1.0)
        rx, ry = 5.0 + 4.0 * float(rng.random()), 9.0 + 6.0 * float(rng.random())
        points = [
            (bx + rx * math.cos(2 * math.pi * i / 16), by + ry * math.sin(2 * math.pi * i / 16))
            for i in range(16)
        ]
        mask |= decode_polygons([round_polygon(points, spec.width, spec.height)], spec.height, spec.width)
    return mask


def _area_ok(mask: np.ndarray, size_class: str) -> bool:
    lo, hi = _AREA_OK[size_class]
    return lo <= int(mask.sum()) <= hi


def _place(
    rng: np.random.Generator,
    spec: ImageSpec,
    occupied: np.ndarray,
    kind: str,
    size_class: str,
) -> tuple[list[list[float]], np.ndarray] | None:
    """Rejection-sample a shape that fits its size class and keeps the gap to all placed objects."""
    for _ in range(_MAX_TRIES):
        if kind == "crowd":
            polygons, mask = [], _crowd_mask(rng, spec)
            if not mask.any():
                continue
        else:
            polygons = (
                _multi_shape(rng, spec, size_class)
                if kind == "multi"
                else _single_shape(rng, spec, size_class)
            )
            mask = decode_polygons(polygons, spec.height, spec.width)
            if not _area_ok(mask, size_class):
                continue
            if kind == "multi" and not _parts_disjoint(polygons, spec):
                continue
        if not (mask & occupied).any():
            return polygons, mask
    return None


def _place_occluder(
    rng: np.random.Generator, spec: ImageSpec, victim: SceneObject, others: np.ndarray, size_class: str
) -> tuple[list[list[float]], np.ndarray] | None:
    """Place a shape over part (2-40 %) of ``victim`` while keeping clear of everything else."""
    victim_area = int(victim.mask.sum())
    points = victim.polygons[0]
    for _ in range(_MAX_TRIES):
        v = int(rng.integers(len(points) // 2))
        centre = (
            points[2 * v] + 12.0 * (float(rng.random()) - 0.5),
            points[2 * v + 1] + 12.0 * (float(rng.random()) - 0.5),
        )
        polygons = _single_shape(rng, spec, size_class, centre)
        mask = decode_polygons(polygons, spec.height, spec.width)
        if not _area_ok(mask, size_class) or (mask & others).any():
            continue
        covered = int((mask & victim.mask).sum())
        if 0.02 * victim_area <= covered <= 0.4 * victim_area and covered >= 0.2 * mask.sum():
            return polygons, mask
    return None


def _object_plan(rng: np.random.Generator, spec: ImageSpec) -> list[tuple[str, str]]:
    """(kind, size class) of the objects to place, largest first (placement gets easier)."""
    n_large = 1 if spec.width * spec.height < 100_000 else 2
    plan = [("poly", "large")] * n_large
    if spec.multi:
        plan.append(("multi", "large" if spec.index == 9 else "medium"))
    if spec.crowd:
        plan.append(("crowd", "crowd"))
    plan += [("poly", "medium")] * int(rng.integers(2, 4))
    plan += [("poly", "small")] * int(rng.integers(2, 4))
    return plan


def _pick_colour(
    rng_order: list[int], used: int, gray: bool, avoid: tuple[int, int, int] | None = None
) -> tuple[int, int, int]:
    """Next colour of the image's shuffled palette (skipping ``avoid``, e.g. an occluded neighbour)."""
    palette = [(g, g, g) for g in _GREYS] if gray else list(_PALETTE)
    for step in range(len(palette)):
        colour = palette[rng_order[(used + step) % len(rng_order)] % len(palette)]
        if colour != avoid:
            return colour
    return palette[0]  # pragma: no cover - palettes have more than one colour


def build_scene(spec: ImageSpec) -> Scene:
    """Place all objects of one image (deterministic in the image id)."""
    rng = np.random.default_rng([_SEED, spec.image_id])
    background, far = background_texture(rng, spec.gray)
    scene = Scene(spec=spec, background=background, background_far=far)
    order = [int(i) for i in rng.permutation(len(_GREYS) if spec.gray else len(_PALETTE))]
    h, w = spec.height, spec.width
    occupied = np.zeros((h, w), dtype=bool)
    zones: list[np.ndarray] = []

    def add(
        kind: str,
        size_class: str,
        lvis_index: int,
        polygons: list[list[float]],
        mask: np.ndarray,
        avoid: tuple[int, int, int] | None = None,
    ) -> SceneObject:
        colour = _pick_colour(order, len(scene.objects), spec.gray, avoid)
        ys, xs = np.nonzero(mask)
        centre = (int(xs.mean()), int(ys.mean())) if xs.size else (0, 0)
        obj = SceneObject(
            lvis_index,
            kind,
            size_class,
            polygons,
            mask,
            random_texture(rng, colour, centre, smooth_only=kind == "crowd"),
        )
        scene.objects.append(obj)
        return obj

    for kind, size_class in _object_plan(rng, spec):
        lvis_index = _PERSON if kind == "crowd" else int(rng.integers(len(LVIS_CATEGORIES)))
        placed = _place(rng, spec, occupied, kind, size_class)
        if placed is None:
            continue
        polygons, mask = placed
        add(kind, size_class, lvis_index, polygons, mask)
        zone = dilate(mask, _GAP_PX)
        zones.append(zone)
        occupied |= zone

    if spec.occlusion:
        victims = [i for i, o in enumerate(scene.objects) if o.kind == "poly" and o.size_class == "large"]
        if victims:
            victim_i = victims[0]
            others = np.zeros((h, w), dtype=bool)
            for i, zone in enumerate(zones):
                if i != victim_i:
                    others |= zone
            size_class = "medium" if spec.index % 2 else "small"
            placed = _place_occluder(rng, spec, scene.objects[victim_i], others, size_class)
            if placed is not None:
                polygons, mask = placed
                add(
                    "poly",
                    size_class,
                    int(rng.integers(len(LVIS_CATEGORIES))),
                    polygons,
                    mask,
                    avoid=scene.objects[victim_i].texture.colour,
                )

    # Modal masks: later objects hide earlier ones.
    covered = np.zeros((h, w), dtype=bool)
    for obj in reversed(scene.objects):
        obj.visible = obj.mask & ~covered
        covered |= obj.mask
    return scene


def render(scene: Scene) -> np.ndarray:
    """Paint background then objects in order; returns uint8 RGB (or L for grayscale images)."""
    spec = scene.spec
    rgb = paint_background(scene)
    if spec.gray:
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
    for obj in scene.objects:
        if obj.texture is None or not obj.mask.any():
            continue
        rgb[obj.mask] = paint_texture(obj.texture, spec.height, spec.width, spec.gray)[obj.mask]
    pixels = np.clip(rgb, 0, 255).astype(np.uint8)
    return pixels[:, :, 0].copy() if spec.gray else pixels


def encode_jpeg(pixels: np.ndarray) -> bytes:
    """JPEG bytes with fixed settings (no EXIF, baseline, 4:2:0 for colour)."""
    image = Image.fromarray(pixels)  # uint8 HxW -> "L", HxWx3 -> "RGB"
    buf = io.BytesIO()
    options: dict = {"quality": _JPEG_QUALITY, "optimize": False, "progressive": False}
    if pixels.ndim == 3:
        options["subsampling"] = _JPEG_SUBSAMPLING
    image.save(buf, format="JPEG", **options)
    return buf.getvalue()


# --------------------------------------------------------------------------- annotations


def _area_bbox(segm: list | dict, height: int, width: int) -> tuple[float, list[float]]:
    """Area (pixel count) and xywh bbox of the decoded segmentation, as COCO computes them for RLE."""
    rle = segmentation_to_rle(segm, height, width)
    return float(mask_utils.area(rle)), [float(v) for v in mask_utils.toBbox(rle).tolist()]


def _coco_segmentation(obj: SceneObject, first_rle: bool) -> tuple[list | dict, int]:
    """COCO segmentation of an object's visible part and its iscrowd flag."""
    assert obj.visible is not None
    if obj.kind == "crowd":
        return uncompressed_rle(obj.visible), 1
    if not np.array_equal(obj.visible, obj.mask):
        return (uncompressed_rle(obj.visible) if first_rle else compressed_rle(obj.visible)), 0
    return obj.polygons, 0


def _check_segmentation(segm: list | dict, expected: np.ndarray) -> None:
    """Guard: what we write decodes to exactly the painted pixels."""
    h, w = expected.shape
    decoded = mask_utils.decode(segmentation_to_rle(segm, h, w)).astype(bool)
    assert np.array_equal(decoded, expected), "annotation does not decode to the painted mask"


def _lvis_eligible(obj: SceneObject) -> bool:
    """LVIS stores polygons only: annotate objects whose visible part is their polygon."""
    assert obj.visible is not None
    return obj.kind in ("poly", "multi") and np.array_equal(obj.visible, obj.mask)


def _license() -> list[dict]:
    return [
        {
            "id": 1,
            "name": f"Apache-2.0 (synthetic images made by {_GENERATOR})",
            "url": "https://www.apache.org/licenses/LICENSE-2.0",
        }
    ]


def build_coco(scenes: list[Scene]) -> dict:
    """The COCO instances dict for the val2017 images."""
    images, annotations = [], []
    next_id, rle_written = 900_001, 0
    for scene in scenes:
        spec = scene.spec
        if not spec.in_coco:
            continue
        images.append(
            {
                "license": 1,
                "file_name": spec.file_name,
                "coco_url": spec.coco_url,
                "height": spec.height,
                "width": spec.width,
                "id": spec.image_id,
            }
        )
        for obj in scene.objects:
            segm, iscrowd = _coco_segmentation(obj, first_rle=rle_written == 0)
            if isinstance(segm, dict) and not iscrowd:
                rle_written += 1
            assert obj.visible is not None
            _check_segmentation(segm, obj.visible)
            area, bbox = _area_bbox(segm, spec.height, spec.width)
            annotations.append(
                {
                    "segmentation": segm,
                    "area": area,
                    "iscrowd": iscrowd,
                    "image_id": spec.image_id,
                    "bbox": bbox,
                    "category_id": LVIS_CATEGORIES[obj.lvis_index].coco_id,
                    "id": next_id,
                }
            )
            next_id += 1
    categories = [{"supercategory": sup, "id": cid, "name": name} for cid, name, sup in COCO_CATEGORIES]
    return {
        "info": {
            "description": "evalsuite synthetic COCO-style sample (generated, not real COCO data)",
            "url": "",
            "version": str(SAMPLE_VERSION),
            "contributor": _GENERATOR,
        },
        "licenses": _license(),
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def build_lvis(scenes: list[Scene]) -> dict:
    """The LVIS v1 dict: val2017 images shared with COCO plus train2017-only images."""
    images, annotations = [], []
    next_id = 1
    for n, scene in enumerate(s for s in scenes if s.spec.in_lvis):
        spec = scene.spec
        rng = np.random.default_rng([_SEED, spec.image_id, 1])
        annotated: set[int] = set()
        skipped: set[int] = set()
        for obj in scene.objects:
            cat_id = LVIS_CATEGORIES[obj.lvis_index].id
            if not _lvis_eligible(obj):
                skipped.add(cat_id)
                continue
            annotated.add(cat_id)
            area, bbox = _area_bbox(obj.polygons, spec.height, spec.width)
            annotations.append(
                {
                    "area": area,
                    "id": next_id,
                    "segmentation": obj.polygons,
                    "image_id": spec.image_id,
                    "bbox": bbox,
                    "category_id": cat_id,
                }
            )
            next_id += 1
        # Not exhaustive: some instances of an annotated category were left out; every
        # third image also flags one annotated category, as LVIS annotators do.
        not_exhaustive = annotated & skipped
        if n % 3 == 0 and annotated:
            ordered = sorted(annotated)
            not_exhaustive.add(ordered[int(rng.integers(len(ordered)))])
        # Negative: verified absent, so never a category that appears in the image at all.
        absent = sorted({c.id for c in LVIS_CATEGORIES} - annotated - skipped)
        n_neg = min(n % 4, len(absent))
        negatives = sorted(int(c) for c in rng.choice(absent, size=n_neg, replace=False)) if n_neg else []
        images.append(
            {
                "id": spec.image_id,
                "coco_url": spec.coco_url,
                "height": spec.height,
                "width": spec.width,
                "license": 1,
                "neg_category_ids": negatives,
                "not_exhaustive_category_ids": sorted(not_exhaustive),
            }
        )
    image_sets: dict[int, set[int]] = {c.id: set() for c in LVIS_CATEGORIES}
    instances: dict[int, int] = {c.id: 0 for c in LVIS_CATEGORIES}
    for ann in annotations:
        image_sets[ann["category_id"]].add(ann["image_id"])
        instances[ann["category_id"]] += 1
    categories = [
        {
            "id": c.id,
            "name": c.name,
            "synset": c.synset,
            "frequency": c.frequency,
            "image_count": len(image_sets[c.id]),
            "instance_count": instances[c.id],
            "synonyms": [c.name],
            "def": c.definition,
        }
        for c in LVIS_CATEGORIES
    ]
    return {
        "info": {
            "description": "evalsuite synthetic LVIS-v1-style sample (generated, not real LVIS data)",
            "url": "",
            "version": str(SAMPLE_VERSION),
            "contributor": _GENERATOR,
        },
        "licenses": _license(),
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


# --------------------------------------------------------------------------- writing


def dump_json(obj: object) -> bytes:
    """Compact, key-order-preserving JSON (small and byte-stable)."""
    return (json.dumps(obj, indent=None, separators=(",", ":"), sort_keys=False) + "\n").encode("utf-8")


def _pillow_jpeg_info() -> dict[str, str | None]:
    """Versions that decide the JPEG bytes (recorded so a mismatch can be explained)."""
    return {"pillow_version": PIL.__version__, "libjpeg_turbo_version": features.version("libjpeg_turbo")}


def generate(out_dir: str | os.PathLike) -> None:
    """Write the whole sample (images, annotations, MANIFEST) into ``out_dir``.

    Stale ``*.jpg`` files in the image folders (from another generator version)
    are removed so the folder matches the annotation files exactly.
    """
    out = Path(out_dir)
    scenes = [build_scene(spec) for spec in image_specs()]
    files: dict[str, bytes] = {"__init__.py": _PACKAGE_DOC.encode("utf-8")}
    for scene in scenes:
        files[f"{scene.spec.split}/{scene.spec.file_name}"] = encode_jpeg(render(scene))
    files["annotations/instances_val2017.json"] = dump_json(build_coco(scenes))
    files["annotations/lvis_v1_val.json"] = dump_json(build_lvis(scenes))

    for split in ("val2017", "train2017"):
        folder = out / split
        if folder.is_dir():
            for stale in folder.glob("*.jpg"):
                if f"{split}/{stale.name}" not in files:
                    stale.unlink()
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    manifest = {
        "generator": _GENERATOR,
        "sample_version": SAMPLE_VERSION,
        **_pillow_jpeg_info(),
        "numpy_version": np.__version__,
        "files": [
            {"path": rel, "sha256": hashlib.sha256(files[rel]).hexdigest(), "bytes": len(files[rel])}
            for rel in sorted(files)
        ],
    }
    (out / "MANIFEST.json").write_bytes((json.dumps(manifest, indent=1) + "\n").encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python tools/make_sample.py [OUT]`` (default: the committed sample)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", nargs="?", default=str(SAMPLE_DIR), help="output directory (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    generate(args.out)
    print(f"wrote sample v{SAMPLE_VERSION} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
