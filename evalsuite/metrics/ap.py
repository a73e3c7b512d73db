"""Mask AP of COCO-results-format detections, scored by the official evaluators (Table 5 protocols).

Backends:

* ``"official"`` — pycocotools ``COCOeval`` (COCO: iouType ``segm``, maxDets 1/10/100) and the ``lvis``
  API (``LVISResults(max_dets=300)`` + ``LVISEval``). These are the reference numbers.
* ``"faster"`` — ``faster_coco_eval`` (C++). COCO: ``COCOeval_faster`` with default params. LVIS:
  ``lvis_style=True`` and ``params.maxDets = [300]``, fed the detections the official API would keep:
  :func:`lvis_top_k` (faster-coco-eval does no per-image cut) and only detections/GT with area > 0
  (``LVISEval`` loads annotations through ``get_ann_ids(area_rng=[0, inf])`` with strict bounds, so an
  empty mask never counts there). GT ``iscrowd`` flags are dropped for it too (the LVIS API ignores them).
  The tests hold both backends equal to 1e-9 on every stat.

Input handling done here, identically for both backends, and why:

* Results are copied (the official APIs write ``id``/``area``/``segmentation`` into them) and every
  segmentation is normalised to compressed RLE with ``str`` counts: ``loadRes``/``LVISResults`` accept
  only that. Polygons and uncompressed RLE are converted with pycocotools at the image's size.
* For ``segm``, a result's ``bbox`` is dropped. With a ``bbox`` present, ``loadRes``/``LVISResults``
  set the detection's area to the *box* area, which moves detections between the S/M/L ranges;
  detectron2's COCO/LVIS evaluators and TinySAM's Table 5 script drop it for mask AP for that reason.
* Errors the official code would hit as a bare ``assert``/``KeyError`` deep inside (unknown image or
  category ids, RLE of the wrong size, missing fields, non-finite scores) become :class:`InputError`.
  Unknown *category* ids are an error although the evaluators would silently skip them: that is
  almost always a category-mapping bug that would otherwise just lower AP.

No detections at all: pycocotools ``loadRes([])`` and ``LVISResults([])`` crash on ``anns[0]``, so the
detections object is built empty the way those constructors would build it, and the evaluator runs.
The result is what every evaluator gives for images that have GT but no detections: 0.0 for every
metric whose category/area range has GT, None where it has none.

Metrics are in percent; the evaluators' ``-1`` ("no GT in this range") becomes None. ``stats`` keeps
the raw values (fractions, ``-1`` kept). The metrics are the evaluators' whole summaries, what detection
people read first: COCO's 12 numbers (``COCOeval.stats``: AP, AP50, AP75, APS/M/L, AR@1/10/100, ARS/M/L)
and LVIS's 13 (AP, AP50, AP75, APS/M/L, APr/c/f, AR@300, ARS/M/L).

Per-category AP (``per_category``) comes from the evaluator's own ``eval["precision"]`` array, the way its
``summarize`` averages it, restricted to one category: the mean over IoU and recall thresholds of
``precision[:, :, k, area]`` where it is > -1 (COCO at maxDets=100; LVIS at its single max_dets) — the
number ``COCOeval`` / ``LVISEval`` report when run with that one category. Categories without a
ground-truth object on the evaluated images are left out (their AP is undefined).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import faster_coco_eval
import numpy as np
from lvis import LVISEval, LVISResults
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..compat import patch_lvis_numpy_float
from ..data.readers import PreloadedLVIS
from ..data.registry import ap_evaluator
from ..errors import InputError, did_you_mean

BACKENDS = ("official", "faster")
#: the AP scorers a dataset may declare (its ``ap_evaluator``): pycocotools' COCOeval, the lvis package's
#: LVISEval (federated: per-image negative / not-exhaustive categories, r/c/f frequency groups)
COCOEVAL, LVISEVAL = "COCOeval", "LVISEval"
EVALUATORS = (COCOEVAL, LVISEVAL)
IOU_TYPES = ("segm", "bbox")
AP_METRICS = ("AP", "AP50", "AP75", "APS", "APM", "APL")
#: COCOeval's 12-number summary, in ``COCOeval.stats`` order (AR@k: maxDets k; ARS/M/L at 100)
COCO_METRICS = (*AP_METRICS, "AR@1", "AR@10", "AR@100", "ARS", "ARM", "ARL")
LVIS_MAX_DETS = 300
#: LVISEval's whole summary (``get_results()``): AP by area and frequency group, AR at 300 by area
LVIS_METRICS = (*AP_METRICS, "APr", "APc", "APf", f"AR@{LVIS_MAX_DETS}", "ARS", "ARM", "ARL")

_COCO_STAT_INDEX = {name: i for i, name in enumerate(COCO_METRICS)}
# Our metric name -> key of LVISEval.get_results().
_LVIS_RESULT_KEY = {
    "AP": "AP",
    "AP50": "AP50",
    "AP75": "AP75",
    "APS": "APs",
    "APM": "APm",
    "APL": "APl",
    "APr": "APr",
    "APc": "APc",
    "APf": "APf",
    f"AR@{LVIS_MAX_DETS}": f"AR@{LVIS_MAX_DETS}",
    "ARS": f"ARs@{LVIS_MAX_DETS}",
    "ARM": f"ARm@{LVIS_MAX_DETS}",
    "ARL": f"ARl@{LVIS_MAX_DETS}",
}
# faster-coco-eval stats_as_dict (lvis_style, maxDets [300]) -> LVISEval.get_results() key.
_FASTER_LVIS_KEYS = {
    "AP_all": "AP",
    "AP_50": "AP50",
    "AP_75": "AP75",
    "AP_small": "APs",
    "AP_medium": "APm",
    "AP_large": "APl",
    "APr": "APr",
    "APc": "APc",
    "APf": "APf",
    "AR_all": f"AR@{LVIS_MAX_DETS}",
    "AR_small": f"ARs@{LVIS_MAX_DETS}",
    "AR_medium": f"ARm@{LVIS_MAX_DETS}",
    "AR_large": f"ARl@{LVIS_MAX_DETS}",
}


def lvis_top_k(results: list[dict], k: int = LVIS_MAX_DETS) -> list[dict]:
    """The detections ``LVISResults(max_dets=k)`` keeps, in the order it keeps them.

    Per image, an image with more than ``k`` detections keeps its ``k`` highest scores (a stable sort,
    so equal scores keep file order) in descending score order; images with at most ``k`` keep theirs
    in file order. Images come in order of first appearance. Returns the input dicts, not copies.
    The faster backend needs this because faster-coco-eval has no per-image cut.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    per_image: dict[object, list[dict]] = {}
    for det in results:
        per_image.setdefault(det["image_id"], []).append(det)
    kept: list[dict] = []
    for dets in per_image.values():
        if len(dets) > k:
            dets = sorted(dets, key=lambda d: d["score"], reverse=True)[:k]  # sorted() is stable
        kept.extend(dets)
    return kept


