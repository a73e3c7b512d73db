"""Mask AP (Table 5) through the official evaluators: published numbers, backend agreement, edge cases.

The suite's Table 5 numbers are only as trustworthy as this wrapper, so it is checked three ways:
against numbers published by cocoapi (and recomputed with pycocotools 2.0.11), by making the two
backends (official pycocotools/lvis vs faster-coco-eval) agree on real and self-made data where their
known differences (per-image top-300 cut, empty masks, tie order, maxDets) matter, and by invariants
(GT as results gives 100; an image restriction equals cutting the GT file).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import require_shared
from hypothesis import given, settings
from hypothesis import strategies as st
from lvis import LVISEval, LVISResults
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from evalsuite.data.locate import sample_root
from evalsuite.data.readers import PreloadedLVIS
from evalsuite.errors import InputError
from evalsuite.metrics.ap import (
    BACKENDS,
    COCO_METRICS,
    LVIS_METRICS,
    _prepare_results,
    evaluate_segm,
    lvis_top_k,
)

BACKEND_TOL = 1e-9


def _load(path: Path) -> object:
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def coco100() -> dict:
    """cocoapi's 100-image val2014 GT with its fake segm/bbox results and the expected stats."""
    root = require_shared("realdata")
    folder = root / "coco_val2014_100"
    return {
        "gt": _load(folder / "instances_val2014_100.json"),
        "segm": _load(folder / "instances_val2014_fakesegm100_results.json"),
        "bbox": _load(folder / "instances_val2014_fakebbox100_results.json"),
        "expected": _load(root / "expected.json"),
    }


@pytest.fixture(scope="module")
def lvis100() -> dict:
    """Real LVIS (v0.5) GT of 100 images with self-made detections (one image gets > 300)."""
    gt = _load(require_shared("realdata", "lvis_val_100", "lvis_val_100.json"))
    return {"gt": gt, "dets": make_detections(gt, seed=5, crowded=350)}


@pytest.fixture(scope="module")
def sample() -> dict:
    """The bundled synthetic COCO/LVIS sample with self-made detections."""
    out = {}
    for family, name in (("coco", "instances_val2017.json"), ("lvis", "lvis_v1_val.json")):
        gt = _load(sample_root() / "annotations" / name)
        out[family] = {"gt": gt, "dets": make_detections(gt, seed=11, crowded=250)}
    return out


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def _gt_mask(ann: dict, height: int, width: int) -> np.ndarray:
    seg = ann["segmentation"]
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = seg
    return mask_utils.decode(rle)


def make_detections(gt: dict, seed: int, crowded: int) -> list[dict]:
    """Deterministic detections derived from the GT, built to exercise every rule the backends share.

    Per GT object: its mask shifted by up to 6 px, sometimes eroded, score rounded to 2 decimals
    (many ties). Per image, false positives reusing another object's raw segmentation (polygons or
    RLE, so every input form is converted) under the image's negative and not-exhaustive categories and
    two random ones. On the image with most objects, ``crowded`` extra box-shaped masks on two of its
    categories (over COCO's maxDets 100 per category and over the LVIS top-300 cut) and one empty mask.
    """
    rng = np.random.default_rng(seed)
    images = {img["id"]: img for img in gt["images"]}
    categories = sorted(cat["id"] for cat in gt["categories"])
    by_image: dict[int, list[dict]] = {}
    for ann in sorted(gt["annotations"], key=lambda a: a["id"]):
        by_image.setdefault(ann["image_id"], []).append(ann)

    dets = []
    for image_id in sorted(by_image):
        height, width = images[image_id]["height"], images[image_id]["width"]
        anns = by_image[image_id]
        for ann in anns:
            mask = _gt_mask(ann, height, width)
            dy, dx = (int(v) for v in rng.integers(-6, 7, size=2))
            mask = np.roll(mask, (dy, dx), axis=(0, 1))
            if rng.random() < 0.3:
                mask = mask & np.roll(mask, 2, axis=0) & np.roll(mask, -2, axis=1)
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": ann["category_id"],
                    "segmentation": _rle(mask),
                    "score": round(float(rng.random()), 2),
                }
            )
        img = images[image_id]
        wrong = (
            list(img.get("neg_category_ids", []))[:2] + list(img.get("not_exhaustive_category_ids", []))[:2]
        )
        wrong += [int(c) for c in rng.choice(categories, size=2, replace=False)]
        for category_id in wrong:
            source = anns[int(rng.integers(len(anns)))]
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": int(category_id),
                    "segmentation": copy.deepcopy(source["segmentation"]),
                    "score": round(float(rng.random()), 2),
                }
            )

    busiest = max(sorted(by_image), key=lambda i: len(by_image[i]))
    height, width = images[busiest]["height"], images[busiest]["width"]
    present = sorted({a["category_id"] for a in by_image[busiest]})
    for i in range(crowded):
        x, y = rng.uniform(0, width - 40), rng.uniform(0, height - 40)
        box = [x, y, min(rng.uniform(5, 150), width - x), min(rng.uniform(5, 150), height - y)]
        rle = mask_utils.frPyObjects(np.array([box]), height, width)[0]
        dets.append(
            {
                "image_id": busiest,
                "category_id": present[i % min(2, len(present))],
                "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
                "score": round(float(rng.random()), 3),
            }
        )
    empty = _rle(np.zeros((height, width), dtype=bool))
    dets.append({"image_id": busiest, "category_id": present[0], "segmentation": empty, "score": 0.999})
    return dets


