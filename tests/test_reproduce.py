"""`evalsuite reproduce`: the whole workflow in one command, and a second run that changes nothing."""

from __future__ import annotations

import hashlib

import pytest

from evalsuite.cli import main
from evalsuite.reproduce import make_plan


def _tree(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_reproduce_all_on_the_sample_then_again_without_work(tmp_path, capsys):
    out = tmp_path / "results"
    args = ["reproduce", "all", "--models", "box-fill", "oracle", "--data", "sample", "--out", str(out)]
    assert main(args) == 0
    for name in ("table4.md", "table4.tex", "table5.md", "table5.tex", "plots/clicks.png", "plots/speed.pdf"):
        assert (out / name).stat().st_size > 0, name
    table4 = (out / "table4.md").read_text()
    assert "| oracle | 100.0 | 100.0 | 100.0 |" in table4 and "| box-fill | 60.4 | – |" in table4
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


def test_plan_shares_one_run_per_model_and_dataset_and_skips_what_a_model_cannot_do():
    plan = make_plan("all", ["box-fill", "oracle"], {"coco": None, "lvis": None})
    assert [(r.model, r.family, len(r.protocols)) for r in plan.runs] == [
        ("box-fill", "coco", 2),
        ("box-fill", "lvis", 2),
        ("oracle", "coco", 5),
        ("oracle", "lvis", 5),
    ]
    assert "box-fill coco-1click (takes no clicks)" in plan.skipped


def test_dry_run_prints_the_plan_and_an_estimate(capsys):
    assert main(["reproduce", "table4", "--models", "efficientsam-ti", "sam-vit-h", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "evalsuite run coco-box coco-1click" in out and "--model sam-vit-h" in out
    assert "estimated time:" in out and "official code" in out
