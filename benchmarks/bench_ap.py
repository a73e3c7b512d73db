#!/usr/bin/env python
"""AP scoring: the official evaluators against faster-coco-eval (``--ap-backend``), same input, one process.

Synthetic COCO-like ground truth (the polygons of ``bench_pipeline.make_dataset``, 480×640, ~K instances
per image; no images are written) and detections as an AP protocol logs them: per ground-truth object
one mask (its polygon jittered, as a compressed RLE) with a score, plus ``--false-positives`` stray masks
per image. Both backends score the same list through ``evalsuite.metrics.ap.evaluate_segm`` (what a run's
scoring calls), ``--repeats`` times interleaved; the seconds of each, their ratio and a cProfile of
one call of each (``--profile``) are printed. The two must agree on AP to 1e-9 percent points (asserted)
on these inputs (``--family lvis`` gives the ground truth the LVIS fields).

``--end-to-end N``: whole runs instead, ``evalsuite.engine.run`` of ``coco-vitdet`` with ``box-fill`` on N
synthetic JPEGs (``make_dataset``) and their pseudo-detections (``make-boxes``: one per object with 10 %
jitter and one false positive per image), once per backend, interleaved: the run's wall time (loop, logs,
scoring, record) and the AP of each.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import HEIGHT, WIDTH, _polygon, device_name, load_average, make_dataset

from evalsuite.metrics.ap import evaluate_segm


def synthetic(n_images: int, instances: int, false_positives: int, seed: int) -> tuple[dict, list[dict]]:
    """Ground truth (COCO instances dict) and detections (COCO results list) for ``n_images`` images."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "height": HEIGHT, "width": WIDTH, "file_name": f"{image_id}.jpg"})
        for _ in range(max(1, instances + int(rng.integers(-2, 3)))):
            poly = _polygon(rng)
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], HEIGHT, WIDTH))
            area = float(mask_utils.area(rle))
            if area < 16:
                continue
            cat = int(rng.integers(1, 11))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "segmentation": [poly],
                    "area": area,
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": 0,
                }
            )
            jitter = (np.asarray(poly) + rng.normal(0, 2.0, len(poly))).clip(0, WIDTH - 1).tolist()
            dets.append(_det(image_id, cat, jitter, float(rng.random())))
        for _ in range(false_positives):
            dets.append(_det(image_id, int(rng.integers(1, 11)), _polygon(rng), float(rng.random()) * 0.5))
    cats = [{"id": i, "name": f"thing{i}", "supercategory": "thing"} for i in range(1, 11)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def _det(image_id: int, cat: int, poly: list[float], score: float) -> dict:
    rle = mask_utils.merge(mask_utils.frPyObjects([poly], HEIGHT, WIDTH))
    rle["counts"] = rle["counts"].decode("ascii")
    return {"image_id": image_id, "category_id": cat, "segmentation": rle, "score": score}


def end_to_end(n_images: int, repeats: int, seed: int) -> None:
    """Whole ``coco-vitdet`` runs with box-fill, one per backend, interleaved (see the module docstring)."""
    import json
    import tempfile

    from evalsuite.data.locate import locate
    from evalsuite.data.pseudo import make_pseudo_detections
    from evalsuite.engine import RunConfig, run

    with tempfile.TemporaryDirectory(prefix="bench_ap_") as tmp:
        root = Path(tmp) / "coco"
        make_dataset(root, n_images, 7, seed)
        reader = locate("coco", "real", root, None).open()
        dets = make_pseudo_detections(reader, seed=seed)
        boxes = Path(tmp) / "boxes.json"
        boxes.write_text(json.dumps(dets))
        print(f"end to end: {n_images} images, {len(dets)} detections", flush=True)
        times: dict[str, list[float]] = {"official": [], "faster": []}
        ap = {}
        for rep in range(repeats + 1):  # the first pass of each is a warm-up
            for backend in ["official", "faster"] if rep % 2 == 0 else ["faster", "official"]:
                cfg = RunConfig(
                    ["coco-vitdet"],
                    "box-fill",
                    data="real",
                    data_root=root,
                    boxes=boxes,
                    ap_backend=backend,
                    out=Path(tmp) / "runs" / backend,
                    overwrite=True,
                    progress=False,
                )
                t0 = time.perf_counter()
                (outcome,) = run(cfg)
                if rep:
                    times[backend].append(time.perf_counter() - t0)
                ap[backend] = outcome.record.metric("AP")
        med = {k: float(np.median(v)) for k, v in times.items()}
        print(
            f"coco-vitdet, box-fill, whole run: official {med['official']:.2f} s, "
            f"faster {med['faster']:.2f} s "
            f"(median of {repeats}): faster ÷ official time {med['faster'] / med['official']:.2f}; "
            f"AP {ap['official']:.4f} / {ap['faster']:.4f}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--instances", type=int, default=7)
    p.add_argument("--false-positives", type=int, default=2)
    p.add_argument("--family", choices=["coco", "lvis"], default="coco")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--end-to-end", type=int, default=None, metavar="N", help="whole runs on N images instead")
    args = p.parse_args(argv)
    import torch

    print(f"# bench_ap: {device_name(torch.device('cpu'))}, load average {load_average()}", flush=True)
    if args.end_to_end:
        end_to_end(args.end_to_end, args.repeats, args.seed)
        print(f"load average at end {load_average()}")
        return 0
    gt, dets = synthetic(args.images, args.instances, args.false_positives, args.seed)
    if args.family == "lvis":
        for img in gt["images"]:
            img.update(neg_category_ids=[], not_exhaustive_category_ids=[])
        for c in gt["categories"]:
            c["frequency"] = "f"
        for a in gt["annotations"]:
            a.pop("iscrowd")
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} objects, {len(dets)} detections", flush=True)
    times: dict[str, list[float]] = {"official": [], "faster": []}
    results = {}
    for rep in range(args.repeats):
        for backend in ["official", "faster"] if rep % 2 == 0 else ["faster", "official"]:
            t0 = time.perf_counter()
            results[backend] = evaluate_segm(args.family, gt, dets, backend=backend)
            times[backend].append(time.perf_counter() - t0)
    if args.family == "coco":
        a, b = results["official"]["metrics"]["AP"], results["faster"]["metrics"]["AP"]
        assert abs(a - b) < 1e-9, (a, b)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(
        f"{args.family}: official {med['official']:.2f} s, faster {med['faster']:.2f} s (median of "
        f"{args.repeats}): faster ÷ official time {med['faster'] / med['official']:.2f}; AP "
        f"{results['official']['metrics']['AP']:.3f} / {results['faster']['metrics']['AP']:.3f}",
        flush=True,
    )
    if args.profile:
        for backend in times:
            prof = cProfile.Profile()
            prof.enable()
            evaluate_segm(args.family, gt, dets, backend=backend)
            prof.disable()
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(18)
            print(f"\n## {backend}\n{text.getvalue()}")
    print(f"load average at end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
