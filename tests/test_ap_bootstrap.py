"""The AP image bootstrap: AP on any multiset of images, re-accumulated from one official ``evaluate()``.

Checked against the official evaluators on real data (cocoapi's 100-image benchmark with its fake
results; real LVIS annotations with self-made detections), never against numbers tuned to the code:

* the identity resample (each image once) gives the evaluator's own ``eval["precision"]`` array and its
  AP / APS / APM / APL (LVIS: and APr / APc / APf) to 1e-12;
* any resample gives what the evaluator's own ``accumulate()`` gives when its per-image list holds each
  drawn image as often as it was drawn;
* a resample gives what ``COCOeval`` gives from scratch on a dataset made of the drawn copies.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_shared
from test_ap_metrics import make_detections

from evalsuite.metrics.ap import evaluate_images, evaluate_segm
from evalsuite.metrics.ap_bootstrap import (
    APResampler,
    _mixed_groups,
    _tie_groups,
    match_table,
    paired_ap_bootstrap,
    resample_counts,
)

EXACT = 1e-12
COCO_STATS = {"AP": 0, "APS": 3, "APM": 4, "APL": 5}
LVIS_KEYS = {"AP": "AP", "APS": "APs", "APM": "APm", "APL": "APl", "APr": "APr", "APc": "APc", "APf": "APf"}


def _load(path: Path) -> object:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def coco100() -> dict:
    folder = require_shared("realdata", "coco_val2014_100")
    return {
        "gt": _load(folder / "instances_val2014_100.json"),
        "segm": _load(folder / "instances_val2014_fakesegm100_results.json"),
        "bbox": _load(folder / "instances_val2014_fakebbox100_results.json"),
    }


@pytest.fixture(scope="module")
def coco_evaluated(coco100: dict) -> dict:
    """COCOeval after evaluate() for segm and bbox (the expensive step, once)."""
    return {t: evaluate_images("coco", coco100["gt"], coco100[t], iou_type=t) for t in ("segm", "bbox")}


@pytest.fixture(scope="module")
def lvis_evaluated() -> dict:
    gt = _load(require_shared("realdata", "lvis_val_100", "lvis_val_100.json"))
    dets = make_detections(gt, seed=5, crowded=350)
    return {"gt": gt, "dets": dets, "evaluator": evaluate_images("lvis", gt, dets)}


def _official_accumulate(evaluator, counts: np.ndarray):
    """The evaluator's own accumulate() + summarize() over its per-image list with image i repeated
    counts[i] times (copies next to each other, in image order): the resample by definition."""
    ev = copy.copy(evaluator)
    p = copy.copy(ev.params)
    lvis = hasattr(p, "img_ids")
    ids = list(p.img_ids if lvis else p.imgIds)
    n_cat = len(p.cat_ids if lvis else p.catIds)
    n_area = len(p.area_rng if lvis else p.areaRng)
    order = [i for i in range(len(ids)) for _ in range(int(counts[i]))]
    source = ev.eval_imgs if lvis else ev.evalImgs
    per_image = [
        source[(k * n_area + a) * len(ids) + i] for k in range(n_cat) for a in range(n_area) for i in order
    ]
    drawn = [ids[i] for i in order]
    with contextlib.redirect_stdout(io.StringIO()):
        if lvis:
            p.img_ids = drawn
            ev.params, ev.eval_imgs = p, per_image
            ev.accumulate()
            ev.summarize()
            return ev.eval["precision"], {ours: ev.results[k] for ours, k in LVIS_KEYS.items()}
        p.imgIds = drawn
        pe = copy.copy(ev._paramsEval)
        pe.imgIds = drawn
        ev.params, ev._paramsEval, ev.evalImgs = p, pe, per_image
        ev.accumulate()
        ev.summarize()
        m = list(p.maxDets).index(100)
        return ev.eval["precision"][..., m], {ours: ev.stats[i] for ours, i in COCO_STATS.items()}


def _close(ours: float, theirs: float) -> bool:
    if theirs == -1:
        return bool(np.isnan(ours))
    return abs(ours - theirs) <= EXACT


# --------------------------------------------------------------------------- identity: the evaluator itself


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_identity_resample_is_cocoeval_exactly(coco100: dict, coco_evaluated: dict, iou_type: str) -> None:
    table = match_table(coco_evaluated[iou_type])
    ones = np.ones(len(table.image_ids), dtype=np.int64)
    precision = APResampler(table).precision(ones)
    reference, _ = _official_accumulate(coco_evaluated[iou_type], ones)
    assert precision.shape == reference.shape
    assert np.abs(precision - reference).max() <= EXACT
    ap = APResampler(table).ap(ones)
    stats = evaluate_segm("coco", coco100["gt"], coco100[iou_type], iou_type=iou_type)["stats"]
    for name, i in COCO_STATS.items():
        assert abs(float(ap[name][0]) - stats[i]) <= EXACT, name


def test_identity_resample_is_lvis_eval_exactly(lvis_evaluated: dict) -> None:
    table = match_table(lvis_evaluated["evaluator"])
    ones = np.ones(len(table.image_ids), dtype=np.int64)
    precision = APResampler(table).precision(ones)
    reference, _ = _official_accumulate(lvis_evaluated["evaluator"], ones)
    assert np.abs(precision - reference).max() <= EXACT
    ap = APResampler(table).ap(ones)
    stats = evaluate_segm("lvis", lvis_evaluated["gt"], lvis_evaluated["dets"])["stats"]
    assert set(ap) == set(LVIS_KEYS)
    for name, key in LVIS_KEYS.items():
        assert _close(float(ap[name][0]), stats[key]), name


# --------------------------------------------------------------------------- resamples


def test_resamples_are_the_evaluators_accumulate_on_the_drawn_images(coco_evaluated: dict) -> None:
    """Random resamples (images drawn 0, 1, 2, ... times), all at once, each against the official code."""
    evaluator = coco_evaluated["segm"]
    table = match_table(evaluator)
    counts = np.concatenate(list(resample_counts(len(table.image_ids), 12, seed=4, chunk=5)))
    assert counts.max() >= 3 and (counts == 0).any()
    resampler = APResampler(table, int(counts.max()))
    ap = resampler.ap(counts)
    for row, c in enumerate(counts):
        reference, stats = _official_accumulate(evaluator, c)
        assert np.abs(resampler.precision(c) - reference).max() <= EXACT
        for name, value in stats.items():
            assert _close(float(ap[name][row]), value), (row, name)


def test_lvis_resamples_are_lvis_eval_accumulate_on_the_drawn_images(lvis_evaluated: dict) -> None:
    evaluator = lvis_evaluated["evaluator"]
    table = match_table(evaluator)
    counts = np.concatenate(list(resample_counts(len(table.image_ids), 6, seed=8, chunk=6)))
    resampler = APResampler(table, int(counts.max()))
    ap = resampler.ap(counts)
    for row, c in enumerate(counts):
        reference, stats = _official_accumulate(evaluator, c)
        assert np.abs(resampler.precision(c) - reference).max() <= EXACT
        for name, value in stats.items():
            assert _close(float(ap[name][row]), value), (row, name)


def _images_with_mixed_ties(table) -> set[int]:
    """Images with equal-score detections of one category that mix true and false positives."""
    found: set[int] = set()
    for block in table.blocks:
        gid = _tie_groups(block)
        for t in range(block.kind.shape[0]):
            found |= set(block.img[_mixed_groups(block.kind[t], gid)[gid]].tolist())
    return found


def test_a_resample_is_cocoeval_on_a_dataset_of_the_drawn_copies(coco100: dict, coco_evaluated: dict) -> None:
    """From scratch: every drawn copy becomes an image of its own (ids keep copies next to each other),
    ground truth and results copied with it; COCOeval scores that dataset. Images whose equal-score
    detections mix true and false positives are drawn three times (the copy-by-copy case)."""
    gt, results = coco100["gt"], coco100["segm"]
    table = match_table(coco_evaluated["segm"])
    tied = _images_with_mixed_ties(table)
    assert table.mixed_ties and tied
    counts = np.ones(len(table.image_ids), dtype=np.int64)
    counts[sorted(tied)] = 3
    counts[[0, 7, 8]] = 0
    counts[[5, 9]] = 2
    images = {img["id"]: img for img in gt["images"]}
    copies = {"images": [], "annotations": [], "categories": gt["categories"]}
    drawn_results = []
    for i, c in enumerate(counts):
        old = table.image_ids[i]
        for r in range(c):
            new = old * 10 + r
            copies["images"].append({**images[old], "id": new})
            copies["annotations"] += [
                {**a, "id": len(copies["annotations"]) + j + 1, "image_id": new}
                for j, a in enumerate(x for x in gt["annotations"] if x["image_id"] == old)
            ]
            drawn_results += [{**d, "image_id": new} for d in results if d["image_id"] == old]
    stats = evaluate_segm("coco", copies, drawn_results)["stats"]
    ap = APResampler(table, 3).ap(counts)
    for name, i in COCO_STATS.items():
        assert abs(float(ap[name][0]) - stats[i]) <= EXACT, name
    # the copy-by-copy order matters here: weighting each detection by its count instead differs
    with pytest.raises(ValueError, match="exceeds max_count"):
        APResampler(table, 2).ap(counts)
    naive = APResampler(dataclasses.replace(table, mixed_ties=False), 1)  # no expansion: another order
    assert np.abs(naive.precision(counts) - APResampler(table, 3).precision(counts)).max() > 0.01


# --------------------------------------------------------------------------- the paired bootstrap


def test_paired_bootstrap_properties(coco100: dict, coco_evaluated: dict) -> None:
    a = match_table(coco_evaluated["segm"])
    # B: the same results with every score perturbed (another "model" on the same images)
    rng = np.random.default_rng(0)
    other = [{**d, "score": round(float(rng.random()), 3)} for d in coco100["segm"]]
    b = match_table(evaluate_images("coco", coco100["gt"], other))
    ab = paired_ap_bootstrap(a, b, resamples=300, seed=1)
    assert [d.metric for d in ab] == ["AP", "APS", "APM", "APL"]
    full = evaluate_segm("coco", coco100["gt"], coco100["segm"])["metrics"]
    for d in ab:
        assert d.images == 100 and d.undefined == 0
        assert d.ap_a == pytest.approx(full[d.metric], abs=1e-10)
        assert d.ci_low <= d.ci_high
    assert ab[0].ci_low <= ab[0].delta <= ab[0].ci_high
    # seeded, chunk independent, antisymmetric; A against itself has no spread
    assert ab == paired_ap_bootstrap(a, b, resamples=300, seed=1, memory_bytes=1)
    ba = paired_ap_bootstrap(b, a, resamples=300, seed=1)
    for x, y in zip(ab, ba, strict=True):
        assert y.delta == pytest.approx(-x.delta) and y.ci_low == pytest.approx(-x.ci_high)
    assert ab != paired_ap_bootstrap(a, b, resamples=300, seed=2)
    same = paired_ap_bootstrap(a, a, resamples=100, seed=0)
    assert all((d.delta, d.ci_low, d.ci_high) == (0.0, 0.0, 0.0) for d in same)
    with pytest.raises(ValueError, match="different images"):
        paired_ap_bootstrap(a, match_table(evaluate_images("coco", coco100["gt"], other, image_ids=[42])))


def test_resample_counts_draw_n_images_whatever_the_chunk() -> None:
    one = np.concatenate(list(resample_counts(50, 37, seed=3, chunk=37)))
    many = np.concatenate(list(resample_counts(50, 37, seed=3, chunk=4)))
    assert one.shape == (37, 50) and (one == many).all()
    assert (one.sum(axis=1) == 50).all()
