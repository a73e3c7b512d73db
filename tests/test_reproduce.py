"""`evalsuite reproduce`: the whole workflow in one command, and a second run that changes nothing."""

from __future__ import annotations

import hashlib
import re
import shlex

import pytest

from evalsuite.cli import main
from evalsuite.engine.reproduce import make_plan


def _tree(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_reproduce_all_on_the_sample_then_again_without_work(tmp_path, capsys):
    out = tmp_path / "results"
    args = ["reproduce", "all", "--models", "box-fill,oracle", "--data", "sample", "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "[1/4] box-fill on COCO" in captured.err and "[4/4] oracle on LVIS" in captured.err
    assert "| step |" in captured.out.replace("  ", " ") or "step" in captured.out.splitlines()[-6]
    for name in ("table4.md", "table4.tex", "table5.md", "table5.tex", "plots/clicks.png", "plots/speed.pdf"):
        assert (out / name).stat().st_size > 0, name
    table4 = (out / "table4.md").read_text()
    assert re.search(r"\| oracle +\| +100\.0 \| +100\.0 \| +100\.0 \|", table4), table4
    assert re.search(r"\| box-fill +\| +60\.4 \| +– \|", table4), table4
    assert "SAM (ViT-H) (paper)" in table4  # the paper's rows give the measured ones their context
    assert "\\toprule" in (out / "table5.tex").read_text()
    for model, protocol in [
        ("oracle", "lvis-5click"),
        ("oracle", "coco-vitdet"),
        ("box-fill", "lvis-vitdet"),
    ]:
        assert (out / "runs" / model / protocol / "record.json").is_file()
    before = _tree(out)
    capsys.readouterr()
    assert main(args) == 0
    assert _tree(out) == before
    steps = [line for line in capsys.readouterr().out.splitlines() if re.match(r"\|\s*\d+\s+\|", line)]
    assert len(steps) == 4 and all(line.split("|")[5].strip() == "0" for line in steps)  # no work, 0 images


def test_plan_shares_one_run_per_model_and_dataset_and_skips_what_a_model_cannot_do():
    plan = make_plan("all", ["box-fill", "oracle"], {"coco": None, "lvis": None})
    assert [(r.model, r.family, len(r.protocols)) for r in plan.runs] == [
        ("box-fill", "coco", 2),
        ("box-fill", "lvis", 2),
        ("oracle", "coco", 5),
        ("oracle", "lvis", 5),
    ]
    assert "box-fill coco-1click (takes no points)" in plan.skipped


def test_the_default_plan_is_the_papers():
    """Table 4 has no FastSAM row; SAM ViT-H's Table 5 row was measured with the refinement iteration."""
    t4 = make_plan("table4", None, {})
    assert {r.model for r in t4.runs} == {"sam-vit-h", "mobilesam", "efficientsam-ti", "efficientsam-s"}
    t5 = make_plan("table5", None, {"coco": None, "lvis": None})
    assert {r.model for r in t5.runs} == {
        "sam-vit-h",
        "mobilesam",
        "fastsam-x",
        "efficientsam-ti",
        "efficientsam-s",
    }
    assert all(r.overrides == ({"refine": 1} if r.model == "sam-vit-h" else {}) for r in t5.runs)


def test_dry_run_prints_copyable_commands_what_is_missing_and_an_honest_estimate(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))
    args = [
        "reproduce",
        "all",
        "--models",
        "efficientsam-ti,sam-vit-h",
        "--data-root",
        str(tmp_path / "coco"),
    ]
    assert main([*args, "--out", str(tmp_path / "res"), "--dry-run", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    commands = [line.split("] ", 1)[1] for line in out.splitlines() if line.startswith("[")]
    assert len(commands) == 4
    for cmd in commands:
        argv = shlex.split(cmd)
        assert (
            argv[:2] == ["evalsuite", "run"]
            and "--data-root" in argv
            and "--out" in argv
            and "--device" in argv
        )
    sam_coco = next(c for c in commands if "--model sam-vit-h" in c and "coco-vitdet" in c)
    assert "--refine 1" in sam_coco  # the paper's SAM ViT-H row includes the refinement iteration
    assert "missing: COCO data" in out and "missing: sam-vit-h weights" in out
    assert "missing: coco-vitdet detections" in out
    assert "estimated time: unknown on cpu" in out  # never an H100 figure for a CPU run
    assert main([*args, "--out", str(tmp_path / "res"), "--device", "cpu"]) == 2  # preflight refuses to start
    assert "missing before any run starts" in capsys.readouterr().err


def test_a_variant_of_one_model_is_reproduced_under_its_own_name(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))
    base = ["reproduce", "table4", "--data", "sample", "--out", str(tmp_path / "res"), "--device", "cpu"]
    # --name / --weights / --checkpoint describe one model's run: refused for a plan of several
    assert main([*base, "--weights", "random", "--dry-run"]) == 2
    assert "describe one model's run" in capsys.readouterr().err
    assert main([*base, "--models", "efficientsam-ti", "--weights", "random:1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    commands = [shlex.split(line.split("] ", 1)[1]) for line in out.splitlines() if line.startswith("[")]
    assert commands and all("--weights" in c and c[c.index("--weights") + 1] == "random:1" for c in commands)
    assert all("--name" not in c for c in commands)  # named by its weights (efficientsam-ti+random1)
    assert "missing: efficientsam-ti weights" not in out  # random weights need no download
    assert (
        main([*base, "--models", "efficientsam-ti", "--checkpoint", str(tmp_path / "ft.pt"), "--dry-run"])
        == 0
    )
    out = capsys.readouterr().out
    assert f"missing: checkpoint {tmp_path / 'ft.pt'}: no such file" in out
    assert main([*base, "--models", "efficientsam-ti", "--name", "my-ti", "--dry-run"]) == 0
    assert "--name my-ti" in capsys.readouterr().out


def test_one_annotation_file_cannot_serve_both_datasets(capsys, tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text("{}")
    args = ["reproduce", "table4", "--models", "oracle", "--ann", str(ann), "--dry-run", "--device", "cpu"]
    assert main(args) == 2
    assert "--ann names one annotation file, but the plan runs on COCO and LVIS" in capsys.readouterr().err


def test_dry_run_plans_a_gpu_job_on_any_machine_with_every_detection_file(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))
    args = ["reproduce", "table5", "--models", "efficientsam-ti", "--data-root", str(tmp_path / "coco")]
    args += ["--out", str(tmp_path / "res"), "--dry-run"]
    assert main([*args, "--device", "cuda:1"]) == 0  # planned here, run on a GPU machine
    out = capsys.readouterr().out
    commands = [shlex.split(line.split("] ", 1)[1]) for line in out.splitlines() if line.startswith("[")]
    assert len(commands) == 2
    for argv in commands:
        assert argv[argv.index("--device") + 1] == "cuda:1"
        family = "coco" if "coco-vitdet" in argv else "lvis"
        boxes = argv[argv.index("--boxes") + 1]  # where `evalsuite download boxes` puts the file
        assert boxes == str(tmp_path / "home" / "boxes" / f"{family}_instances_results_vitdet.json")
    assert (
        "missing: coco-vitdet detections for efficientsam-ti: `evalsuite download boxes coco-vitdet`" in out
    )
    assert "if cuda:1 runs like one H100" in out
    assert main([*args, "--device", "gpu"]) == 2
    assert "not a device name" in capsys.readouterr().err


def test_a_step_that_found_its_runs_finished_counts_no_images(tmp_path):
    import os
    import time

    from records_fixtures import synthetic_record

    from evalsuite.engine.loop import RunOutcome
    from evalsuite.engine.reproduce import PlannedRun, StepResult
    from evalsuite.protocols import get_protocol
    from evalsuite.record import read_record

    path = synthetic_record(tmp_path, "oracle", "coco-box", {"mIoU": 100.0})
    outcome = RunOutcome(get_protocol("coco-box"), path.parent, read_record(path))
    assert outcome.record.execution.images_this_session == 100  # what the session that made it did
    step = StepResult(1, PlannedRun("oracle", "coco", ["coco-box"]), [outcome], 0.1, started=time.time())
    os.utime(path, (time.time() - 3600, time.time() - 3600))  # written an hour before this step began
    assert step.summary()["images this session"] == 0
    os.utime(path, None)  # written by this step
    assert step.summary()["images this session"] == 100
