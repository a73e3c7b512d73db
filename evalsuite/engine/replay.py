"""Re-predicting logged instances: the masks behind a record's numbers, for the qualitative grid.

Per-instance logs hold prompts and IoUs but no masks (they would dwarf the logs), so the
record's model is built again — same name, same checkpoint SHA-256, same weights — and run on
the exact prompt logged for each chosen instance. Reports only draw what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.gt import MaskCache
from ..data.images import load_rgb
from ..data.locate import locate
from ..data.readers import DatasetReader
from ..errors import InputError
from ..metrics.iou import mask_iou
from ..models import build_model, get_spec
from ..models.weights import find_checkpoint
from ..record import RunRecord
from ..tasks.choice import choose_masks
from .loop import precision_mode


def open_dataset(record: RunRecord, data_root: Path | None = None, ann: Path | None = None) -> DatasetReader:
    """The record's dataset, checked by SHA-256: the bundled sample, or real data under ``data_root``."""
    family = record.dataset.family
    if data_root is None and ann is None and record.dataset.name.startswith("sample-"):
        source = locate(family, "sample")
    else:
        if ann is None and data_root is None:
            recorded = Path(record.dataset.annotation_file)
            ann = recorded if recorded.is_file() else None
        source = locate(family, "real", data_root, ann)
    reader = source.open()
    if record.dataset.annotation_sha256 and reader.annotation_sha256 != record.dataset.annotation_sha256:
        raise InputError(
            f"{source.ann_file}: SHA-256 {reader.annotation_sha256[:12]} differs from the record's "
            f"{record.dataset.annotation_sha256[:12]}",
            hint="pass --data-root / --ann pointing at the annotation file the run used",
        )
    return reader


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


def choose_rows(
    record: RunRecord,
    worst: int | None = None,
    best: int | None = None,
    keys: list[tuple[int, int]] | tuple = (),
) -> list[dict]:
    """Instances of an mIoU record for the grid: explicit ``(image_id, ann_id)`` keys, else the worst or
    best by IoU. Ties are broken by (image_id, ann_id), so the choice is deterministic."""
    if record.protocol.task != "miou":
        raise InputError(f"{record.path}: the qualitative grid needs an mIoU record (per-instance prompts)")
    rows = record.items()
    if keys:
        index = {(int(r["image_id"]), int(r["ann_id"])): r for r in rows}
        missing = [k for k in keys if k not in index]
        if missing:
            raise InputError(f"instance(s) {missing[:3]} are not in the record's instances.jsonl")
        return [index[k] for k in keys]
    if best:
        return sorted(rows, key=lambda r: (-float(r["iou"]), int(r["image_id"]), int(r["ann_id"])))[:best]
    return sorted(rows, key=lambda r: (float(r["iou"]), int(r["image_id"]), int(r["ann_id"])))[: worst or 6]


def rebuild_runner(record: RunRecord, checkpoint: str | None, device: str, trust_checkpoint: bool = False):
    """The record's model with the record's weights (its checkpoint SHA-256 must match)."""
    m = record.model
    ckpt = checkpoint or m.checkpoint
    if m.random_weights:
        runner = build_model(m.name, device=device, weights=m.weights)
    else:
        if ckpt is None and get_spec(m.name).needs_weights:
            ckpt = str(find_checkpoint(get_spec(m.name)))
        if ckpt is not None and not Path(ckpt).is_file():
            raise InputError(
                f"checkpoint {ckpt} (from the record) not found",
                hint="pass --checkpoint PATH to the same file",
            )
        runner = build_model(m.name, checkpoint=ckpt, device=device, trust_checkpoint=trust_checkpoint)
    if m.checkpoint_sha256 and runner.checkpoint_sha256 != m.checkpoint_sha256:
        raise InputError(
            f"checkpoint SHA-256 {runner.checkpoint_sha256} differs from the record's {m.checkpoint_sha256}"
        )
    return runner


def repredict(
    record: RunRecord,
    rows: list[dict],
    data_root: Path | None = None,
    ann: Path | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
    trust_checkpoint: bool = False,
    progress: Any = None,
) -> list[Repredicted]:
    """Run the record's model again on the logged prompt of each row (mask chosen by the run's rule)."""
    if record.protocol.task != "miou":
        raise InputError(f"{record.path}: the qualitative grid needs an mIoU record (per-instance prompts)")
    reader = open_dataset(record, data_root, ann)
    runner = rebuild_runner(record, checkpoint, device, trust_checkpoint)
    mask_choice = record.protocol.options.get("mask_choice", "score")
    out: list[Repredicted] = []
    current: tuple[int, np.ndarray] | None = None
    with torch.inference_mode(), precision_mode(record.model.precision, device):
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
            if progress is not None:
                progress.update(1)
    return out