def _gt_as_results(gt: dict) -> list[dict]:
    """Every non-crowd GT object as a detection with score 1 (its raw segmentation, any form)."""
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "segmentation": a["segmentation"],
            "score": 1.0,
        }
        for a in gt["annotations"]
        if not a.get("iscrowd", 0)
    ]


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    """COCO uncompressed RLE: column-major run lengths, starting with a (possibly empty) run of 0s."""
    flat = mask.flatten(order="F").astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return [0, *counts] if flat[0] else counts


def _stat_items(stats: list[float] | dict[str, float]) -> dict:
    return dict(enumerate(stats)) if isinstance(stats, list) else stats


def assert_backends_agree(family: str, gt: dict, dets: list[dict], **kwargs: object) -> dict:
    """Both backends, every stat within 1e-9; returns the official result."""
    official = evaluate_segm(family, gt, dets, backend="official", **kwargs)
    faster = evaluate_segm(family, gt, dets, backend="faster", **kwargs)
    a, b = _stat_items(official["stats"]), _stat_items(faster["stats"])
    assert a.keys() == b.keys()
    worst = max(abs(a[k] - b[k]) for k in a)
    assert worst <= BACKEND_TOL, {k: (a[k], b[k]) for k in a if abs(a[k] - b[k]) > BACKEND_TOL}
    assert official["num_detections"] == faster["num_detections"]
    for name, value in official["metrics"].items():
        other = faster["metrics"][name]
        assert (value is None) == (other is None), name
        if value is not None:
            assert value == pytest.approx(other, abs=100 * BACKEND_TOL)
    assert official["per_category"].keys() == faster["per_category"].keys()
    for cat_id, entry in official["per_category"].items():
        theirs = faster["per_category"][cat_id]
        assert entry.keys() == theirs.keys() and entry["n"] == theirs["n"]
        for name in ("AP", "APS", "APM", "APL"):
            assert (entry[name] is None) == (theirs[name] is None), (cat_id, name)
            if entry[name] is not None:
                assert entry[name] == pytest.approx(theirs[name], abs=100 * BACKEND_TOL), (cat_id, name)
    return official


# --------------------------------------------------------------------------- published numbers


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_cocoapi_fake_results_reproduce_published_stats(coco100: dict, iou_type: str) -> None:
    """The cocoapi benchmark through our wrapper: all 12 stats as pycocotools 2.0.11 computes them."""
    result = evaluate_segm("coco", coco100["gt"], coco100[iou_type], iou_type=iou_type)
    expected = coco100["expected"]["coco_val2014_100"]
    assert result["stats"] == pytest.approx(expected["pycocotools_2_0_11"][iou_type], abs=1e-12, rel=0)
    assert [f"{s:.3f}" for s in result["stats"]] == [f"{p:.3f}" for p in expected["published"][iou_type]]
    assert list(result["metrics"]) == list(COCO_METRICS)
    assert result["metrics"]["AP"] == pytest.approx(100 * result["stats"][0])
    assert f"{result['metrics']['AP'] / 100:.3f}" == {"segm": "0.320", "bbox": "0.505"}[iou_type]


