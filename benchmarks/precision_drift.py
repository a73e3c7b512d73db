"""How far reduced precision moves masks and mIoU from the faithful fp32 path.

Uses the deterministic ``random:0`` weights (``evalsuite.models.random_init``: exactly the fill of
the team's fidelity goldens, ../shared/fidelity/fill.py), so the models are the official networks
numerically and nothing is downloaded or written; runs the same protocols on the bundled sample in
fp32 and in a reduced precision, and reports per-instance IoU differences, mIoU differences and the
fraction of mask pixels that flip. On a CPU only bf16 changes anything (TF32 is a CUDA feature).

    python benchmarks/precision_drift.py --models efficientsam-ti mobilesam --precisions bf16 --limit 6
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from evalsuite.data.locate import locate
from evalsuite.engine import RunConfig, precision_mode, run
from evalsuite.models import build_model

#: deterministic weights: seed 0 is the fidelity goldens' fill (FILL_VERSION 1)
WEIGHTS = "random:0"


def _ious(folder: Path) -> dict[tuple[int, int], float]:
    rows = [json.loads(x) for x in (folder / "instances.jsonl").read_text().splitlines()]
    return {(r["image_id"], r["ann_id"]): r["iou"] for r in rows}


def _pixel_flips(model: str, precision: str, device: str, limit: int) -> float:
    """Fraction of predicted mask pixels that differ between fp32 and ``precision`` (box prompts)."""
    from evalsuite.data.gt import MaskCache, select_instances
    from evalsuite.data.images import load_rgb
    from evalsuite.prompts import tight_box

    runner = build_model(model, device=device, weights=WEIGHTS)
    reader = locate("coco", "sample", None, None).open()
    flips = total = 0

    for image_id in reader.image_ids()[:limit]:
        sample = reader.sample(image_id)
        gt = select_instances(MaskCache(sample), include_crowd=False)
        if not gt.instances:
            continue
        boxes = np.stack([tight_box(m) for m in gt.masks])
        image = load_rgb(sample.path)
        outs = []
        for p in ("fp32", precision):
            with precision_mode(p, device):
                runner.set_image(image)
                outs.append(runner.predict(boxes=boxes).masks.cpu())
        flips += int((outs[0] != outs[1]).sum())
        total += outs[0].numel()
    return flips / max(total, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["efficientsam-ti"])
    ap.add_argument("--precisions", nargs="+", default=["bf16"])
    ap.add_argument("--protocols", nargs="+", default=["coco-box", "coco-1click"])
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    print(f"device: {args.device} ({device_name}); sample, first {args.limit} images; weights {WEIGHTS}\n")
    print(
        "| model | precision | protocol | instances | mIoU fp32 | mIoU reduced | Δ mIoU "
        "| max abs Δ IoU | mask pixels flipped |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            base = None
            for precision in ["fp32", *args.precisions]:
                cfg = RunConfig(
                    args.protocols,
                    model,
                    data="sample",
                    weights=WEIGHTS,
                    limit=args.limit,
                    device=args.device,
                    precision=precision,
                    out=Path(tmp) / precision,
                    progress=False,
                    workers=0,
                )
                outcomes = {o.protocol.name: o for o in run(cfg)}
                if precision == "fp32":
                    base = outcomes
                    continue
                flips = _pixel_flips(model, precision, args.device, args.limit)
                for name, o in outcomes.items():
                    a, b = _ious(base[name].folder), _ious(o.folder)
                    d = max(abs(a[k] - b[k]) for k in a)
                    m0, m1 = base[name].record.metric("mIoU"), o.record.metric("mIoU")
                    print(
                        f"| {model} | {precision} | {name} | {len(a)} | {m0:.3f} | {m1:.3f} | {m1 - m0:+.3f} "
                        f"| {d:.4f} | {flips:.2e} |"
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