def evaluator_of(kind: str) -> str:
    """The AP scorer ``kind`` names: one of :data:`EVALUATORS`, or the one a registered dataset declares
    (records name their dataset: ``record.dataset.family``)."""
    if kind in EVALUATORS:
        return kind
    declared = ap_evaluator(kind)
    if declared not in EVALUATORS:
        raise InputError(
            f"unknown dataset family {kind!r}: not an AP evaluator ({', '.join(EVALUATORS)}) nor a dataset "
            "that declares one"
        )
    assert declared is not None
    return declared


def evaluate_segm(
    family: str,
    gt: dict,
    results: list[dict],
    image_ids: list[int] | None = None,
    backend: str = "official",
    iou_type: str = "segm",
) -> dict:
    """Score ``results`` against ``gt`` with the AP evaluator ``family`` names (:func:`evaluator_of`: an
    evaluator, or a dataset that declares one).

    ``gt`` is the parsed annotation JSON (COCO instances / LVIS v0.5 or v1), ``results`` a COCO-results
    list, ``image_ids`` restricts the evaluated images (``params.imgIds`` / ``params.img_ids``; None =
    all images of ``gt``). ``iou_type="bbox"`` scores the results' boxes instead (used to check the
    pipeline against published bbox numbers). Neither ``gt`` nor ``results`` is modified.

    Returns ``{"metrics": {name: percent or None}, "stats": raw evaluator output, "backend", "evaluator",
    "iou_type", "num_images", "num_detections"}``; ``stats`` is COCOeval's 12 ``stats`` (COCO) or the
    ``LVISEval.get_results()`` dict (LVIS), as floats; ``num_detections`` counts the detections handed
    to the evaluator (LVIS: after the top-300 cut). ``per_category`` maps each category id with ground
    truth on the evaluated images to ``{"AP", "APS", "APM", "APL": percent or None, "n": its ground-truth
    objects}`` (see the module docstring).
    """
    evaluator = evaluator_of(family)
    if backend not in BACKENDS:
        raise InputError(
            f"unknown AP backend {backend!r}; expected one of {', '.join(BACKENDS)}."
            + did_you_mean(backend, BACKENDS)
        )
    if iou_type not in IOU_TYPES:
        raise InputError(f"unknown iou_type {iou_type!r}; expected one of {', '.join(IOU_TYPES)}")
    _check_gt(evaluator, gt, iou_type)
    sizes = {int(img["id"]): (int(img["height"]), int(img["width"])) for img in gt["images"]}
    categories = {int(cat["id"]) for cat in gt["categories"]}
    dets = _prepare_results(results, sizes, categories, iou_type)
    img_ids = _check_image_ids(image_ids, sizes)

    stats: list[float] | dict[str, float]
    if evaluator == COCOEVAL:
        run = _official_coco if backend == "official" else _faster_coco
        coco_stats, scored = run(gt, dets, iou_type, img_ids)
        metrics = {name: _percent(coco_stats[i]) for name, i in _COCO_STAT_INDEX.items()}
        num_dets, stats = len(dets), coco_stats
    else:
        if backend == "official":
            lvis_stats, num_dets, scored = _official_lvis(gt, dets, iou_type, img_ids)
        else:
            if any(ann.get("ignore") for ann in gt["annotations"]):
                raise InputError(
                    "the LVIS ground truth has 'ignore' flags, which faster-coco-eval does not honour",
                    hint="use the official backend",
                )
            dets = lvis_top_k(dets, LVIS_MAX_DETS)
            num_dets = len(dets)
            lvis_stats, scored = _faster_lvis(gt, dets, iou_type, img_ids)
        metrics = {name: _percent(lvis_stats[key]) for name, key in _LVIS_RESULT_KEY.items()}
        stats = lvis_stats
    return {
        "metrics": metrics,
        "stats": stats,
        "per_category": _per_category(evaluator, gt, img_ids, scored),
        "backend": backend,
        "evaluator": evaluator,
        "iou_type": iou_type,
        "num_images": len(img_ids) if img_ids is not None else len(sizes),
        "num_detections": num_dets,
    }


