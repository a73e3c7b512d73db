"""Real model runners end to end through the CLI, with checkpoints written in the official formats.

The weights are the fidelity fill (deterministic, not trained), so the numbers mean nothing; what is
checked is that an official-format file loads strictly, its SHA-256 reaches the record, and every
protocol runs through the model's own pre- and post-processing.
"""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch

from evalsuite.cli import main
from evalsuite.models import build_model
from evalsuite.models.weights import official_weights, save_official_format


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientsam-ti", "mobilesam", "sam-vit-b"])
def test_run_with_an_official_format_checkpoint(name, tmp_path, capsys):
    """The ``random:0`` network (the fidelity fill) written as the official file and run from it."""
    runner = build_model(name, weights="random:0")
    ckpt = save_official_format(name, runner.model.state_dict(), tmp_path)
    del runner
    out = tmp_path / "runs"
    args = ["run", "coco-box", "coco-1click", "--model", name, "--data", "sample", "--limit", "1"]
    rc = main([*args, "--checkpoint", str(ckpt), "--out", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    run_name = f"{name}+ck{sha[:8]}+limit1"  # not the official file: named after its checkpoint
    for protocol in ("coco-box", "coco-1click"):
        record = json.loads((out / run_name / protocol / "record.json").read_text())
        assert record["model"]["checkpoint_sha256"] == sha and record["model"]["weights"] == "file"
        assert record["name"] == run_name
        if name == "sam-vit-b":  # the attention form is recorded (the dense mask on the CPU)
            assert record["execution"]["rel_pos_attention"] == "dense_mask"
        assert record["counts"]["instances"] > 0
        assert 0.0 <= record["metrics"]["mIoU"] <= 100.0 and not math.isnan(record["metrics"]["mIoU"])
        rows = [
            json.loads(x) for x in (out / run_name / protocol / "instances.jsonl").read_text().splitlines()
        ]
        assert all(r["mask_index"] in (0, 1, 2) for r in rows)


def test_missing_checkpoint_is_one_line_with_url_and_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path))
    rc = main(["run", "coco-box", "--model", "efficientsam-ti", "--data", "sample", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert (
        official_weights("efficientsam-ti").url in err
        and str(official_weights("efficientsam-ti").default_path()) in err
    )
    assert "evalsuite download weights efficientsam-ti" in err and len(err.strip().splitlines()) <= 2


def test_tampered_official_checkpoint_fails_the_sha256_check(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path))
    path = official_weights("sam-vit-b").default_path()
    path.parent.mkdir(parents=True)
    torch.save({"image_encoder.pos_embed": torch.zeros(1)}, path)  # not Meta's file
    rc = main(["run", "coco-box", "--model", "sam-vit-b", "--data", "sample", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert (
        rc == 2
        and "SHA-256" in err
        and official_weights("sam-vit-b").sha256 in err
        and "Traceback" not in err
    )
