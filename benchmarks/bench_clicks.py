#!/usr/bin/env python
"""SAM-rule clicks: evalsuite's clicker against the one it replaced, on the same click sequences.

Part 1 (always): COCO-like instances (the polygons of ``bench_pipeline.make_dataset``, 480×640) are
clicked ``--clicks`` times each with the SAM / RITM rule, the "model" answering each round with a
deterministic perturbation of the ground truth (grown, shrunk, shifted or a disc around the clicks).
The same sequences are clicked by :func:`reference_sam_click` (the rule as evalsuite computed it up to
commit 5b6561d: scipy's exact distance transform of the whole zero-padded FN and FP masks) and by
``evalsuite.prompts.sam_click``; every click must be equal (asserted), and the seconds of each are
compared (interleaved repeats, median).

Part 2 (``--noc-baseline COMMIT``, needs git): ``evalsuite run coco-noc20 --model oracle --data sample``
with the code of COMMIT (``git archive`` into a temporary folder) and with this checkout, interleaved,
each in its own process: the wall time of each run and their ratio; the two runs' logs must be equal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import HEIGHT, WIDTH, _polygon, device_name, load_average

from evalsuite.prompts import sam_click

REPO = Path(__file__).resolve().parent.parent


def reference_sam_click(gt: np.ndarray, pred: np.ndarray | None, clicked) -> tuple[tuple[float, float], int]:
    """The rule as computed up to 5b6561d: scipy's exact EDT of the whole zero-padded FN and FP masks,
    clicked pixels zeroed, the larger maximum wins (a tie is negative), first row-major pixel."""
    p = np.zeros_like(gt) if pred is None else pred
    fn = ndimage.distance_transform_edt(np.pad(gt & ~p, 1))[1:-1, 1:-1]
    fp = ndimage.distance_transform_edt(np.pad(~gt & p, 1))[1:-1, 1:-1]
    for x, y in clicked:
        fn[int(y), int(x)] = 0
        fp[int(y), int(x)] = 0
    positive = bool(fn.max() > fp.max())
    dt = fn if positive else fp
    r, c = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return (float(c), float(r)), int(positive)


def instances(n: int, seed: int) -> list[np.ndarray]:
    """``n`` COCO-like instance masks (480×640 bool, C order), sizes spread over small/medium/large."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        rle = mask_utils.merge(mask_utils.frPyObjects([_polygon(rng)], HEIGHT, WIDTH))
        m = np.ascontiguousarray(mask_utils.decode(rle).astype(bool))
        if m.sum() >= 16:
            out.append(m)
    return out


def answer(gt: np.ndarray, clicks: list[tuple[float, float]], labels: list[int], k: int) -> np.ndarray:
    """A deterministic stand-in for a model's answer in round ``k``."""
    kind = k % 4
    if kind == 0:
        return ndimage.binary_dilation(gt, iterations=1 + k % 3)
    if kind == 1:
        return ndimage.binary_erosion(gt, iterations=1 + k % 2)
    if kind == 2:
        return np.roll(gt, (k % 5) - 2, axis=1)
    yy, xx = np.ogrid[:HEIGHT, :WIDTH]
    out = np.zeros_like(gt)
    for (x, y), lab in zip(clicks, labels, strict=True):
        disc = (xx - x) ** 2 + (yy - y) ** 2 <= 15**2
        out = out | disc if lab else out & ~disc
    return out


def click_sequences(masks: list[np.ndarray], clicks: int) -> list[list[tuple]]:
    """Per instance, the inputs of every round: (gt, prediction, clicks so far), from the reference rule."""
    seqs = []
    for gt in masks:
        pred: np.ndarray | None = None
        done: list[tuple[float, float]] = []
        labels: list[int] = []
        rounds = []
        for k in range(clicks):
            rounds.append((gt, pred, list(done)))
            point, label = reference_sam_click(gt, pred, done)
            done.append(point)
            labels.append(label)
            pred = answer(gt, done, labels, k)
        seqs.append(rounds)
    return seqs