# --------------------------------------------------------------------------- validation


def _check_gt(evaluator: str, gt: dict, iou_type: str) -> None:
    """Reject GT the evaluators would trip over with an unhelpful ``KeyError``/``assert``."""
    if not isinstance(gt, dict):
        raise InputError("ground truth must be a parsed COCO/LVIS annotation dict")
    for section in ("images", "annotations", "categories"):
        if not isinstance(gt.get(section), list):
            raise InputError(f"ground truth: missing or malformed '{section}' list")
    image_keys: tuple[str, ...] = ("id", "height", "width")
    if evaluator == LVISEVAL:
        image_keys += ("neg_category_ids", "not_exhaustive_category_ids")
    for img in gt["images"]:
        missing = [k for k in image_keys if k not in img]
        if missing:
            raise InputError(f"ground truth: image {img.get('id', '?')} lacks {', '.join(missing)}")
    if evaluator == LVISEVAL:
        for cat in gt["categories"]:
            if cat.get("frequency") not in ("r", "c", "f"):
                raise InputError(
                    f"ground truth: LVIS category {cat.get('id', '?')} has no frequency r/c/f",
                    hint=f"is this a COCO file? score it with {COCOEVAL}",
                )
    image_set = {img["id"] for img in gt["images"]}
    geometry = "segmentation" if iou_type == "segm" else "bbox"
    for ann in gt["annotations"]:
        missing = [k for k in ("id", "image_id", "category_id", "area", geometry) if k not in ann]
        if missing:
            raise InputError(f"ground truth: annotation {ann.get('id', '?')} lacks {', '.join(missing)}")
        if ann["image_id"] not in image_set:
            raise InputError(
                f"ground truth: annotation {ann['id']} refers to unknown image {ann['image_id']}"
            )


def _as_int(value: object) -> int | None:
    return int(value) if isinstance(value, Integral) and not isinstance(value, bool) else None


