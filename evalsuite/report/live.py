"""The only parts of ``evalsuite.report`` that run a model.

Everything else in the package reads run records. Two things cannot: the qualitative grid
needs predicted masks, which per-instance logs do not store (:func:`repredict` runs the
record's model again on the exact prompt logged for each chosen instance), and NoC needs the
IoU after every click of the ``sam`` clicker up to 20 clicks (:func:`run_noc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .records import RunRecord
from .stats import NOC_MAX_CLICKS, NOC_THRESHOLDS, sam_click_ious, summarize_noc


def build_runner(model: str, checkpoint: str | None, device: str, trust_checkpoint: bool = False):
    """The model as ``evalsuite run`` builds it (its official checkpoint from the cache if none given)."""
    from ..models import build_model, get_spec

    if checkpoint is None and get_spec(model).needs_weights:
        from ..models.checkpoints import find_checkpoint

        checkpoint = str(find_checkpoint(model))
    return build_model(model, checkpoint=checkpoint, device=device, trust_checkpoint=trust_checkpoint)


def open_dataset(record: RunRecord, data_root: Path | None = None, ann: Path | None = None):
    """The record's dataset, checked by SHA-256: the bundled sample, or real data under ``data_root``."""
    from ..data.locate import locate

    family = record.family
    if data_root is None and ann is None and record.dataset.startswith("sample-"):
        source = locate(family, "sample")
    else:
        if ann is None and data_root is None:
            recorded = Path(str(record.data["dataset"].get("annotation_file", "")))
            ann = recorded if recorded.is_file() else None
        source = locate(family, "real", data_root, ann)
    reader = source.open()
    if record.annotation_sha256 and reader.annotation_sha256 != record.annotation_sha256:
        raise InputError(
            f"{source.ann_file}: SHA-256 {reader.annotation_sha256[:12]} differs from the record's "
            f"{record.annotation_sha256[:12]}",
            hint="pass --data-root / --ann pointing at the annotation file the run used",
        )
    return reader


# -- qualitative grid -----------------------------------------------------------------------------
@dataclass
class Repredicted:
    """One instance with its image, ground truth, the logged prompt and a fresh prediction."""

    row: dict[str, Any]  # the instances.jsonl row
    category: str
    image: np.ndarray  # H×W×3 uint8
    gt: np.ndarray  # H×W bool
    pred: np.ndarray  # H×W bool
    iou: float  # of the re-predicted mask

    @property
    def matches_record(self) -> bool:
        return abs(self.iou - float(self.row["iou"])) <= 1e-4


def choose_rows(rows: list[dict], worst: int | None = None, best: int | None = None, keys=()) -> list[dict]:
    """Instances for the grid: explicit ``(image_id, ann_id)`` keys, else the worst or best by IoU.

    Ties are broken by (image_id, ann_id), so the choice is deterministic.
    """
    if keys:
        index = {(int(r["image_id"]), int(r["ann_id"])): r for r in rows}
        missing = [k for k in keys if k not in index]
        if missing:
            raise InputError(f"instance(s) {missing[:3]} are not in the record's instances.jsonl")
        return [index[k] for k in keys]
    ordered = sorted(rows, key=lambda r: (float(r["iou"]), int(r["image_id"]), int(r["ann_id"])))
    if best:
        return sorted(rows, key=lambda r: (-float(r["iou"]), int(r["image_id"]), int(r["ann_id"])))[:best]
    return ordered[: worst or 6]


def repredict(
    record: RunRecord,
    rows: list[dict],
    data_root: Path | None = None,
    ann: Path | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
    trust_checkpoint: bool = False,
) -> list[Repredicted]:
    """Run the record's model again on the logged prompt of each row (mask chosen by the run's rule).

    The model is built from the record's name and checkpoint (``checkpoint`` overrides the path;
    its SHA-256 must still match the record's). Weightless baselines need no checkpoint.
    """
    import torch

    from ..data.images import load_rgb
    from ..evaluator import precision_mode
    from ..metrics.iou import mask_iou
    from ..tasks.choice import choose_masks
    from ..tasks.gt import MaskCache

    if record.task != "miou":
        raise InputError(f"{record.path}: the qualitative grid needs an mIoU record (per-instance prompts)")
    reader = open_dataset(record, data_root, ann)
    ckpt = checkpoint or record.checkpoint
    if ckpt is not None and not Path(ckpt).is_file():
        raise InputError(
            f"checkpoint {ckpt} (from the record) not found", hint="pass --checkpoint PATH to the same file"
        )
    runner = build_runner(record.model, ckpt, device, trust_checkpoint)
    if record.checkpoint_sha256 and runner.checkpoint_sha256 != record.checkpoint_sha256:
        raise InputError(
            f"checkpoint SHA-256 {runner.checkpoint_sha256} differs from the record's "
            f"{record.checkpoint_sha256}"
        )
    mask_choice = record.options.get("mask_choice", "score")
    out: list[Repredicted] = []
    current: tuple[int, np.ndarray] | None = None
    with torch.inference_mode(), precision_mode(record.data["model"].get("precision", "fp32"), device):
        for row in rows:
            sample = reader.sample(int(row["image_id"]))
            inst = next((i for i in sample.instances if i.ann_id == int(row["ann_id"])), None)
            if inst is None:
                raise InputError(f"annotation {row['ann_id']} not found in image {row['image_id']}")
            if current is None or current[0] != sample.image_id:
                current = (
                    sample.image_id,
                    load_rgb(sample.path, (sample.height, sample.width), sample.image_id),
                )
                runner.set_image(current[1])
            image = current[1]
            gt = MaskCache(sample).get(inst)
            prompt = row["prompt"]
            boxes = None
            if runner.uses_ground_truth:
                runner.set_targets(gt[None])
            multimask = mask_choice != "single"
            if "box" in prompt:
                boxes = np.asarray([prompt["box"]], dtype=np.float64)
                pred = runner.predict(boxes=boxes, multimask=multimask)
            else:
                pred = runner.predict(
                    points=np.asarray([prompt["points"]], dtype=np.float64),
                    point_labels=np.asarray([prompt["labels"]], dtype=np.int64),
                    multimask=multimask,
                )
            gt_t = torch.from_numpy(gt[None]).to(pred.device)
            mask = pred.select(choose_masks(pred, mask_choice, gt=gt_t, boxes=boxes))[0]
            iou = float(mask_iou(mask[None], gt_t)[0])
            name = reader.categories.get(inst.category_id, {}).get("name", str(inst.category_id))
            out.append(Repredicted(row, name, image, gt, mask.cpu().numpy().astype(bool), iou))
    return out


