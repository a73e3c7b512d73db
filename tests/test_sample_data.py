"""Checks of the committed synthetic COCO/LVIS sample and of its generator."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import PIL
import pycocotools.mask as mask_utils
import pytest
from lvis import LVIS
from PIL import Image, features
from pycocotools.coco import COCO
from scipy import ndimage

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))
import make_sample as sample_gen  # noqa: E402  (a development tool, not part of the package)

SAMPLE_DIR, SAMPLE_VERSION = sample_gen.SAMPLE_DIR, sample_gen.SAMPLE_VERSION


COCO_JSON = SAMPLE_DIR / "annotations" / "instances_val2017.json"
LVIS_JSON = SAMPLE_DIR / "annotations" / "lvis_v1_val.json"
SMALL, LARGE = 32**2, 96**2


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under root (relative POSIX path -> bytes), ignoring Python caches."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _rle(segm: list | dict, h: int, w: int) -> dict:
    """One RLE for any COCO segmentation, as the pycocotools readers build it."""
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    if isinstance(segm["counts"], list):
        return mask_utils.frPyObjects(segm, h, w)
    return segm


def _mask(segm: list | dict, h: int, w: int) -> np.ndarray:
    return mask_utils.decode(_rle(segm, h, w)).astype(bool)


@pytest.fixture(scope="module")
def coco_data() -> dict:
    return json.loads(COCO_JSON.read_text())


@pytest.fixture(scope="module")
def lvis_data() -> dict:
    return json.loads(LVIS_JSON.read_text())


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    sample_gen.generate(out)
    return out


# --------------------------------------------------------------------------- reproducibility


def test_regeneration_is_byte_identical(regenerated: Path) -> None:
    committed, fresh = _tree(SAMPLE_DIR), _tree(regenerated)
    manifest = json.loads((SAMPLE_DIR / "MANIFEST.json").read_text())
    versions = (
        f"MANIFEST was written with Pillow {manifest['pillow_version']} "
        f"(libjpeg-turbo {manifest.get('libjpeg_turbo_version')}), installed is Pillow {PIL.__version__} "
        f"(libjpeg-turbo {features.version('libjpeg_turbo')}); JPEG bytes depend on the libjpeg bundled "
        "with Pillow. If the generator changed on purpose, rerun `python tools/make_sample.py`."
    )
    assert sorted(committed) == sorted(fresh), (
        f"file sets differ: only committed {sorted(set(committed) - set(fresh))}, "
        f"only regenerated {sorted(set(fresh) - set(committed))}; {versions}"
    )
    differing = [rel for rel in sorted(committed) if committed[rel] != fresh[rel]]
    assert not differing, f"regenerated files differ from the committed sample: {differing}; {versions}"


def test_scene_building_is_deterministic() -> None:
    spec = sample_gen.image_specs()[4]
    first, second = sample_gen.build_scene(spec), sample_gen.build_scene(spec)
    assert np.array_equal(sample_gen.render(first), sample_gen.render(second))
    assert [o.polygons for o in first.objects] == [o.polygons for o in second.objects]


def test_manifest_matches_files() -> None:
    manifest = json.loads((SAMPLE_DIR / "MANIFEST.json").read_text())
    assert manifest["sample_version"] == SAMPLE_VERSION
    assert manifest["pillow_version"]
    files = _tree(SAMPLE_DIR)
    files.pop("MANIFEST.json")
    listed = [entry["path"] for entry in manifest["files"]]
    assert listed == sorted(listed)
    assert listed == sorted(files)
    for entry in manifest["files"]:
        data = files[entry["path"]]
        assert entry["bytes"] == len(data), entry["path"]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), entry["path"]


def test_total_size_under_3mb() -> None:
    total = sum(len(data) for data in _tree(SAMPLE_DIR).values())
    assert total < 3_000_000, total


# --------------------------------------------------------------------------- COCO file


def test_coco_loads_and_counts(coco_data: dict) -> None:
    coco = COCO(str(COCO_JSON))
    assert set(coco_data) == {"info", "licenses", "images", "annotations", "categories"}
    assert len(coco.getImgIds()) >= 24
    anns = coco_data["annotations"]
    assert len(anns) >= 150
    buckets = Counter(
        "small" if a["area"] < SMALL else "medium" if a["area"] < LARGE else "large"
        for a in anns
        if not a["iscrowd"] and a["area"] > 0
    )
    assert min(buckets["small"], buckets["medium"], buckets["large"]) >= 25, buckets
    cats = coco_data["categories"]
    assert len(cats) >= 8
    assert all(c["supercategory"] and c["name"] for c in cats)
    ids = sorted(c["id"] for c in cats)
    assert ids != list(range(ids[0], ids[0] + len(ids))), "category ids should have gaps, like COCO"
    assert {a["category_id"] for a in anns} <= set(ids)


def test_coco_images_are_the_val_folder(coco_data: dict) -> None:
    images = coco_data["images"]
    names = {img["file_name"] for img in images}
    assert names == {p.name for p in (SAMPLE_DIR / "val2017").glob("*.jpg")}
    modes = set()
    for img in images:
        assert img["file_name"] == f"{img['id']:012d}.jpg"
        assert img["coco_url"] == f"http://images.cocodataset.org/val2017/{img['file_name']}"
        with Image.open(SAMPLE_DIR / "val2017" / img["file_name"]) as im:
            assert im.size == (img["width"], img["height"]), img["file_name"]
            modes.add(im.mode)
    assert modes == {"RGB", "L"}, "needs colour and grayscale images"
    assert any(img["height"] > img["width"] for img in images), "needs a portrait image"
    assert len({(img["width"], img["height"]) for img in images}) >= 5


def test_coco_segmentation_kinds(coco_data: dict) -> None:
    images = {img["id"]: img for img in coco_data["images"]}
    multi = compressed = uncompressed = crowd = empty = 0
    for ann in coco_data["annotations"]:
        segm = ann["segmentation"]
        img = images[ann["image_id"]]
        h, w = img["height"], img["width"]
        if isinstance(segm, list) and len(segm) >= 2:
            parts = [_mask([poly], h, w) for poly in segm]
            assert sum(int(p.sum()) for p in parts) == int(np.logical_or.reduce(parts).sum())
            multi += 1
        if isinstance(segm, dict):
            assert segm["size"] == [h, w]
            if isinstance(segm["counts"], str):
                compressed += 1
            else:
                assert all(isinstance(c, int) for c in segm["counts"])
                uncompressed += 1
        if ann["iscrowd"]:
            assert isinstance(segm, dict) and isinstance(segm["counts"], list)
            crowd += 1
        if not _mask(segm, h, w).any():
            empty += 1
    assert multi >= 3
    assert compressed + uncompressed >= 5
    assert compressed >= 1
    assert uncompressed - crowd >= 1, "needs a non-crowd uncompressed RLE"
    assert crowd >= 2
    assert empty == 0, "every sample annotation must be scoreable (AP 100 for detections = ground truth)"


def test_coco_area_bbox_and_modal_masks(coco_data: dict) -> None:
    images = {img["id"]: img for img in coco_data["images"]}
    by_image: dict[int, list[dict]] = {}
    for ann in coco_data["annotations"]:
        img = images[ann["image_id"]]
        rle = _rle(ann["segmentation"], img["height"], img["width"])
        assert ann["area"] == float(mask_utils.area(rle)), ann["id"]
        assert ann["bbox"] == mask_utils.toBbox(rle).tolist(), ann["id"]
        by_image.setdefault(ann["image_id"], []).append(ann)
    for image_id, anns in by_image.items():
        img = images[image_id]
        seen = np.zeros((img["height"], img["width"]), dtype=bool)
        for ann in anns:
            m = _mask(ann["segmentation"], img["height"], img["width"])
            assert not (m & seen).any(), f"annotations overlap in image {image_id} (masks are modal)"
            seen |= m


def _contrast(pixels: np.ndarray, mask: np.ndarray) -> float | None:
    """Distance between mean colour well inside the mask and in a ring just outside it."""
    inner = ndimage.binary_erosion(mask, iterations=2)
    ring = ndimage.binary_dilation(mask, iterations=4) & ~ndimage.binary_dilation(mask, iterations=1)
    if inner.sum() < 20 or ring.sum() < 20:
        return None
    px = pixels.astype(np.float64).reshape((*mask.shape, -1))
    return float(np.linalg.norm(px[inner].mean(axis=0) - px[ring].mean(axis=0)))


@pytest.mark.parametrize("which", ["coco", "lvis"])
def test_pixels_follow_masks(which: str, coco_data: dict, lvis_data: dict) -> None:
    """Every visible object differs clearly from its surroundings, in both files' images."""
    data = coco_data if which == "coco" else lvis_data
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if not ann.get("iscrowd", 0) and ann["area"] > 0:
            by_image.setdefault(ann["image_id"], []).append(ann)
    checked = 0
    for img in data["images"]:
        split = img["coco_url"].rsplit("/", 2)[1]
        pixels = np.asarray(Image.open(SAMPLE_DIR / split / f"{img['id']:012d}.jpg"))
        for ann in by_image.get(img["id"], []):
            contrast = _contrast(pixels, _mask(ann["segmentation"], img["height"], img["width"]))
            if contrast is None:  # too thin to have an interior
                continue
            assert contrast > 25.0, (which, ann["id"], contrast)
            checked += 1
    assert checked >= 0.9 * sum(len(anns) for anns in by_image.values())