def _prepare_results(
    results: list[dict], sizes: dict[int, tuple[int, int]], categories: set[int], iou_type: str
) -> list[dict]:
    """Validated copies of ``results`` in the form both evaluators accept (see the module docstring)."""
    if not isinstance(results, list):
        raise InputError(f"results must be a list of detections, not {type(results).__name__}")
    geometry = "segmentation" if iou_type == "segm" else "bbox"
    prepared = []
    for i, det in enumerate(results):
        where = f"result #{i}"
        if not isinstance(det, dict):
            raise InputError(f"{where} is a {type(det).__name__}, not a dict")
        missing = [k for k in ("image_id", "category_id", "score", geometry) if k not in det]
        if missing:
            raise InputError(f"{where} lacks {', '.join(missing)}")
        image_id, category_id = _as_int(det["image_id"]), _as_int(det["category_id"])
        if image_id is None or image_id not in sizes:
            raise InputError(
                f"{where}: image_id {det['image_id']!r} is not an image of the ground truth",
                hint="results and annotation file must come from the same dataset",
            )
        if category_id is None or category_id not in categories:
            raise InputError(
                f"{where}: category_id {det['category_id']!r} is not a category of the ground truth",
                hint="results must use the dataset's category ids (not contiguous 0..N-1 indices)",
            )
        score = det["score"]
        if not isinstance(score, Real) or isinstance(score, bool) or not math.isfinite(score):
            raise InputError(f"{where}: score {score!r} is not a finite number")
        out: dict[str, Any] = {"image_id": image_id, "category_id": category_id, "score": float(score)}
        if iou_type == "segm":
            out["segmentation"] = _compressed_rle(det["segmentation"], *sizes[image_id], where)
        else:
            out["bbox"] = _box(det["bbox"], where)
        prepared.append(out)
    return prepared


def _compressed_rle(seg: object, height: int, width: int, where: str) -> dict:
    """Compressed RLE with ``str`` counts at the image's size, from RLE (either form) or polygons."""
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not isinstance(size, (list, tuple)) or [_as_int(v) for v in size] != [height, width]:
            raise InputError(f"{where}: RLE size {size!r} is not the image size [{height}, {width}]")
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        if isinstance(counts, str):
            return {"size": [height, width], "counts": counts}
        if isinstance(counts, list) and all(_as_int(c) is not None for c in counts):
            if sum(counts) != height * width:
                raise InputError(f"{where}: uncompressed RLE counts do not sum to {height}x{width}")
            rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        else:
            raise InputError(f"{where}: RLE counts must be a string or a list of ints")
    elif isinstance(seg, list):
        polygons = [p for p in seg if isinstance(p, (list, tuple))]
        if (
            not seg
            or len(polygons) != len(seg)
            or any(len(p) < 6 or len(p) % 2 for p in polygons)
            or not all(isinstance(v, Real) and math.isfinite(v) for p in polygons for v in p)
        ):
            raise InputError(
                f"{where}: segmentation must be RLE or a non-empty list of polygons [x1, y1, x2, y2, ...] "
                "with at least 3 points each",
                hint="encode an empty mask as RLE",
            )
        rle = mask_utils.merge(
            mask_utils.frPyObjects([[float(v) for v in p] for p in polygons], height, width)
        )
    else:
        raise InputError(f"{where}: segmentation must be an RLE dict or a list of polygons")
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _box(box: object, where: str) -> list[float]:
    if (
        not isinstance(box, (list, tuple))
        or len(box) != 4
        or not all(isinstance(v, Real) and math.isfinite(v) for v in box)
    ):
        raise InputError(f"{where}: bbox must be [x, y, w, h] of finite numbers, not {box!r}")
    return [float(v) for v in box]


def _check_image_ids(image_ids: list[int] | None, sizes: dict[int, tuple[int, int]]) -> list[int] | None:
    """Sorted unique ids; an empty list is an error (pycocotools would read it as 'all images')."""
    if image_ids is None:
        return None
    unknown = [i for i in image_ids if _as_int(i) not in sizes]
    if unknown:
        more = " ..." if len(unknown) > 5 else ""
        raise InputError(f"image_ids not in the ground truth: {unknown[:5]}{more}")
    if not image_ids:
        raise InputError("image_ids is empty: nothing to evaluate")
    return sorted({int(i) for i in image_ids})


def _percent(value: float) -> float | None:
    return None if value == -1 else 100.0 * float(value)


# --------------------------------------------------------------------------- running the evaluators


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the evaluators' prints, the lvis logger and its ``logger.warn`` deprecation warning."""
    lvis_logger = logging.getLogger("lvis")
    level = lvis_logger.level
    lvis_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        lvis_logger.setLevel(level)


def _gt_copy(gt: dict, drop: tuple[str, ...] = ()) -> dict:
    """A copy of ``gt`` deep enough for the evaluators: they write into image/annotation dicts only."""
    return {
        **gt,
        "images": [dict(img) for img in gt["images"]],
        "annotations": [{k: v for k, v in ann.items() if k not in drop} for ann in gt["annotations"]],
    }


