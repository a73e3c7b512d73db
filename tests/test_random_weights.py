"""``--weights random[:SEED]``: any built-in network, deterministic weights, no download, no paper value.

A newcomer's first command works offline on the CPU; the record says the weights were random, the
report sets no paper value or Δ beside such a row and says why, and gates that expect official
weights refuse it. Seed 0 is the fidelity fill, so what the goldens check is what a smoke run runs.
"""

from __future__ import annotations

import json
import math
import shlex

import pytest
import torch

from evalsuite.cli import main
from evalsuite.engine import RunConfig, run
from evalsuite.models import build_model, builtin_model_names, get_spec
from evalsuite.models.random_init import randomize
from evalsuite.protocols import get_protocol

#: every built-in network (the weightless baselines have nothing to randomise; FastSAM needs the
#: optional Ultralytics extra and has its own smoke run in test_fastsam.py)
NETWORKS = [n for n in builtin_model_names() if get_spec(n).needs_weights and not n.startswith("fastsam")]
NEW = [n for n in NETWORKS if n.startswith(("sam2.1-", "efficientvit-sam-"))]
#: issue 15's smoke command runs two images; the larger variants of the same code run one (CI time)
TWO_IMAGES = {"sam2.1-hiera-t", "efficientvit-sam-l0"}
#: marked heavy (run with `-m heavy`; 5-90 s each on a 2-core CPU), outside CI's 20-minute budget: every
#: network without a golden of its own. Their code is that of sam-vit-b, sam2.1-hiera-t/-b+ and
#: efficientvit-sam-l0, whose outputs equal the official code's (goldens), and their official key layouts
#: load strictly in CI.
HEAVY = {
    "sam-vit-h",
    "sam-vit-l",
    "sam2.1-hiera-s",
    "sam2.1-hiera-l",
    "sam2.1-hiera-b+",
    "efficientvit-sam-l1",
    "efficientvit-sam-l2",
    "efficientvit-sam-xl0",
    "efficientvit-sam-xl1",
    # issue 20's networks: their code is checked by their goldens (sam-hq-vit-b, light-hq-sam, tinysam,
    # edgesam, repvit-sam, sam3) and their key layouts load strictly; each family has a smoke run of its own
    "edgesam-3x",
    "repvit-sam",
    "sam-hq-vit-b",
    "sam-hq-vit-l",
    "sam-hq-vit-h",
    "tinysam",
    "sam3",
}


def _networks(names: list[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.heavy) if n in HEAVY else n for n in names]


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """An empty cache: no official weights anywhere, so any download attempt would fail the run."""
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))
    return tmp_path