def test_detectron2_case_matches_its_reference(realdata: Path) -> None:
    """detectron2's tiny real case: an image without GT, no large objects (-1 -> None)."""
    folder = realdata / "detectron2_coco_eval_139"
    gt, dets = _load(folder / "gt_val2017_139_285.json"), _load(folder / "maskrcnn_detections_139.json")
    expected = _load(realdata / "expected.json")["detectron2_coco_eval_139"]
    for iou_type in ("segm", "bbox"):
        result = assert_backends_agree("coco", gt, dets, iou_type=iou_type)
        assert result["stats"] == pytest.approx(expected[iou_type], abs=1e-12, rel=0)
        assert result["metrics"]["APL"] is None
        assert result["metrics"]["AP"] == pytest.approx(100 * expected[iou_type][0])


# --------------------------------------------------------------------------- per-category AP


def _quiet_run(evaluator) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        if hasattr(evaluator, "run"):
            evaluator.run()
        else:
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_per_category_ap_is_cocoeval_run_on_that_category(coco100: dict, iou_type: str) -> None:
    """Independent check with pycocotools itself: COCOeval with ``params.catIds = [k]`` gives category
    k's AP (and APS / APM / APL) — to 1e-12 — for every category with ground truth."""
    gt, results = coco100["gt"], coco100[iou_type]
    ours = evaluate_segm("coco", gt, results, iou_type=iou_type)["per_category"]
    coco_gt = COCO()
    coco_gt.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
    with_gt = {a["category_id"] for a in gt["annotations"] if not a["iscrowd"]}
    assert set(ours) == with_gt and len(ours) == 70
    for cat_id, entry in ours.items():
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.params.catIds = [cat_id]
        _quiet_run(evaluator)
        for name, i in {"AP": 0, "APS": 3, "APM": 4, "APL": 5}.items():
            theirs = evaluator.stats[i]
            if theirs == -1:
                assert entry[name] is None, (cat_id, name)
            else:
                assert abs(entry[name] - 100 * theirs) <= 1e-12 * 100, (cat_id, name, entry[name], theirs)
        assert entry["n"] == sum(
            1 for a in gt["annotations"] if a["category_id"] == cat_id and not a["iscrowd"]
        )


