"""Re-predicting logged instances: the masks behind a record's numbers, for the qualitative grid.

Per-instance logs hold prompts and IoUs but no masks (they would dwarf the logs), so the
record's model is built again — same name, same checkpoint SHA-256, same weights — and run on
the exact prompt logged for each chosen instance. Reports only draw what comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from ..data.gt import MaskCache
from ..data.images import load_rgb
from ..data.locate import locate
from ..data.masks import segmentation_to_rle
from ..data.readers import DatasetReader
from ..errors import InputError
from ..metrics.iou import mask_iou
from ..models import build_model, get_spec
from ..models.weights import find_checkpoint
from ..prompts.strategies import PromptSet
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
            ann = recorded if recorded.exists() else None
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
            prompts = PromptSet.from_json([row["prompt"]])  # as logged: a box, points, or both
            if runner.uses_ground_truth:
                runner.set_targets(gt[None])
            pred = runner.predict(**prompts.kwargs(), multimask=mask_choice != "single")
            gt_t = torch.from_numpy(gt[None]).to(pred.device)
            mask = pred.select(choose_masks(pred, mask_choice, gt=gt_t, boxes=prompts.boxes))[0]
            iou = float(mask_iou(mask[None], gt_t)[0])
            name = reader.categories.get(inst.category_id, {}).get("name", str(inst.category_id))
            out.append(Repredicted(row, name, image, gt, mask.cpu().numpy().astype(bool), iou))
            if progress is not None:
                progress.update(1)
    return out


# -- Table 5: logged detections against the ground truth -------------------------------------------
#: a detection matches a ground-truth mask of its category at this mask IoU (COCO's AP50 threshold)
MATCH_IOU = 0.5
MATCH, UNMATCHED, UNSCORED = "match", "unmatched", "unscored"


@dataclass
class ShownDetection:
    """One logged detection as drawn: its mask and how it fared against the ground truth."""

    category: str
    score: float
    box: list[float]  # xyxy, the prompt
    mask: np.ndarray  # H×W bool, decoded from the logged RLE
    iou: float  # best mask IoU with a ground-truth mask of its category (0 if none)
    status: str  # MATCH, UNMATCHED, or UNSCORED (crowd region, or a category LVIS does not score here)


@dataclass
class DetectionImage:
    """An image of an AP run with its shown detections and the ground truth none of them matched."""

    image_id: int
    image: np.ndarray  # H×W×3 uint8
    detections: list[ShownDetection]
    missed: list[tuple[str, np.ndarray]]  # (category, H×W bool) of unmatched ground truth
    below_threshold: int  # detections of the image not shown (score under the threshold, or over the cap)

    def count(self, status: str) -> int:
        return sum(d.status == status for d in self.detections)


@dataclass(frozen=True)
class _Matched:
    """Matching of one image, without pixels (every candidate image is matched, few are drawn)."""

    image_id: int
    rows: list[dict]  # shown detections, best score first
    ious: list[float]
    status: list[str]
    missed: list[int]  # ann ids
    below_threshold: int

    @property
    def errors(self) -> int:
        return self.status.count(UNMATCHED) + len(self.missed)


def _mask_ious(dets: list[dict], gts: list, height: int, width: int, crowd: bool) -> np.ndarray:
    """D×G mask IoUs of detection RLEs with ground-truth instances (crowd: intersection over detection)."""
    if not dets or not gts:
        return np.zeros((len(dets), len(gts)))
    rles = [segmentation_to_rle(g.segmentation, height, width) for g in gts]
    return np.asarray(mask_utils.iou(dets, rles, [int(crowd)] * len(gts)))


def _match_image(
    reader: DatasetReader, image_id: int, rows: list[dict], score_min: float, max_shown: int
) -> _Matched:
    """Greedy COCO-style matching of the shown detections (score order) to the image's ground truth.

    A detection takes the unmatched ground truth of its category with the highest mask IoU ≥
    :data:`MATCH_IOU`. As in the official evaluators, one that only covers a crowd region of its
    category, or (LVIS) whose category is neither annotated nor verified absent in the image, is
    not scored.
    """
    sample = reader.sample(image_id)
    shown = sorted(
        (r for r in rows if float(r["score"]) >= score_min), key=lambda r: (-r["score"], r["det_id"])
    )
    shown = shown[:max_shown]
    gts = [i for i in sample.instances if not i.iscrowd]
    crowds = [i for i in sample.instances if i.iscrowd]
    dets = [r["segmentation"] for r in shown]
    ious = _mask_ious(dets, gts, sample.height, sample.width, crowd=False)
    crowd_iou = _mask_ious(dets, crowds, sample.height, sample.width, crowd=True)
    verified = reader.verified_categories(image_id)  # LVIS: annotated or verified absent; else None: all
    taken: set[int] = set()
    best_ious: list[float] = []
    status: list[str] = []
    for d, row in enumerate(shown):
        same = [g for g, inst in enumerate(gts) if inst.category_id == row["category_id"]]
        best_ious.append(float(max((ious[d, g] for g in same), default=0.0)))
        free = [g for g in same if g not in taken and ious[d, g] >= MATCH_IOU]
        if free:
            taken.add(max(free, key=lambda g: (ious[d, g], -g)))
            status.append(MATCH)
        elif any(
            c.category_id == row["category_id"] and crowd_iou[d, k] >= MATCH_IOU for k, c in enumerate(crowds)
        ) or (verified is not None and row["category_id"] not in verified):
            status.append(UNSCORED)
        else:
            status.append(UNMATCHED)
    missed = [inst.ann_id for g, inst in enumerate(gts) if g not in taken]
    return _Matched(image_id, shown, best_ious, status, missed, len(rows) - len(shown))


def detection_images(
    record: RunRecord,
    image_ids: list[int] | tuple = (),
    worst: int | None = None,
    best: int | None = None,
    score_min: float = 0.5,
    max_shown: int = 20,
    data_root: Path | None = None,
    ann: Path | None = None,
    track: Callable[[list[int]], Iterable[int]] = iter,
) -> list[DetectionImage]:
    """Images of an AP record with its logged masks coloured by match / miss (no re-prediction).

    The masks are the record's own (``detections.jsonl`` logs each as RLE). ``image_ids`` picks the
    images; otherwise every image with detections is matched (``track`` wraps that loop, e.g. in a
    progress bar) and the ``worst`` (most unmatched detections + missed ground truth; default 4) or
    ``best`` (fewest, then most matches) are drawn. Ties go to the lower image id.
    """
    if record.protocol.task != "ap":
        raise InputError(f"{record.path}: the detection view needs an AP record (detections.jsonl)")
    reader = open_dataset(record, data_root, ann)
    by_image: dict[int, list[dict]] = {}
    for row in record.items():
        by_image.setdefault(int(row["image_id"]), []).append(row)
    if image_ids:
        known = set(reader.image_ids())
        if missing := [i for i in image_ids if i not in known]:
            raise InputError(f"image(s) {missing[:3]} are not in {reader.ann_file}")
        candidates = list(image_ids)
    else:
        candidates = sorted(by_image)
    matched = [_match_image(reader, i, by_image.get(i, []), score_min, max_shown) for i in track(candidates)]
    if not image_ids:
        if best:
            matched.sort(key=lambda m: (m.errors, -m.status.count(MATCH), m.image_id))
        else:
            matched.sort(key=lambda m: (-m.errors, m.image_id))
        matched = matched[: best or worst or 4]
    return [_load_detection_image(reader, m) for m in matched]


def _load_detection_image(reader: DatasetReader, m: _Matched) -> DetectionImage:
    sample = reader.sample(m.image_id)
    image = load_rgb(sample.path, (sample.height, sample.width), sample.image_id)
    cache = MaskCache(sample)
    by_ann = {i.ann_id: i for i in sample.instances}

    def name(category_id: int) -> str:
        return str(reader.categories.get(category_id, {}).get("name", category_id))

    shown = [
        ShownDetection(
            name(int(row["category_id"])),
            float(row["score"]),
            [float(v) for v in row["box"]],
            mask_utils.decode(row["segmentation"]).astype(bool),
            iou,
            status,
        )
        for row, iou, status in zip(m.rows, m.ious, m.status, strict=True)
    ]
    missed = [(name(by_ann[a].category_id), cache.get(by_ann[a])) for a in m.missed]
    return DetectionImage(m.image_id, image, shown, missed, m.below_threshold)