def test_the_readme_smoke_command_runs_offline(offline_home, capsys):
    out = offline_home / "runs"
    argv = shlex.split("run coco-box --model efficientsam-s --data sample --weights random --limit 2")
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "efficientsam-s+random0+limit2" in printed
    record = json.loads((out / "efficientsam-s+random0+limit2" / "coco-box" / "record.json").read_text())
    assert record["name"] == "efficientsam-s+random0+limit2"
    assert record["model"]["weights"] == "random:0" and record["model"]["checkpoint_sha256"] is None
    assert record["counts"]["images"] == 2 and record["counts"]["instances"] > 0
    assert "paper" not in record or not record["paper"]  # no paper value stands beside random weights

    # the report shows the measured value, no paper value and no Δ, and says why
    assert main(["report", str(out), "--table", "4"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("| efficientsam-s+random0"))
    assert "76.9" not in row and "n/a" not in row
    assert (
        "No paper value beside efficientsam-s+random0+limit2: sample data; --limit 2; random weights" in table
    )

    # a gate that expects the official weights refuses the record; a random:0 gate accepts it
    value = record["metrics"]["mIoU"]
    gates = offline_home / "gates.toml"
    gate = (
        f'[[gate]]\nmodel = "efficientsam-s+random0+limit2"\nprotocol = "coco-box@1"\nmetric = "mIoU"\n'
        f'expected = {value}\ntolerance = 0.01\nrun_id = "{record["run_id"]}"\n'
    )
    gates.write_text(gate)
    assert main(["gate", str(gates), str(out)]) == 1
    assert "record weights random:0, gate wants official" in capsys.readouterr().out
    gates.write_text(gate + 'weights = "random:0"\n')
    assert main(["gate", str(gates), str(out)]) == 0, capsys.readouterr().err


def test_seeds_make_variants_and_seed_zero_is_the_fidelity_fill(fill):
    a = build_model("efficientsam-ti", weights="random")
    for key, tensor in a.model.state_dict().items():
        expected = fill.fill_array(key, tuple(tensor.shape), torch.is_floating_point(tensor))
        assert torch.equal(tensor, torch.from_numpy(expected).to(tensor.dtype)), key
    b = build_model("efficientsam-ti", weights="random:1")
    differs = [k for k, t in b.model.state_dict().items() if not torch.equal(t, a.model.state_dict()[k])]
    assert len(differs) > len(a.model.state_dict()) // 2  # another seed: other weights
    again = build_model("efficientsam-ti")
    randomize(again.model, 1)
    assert all(torch.equal(t, again.model.state_dict()[k]) for k, t in b.model.state_dict().items())


def test_random_and_a_checkpoint_exclude_each_other(offline_home, capsys):
    argv = ["run", "coco-box", "--model", "efficientsam-ti", "--data", "sample", "--weights", "random"]
    assert main([*argv, "--checkpoint", str(offline_home / "x.pt"), "--out", str(offline_home)]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main([*argv[:-1], "random:x", "--out", str(offline_home)]) == 2
    assert "--weights must be 'official' or 'random[:SEED]'" in capsys.readouterr().err


def _check(outcomes, images: int) -> None:
    for o in outcomes:
        rec = o.record
        assert rec.model.weights == "random:0" and rec.counts.images == images, rec.name
        assert rec.counts.instances and rec.counts.instances > 0
        value = rec.metric("mIoU")
        assert value is not None and math.isfinite(value) and 0.0 <= value <= 100.0, (rec.name, value)


#: run elsewhere with exactly these weights: efficientsam-s by the README's smoke command above;
#: efficientsam-ti, mobilesam and sam-vit-b by test_model_runs (random:0 saved as an official checkpoint)
#: edgesam and light-hq-sam by the smoke runs in their fidelity modules
ELSEWHERE = {"efficientsam-s", "efficientsam-ti", "mobilesam", "sam-vit-b", "edgesam", "light-hq-sam"}


@pytest.mark.slow
@pytest.mark.parametrize("name", _networks([n for n in NETWORKS if n not in NEW and n not in ELSEWHERE]))
def test_every_paper_network_runs_with_random_weights_on_one_image(name, offline_home):
    protocols = ["coco-box", "coco-1click"]
    assert all(get_protocol(p).prompt_kind in get_spec(name).prompt_kinds for p in protocols)
    cfg = RunConfig(protocols, name, weights="random", data="sample", limit=1, out=None, progress=False)
    _check(run(cfg), images=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", _networks(NEW))
def test_every_new_network_runs_box_and_click_protocols_with_random_weights(name, offline_home):
    """Issue 15's smoke command: coco-box coco-1click lvis-box, CPU, no download."""
    out = offline_home / "runs"
    images = 2 if name in TWO_IMAGES else 1
    argv = ["run", "coco-box", "coco-1click", "lvis-box", "--model", name, "--data", "sample"]
    assert (
        main([*argv, "--weights", "random", "--limit", str(images), "--out", str(out), "--no-progress"]) == 0
    )
    for protocol in ("coco-box", "coco-1click", "lvis-box"):
        record = json.loads((out / f"{name}+random0+limit{images}" / protocol / "record.json").read_text())
        assert record["model"]["weights"] == "random:0" and record["counts"]["images"] == images
        assert math.isfinite(record["metrics"]["mIoU"]) and 0.0 <= record["metrics"]["mIoU"] <= 100.0