@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")
def test_per_category_ap_is_lvis_eval_run_on_that_category(lvis100: dict) -> None:
    """LVIS likewise: ``LVISEval`` with ``params.cat_ids = [k]`` (federated rules included), for every
    rare and common category with ground truth and every fifth frequent one."""
    gt, dets = lvis100["gt"], lvis100["dets"]
    ours = evaluate_segm("lvis", gt, dets)["per_category"]
    freq = {c["id"]: c["frequency"] for c in gt["categories"]}
    assert set(ours) == {a["category_id"] for a in gt["annotations"]}
    frequent = sorted(c for c in ours if freq[c] == "f")
    chosen = sorted(c for c in ours if freq[c] != "f") + frequent[::5]
    # LVISResults takes compressed RLE only: the wrapper's input normalisation, then the official code
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    rle_dets = _prepare_results(dets, sizes, set(freq), "segm")
    lvis_gt = PreloadedLVIS(copy.deepcopy(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        lvis_dt = LVISResults(lvis_gt, rle_dets, max_dets=300)
    for cat_id in chosen:
        evaluator = LVISEval(lvis_gt, lvis_dt, "segm")
        evaluator.params.cat_ids = [cat_id]
        _quiet_run(evaluator)
        for name, key in {"AP": "AP", "APS": "APs", "APM": "APm", "APL": "APl"}.items():
            theirs = evaluator.results[key]
            if theirs == -1:
                assert ours[cat_id][name] is None, (cat_id, name)
            else:
                assert abs(ours[cat_id][name] - 100 * theirs) <= 1e-12 * 100, (cat_id, name)


def test_ap_metric_returns_per_category_ap(sample: dict) -> None:
    """``APMetric.evaluate`` hands the per-category AP to the record (the engine stores it)."""
    from evalsuite.metrics.ap_metric import APMetric

    gt = sample["coco"]["gt"]

    class Det:
        def __init__(self, i: int, d: dict) -> None:
            self.image_id, self.det_id, self._d = d["image_id"], i, d

        def to_result(self) -> dict:
            return self._d

    metric = APMetric("coco", gt, sorted(img["id"] for img in gt["images"]))
    metric.process([Det(i, d) for i, d in enumerate(sample["coco"]["dets"])])
    result = metric.evaluate()
    expected = evaluate_segm("coco", gt, sample["coco"]["dets"])["per_category"]
    assert result.per_category == expected and expected
    assert all(set(v) == {"AP", "APS", "APM", "APL", "n"} for v in expected.values())


# --------------------------------------------------------------------------- backend agreement


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_backends_agree_on_cocoapi_fake_results(coco100: dict, iou_type: str) -> None:
    assert_backends_agree("coco", coco100["gt"], coco100[iou_type], iou_type=iou_type)


def test_backends_agree_on_real_lvis_with_top300_cut(lvis100: dict) -> None:
    """Real LVIS GT: negative / not-exhaustive categories, r/c/f groups, > 300 detections on an image."""
    dets = lvis100["dets"]
    assert max(Counter(d["image_id"] for d in dets).values()) > 300
    result = assert_backends_agree("lvis", lvis100["gt"], dets)
    assert result["num_detections"] < len(dets)  # the cut happened
    assert list(result["metrics"]) == list(LVIS_METRICS)
    assert all(result["metrics"][m] is not None for m in LVIS_METRICS)  # every group/range has GT here


def test_lvis_top300_cut_matters_for_the_faster_backend(
    lvis100: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard for the test above: without our top-300 cut faster-coco-eval scores differently."""
    import evalsuite.metrics.ap as ap

    official = evaluate_segm("lvis", lvis100["gt"], lvis100["dets"])
    monkeypatch.setattr(ap, "lvis_top_k", lambda dets, k=300: dets)
    uncut = evaluate_segm("lvis", lvis100["gt"], lvis100["dets"], backend="faster")
    assert abs(official["stats"]["AP"] - uncut["stats"]["AP"]) > 1e-4


@pytest.mark.parametrize("family", ["coco", "lvis"])
def test_backends_agree_on_bundled_sample(sample: dict, family: str) -> None:
    """Synthetic sample: COCO crowd regions and > 100 detections per category; LVIS groups."""
    data = sample[family]
    assert_backends_agree(family, data["gt"], data["dets"])
    restricted = sorted(img["id"] for img in data["gt"]["images"])[::3]
    assert_backends_agree(family, data["gt"], data["dets"], image_ids=restricted)


def test_backends_agree_on_lvis_gt_oddities(sample: dict) -> None:
    """GT the LVIS API tolerates in its own way: area 0 (never loaded) and iscrowd (never read)."""
    gt = copy.deepcopy(sample["lvis"]["gt"])
    gt["annotations"][0]["area"] = 0.0
    gt["annotations"][1]["iscrowd"] = 1
    assert_backends_agree("lvis", gt, sample["lvis"]["dets"])


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("family", ["coco", "lvis"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gt_as_results_scores_100(sample: dict, family: str, backend: str) -> None:
    gt = sample[family]["gt"]
    result = evaluate_segm(family, gt, _gt_as_results(gt), backend=backend)
    # AR@1 / AR@10 recall at most 1 / 10 objects per image: below 100 on images with more
    values = [v for m, v in result["metrics"].items() if v is not None and m not in ("AR@1", "AR@10")]
    assert result["metrics"]["AP"] is not None
    assert values == pytest.approx([100.0] * len(values), abs=1e-9)


@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")
def test_lvis_top_k_keeps_what_lvis_results_keeps(lvis100: dict) -> None:
    """Same detections, same order as ``LVISResults(max_dets=300)`` on the real LVIS case."""
    # LVISResults takes only RLE masks; the selection depends on image_id and score alone.
    dets = [
        {
            "image_id": d["image_id"],
            "category_id": d["category_id"],
            "score": d["score"],
            "tag": i,
            "bbox": [0, 0, 1, 1],
        }
        for i, d in enumerate(lvis100["dets"])
    ]
    official = LVISResults(PreloadedLVIS(lvis100["gt"]), copy.deepcopy(dets), max_dets=300)
    assert [d["tag"] for d in lvis_top_k(dets, 300)] == [a["tag"] for a in official.dataset["annotations"]]


@settings(max_examples=150, deadline=None)
@given(
    scores=st.lists(st.tuples(st.integers(1, 4), st.sampled_from([0.1, 0.5, 0.5, 0.9, 1.0])), max_size=40),
    k=st.integers(0, 6),
)
def test_lvis_top_k_matches_lvis_cut_with_ties(scores: list[tuple[int, float]], k: int) -> None:
    """Many equal scores: the same stable choice as ``LVISResults.limit_dets_per_image``."""
    dets = [{"image_id": img, "score": s, "tag": i} for i, (img, s) in enumerate(scores)]
    theirs = LVISResults.limit_dets_per_image(None, [dict(d) for d in dets], k)
    assert [d["tag"] for d in lvis_top_k(dets, k)] == [d["tag"] for d in theirs]


@pytest.mark.parametrize("family", ["coco", "lvis"])
def test_image_ids_equal_a_cut_ground_truth(coco100: dict, lvis100: dict, family: str) -> None:
    """``image_ids`` (params.imgIds / img_ids) gives what a GT file holding only those images gives."""
    data = {"coco": {"gt": coco100["gt"], "dets": coco100["segm"]}, "lvis": lvis100}[family]
    gt, dets = data["gt"], data["dets"]
    ids = sorted(img["id"] for img in gt["images"])[1::4]
    keep = set(ids)
    cut_gt = {
        **gt,
        "images": [img for img in gt["images"] if img["id"] in keep],
        "annotations": [a for a in gt["annotations"] if a["image_id"] in keep],
    }
    cut_dets = [d for d in dets if d["image_id"] in keep]
    restricted = evaluate_segm(family, gt, dets, image_ids=list(reversed(ids)))
    cut = evaluate_segm(family, cut_gt, cut_dets)
    assert restricted["stats"] == pytest.approx(cut["stats"], abs=1e-12, rel=0)
    assert restricted["num_images"] == cut["num_images"] == len(ids)


def test_inputs_are_not_modified(sample: dict) -> None:
    """The official APIs write into GT and result dicts; the wrapper must work on copies."""
    for family in ("coco", "lvis"):
        gt, dets = sample[family]["gt"], sample[family]["dets"]
        before = (copy.deepcopy(gt), copy.deepcopy(dets))
        for backend in BACKENDS:
            evaluate_segm(family, gt, dets, backend=backend)
        assert (gt, dets) == before


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("family", ["coco", "lvis"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_detections_at_all(sample: dict, family: str, backend: str) -> None:
    """``[]``: 0.0 wherever the range has GT, None where it has none (what the evaluators say for
    images with GT but no detections), instead of loadRes / LVISResults crashing on ``anns[0]``."""
    gt = sample[family]["gt"]
    empty = evaluate_segm(family, gt, [], backend=backend)
    perfect = evaluate_segm(family, gt, _gt_as_results(gt), backend=backend)
    for name, value in empty["metrics"].items():
        assert value == (None if perfect["metrics"][name] is None else 0.0), name
    assert empty["num_detections"] == 0


def test_images_with_gt_but_no_detections_score_zero(coco100: dict) -> None:
    """Image 1063 has GT but no fake result: the evaluator itself says 0 — as our empty-results path."""
    gt, dets = coco100["gt"], coco100["segm"]
    assert 1063 not in {d["image_id"] for d in dets}
    natural = evaluate_segm("coco", gt, dets, image_ids=[1063])
    assert evaluate_segm("coco", gt, [], image_ids=[1063])["stats"] == natural["stats"]
    assert natural["metrics"]["AP"] == 0.0


def test_result_forms_are_equivalent(sample: dict) -> None:
    """Polygons, uncompressed RLE, bytes counts and numpy ids give the same numbers as str RLE."""
    gt = sample["coco"]["gt"]
    images = {img["id"]: img for img in gt["images"]}
    as_polygons = [d for d in _gt_as_results(gt) if isinstance(d["segmentation"], list)][:40]
    as_rle, as_raw = [], []
    for det in as_polygons:
        img = images[det["image_id"]]
        mask = _gt_mask(det, img["height"], img["width"])
        rle = _rle(mask)
        as_rle.append(dict(det, segmentation=rle, score=0.5))
        uncompressed = {"size": rle["size"], "counts": _uncompressed_counts(mask)}
        assert sum(uncompressed["counts"]) == mask.size
        as_raw.append(
            {
                "image_id": np.int64(det["image_id"]),
                "category_id": np.int32(det["category_id"]),
                "segmentation": uncompressed if len(as_raw) % 2 else dict(rle, counts=rle["counts"].encode()),
                "score": np.float32(0.5),
            }
        )
    as_polygons = [dict(d, score=0.5) for d in as_polygons]
    reference = evaluate_segm("coco", gt, as_rle)["stats"]
    assert evaluate_segm("coco", gt, as_polygons)["stats"] == reference
    assert evaluate_segm("coco", gt, as_raw)["stats"] == reference


def test_segm_ignores_result_boxes(coco100: dict) -> None:
    """A result's bbox would make loadRes use the box area for S/M/L; for mask AP it is dropped."""
    gt = coco100["gt"]
    boxed = [dict(d, bbox=[0.0, 0.0, 500.0, 400.0]) for d in coco100["segm"]]
    assert evaluate_segm("coco", gt, boxed)["stats"] == evaluate_segm("coco", gt, coco100["segm"])["stats"]


def _one_det(**overrides: object) -> list[dict]:
    det = {"image_id": 100003, "category_id": 1, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]], "score": 0.5}
    det.update(overrides)
    return [{k: v for k, v in det.items() if v is not _DROP}]


_DROP = object()


@pytest.mark.parametrize(
    ("results", "message"),
    [
        (_one_det(image_id=424242), "image_id 424242 is not an image"),
        (_one_det(category_id=999), "category_id 999 is not a category"),
        (_one_det(category_id=0), "category_id 0 is not a category"),
        (_one_det(score=_DROP), "lacks score"),
        (_one_det(segmentation=_DROP), "lacks segmentation"),
        (_one_det(score=math.nan), "not a finite number"),
        (_one_det(score="high"), "not a finite number"),
        (_one_det(image_id="100003"), "is not an image"),
        (_one_det(segmentation={"size": [10, 10], "counts": "PPYo1"}), "is not the image size"),
        (_one_det(segmentation={"size": [480, 640], "counts": [5, 5]}), "do not sum"),
        (_one_det(segmentation=[[0, 0, 10, 10]]), "at least 3 points"),
        (_one_det(segmentation=[]), "non-empty list of polygons"),
        (_one_det(segmentation="mask"), "RLE dict or a list of polygons"),
        ({"image_id": 100003}, "must be a list"),
        (["not a dict"], "not a dict"),
    ],
)
def test_bad_results_raise_input_error(sample: dict, results: object, message: str) -> None:
    for backend in BACKENDS:
        with pytest.raises(InputError, match=message):
            evaluate_segm("coco", sample["coco"]["gt"], results, backend=backend)


def test_bad_arguments_raise_input_error(sample: dict) -> None:
    gt = sample["coco"]["gt"]
    with pytest.raises(InputError, match="image_ids not in the ground truth"):
        evaluate_segm("coco", gt, [], image_ids=[100003, 7])
    with pytest.raises(InputError, match="image_ids is empty"):
        evaluate_segm("coco", gt, [], image_ids=[])
    with pytest.raises(InputError, match="Did you mean: faster"):
        evaluate_segm("coco", gt, [], backend="fast")
    with pytest.raises(InputError, match="unknown dataset family"):
        evaluate_segm("ade20k", gt, [])
    with pytest.raises(InputError, match="lacks neg_category_ids"):
        evaluate_segm("lvis", gt, [])  # a COCO file as LVIS
    with pytest.raises(InputError, match="missing or malformed 'annotations'"):
        evaluate_segm("coco", {"images": [], "categories": []}, [])
    lvis_ignore = copy.deepcopy(sample["lvis"]["gt"])
    lvis_ignore["annotations"][0]["ignore"] = 1
    with pytest.raises(InputError, match="'ignore' flags"):
        evaluate_segm("lvis", lvis_ignore, [], backend="faster")
