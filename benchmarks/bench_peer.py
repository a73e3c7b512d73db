#!/usr/bin/env python
"""evalsuite against the peers' evaluation scripts: the same model object, the same data, one process.

The **plain loop** (:func:`plain_loop`) does per image what the peers' zero-shot evaluation scripts do
(EfficientViT-SAM's ``applications/efficientvit_sam/eval_efficientvit_sam_model.py`` with its
``sam_eval_utils.py``, EdgeSAM's ``evaluation/eval_mIoU.py``; read for their steps, written anew here):

* PIL decode of the JPEG, ``set_image`` (the official predictor's);
* every instance's ground-truth mask with pycocotools (``annToMask``: polygons → RLE → mask);
* the prompts of all instances of the image in **one** ``predict`` call, as EdgeSAM's script batches
  them (EfficientViT-SAM calls once per instance; batching is what keeps both sides' decoder arithmetic
  identical, so the two sides' masks are equal bit for bit);
* every output as the official ``SamPredictor.predict`` hands it back: all M masks at full size and the
  low-res logits, copied to the host as numpy; the argmax of the predicted IoU per instance;
* per instance IoU in numpy (``count_nonzero`` of AND and OR, as ``sam_eval_utils.iou``, without its
  ``+1e-7`` so the values are exactly evalsuite's), the mean at the end;
* clicks: ``random`` draws with evalsuite's rule (the EfficientSAM paper's; a pure function of the
  mask and the ids); ``sam`` with the RITM clicker of ``sam_eval_utils.Clicker``: OpenCV's distance
  transform of the whole zero-padded FN and FP masks each round, clicked pixels zeroed, the larger
  maximum wins (a tie is negative). Among pixels at OpenCV's maximum the exact squared distance decides
  (OpenCV's float32 values can differ in the last bit between pixels at equal distance), the rule
  evalsuite states, so both sides click the same pixels.

:func:`main` runs, per row (``box``, ``1click`` random, SAM-rule ``3click``, ``noc20``) and model (a
cheap deterministic callable, and EfficientSAM-Ti / SAM ViT-H with ``--weights random``), the plain
loop and ``evalsuite.engine.run`` with the **same runner object** on the **same images**, ``--repeats``
times, interleaved (the order alternating between repeats), and prints the images/s of each (min and
median over repeats) and evalsuite ÷ plain loop, with the machine and its load average. Both sides
must score the same mIoU (NoC rows: the same NoC@85/90 and mIoU@k): the script asserts it.

Timed: the plain loop from reading the annotation file to the mean; evalsuite's whole ``run()`` call
(annotation file, run folder, decode workers, loop, logs, scoring, record). Both exclude building the
model, done once before.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import device_name, load_average, make_dataset

from evalsuite.engine import RunConfig, precision_mode, run
from evalsuite.engine.loader import default_workers
from evalsuite.models import build_model
from evalsuite.models.base import Runner
from evalsuite.models.wrap import CallableRunner
from evalsuite.prompts import random_clicks

#: row name → (evalsuite protocol, its overrides, prompt kind, clicks, click rule)
ROWS: dict[str, tuple[str, dict[str, Any], str, int, str | None]] = {
    "box": ("coco-box", {}, "box", 0, None),
    "1click": ("coco-1click", {}, "clicks", 1, "random"),
    "3click-sam": ("coco-3click", {"click_rule": "sam"}, "clicks", 3, "sam"),
    "noc20": ("coco-noc20", {}, "clicks", 20, "sam"),
}
CHEAP = "cheap"
NOC_THRESHOLDS = (0.85, 0.90)


# -- the cheap deterministic model ---------------------------------------------------------------------
def _fill(out: np.ndarray, x0: float, y0: float, x1: float, y1: float, value: bool = True) -> None:
    h, w = out.shape
    c0, c1 = max(0, math.floor(x0)), min(w, math.ceil(x1))
    r0, r1 = max(0, math.floor(y0)), min(h, math.ceil(y1))
    if c1 > c0 and r1 > r0:
        out[r0:r1, c0:c1] = value


def _scores(keys: np.ndarray) -> np.ndarray:
    """Three deterministic pseudo-random scores in [0, 1) per prompt (float32), from its coordinates."""
    base = keys.reshape(len(keys), -1).astype(np.float64) @ np.linspace(0.37, 1.93, keys[0].size)
    return np.stack([np.modf(base * f + j * 0.31)[0] for j, f in enumerate((0.618, 0.414, 0.271))], 1).astype(
        np.float32
    )


def cheap_segment(
    image: np.ndarray,
    boxes: np.ndarray | None = None,
    points: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A cheap, deterministic stand-in for a promptable segmenter: 3 masks and 3 scores per prompt.

    Boxes: the box, the box shrunk by a quarter of its size, the box grown by a quarter. Clicks: squares
    of half-side 6, 16 and 40 px around each positive click, minus squares half that size around each
    negative one. Full-size N×3×H×W bool masks (what an official predictor returns), scores from the
    prompt's coordinates.
    """
    h, w = image.shape[:2]
    if boxes is not None:
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        masks = np.zeros((len(b), 3, h, w), dtype=bool)
        for i, (x0, y0, x1, y1) in enumerate(b):
            dx, dy = (x1 - x0) / 4, (y1 - y0) / 4
            _fill(masks[i, 0], x0, y0, x1, y1)
            _fill(masks[i, 1], x0 + dx, y0 + dy, x1 - dx, y1 - dy)
            _fill(masks[i, 2], x0 - dx, y0 - dy, x1 + dx, y1 + dy)
        return masks, _scores(b)
    assert points is not None and point_labels is not None
    p = np.asarray(points, dtype=np.float64)
    lab = np.asarray(point_labels)
    masks = np.zeros((len(p), 3, h, w), dtype=bool)
    for i in range(len(p)):
        for j, half in enumerate((6, 16, 40)):
            for (x, y), positive in zip(p[i], lab[i], strict=True):
                if positive:
                    _fill(masks[i, j], x - half, y - half, x + half + 1, y + half + 1)
            for (x, y), positive in zip(p[i], lab[i], strict=True):
                if not positive:
                    q = half // 2
                    _fill(masks[i, j], x - q, y - q, x + q + 1, y + q + 1, False)
    return masks, _scores(p)