# -- NoC ------------------------------------------------------------------------------------------
@dataclass
class NocConfig:
    """Settings of one ``evalsuite noc`` run."""

    model: str
    dataset: str = "coco"  # family: coco | lvis
    data: str = "sample"  # sample | real
    data_root: Path | None = None
    ann: Path | None = None
    checkpoint: str | None = None
    trust_checkpoint: bool = False
    device: str = "cpu"
    limit: int | None = None
    max_clicks: int = NOC_MAX_CLICKS
    mask_choice: str = "score"
    include_crowd: bool = False


def run_noc(cfg: NocConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per-instance click sequences and their summary (NoC@85/90, failures, mIoU after each click).

    Instances are selected as the mIoU protocols select them (crowd excluded unless asked, empty
    masks dropped); no resume or sharding — ``limit`` takes the first images by id.
    """
    import torch

    from ..data.images import load_rgb
    from ..data.locate import locate
    from ..models.base import PROMPT_POINTS
    from ..provenance import software
    from ..tasks.gt import MaskCache, select_instances

    if cfg.max_clicks < 1 or (cfg.limit is not None and cfg.limit < 1):
        raise InputError("--max-clicks and --limit must be >= 1")
    if cfg.mask_choice not in ("score", "single", "oracle"):
        raise InputError(f"--mask-choice must be score, single or oracle, not {cfg.mask_choice!r}")
    source = locate(cfg.dataset, cfg.data, cfg.data_root, cfg.ann)
    reader = source.open()
    runner = build_runner(cfg.model, cfg.checkpoint, cfg.device, cfg.trust_checkpoint)
    if PROMPT_POINTS not in runner.prompt_kinds:
        raise InputError(f"model {cfg.model!r} does not take point prompts; NoC needs clicks")
    ids = reader.image_ids()[: cfg.limit] if cfg.limit else reader.image_ids()
    rows: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    with torch.inference_mode():
        for image_id in ids:
            sample = reader.sample(image_id)
            gt = select_instances(MaskCache(sample), cfg.include_crowd)
            for reason, count in gt.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + count
            if not gt.instances:
                continue
            runner.set_image(load_rgb(sample.path, (sample.height, sample.width), image_id))
            for inst, mask in zip(gt.instances, gt.masks, strict=True):
                seq = sam_click_ious(runner, mask, cfg.max_clicks, cfg.mask_choice)
                rows.append(
                    {
                        "image_id": sample.image_id,
                        "ann_id": inst.ann_id,
                        "category_id": inst.category_id,
                        "area": inst.area,
                        "points": seq.points.tolist(),
                        "labels": seq.labels.tolist(),
                        "ious": seq.ious,
                    }
                )
    if not rows:
        raise InputError("no instance to click on in the selected images")
    s = summarize_noc([r["ious"] for r in rows], NOC_THRESHOLDS, cfg.max_clicks)
    summary = {
        "kind": "noc",
        "model": {
            "name": cfg.model,
            "checkpoint": cfg.checkpoint,
            "checkpoint_sha256": runner.checkpoint_sha256,
        },
        "dataset": {
            "name": source.name,
            "family": source.family,
            "annotation_sha256": reader.annotation_sha256,
            "images": len(ids),
            "limit": cfg.limit,
        },
        "options": {
            "click_rule": "sam",
            "max_clicks": cfg.max_clicks,
            "mask_choice": cfg.mask_choice,
            "include_crowd": cfg.include_crowd,
        },
        "counts": {"instances": s.n, "skipped": dict(sorted(skipped.items()))},
        "metrics": {
            **{f"NoC@{round(t * 100)}": v for t, v in s.noc.items()},
            **{f"failures@{round(t * 100)}": v for t, v in s.failures.items()},
        },
        "miou_at_click": s.miou_at,
        "software": software(),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return summary, rows