@dataclass(frozen=True)
class _Precision:
    """An evaluator's ``eval["precision"]`` at the AP's maxDets: (T, R, K, A), categories as ``cat_ids``."""

    precision: np.ndarray
    cat_ids: list[int]


def _at_max_dets(precision: np.ndarray, max_dets: list[int], wanted: int) -> np.ndarray:
    return precision[..., list(max_dets).index(wanted)]


def _coco_evaluated(gt: dict, dets: list[dict], iou_type: str, img_ids: list[int] | None) -> COCOeval:
    """``COCOeval`` on (validated) inputs after ``evaluate()``: the per-image matches in ``evalImgs``."""
    with _quiet():
        coco_gt = COCO()
        coco_gt.dataset = _gt_copy(gt)
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:  # loadRes([]) fails on anns[0]: build what it would build for an empty list
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": list(coco_gt.dataset["images"]),
                "categories": [dict(c) for c in coco_gt.dataset["categories"]],
                "annotations": [],
            }
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if img_ids is not None:
            evaluator.params.imgIds = img_ids
        evaluator.evaluate()
    return evaluator


def _official_coco(
    gt: dict, dets: list[dict], iou_type: str, img_ids: list[int] | None
) -> tuple[list[float], _Precision]:
    evaluator = _coco_evaluated(gt, dets, iou_type, img_ids)
    with _quiet():
        evaluator.accumulate()
        evaluator.summarize()
    p = evaluator.params
    prec = _Precision(_at_max_dets(evaluator.eval["precision"], p.maxDets, 100), [int(c) for c in p.catIds])
    return [float(s) for s in evaluator.stats], prec


def _faster_coco(
    gt: dict, dets: list[dict], iou_type: str, img_ids: list[int] | None
) -> tuple[list[float], _Precision]:
    evaluator = _run_faster(_gt_copy(gt), dets, iou_type, img_ids, lvis_style=False)
    p = evaluator.params
    prec = _Precision(_at_max_dets(evaluator.eval["precision"], p.maxDets, 100), [int(c) for c in p.catIds])
    return [float(s) for s in evaluator.stats[:12]], prec


def _lvis_evaluated(
    gt: dict, dets: list[dict], iou_type: str, img_ids: list[int] | None
) -> tuple[LVISEval, int]:
    """``LVISEval`` on (validated) inputs after ``evaluate()``, and the detections it kept (top 300)."""
    patch_lvis_numpy_float()
    with _quiet():
        lvis_gt = PreloadedLVIS(_gt_copy(gt))
        # LVISResults([]) fails on result_anns[0]: build what it would build for an empty list.
        lvis_dt = LVISResults(lvis_gt, dets, max_dets=LVIS_MAX_DETS) if dets else _EmptyLVISResults(lvis_gt)
        evaluator = LVISEval(lvis_gt, lvis_dt, iou_type)
        if img_ids is not None:
            evaluator.params.img_ids = img_ids
        evaluator.evaluate()
    return evaluator, len(lvis_dt.dataset["annotations"])


def _official_lvis(
    gt: dict, dets: list[dict], iou_type: str, img_ids: list[int] | None
) -> tuple[dict[str, float], int, _Precision]:
    evaluator, num_dets = _lvis_evaluated(gt, dets, iou_type, img_ids)
    with _quiet():
        evaluator.accumulate()
        evaluator.summarize()
        results = {key: float(value) for key, value in evaluator.get_results().items()}
    prec = _Precision(evaluator.eval["precision"], [int(c) for c in evaluator.params.cat_ids])
    return results, num_dets, prec


def _faster_lvis(
    gt: dict, dets: list[dict], iou_type: str, img_ids: list[int] | None
) -> tuple[dict[str, float], _Precision]:
    """LVIS numbers from faster-coco-eval, fed what ``LVISEval`` would load (see module docstring)."""
    gt_data = _gt_copy(gt, drop=("iscrowd",))
    gt_data["annotations"] = [ann for ann in gt_data["annotations"] if ann["area"] > 0]
    if iou_type == "segm":
        dets = [d for d in dets if mask_utils.area(d["segmentation"]) > 0]
    else:
        dets = [d for d in dets if d["bbox"][2] * d["bbox"][3] > 0]
    evaluator = _run_faster(gt_data, dets, iou_type, img_ids, lvis_style=True)
    named = evaluator.stats_as_dict
    p = evaluator.params
    prec = _Precision(
        _at_max_dets(evaluator.eval["precision"], p.maxDets, LVIS_MAX_DETS), [int(c) for c in p.catIds]
    )
    return {ours: float(named[theirs]) for theirs, ours in _FASTER_LVIS_KEYS.items()}, prec


