"""Run records for the report and plot tests: real runs on the sample, and hand-made schema-1 records."""

from __future__ import annotations

import json
from pathlib import Path

from evalsuite.cli import main
from evalsuite.engine import RunConfig, run
from evalsuite.protocols import get_protocol


def make_sample_runs(out: Path) -> Path:
    """oracle and box-fill on a few mIoU protocols and on coco-vitdet (pseudo-detections, seed 0)."""
    common = {"data": "sample", "out": out, "progress": False, "workers": 0}
    run(RunConfig(["coco-box", "coco-1click", "coco-3click", "lvis-box"], "oracle", **common))
    run(RunConfig(["coco-box"], "box-fill", **common))
    assert main(["make-boxes", "coco", "--seed", "0", "--out", str(out / "boxes" / "coco_seed0.json")]) == 0
    for model in ("oracle", "box-fill"):
        run(RunConfig(["coco-vitdet"], model, boxes=out / "boxes" / "coco_seed0.json", **common))
    return out


def synthetic_record(
    root: Path,
    model: str,
    protocol: str,
    metrics: dict,
    options: dict | None = None,
    version: int | None = None,
    folder: str | None = None,
    dataset: str = "coco-val2017",
    name: str | None = None,
) -> Path:
    """Write a minimal, schema-valid record.json for ``model`` on ``protocol`` (options as shipped).

    With ``name`` the record is a schema-2 record of that run name (a variant of the model).
    """
    p = get_protocol(protocol)
    opts = {**p.options, **(options or {})}
    proto = p.with_options(options or {})
    rec = {
        "schema_version": 1,
        "run_id": f"{model}__{protocol}__{'s' * 10}",
        "protocol": {
            "name": p.name,
            "version": version or p.version,
            "id": f"{p.name}@{version or p.version}",
            "task": p.task,
            "options": opts,
            "options_hash": proto.options_hash,
        },
        "dataset": {
            "name": dataset if p.dataset == "coco" else dataset.replace("coco-val2017", "lvis-v1-val"),
            "family": p.dataset,
            "annotation_sha256": ("a" if p.dataset == "coco" else "b") * 64,
            "image_ids_sha256": "c" * 64,
            # what the engine records for the official file (these records stand for runs on it)
            "official": dataset == "coco-val2017",
        },
        "model": {"name": model, "checkpoint": None, "checkpoint_sha256": None, "precision": "fp32"},
        "counts": {"images": 5000 if p.dataset == "coco" else 19809, "skipped": {}},
        "seed": 0,
        "metrics": metrics,
        "execution": {"wall_s": 10.0, "images_this_session": 100, "world_size": 1},
        "environment": {"device": "cuda", "device_name": "Test GPU"},
    }
    if name is not None:
        rec["schema_version"], rec["name"] = 2, name
    if p.task == "ap":
        # the published ViTDet-H file, as the engine records it (kind "official")
        rec["boxes"] = {
            "sha256": "d" * 64,
            "file": f"{p.dataset}_instances_results_vitdet.json",
            "kind": "official",
            "label": "ViTDet-H",
        }
    path = root / (folder or model) / protocol / "record.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1))
    return path