def cheap_runner() -> Runner:
    return CallableRunner(cheap_segment, name=CHEAP)


# -- the plain loop ------------------------------------------------------------------------------------
def _ann_to_mask(ann: dict, h: int, w: int) -> np.ndarray:
    """``COCO.annToMask`` (as the peers' ``ann_to_mask``): polygons → merged RLE → bool mask."""
    rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
    return mask_utils.decode(rle) > 0


def _tight_box(mask: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero(a & b)
    union = np.count_nonzero(a | b)
    return inter / union if union else 0.0


def _deepest(dt: np.ndarray) -> tuple[int, int, int]:
    """(exact squared distance, row, col) of the first pixel at the largest distance (0s: none)."""
    top = float(dt.max())
    if top <= 0:
        return 0, 0, 0
    flat = dt.ravel()
    near = np.flatnonzero(flat >= top * (1 - 4e-6))
    squared = np.rint(flat[near].astype(np.float64) ** 2)
    k = int(near[int(np.argmax(squared == squared.max()))])
    r, c = divmod(k, dt.shape[1])
    return int(squared.max()), r, c


class Clicker:
    """The RITM clicker of the peers' ``sam_eval_utils.Clicker``: OpenCV's distance transform of the whole
    zero-padded FN / FP masks each round (see the module docstring for the tie rule)."""

    def __init__(self, gt: np.ndarray) -> None:
        self.gt = gt
        self.not_clicked = np.ones_like(gt, dtype=bool)

    def click(self, pred: np.ndarray) -> tuple[float, float, int]:
        fn = np.pad(self.gt & ~pred, 1)
        fp = np.pad(~self.gt & pred, 1)
        dt_fn = cv2.distanceTransform(fn.astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1] * self.not_clicked
        dt_fp = cv2.distanceTransform(fp.astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1] * self.not_clicked
        n_fn, r_fn, c_fn = _deepest(dt_fn)
        n_fp, r_fp, c_fp = _deepest(dt_fp)
        positive = n_fn > n_fp
        r, c = (r_fn, c_fn) if positive else (r_fp, c_fp)
        self.not_clicked[r, c] = False
        return float(c), float(r), int(positive)


@dataclass
class PlainResult:
    images: int
    instances: int
    wall_s: float
    metrics: dict[str, float]


def _host(pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """What ``SamPredictor.predict`` returns to its caller: every output mask at full size, the scores and
    the low-res logits, as numpy on the host (the logits are copied and dropped, as the peers do)."""
    masks = pred.masks.cpu().numpy()
    scores = pred.iou_predictions.float().cpu().numpy()
    if pred.low_res_logits is not None:
        pred.low_res_logits.float().cpu().numpy()
    return masks, scores


def plain_loop(runner: Runner, root: Path, image_ids: list[int], row: str, seed: int = 0) -> PlainResult:
    """The peers' per-image steps (module docstring) over ``image_ids`` for one row."""
    _, _, kind, clicks, rule = ROWS[row]
    t0 = time.perf_counter()
    doc = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    files = {im["id"]: im["file_name"] for im in doc["images"]}
    anns: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    ious: list[float] = []
    per_click: list[list[float]] = []
    for image_id in image_ids:
        image = np.array(Image.open(root / "val2017" / files[image_id]).convert("RGB"))
        h, w = image.shape[:2]
        runner.set_image(image)
        items = sorted(anns.get(image_id, []), key=lambda a: a["id"])
        gts = [_ann_to_mask(a, h, w) for a in items]
        if not gts:
            continue
        n = len(gts)
        if kind == "box":
            masks, scores = _host(
                runner.predict(boxes=np.stack([_tight_box(g) for g in gts]), multimask=True)
            )
            best = scores.argmax(axis=1)
            ious += [_iou(masks[i, best[i]], gts[i]) for i in range(n)]
        elif rule == "random":
            pts = np.stack(
                [
                    random_clicks(g, clicks, seed, image_id, a["id"])[0]
                    for g, a in zip(gts, items, strict=True)
                ]
            )
            labels = np.ones((n, clicks), dtype=np.int64)
            masks, scores = _host(runner.predict(points=pts, point_labels=labels, multimask=True))
            best = scores.argmax(axis=1)
            ious += [_iou(masks[i, best[i]], gts[i]) for i in range(n)]
        else:
            clickers = [Clicker(g) for g in gts]
            chosen = [np.zeros_like(g) for g in gts]
            pts = np.zeros((n, 0, 2))
            labels = np.zeros((n, 0), dtype=np.int64)
            history: list[list[float]] = [[] for _ in range(n)]
            for _ in range(clicks):
                new = [c.click(p) for c, p in zip(clickers, chosen, strict=True)]
                pts = np.concatenate([pts, np.array([[(x, y)] for x, y, _ in new])], axis=1)
                labels = np.concatenate([labels, np.array([[lab] for _, _, lab in new], dtype=np.int64)], 1)
                masks, scores = _host(runner.predict(points=pts, point_labels=labels, multimask=True))
                best = scores.argmax(axis=1)
                chosen = [masks[i, best[i]] for i in range(n)]
                for i in range(n):
                    history[i].append(_iou(chosen[i], gts[i]))
            ious += [s[-1] for s in history]
            per_click += history
    metrics = {"mIoU": 100.0 * math.fsum(ious) / len(ious)}
    if row == "noc20":
        metrics = {}
        for t in NOC_THRESHOLDS:
            reached = [next((k + 1 for k, v in enumerate(s) if v >= t), clicks) for s in per_click]
            metrics[f"NoC@{round(t * 100)}"] = math.fsum(reached) / len(reached)
        metrics[f"mIoU@{clicks}"] = 100.0 * math.fsum(s[-1] for s in per_click) / len(per_click)
    return PlainResult(len(image_ids), len(ious), time.perf_counter() - t0, metrics)


# -- evalsuite -----------------------------------------------------------------------------------------
def suite_run(
    runner: Runner, root: Path, out: Path, limit: int, row: str, args: argparse.Namespace, precision: str
) -> dict[str, Any]:
    protocol, overrides, *_ = ROWS[row]
    cfg = RunConfig(
        [protocol],
        runner,
        data="real",
        data_root=root,
        out=out,
        overwrite=True,
        progress=False,
        limit=limit,
        overrides=dict(overrides),
        device=args.device,
        precision=precision,
        workers=args.workers,
        warmup=0,
    )
    t0 = time.perf_counter()
    (outcome,) = run(cfg)
    wall = time.perf_counter() - t0
    rec = outcome.record
    execution = rec.to_json()["execution"]
    return {
        "wall_s": wall,
        "loop_s": float(execution["wall_s"]),
        "metrics": dict(rec.metrics),
        "instances": rec.counts.instances,
        "decode_workers": execution.get("decode_workers"),
        "torch_threads": execution.get("torch_threads"),
    }


# -- one row -------------------------------------------------------------------------------------------
@dataclass
class Row:
    model: str
    precision: str
    row: str
    images: int
    instances: int
    repeats: int
    plain_img_s: list[float] = field(default_factory=list)
    suite_img_s: list[float] = field(default_factory=list)
    suite_loop_img_s: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    decode_workers: int | None = None
    torch_threads: int | None = None

    @staticmethod
    def _median(v: list[float]) -> float:
        return float(np.median(v))

    @property
    def ratio(self) -> float:
        """evalsuite ÷ plain loop, medians of images/s."""
        return self._median(self.suite_img_s) / self._median(self.plain_img_s)

    @property
    def ratio_min(self) -> float:
        """The same from each side's slowest repeat."""
        return min(self.suite_img_s) / min(self.plain_img_s)

    def summary(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "plain_median": self._median(self.plain_img_s),
            "plain_min": min(self.plain_img_s),
            "suite_median": self._median(self.suite_img_s),
            "suite_min": min(self.suite_img_s),
            "ratio": self.ratio,
            "ratio_min": self.ratio_min,
        }


def _check_same(row: str, plain: dict[str, float], suite: dict[str, float | None]) -> None:
    """Both sides did the same work: the same numbers, exactly."""
    for key, value in plain.items():
        if suite.get(key) != value:
            raise AssertionError(f"{row}: {key} differs: plain loop {value!r}, evalsuite {suite.get(key)!r}")


def bench_row(
    model: str,
    runner: Runner,
    precision: str,
    row: str,
    root: Path,
    ids: list[int],
    work: Path,
    args: argparse.Namespace,
) -> Row:
    """Warm up both sides once (untimed), then ``--repeats`` timed pairs, alternating which goes first."""
    out = work / "runs" / f"{model}-{precision}-{row}"
    device = torch.device(args.device)

    def plain(limit: int) -> PlainResult:
        with torch.inference_mode(), precision_mode(precision, args.device):
            res = plain_loop(runner, root, ids[:limit], row, args.seed)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        return res

    plain(min(2, len(ids)))
    suite_run(runner, root, out, min(2, len(ids)), row, args, precision)
    result = Row(model, precision, row, len(ids), 0, args.repeats)
    for rep in range(args.repeats):
        order: list[str] = ["plain", "suite"] if rep % 2 == 0 else ["suite", "plain"]
        for side in order:
            if side == "plain":
                p = plain(len(ids))
                result.plain_img_s.append(p.images / p.wall_s)
                result.instances = p.instances
                plain_metrics = p.metrics
            else:
                s = suite_run(runner, root, out, len(ids), row, args, precision)
                result.suite_img_s.append(len(ids) / s["wall_s"])
                result.suite_loop_img_s.append(len(ids) / s["loop_s"])
                suite_metrics = s["metrics"]
                result.decode_workers, result.torch_threads = s["decode_workers"], s["torch_threads"]
        _check_same(row, plain_metrics, suite_metrics)
    result.metrics = plain_metrics
    return result


def table(rows: list[Row], machine: str) -> str:
    lines = [
        "| model | precision | row | images | instances | plain loop img/s (median, min) "
        "| evalsuite img/s (median, min) | evalsuite ÷ plain | machine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r.summary()
        lines.append(
            f"| {r.model} | {r.precision} | {r.row} | {r.images} | {r.instances} | "
            f"{s['plain_median']:.3g}, {s['plain_min']:.3g} | "
            f"{s['suite_median']:.3g}, {s['suite_min']:.3g} | "
            f"**{r.ratio:.2f}×** (min {r.ratio_min:.2f}×) | {machine} |"
        )
    return "\n".join(lines)


def _models(args: argparse.Namespace) -> Iterator[tuple[str, Callable[[], Runner]]]:
    for name in args.models:
        if name == CHEAP:
            yield name, cheap_runner
        else:
            yield name, lambda name=name: build_model(name, device=args.device, weights="random:0")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", nargs="+", default=[CHEAP, "efficientsam-ti"], help="cheap and/or registry names"
    )
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--images", type=int, default=200, help="images per row for the cheap model (box, 1click)")
    p.add_argument("--click-images", type=int, default=50, help="images for SAM-rule 3click (cheap model)")
    p.add_argument("--noc-images", type=int, default=20, help="images for noc20 (cheap model)")
    p.add_argument("--model-images", type=int, default=4, help="images per row for a network")
    p.add_argument("--model-noc-images", type=int, default=None, help="noc20 for a network (default: half)")
    p.add_argument("--instances", type=int, default=7)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precisions", nargs="+", default=None, help="default: fp32 (CPU), fp32 bf16 (CUDA)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=None, help="evalsuite's decode workers (default: its own)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads of this process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=None, help="stop starting rows after this many seconds")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    args.precisions = args.precisions or (["fp32", "bf16"] if args.device.startswith("cuda") else ["fp32"])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    machine = device_name(torch.device(args.device))
    env = {
        "machine": machine,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "default_decode_workers": default_workers(),
        "load_average_at_start": load_average(),
    }
    print(
        f"# bench_peer: {machine}, torch {env['torch']}, {env['torch_threads']} threads, "
        f"load average {env['load_average_at_start']}",
        flush=True,
    )
    rows: list[Row] = []
    skipped: list[str] = []

    def write() -> None:
        if args.json:
            doc = {
                "benchmark": "bench_peer",
                "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "environment": {**env, "load_average_at_end": load_average()},
                "rows": [r.summary() for r in rows],
                "skipped_for_budget": skipped,
            }
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(doc, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="bench_peer_") as tmp:
        work = args.workdir or Path(tmp)
        root = work / "coco"
        n_data = max(args.images, args.click_images, args.noc_images, args.model_images)
        make_dataset(root, n_data, args.instances, args.seed)
        ids = list(range(1, n_data + 1))
        for name, build in _models(args):
            runner = build()
            for precision in args.precisions if name != CHEAP else ["fp32"]:
                for row in args.rows:
                    if args.budget_s is not None and time.perf_counter() - start > args.budget_s:
                        skipped.append(f"{name} {precision} {row}")
                        continue
                    if name == CHEAP:
                        n = {"3click-sam": args.click_images, "noc20": args.noc_images}.get(row, args.images)
                    elif row == "noc20":
                        n = args.model_noc_images or max(1, args.model_images // 2)
                    else:
                        n = args.model_images
                    r = bench_row(name, runner, precision, row, root, ids[:n], work, args)
                    rows.append(r)
                    s = r.summary()
                    print(
                        f"{name} {precision} {row}: plain {s['plain_median']:.3g} img/s, "
                        f"evalsuite {s['suite_median']:.3g} img/s, ratio {r.ratio:.2f} | {r.metrics}",
                        flush=True,
                    )
                    write()
            del runner
    env["load_average_at_end"] = load_average()
    print()
    print(table(rows, machine))
    print(f"\nload average at start {env['load_average_at_start']}, at end {env['load_average_at_end']}")
    if skipped:
        print(f"skipped for the time budget: {', '.join(skipped)}")
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