def _run_faster(gt_data: dict, dets: list[dict], iou_type: str, img_ids: list[int] | None, lvis_style: bool):
    def mute(*_args: object, **_kwargs: object) -> None:
        return None

    with _quiet():
        coco_gt = faster_coco_eval.COCO(gt_data, print_function=mute)
        coco_dt = coco_gt.loadRes([dict(d) for d in dets])  # handles an empty list itself
        evaluator = faster_coco_eval.COCOeval_faster(
            coco_gt, coco_dt, iou_type, print_function=mute, lvis_style=lvis_style
        )
        if lvis_style:
            evaluator.params.maxDets = [LVIS_MAX_DETS]  # per (image, category); the per-image cut is ours
        if img_ids is not None:
            evaluator.params.imgIds = img_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


# --------------------------------------------------------------------------- per category

#: per-category metric name -> index of the area range in the evaluators' precision array
_AREA_INDEX = {"AP": 0, "APS": 1, "APM": 2, "APL": 3}


def scored_objects(evaluator: str, gt: dict, img_ids: list[int] | None) -> dict[int, int]:
    """Ground-truth objects per category that the evaluator scores (area range "all"): COCO's non-crowd
    objects, LVIS's objects with area > 0 not flagged ``ignore`` (what ``LVISEval`` loads), on the
    evaluated images."""
    keep = None if img_ids is None else set(img_ids)
    out: dict[int, int] = {}
    for ann in gt["annotations"]:
        if keep is not None and ann["image_id"] not in keep:
            continue
        if evaluator == COCOEVAL:
            if ann.get("iscrowd", 0):
                continue
        elif not ann["area"] > 0 or ann.get("ignore", 0):
            continue
        out[int(ann["category_id"])] = out.get(int(ann["category_id"]), 0) + 1
    return out


def _mean_valid(s: np.ndarray) -> float | None:
    valid = s[s > -1]
    return None if valid.size == 0 else 100.0 * float(np.mean(valid))


def _per_category(evaluator: str, gt: dict, img_ids: list[int] | None, scored: _Precision) -> dict:
    """Per-category AP / APS / APM / APL (percent) from the evaluator's precision array."""
    n = scored_objects(evaluator, gt, img_ids)
    index = {c: k for k, c in enumerate(scored.cat_ids)}
    out: dict[int, dict[str, Any]] = {}
    for cat_id in sorted(n):
        k = index[cat_id]
        entry: dict[str, Any] = {
            name: _mean_valid(scored.precision[:, :, k, a]) for name, a in _AREA_INDEX.items()
        }
        entry["n"] = n[cat_id]
        out[cat_id] = entry
    return out


# --------------------------------------------------------------------------- per-image evaluation


def evaluate_images(
    family: str, gt: dict, results: list[dict], image_ids: list[int] | None = None, iou_type: str = "segm"
) -> COCOeval | LVISEval:
    """The official evaluator after ``evaluate()`` only: its per-(category, area range, image) matches
    (``COCOeval.evalImgs`` / ``LVISEval.eval_imgs``), from the same validated inputs :func:`evaluate_segm`
    scores. What an AP over any multiset of the images needs (see :mod:`.ap_bootstrap`)."""
    evaluator = evaluator_of(family)
    _check_gt(evaluator, gt, iou_type)
    sizes = {int(img["id"]): (int(img["height"]), int(img["width"])) for img in gt["images"]}
    categories = {int(cat["id"]) for cat in gt["categories"]}
    dets = _prepare_results(results, sizes, categories, iou_type)
    img_ids = _check_image_ids(image_ids, sizes)
    if evaluator == COCOEVAL:
        return _coco_evaluated(gt, dets, iou_type, img_ids)
    return _lvis_evaluated(gt, dets, iou_type, img_ids)[0]


class _EmptyLVISResults(LVISResults):
    """What ``LVISResults`` builds for an empty result list, had it not indexed ``result_anns[0]``."""

    def __init__(self, lvis_gt: PreloadedLVIS) -> None:
        # Deliberately not calling LVISResults.__init__: it is the part that fails.
        self.logger = logging.getLogger("lvis.results")
        self.dataset = {**lvis_gt.dataset, "annotations": []}
        self._create_index()