# --------------------------------------------------------------------------- LVIS file


def test_lvis_loads_and_format(lvis_data: dict, coco_data: dict) -> None:
    lvis = LVIS(str(LVIS_JSON))
    assert len(lvis.get_img_ids()) == len(lvis_data["images"])
    assert len(lvis_data["annotations"]) >= 100
    cats = lvis_data["categories"]
    assert len(cats) >= 10
    keys = {"id", "name", "synset", "frequency", "image_count", "instance_count", "synonyms", "def"}
    assert all(keys <= set(cat) for cat in cats)
    assert {c["frequency"] for c in cats} == {"r", "c", "f"}
    freq = {c["id"]: c["frequency"] for c in cats}
    assert {freq[a["category_id"]] for a in lvis_data["annotations"]} == {"r", "c", "f"}
    per_cat = Counter(a["category_id"] for a in lvis_data["annotations"])
    pairs = {(a["category_id"], a["image_id"]) for a in lvis_data["annotations"]}
    imgs_per_cat = Counter(cid for cid, _ in pairs)
    for cat in cats:
        assert cat["instance_count"] == per_cat[cat["id"]]
        assert cat["image_count"] == imgs_per_cat[cat["id"]]
    images = {img["id"]: img for img in lvis_data["images"]}
    for ann in lvis_data["annotations"]:
        assert "iscrowd" not in ann
        assert isinstance(ann["segmentation"], list) and ann["segmentation"], "LVIS has polygons only"
        img = images[ann["image_id"]]
        rle = _rle(ann["segmentation"], img["height"], img["width"])
        assert ann["area"] == float(mask_utils.area(rle)) > 0
        assert ann["bbox"] == mask_utils.toBbox(rle).tolist()


