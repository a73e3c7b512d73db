"""Variants of one model side by side: other weights, another answer option, a name of the user's.

A real network (EfficientSAM-Ti with deterministic random weights, seeds 0 and 1, and seed 0 with
the single-output token) on one image of the sample: three runs of one model, which every report
keeps apart as three rows and ``compare`` sets against each other with a paired CI.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from evalsuite.cli import main

pytestmark = pytest.mark.slow

SEED0, SEED1, SINGLE = (
    "efficientsam-ti+random0+limit1",
    "efficientsam-ti+random1+limit1",
    "efficientsam-ti+random0+mask_choice=single+limit1",
)
NAMES = (SEED0, SEED1, SINGLE)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("variants")
    base = [
        "run",
        "coco-box",
        "coco-1click",
        "--model",
        "efficientsam-ti",
        "--data",
        "sample",
        "--limit",
        "1",
    ]
    common = ["--out", str(out), "--no-progress", "--device", "cpu"]
    assert main([*base, "--weights", "random:0", *common]) == 0
    assert main([*base, "--weights", "random:1", *common]) == 0
    assert main([*base, "--weights", "random:0", "--set", "mask_choice=single", *common]) == 0
    assert {p.name for p in out.iterdir()} == set(NAMES)  # each variant has its own run folder
    return out


def _cli(capsys, *args: str) -> str:
    rc = main(list(args))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.out


def test_three_variants_are_three_rows_in_every_table_format(runs, capsys):
    md = _cli(capsys, "report", str(runs), "--table", "4")
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| efficientsam-ti")]
    assert rows == sorted(NAMES, key=lambda n: (n != "efficientsam-ti", n))
    assert f"Row options of {SINGLE}: mask_choice=single" in md

    tex = _cli(capsys, "report", str(runs), "--table", "4", "--format", "latex")
    assert all(name.replace("_", r"\_") in tex for name in NAMES)

    table = list(
        csv.DictReader(io.StringIO(_cli(capsys, "report", str(runs), "--table", "4", "--format", "csv")))
    )
    names_in_csv = {row.get("name") or row.get("row") for row in table}
    assert set(NAMES) <= names_in_csv


def test_exports_keep_the_variants_apart(runs, capsys):
    for kind in ("per-size", "per-category"):
        rows = list(csv.DictReader(io.StringIO(_cli(capsys, "export", kind, str(runs)))))
        assert {r["name"] for r in rows} == set(NAMES)


def test_compare_gives_a_paired_ci_across_weights_and_across_options(runs, capsys):
    across_weights = _cli(capsys, "compare", str(runs / SEED0 / "coco-box"), str(runs / SEED1 / "coco-box"))
    across_options = _cli(
        capsys, "compare", str(runs / SEED0 / "coco-1click"), str(runs / SINGLE / "coco-1click")
    )
    for text in (across_weights, across_options):
        assert re.search(r"95 ?% CI", text), text
    assert SEED1 in across_weights and SINGLE in across_options


def _all_texts(fig) -> str:
    """Every text of a figure (labels, legends, tick labels), long labels unwrapped."""
    return " ".join(t.get_text().replace("\n", "") for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_every_plot_draws_each_variant(runs):
    from evalsuite.record import find_records
    from evalsuite.report.plots import plot_clicks, plot_sizes, plot_speed

    records = find_records([runs])
    for plot in (plot_speed(records), plot_clicks(records), plot_sizes(records)):
        texts = _all_texts(plot.figure)
        assert all(name in texts for name in NAMES), texts
