"""A checkpoint saved from a DistributedDataParallel wrapper (every key under ``module.``) loads, and the
run records that the prefix was stripped; the documented way to write random weights as a checkpoint."""

from __future__ import annotations

import pytest
import torch

import evalsuite
from evalsuite.models import build_model, get_spec
from evalsuite.models.weights import save_official_format


@pytest.mark.slow
def test_a_ddp_checkpoint_loads_with_its_prefix_stripped_and_recorded(tmp_path):
    runner = build_model("efficientsam-ti", weights="random:0")  # the README's smoke checkpoint
    plain = save_official_format("efficientsam-ti", runner.model.state_dict(), tmp_path / "plain")
    assert plain.name == "efficient_sam_vitt.pt" and plain.stat().st_size > 0  # what the README shows
    ddp = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in runner.model.state_dict().items()}, ddp)

    loaded = get_spec("efficientsam-ti").build(checkpoint=ddp)
    for key, value in runner.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    assert "stripped 'module.'" in loaded.execution_notes()["checkpoint_keys"]

    res = evalsuite.evaluate(
        "efficientsam-ti", "coco-box", data="sample", limit=1, checkpoint=ddp, progress=False, device="cpu"
    )
    assert "stripped 'module.'" in res.records[0].execution.notes["checkpoint_keys"]