def test_lvis_images(lvis_data: dict, coco_data: dict) -> None:
    coco_images = {img["id"]: img for img in coco_data["images"]}
    splits = Counter()
    present: dict[int, set[int]] = {}
    for ann in lvis_data["annotations"]:
        present.setdefault(ann["image_id"], set()).add(ann["category_id"])
    for img in lvis_data["images"]:
        assert "file_name" not in img
        prefix, split, name = img["coco_url"].rsplit("/", 2)
        assert prefix == "http://images.cocodataset.org" and name == f"{img['id']:012d}.jpg"
        splits[split] += 1
        with Image.open(SAMPLE_DIR / split / name) as im:
            assert im.size == (img["width"], img["height"]), name
        if split == "val2017":
            ref = coco_images[img["id"]]
            assert (ref["width"], ref["height"]) == (img["width"], img["height"])
        else:
            assert img["id"] not in coco_images
        assert isinstance(img["neg_category_ids"], list)
        assert isinstance(img["not_exhaustive_category_ids"], list)
        assert not set(img["neg_category_ids"]) & present.get(img["id"], set())
    assert splits["val2017"] >= 15 and splits["train2017"] >= 4, splits
    assert {p.name for p in (SAMPLE_DIR / "train2017").glob("*.jpg")} == {
        img["coco_url"].rsplit("/", 1)[1] for img in lvis_data["images"] if "/train2017/" in img["coco_url"]
    }
    assert sum(bool(img["neg_category_ids"]) for img in lvis_data["images"]) >= 3
    assert sum(bool(img["not_exhaustive_category_ids"]) for img in lvis_data["images"]) >= 3