def time_clickers(seqs: list[list[tuple]], repeats: int) -> dict:
    """Seconds of each clicker over all rounds (median of interleaved repeats); clicks checked equal."""
    flat = [r for s in seqs for r in s]
    ref = [reference_sam_click(*r) for r in flat]
    new = [sam_click(*r) for r in flat]
    same = sum(a == b for a, b in zip(ref, new, strict=True))
    if same != len(flat):
        raise AssertionError(f"{len(flat) - same} of {len(flat)} clicks differ from the reference rule")
    times: dict[str, list[float]] = {"reference": [], "evalsuite": []}
    for rep in range(repeats):
        for name in ["reference", "evalsuite"] if rep % 2 == 0 else ["evalsuite", "reference"]:
            fn = reference_sam_click if name == "reference" else sam_click
            t0 = time.perf_counter()
            for r in flat:
                fn(*r)
            times[name].append(time.perf_counter() - t0)
    ref_s, new_s = (float(np.median(times[k])) for k in ("reference", "evalsuite"))
    return {
        "clicks": len(flat),
        "identical": same,
        "reference_ms_per_click": 1000 * ref_s / len(flat),
        "evalsuite_ms_per_click": 1000 * new_s / len(flat),
        "speedup": ref_s / new_s,
        "runs_s": times,
    }


def noc_baseline(commit: str, repeats: int, python: str) -> dict:
    """``coco-noc20`` with ``oracle`` on the sample: the code of ``commit`` against this checkout."""
    args = ["run", "coco-noc20", "--model", "oracle", "--data", "sample", "--no-progress", "--overwrite"]
    with tempfile.TemporaryDirectory(prefix="bench_clicks_") as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        sides = {"baseline": str(old), "evalsuite": str(REPO)}
        times: dict[str, list[float]] = {k: [] for k in sides}
        for rep in range(repeats):
            for name in list(sides) if rep % 2 == 0 else list(sides)[::-1]:
                out = Path(tmp) / name
                env = {**os.environ, "PYTHONPATH": sides[name]}
                t0 = time.perf_counter()
                subprocess.run(
                    [python, "-m", "evalsuite", *args, "--out", str(out)],
                    env=env,
                    check=True,
                    capture_output=True,
                    cwd=tmp,
                )
                times[name].append(time.perf_counter() - t0)
        logs = {k: (Path(tmp) / k / "oracle" / "coco-noc20" / "instances.jsonl").read_text() for k in sides}
        if logs["baseline"] != logs["evalsuite"]:
            raise AssertionError("coco-noc20: the logs of the two versions differ")
    base, new = (float(np.median(times[k])) for k in sides)
    return {"commit": commit, "baseline_s": base, "evalsuite_s": new, "speedup": base / new, "runs_s": times}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=40)
    p.add_argument("--clicks", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noc-baseline", default=None, metavar="COMMIT", help="e.g. 5b6561d")
    p.add_argument(
        "--noc-repeats", type=int, default=1, help="runs of each version (the old one takes minutes)"
    )
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    import torch

    doc: dict = {"machine": device_name(torch.device("cpu")), "load_average_at_start": load_average()}
    print(f"# bench_clicks: {doc['machine']}, load average {doc['load_average_at_start']}", flush=True)
    seqs = click_sequences(instances(args.instances, args.seed), args.clicks)
    doc["clicks"] = time_clickers(seqs, args.repeats)
    c = doc["clicks"]
    print(
        f"SAM-rule clicks: {c['clicks']} clicks on {args.instances} instances, all identical; reference "
        f"(scipy, whole image) {c['reference_ms_per_click']:.2f} ms/click, evalsuite "
        f"{c['evalsuite_ms_per_click']:.2f} ms/click: {c['speedup']:.1f}x",
        flush=True,
    )
    if args.noc_baseline:
        doc["noc20_oracle_sample"] = n = noc_baseline(args.noc_baseline, args.noc_repeats, sys.executable)
        print(
            f"coco-noc20, oracle, sample: {args.noc_baseline} {n['baseline_s']:.1f} s, this checkout "
            f"{n['evalsuite_s']:.1f} s (whole process, median of {args.noc_repeats}): {n['speedup']:.1f}x",
            flush=True,
        )
    doc["load_average_at_end"] = load_average()
    print(f"load average at end {doc['load_average_at_end']}")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if math.isfinite(c["speedup"]) else 1


if __name__ == "__main__":
    sys.exit(main())
