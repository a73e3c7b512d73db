"""Reports from run records: tables (golden snapshots), refusals, exports, plots, gates, bootstrap, NoC.

Records are made here, either by the real engine on the bundled sample with the deterministic
runners (``oracle``, ``box-fill``) or as small synthetic record dicts in the schema-1 layout
(paper models, odd options: old records still load).
Set ``EVALSUITE_UPDATE_GOLDEN=1`` to rewrite the snapshots in tests/golden/report/ after a
deliberate change, and review the diff.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from records_fixtures import make_sample_runs, synthetic_record

from evalsuite.cli import main
from evalsuite.data.gt import MaskCache, select_instances
from evalsuite.data.images import load_rgb
from evalsuite.data.locate import locate
from evalsuite.engine import RunConfig, run
from evalsuite.metrics.noc import noc, summarize_noc
from evalsuite.models.base import PROMPT_POINTS, Prediction, Runner
from evalsuite.protocols import get_protocol, load_protocols
from evalsuite.record import find_records
from evalsuite.report.stats import pair_instances, paired_bootstrap
from evalsuite.tasks import MIoUTask, NocTask, TaskContext

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "report"
UPDATE = os.environ.get("EVALSUITE_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def es():
    """The ``evalsuite`` command line, called in-process."""
    return main


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory) -> Path:
    """Real runs on the sample: oracle and box-fill on a few mIoU protocols and on coco-vitdet."""
    return make_sample_runs(tmp_path_factory.mktemp("runs"))


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{path} did not exist; written now — review it and re-run")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the snapshot"


def _stable_ids(text: str) -> str:
    """Run ids end in a hash of the run's settings fingerprint; the snapshot keeps the readable part."""
    return re.sub(r"(__[a-z0-9-]+__)[0-9a-f]{10}\b", r"\1<hash>", text)


def _run_cli(es, capsys, *args: str) -> tuple[int, str, str]:
    rc = es(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    """Paper models with Δ of both signs, a missing cell, a null metric, a 5-click extra, Table 5 rows."""
    miou = lambda v: {"mIoU": v, "mIoU_S": v - 20, "mIoU_M": v, "mIoU_L": v + 10}  # noqa: E731
    for proto, v in {"coco-box": 78.52, "coco-1click": 54.0, "coco-3click": 74.1, "lvis-box": 79.0}.items():
        synthetic_record(tmp_path, "sam-vit-h", proto, miou(v))
    for proto, v in {
        "coco-box": 76.0,
        "coco-1click": 50.31,
        "coco-5click": 72.2,
        "lvis-3click": 70.0,
    }.items():
        synthetic_record(tmp_path, "efficientsam-s", proto, miou(v))
    synthetic_record(tmp_path, "efficientsam-s", "lvis-box", {"mIoU": None})
    synthetic_record(tmp_path, "my-model", "coco-box", miou(70.0))
    ap = {"AP": 44.0, "AP50": 60.0, "AP75": 45.0, "APS": 28.0, "APM": 48.9, "APL": 60.1}
    synthetic_record(tmp_path, "efficientsam-s", "coco-vitdet", ap)
    synthetic_record(tmp_path, "sam-vit-h", "coco-vitdet", {**ap, "AP": 46.1}, options={"refine": 1})
    synthetic_record(tmp_path, "fastsam-x", "lvis-vitdet", {**ap, "APr": 20.0, "APc": 30.0, "APf": 40.0})
    return tmp_path


# -- tables: golden snapshots ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,suffix", [("md", "md"), ("latex", "tex"), ("csv", "csv")])
def test_synthetic_tables_match_snapshots(es, capsys, synthetic, fmt, suffix):
    rc, out, err = _run_cli(es, capsys, "report", str(synthetic), "--table", "all", "--format", fmt)
    assert rc == 0, err
    _golden(f"synthetic.{suffix}", out)


@pytest.mark.parametrize("fmt,suffix", [("md", "md"), ("latex", "tex"), ("csv", "csv")])
def test_sample_run_tables_match_snapshots(es, capsys, sample_runs, fmt, suffix):
    rc, out, err = _run_cli(es, capsys, "report", str(sample_runs), "--format", fmt)
    assert rc == 0, err
    _golden(f"sample.{suffix}", _stable_ids(out))


def test_paper_values_sit_beside_measurements_with_delta_and_source(es, capsys, synthetic):
    rc, out, _ = _run_cli(es, capsys, "report", str(synthetic), "--table", "4")
    assert rc == 0
    # sam-vit-h coco-box: 78.52 measured vs 78.4 paper; efficientsam-s coco-1click 50.31 vs 50.0
    assert re.search(r"\| sam-vit-h +\| +78\.5 \(78\.4 \[1\], \+0\.1\) \|", out), out
    assert "50.3 (50.0 [1], +0.3)" in out
    assert "[1] EfficientSAM (Xiong et al., CVPR 2024, arXiv 2312.00863 v1), Table 4" in out
    assert "COCO 5 click" in out and "Columns beyond the paper" in out
    rc, out, _ = _run_cli(es, capsys, "report", str(synthetic), "--table", "5", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    sam = next(r for r in rows if r["name"] == "sam-vit-h" and r["column"] == "COCO AP")
    assert (sam["measured"], sam["paper"], sam["delta"]) == ("46.1", "46.5", "-0.4")  # measured with refine=1
    assert "includes one mask-refinement iteration" in sam["paper_source"]


def test_out_file_and_latex_fragment(es, capsys, synthetic, tmp_path):
    target = tmp_path / "t" / "table4.tex"
    rc, out, err = _run_cli(
        es,
        capsys,
        "report",
        str(synthetic),
        "--table",
        "4",
        "--format",
        "latex",
        "--fragment",
        "--out",
        str(target),
    )
    assert rc == 0 and out == "" and str(target) in err
    text = target.read_text()
    assert text.startswith(r"\begin{table}") and r"\documentclass" not in text


# -- LaTeX compiles (or at least is well formed) --------------------------------------------------------
def _check_latex_structure(tex: str) -> None:
    assert r"\usepackage{booktabs}" in tex
    assert tex.count(r"\begin{document}") == tex.count(r"\end{document}") == 1
    stack = []
    for m in re.finditer(r"\\(begin|end)\{(\w+)\}", tex):
        if m.group(1) == "begin":
            stack.append(m.group(2))
        else:
            assert stack and stack.pop() == m.group(2), f"unbalanced \\end{{{m.group(2)}}}"
    assert not stack
    for tabular in re.findall(r"\\begin\{tabular\}\{([lrc]+)\}(.*?)\\end\{tabular\}", tex, re.S):
        spec, body = tabular
        assert all(rule in body for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
        for line in body.splitlines():
            if not line.endswith(r"\\"):
                continue
            spans = sum(int(n) for n in re.findall(r"\\multicolumn\{(\d+)\}", line))
            plain = line.count("&") + 1 - len(re.findall(r"\\multicolumn", line))
            assert spans + plain == len(spec), f"row has {spans + plain} cells, spec {len(spec)}: {line}"
    body = re.sub(r"^%.*$", "", tex, flags=re.M)  # comment lines
    body = re.sub(r"\$[^$]*\$", "", body)  # math
    for ch in ("_", "%", "#"):
        assert not re.search(rf"(?<!\\){re.escape(ch)}", body), f"unescaped {ch!r}"
    assert "Δ" not in tex and "−" not in tex, "non-ASCII signs must be mapped to LaTeX"


def test_latex_is_well_formed_and_compiles_where_pdflatex_exists(es, capsys, synthetic, tmp_path):
    rc, tex, _ = _run_cli(es, capsys, "report", str(synthetic), "--format", "latex")
    assert rc == 0
    _check_latex_structure(tex)
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        return  # structure checked above; TeX is not installed here
    (tmp_path / "t.tex").write_text(tex)
    proc = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 0


# -- refusals -------------------------------------------------------------------------------------------
def test_an_option_that_changes_what_a_column_measures_makes_its_own_labelled_column(es, capsys, tmp_path):
    synthetic_record(tmp_path, "efficientsam-ti", "coco-1click", {"mIoU": 45.0})
    synthetic_record(tmp_path, "efficientsam-s", "coco-1click", {"mIoU": 50.0}, options={"click_rule": "sam"})
    rc, out, err = _run_cli(es, capsys, "report", str(tmp_path))
    assert rc == 0, err
    header = next(line for line in out.splitlines() if line.startswith("| model"))
    assert "COCO 1 click " in header and "COCO 1 click (click_rule=sam)" in header
    assert "45.0 (45.5 [1], -0.5)" in out  # the paper's column keeps its paper value
    assert "50.0 (" not in out  # no paper value beside the SAM-clicker column


def test_different_click_seeds_make_tables_of_their_own(es, capsys, tmp_path):
    synthetic_record(tmp_path, "efficientsam-ti", "coco-3click", {"mIoU": 65.0})
    path = synthetic_record(tmp_path, "efficientsam-s", "coco-3click", {"mIoU": 70.0})
    path.write_text(path.read_text().replace('"seed": 0', '"seed": 1'))
    rc, out, err = _run_cli(es, capsys, "report", str(tmp_path))
    assert rc == 0, err
    tables = out.split("**Table 4")[1:]
    assert len(tables) == 2 and "seed 1" in tables[1] and "efficientsam-s" in tables[1]
    assert "efficientsam-ti" in tables[0] and "efficientsam-s " not in tables[0]  # the default seed first


def test_different_protocol_versions_make_tables_of_their_own(es, capsys, tmp_path):
    synthetic_record(tmp_path, "efficientsam-ti", "coco-box", {"mIoU": 75.0})
    synthetic_record(tmp_path, "efficientsam-s", "coco-box", {"mIoU": 76.0}, version=2)
    rc, out, err = _run_cli(es, capsys, "report", str(tmp_path), "--format", "latex")
    assert rc == 0, err
    assert out.count(r"\begin{table}") == 2 and "coco-box@2" in out and "another protocol version" in out


def test_refuses_two_disagreeing_records_of_one_model_and_protocol(es, capsys, tmp_path):
    synthetic_record(tmp_path, "efficientsam-s", "coco-box", {"mIoU": 76.0}, folder="a")
    synthetic_record(tmp_path, "efficientsam-s", "coco-box", {"mIoU": 76.5}, folder="b")
    rc, _, err = _run_cli(es, capsys, "report", str(tmp_path))
    assert rc == 2 and "disagree" in err and "same settings, different numbers" in err


def test_identical_copies_of_a_record_count_once(es, capsys, sample_runs, tmp_path):
    shutil.copytree(sample_runs / "box-fill" / "coco-box", tmp_path / "copy")
    rc, out, _ = _run_cli(es, capsys, "report", str(sample_runs), str(tmp_path / "copy"), "--table", "4")
    assert rc == 0 and len(re.findall(r"\| box-fill +\|", out)) == 1


def test_a_model_variant_gets_no_paper_value_and_a_note(es, capsys, tmp_path):
    synthetic_record(
        tmp_path,
        "efficientsam-s",
        "coco-box",
        {"mIoU": 60.0},
        options={"mask_choice": "single"},
        folder="efficientsam-s+mask_choice=single",
    )
    path = tmp_path / "efficientsam-s+mask_choice=single" / "coco-box" / "record.json"
    rec = json.loads(path.read_text())
    rec["schema_version"], rec["name"] = 2, "efficientsam-s+mask_choice=single"
    path.write_text(json.dumps(rec))
    rc, out, _ = _run_cli(es, capsys, "report", str(tmp_path))
    assert rc == 0 and re.search(
        r"\| efficientsam-s\+mask_choice=single +\| +60\.0 \|", out
    )  # no paper value
    assert (
        "No paper value beside efficientsam-s+mask_choice=single: other protocol options than the paper's"
        in out
    )
    assert "Row options of efficientsam-s+mask_choice=single: mask_choice=single" in out


def test_a_quoted_value_with_other_column_options_stands_in_that_column_only(es, capsys, tmp_path):
    # EfficientViT-SAM's XL1 box mIoU was measured with the annotation box, crowds included
    for folder, options, value in (
        ("efficientvit-sam-xl1", {}, 79.0),
        (
            "efficientvit-sam-xl1+box_source=ann+include_crowd=true",
            {"box_source": "ann", "include_crowd": True},
            79.5,
        ),
    ):
        synthetic_record(
            tmp_path, "efficientvit-sam-xl1", "coco-box", {"mIoU": value}, options, folder=folder, name=folder
        )
    rc, out, err = _run_cli(es, capsys, "report", str(tmp_path), "--table", "4")
    assert rc == 0, err
    assert "| COCO box | COCO box (box_source=ann, include_crowd=true) |" in re.sub(r" +", " ", out)
    rows = {
        line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| efficientvit")
    }
    # the shipped tight-box column has no quoted value; the annotation-box column has 79.9 and a Δ
    assert re.search(r"\| +79\.0 \| +– \|", rows["efficientvit-sam-xl1"])
    assert "79.5 (79.9 [1], -0.4)" in rows["efficientvit-sam-xl1+box_source=ann+include_crowd=true"]
    assert "EfficientViT-SAM (Zhang et al., 2024" in out
    assert "no paper value stands beside them" not in out


def test_a_paper_measured_on_its_own_detection_file_gets_no_delta(es, capsys, tmp_path):
    metrics = {"AP": 45.0, "APS": 28.0, "APM": 49.0, "APL": 63.0}
    synthetic_record(tmp_path, "efficientvit-sam-l0", "coco-vitdet", metrics)
    rc, out, err = _run_cli(es, capsys, "report", str(tmp_path), "--table", "5")
    assert rc == 0, err
    assert re.search(r"\| +45\.0 \|", out) and "45.7" not in out
    assert "the paper prompted with other detection boxes (EfficientViT-SAM's own ViTDet files" in out


def test_missing_paths_and_empty_folders_are_input_errors(es, capsys, tmp_path):
    assert _run_cli(es, capsys, "report", str(tmp_path / "nope"))[0] == 2
    rc, _, err = _run_cli(es, capsys, "report", str(tmp_path))
    assert rc == 2 and "no record.json found" in err
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "record.json").write_text("{}")
    rc, _, err = _run_cli(es, capsys, "report", str(tmp_path))
    assert rc == 2 and "not a run record" in err


# -- exports ----------------------------------------------------------------------------------------------
def test_per_size_and_per_category_exports(es, capsys, sample_runs):
    rc, out, _ = _run_cli(es, capsys, "export", "per-size", str(sample_runs))
    assert rc == 0
    _golden("sample_per_size.csv", _stable_ids(out))
    rc, out, _ = _run_cli(es, capsys, "export", "per-category", str(sample_runs / "box-fill" / "coco-box"))
    assert rc == 0
    rows = out.splitlines()
    assert (
        rows[0]
        == "name,model,protocol_id,overrides,options_hash,dataset,run_id,category_id,category,metric,value,n"
    )
    record = json.loads((sample_runs / "box-fill" / "coco-box" / "record.json").read_text())
    assert len(rows) - 1 == len(record["per_category"])
    n_total = sum(int(r.split(",")[-1]) for r in rows[1:])
    assert n_total == record["counts"]["instances"]


def test_per_category_export_includes_ap_and_names_records_without(es, capsys, sample_runs, tmp_path):
    """AP records carry per-category AP / APS / APM / APL (from the evaluator); an old AP record without
    them is named on stderr, never silently dropped."""
    run = sample_runs / "box-fill" / "coco-vitdet"
    record = json.loads((run / "record.json").read_text())
    rc, out, err = _run_cli(es, capsys, "export", "per-category", str(run))
    assert rc == 0 and err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["metric"] for r in rows} == {"AP", "APS", "APM", "APL"}
    assert len(rows) == 4 * len(record["per_category"]) > 0
    for r in rows:
        entry = record["per_category"][r["category_id"]]
        assert r["category"] == entry["name"] and int(r["n"]) == entry["n"]
        assert (r["value"] == "") == (entry[r["metric"]] is None)
    # an AP record written before per-category AP was recorded
    old = tmp_path / "old" / "box-fill" / "coco-vitdet"
    shutil.copytree(run, old)
    record["per_category"] = {}
    (old / "record.json").write_text(json.dumps(record))
    rc, out, err = _run_cli(es, capsys, "export", "per-category", str(tmp_path / "old"))
    assert rc == 0 and out.strip() == ""
    assert "box-fill coco-vitdet@1" in err and "no per-category AP in its record" in err


# -- gates ---------------------------------------------------------------------------------------------------
def _gates_file(path: Path, rows: list[dict]) -> Path:
    def val(v):
        return json.dumps(v) if isinstance(v, str) else repr(v)

    path.write_text(
        "".join("[[gate]]\n" + "".join(f"{k} = {val(v)}\n" for k, v in r.items()) + "\n" for r in rows)
    )
    return path


def _box_fill_gate(sample_runs: Path, tolerance: float) -> dict:
    rec = json.loads((sample_runs / "box-fill" / "coco-box" / "record.json").read_text())
    return {
        "model": "box-fill",
        "protocol": "coco-box@1",
        "options_hash": rec["protocol"]["options_hash"],
        "metric": "mIoU",
        "expected": rec["metrics"]["mIoU"],
        "tolerance": tolerance,
        "run_id": rec["run_id"],
    }


def _moved_copy(sample_runs: Path, dest: Path, metric_value) -> Path:
    shutil.copytree(sample_runs / "box-fill" / "coco-box", dest / "box-fill" / "coco-box")
    path = dest / "box-fill" / "coco-box" / "record.json"
    rec = json.loads(path.read_text())
    rec["metrics"]["mIoU"] = metric_value(rec["metrics"]["mIoU"])
    path.write_text(json.dumps(rec))
    return dest


def test_gate_passes_within_and_fails_beyond_tolerance(es, capsys, sample_runs, tmp_path):
    gates = _gates_file(tmp_path / "g.toml", [_box_fill_gate(sample_runs, 0.01)])
    rc, out, _ = _run_cli(es, capsys, "gate", str(gates), str(sample_runs))
    assert rc == 0 and "| ok |" in out and "1 of 1 gates passed" in out
    within = _moved_copy(sample_runs, tmp_path / "within", lambda v: v + 0.009)
    rc, out, _ = _run_cli(es, capsys, "gate", str(gates), str(within))
    assert rc == 0 and "+0.009000" in out
    beyond = _moved_copy(sample_runs, tmp_path / "beyond", lambda v: v - 0.011)
    rc, out, err = _run_cli(es, capsys, "gate", str(gates), str(beyond))
    assert rc == 1 and "| MISS |" in out and "-0.011000" in out and "1 of 1 gates failed" in err


def test_gate_fails_on_null_metric_missing_record_and_changed_options(es, capsys, sample_runs, tmp_path):
    row = _box_fill_gate(sample_runs, 1.0)
    nulled = _moved_copy(sample_runs, tmp_path / "null", lambda v: None)
    rc, out, _ = _run_cli(es, capsys, "gate", str(_gates_file(tmp_path / "g.toml", [row])), str(nulled))
    assert rc == 1 and "NO VALUE" in out
    nan = _moved_copy(sample_runs, tmp_path / "nan", lambda v: float("nan"))  # json writes NaN
    rc, out, _ = _run_cli(es, capsys, "gate", str(_gates_file(tmp_path / "g.toml", [row])), str(nan))
    assert rc == 1 and "NO VALUE (mIoU is nan)" in out
    missing = {**row, "model": "no-such-model"}
    rc, out, _ = _run_cli(
        es, capsys, "gate", str(_gates_file(tmp_path / "g2.toml", [missing])), str(sample_runs)
    )
    assert rc == 1 and "NO RECORD" in out
    other = {**row, "options_hash": "0" * 16}
    rc, out, _ = _run_cli(
        es, capsys, "gate", str(_gates_file(tmp_path / "g3.toml", [other])), str(sample_runs)
    )
    assert rc == 1 and "record options_hash" in out
    rc, _, err = _run_cli(es, capsys, "gate", str(_gates_file(tmp_path / "g4.toml", [{"model": "x"}])))
    assert rc == 2 and "missing 'protocol'" in err


def test_gate_failures_only_prints_only_the_misses(es, capsys, sample_runs, tmp_path):
    ok = _box_fill_gate(sample_runs, 0.01)
    miss = {**ok, "metric": "mIoU_S", "expected": 0.0}
    gates = _gates_file(tmp_path / "g.toml", [ok, miss])
    rc, full, _ = _run_cli(es, capsys, "gate", str(gates), str(sample_runs))
    rc_only, only, err = _run_cli(es, capsys, "gate", "--failures-only", str(gates), str(sample_runs))
    assert rc == rc_only == 1 and "1 of 2 gates failed" in err
    assert "| mIoU |" in full and "| mIoU |" not in only
    assert "| mIoU_S |" in only and "| MISS |" in only and "1 of 2 gates passed; 1 failed" in only
    passing = _gates_file(tmp_path / "p.toml", [ok])
    rc, only, _ = _run_cli(es, capsys, "gate", "--failures-only", str(passing), str(sample_runs))
    assert rc == 0 and only == "1 of 1 gates passed\n"


def test_gate_write_makes_a_file_that_holds_for_its_runs_and_not_for_changed_ones(
    es, capsys, sample_runs, tmp_path
):
    out = tmp_path / "gates" / "written.toml"
    rc, _, err = _run_cli(
        es,
        capsys,
        "gate",
        "--write",
        str(out),
        "--tolerance",
        "1e-6",
        "--tolerance",
        "mIoU=0.05",
        str(sample_runs),
    )
    assert rc == 0, err
    records = find_records([sample_runs])
    text = out.read_text()
    rows = tomllib.loads(text)["gate"]
    assert len(rows) == sum(len(r.metrics) for r in records) and f"{len(rows)} gates from 7 records" in err
    for row in rows:
        assert row["tolerance"] == (0.05 if row["metric"] == "mIoU" else 1e-6)
    assert "tolerance = 1e-6," in text  # as typed
    # the header documents the commands that made the records
    header = text.split("gate = [")[0]
    assert all(line.startswith("#") for line in header.strip().splitlines())
    flat = re.sub(r" \\\n#\s+", " ", header)
    assert "evalsuite run coco-box --model box-fill --data sample --out " in flat
    assert "evalsuite run coco-1click coco-3click coco-box lvis-box --model oracle --data sample" in flat
    assert f"--boxes {sample_runs / 'boxes' / 'coco_seed0.json'}" in flat
    assert "--tolerance mIoU=0.05" in flat and "sha256" in flat
    # passes against the same runs, fails against a changed one
    rc, check, _ = _run_cli(es, capsys, "gate", str(out), str(sample_runs))
    assert rc == 0 and f"{len(rows)} of {len(rows)} gates passed" in check
    changed = tmp_path / "changed"
    shutil.copytree(sample_runs, changed, ignore=shutil.ignore_patterns("box-fill"))
    _moved_copy(sample_runs, changed, lambda v: v + 0.1)
    shutil.copytree(sample_runs / "box-fill" / "coco-vitdet", changed / "box-fill" / "coco-vitdet")
    rc, check, err = _run_cli(es, capsys, "gate", "--failures-only", str(out), str(changed))
    assert rc == 1 and f"1 of {len(rows)} gates failed" in err and check.count("| MISS |") == 1
    assert "| box-fill | coco-box@1 | mIoU | 60.392742 | 60.492742 |" in check


def test_gate_write_reproduces_the_sample_gates(es, capsys, sample_runs, tmp_path):
    """gates/sample.toml could be regenerated by `gate --write`: same values, options and tolerance."""
    out = tmp_path / "s.toml"
    rc, _, err = _run_cli(es, capsys, "gate", "--write", str(out), "--tolerance", "1e-6", str(sample_runs))
    assert rc == 0, err
    written = {(r["model"], r["protocol"], r["metric"]): r for r in tomllib.loads(out.read_text())["gate"]}
    shipped = tomllib.loads((REPO / "gates" / "sample.toml").read_text())["gate"]
    common = [r for r in shipped if (r["model"], r["protocol"], r["metric"]) in written]
    assert len(common) == len(written) == 44  # coco-vitdet: COCOeval's 12 numbers per record
    for r in common:
        w = written[(r["model"], r["protocol"], r["metric"])]
        assert (w["options_hash"], w["tolerance"], w["run_id"]) == (
            r["options_hash"],
            r["tolerance"],
            r["run_id"],
        )
        assert abs(w["expected"] - r["expected"]) <= r["tolerance"]


def test_gate_write_options_and_refusals(es, capsys, sample_runs, tmp_path):
    out = tmp_path / "g.toml"
    rc, _, err = _run_cli(es, capsys, "gate", "--write", str(out), str(sample_runs))
    assert rc == 2 and "no tolerance for" in err and not out.exists()
    rc, _, err = _run_cli(
        es, capsys, "gate", "--write", str(out), "--metric", "AP", "--tolerance", "AP=0.5", str(sample_runs)
    )
    assert rc == 0, err
    rows = tomllib.loads(out.read_text())["gate"]
    assert {(r["model"], r["metric"]) for r in rows} == {("oracle", "AP"), ("box-fill", "AP")}
    assert "coco-box@1: none of the chosen metrics" in err
    rc, _, err = _run_cli(
        es, capsys, "gate", "--write", str(out), "--metric", "mIoU_X", "--tolerance", "1", str(sample_runs)
    )
    assert rc == 2 and "mIoU_X: no record has it" in err
    rc, _, err = _run_cli(es, capsys, "gate", "--write", str(out), "--tolerance", "-1", str(sample_runs))
    assert rc == 2 and "finite number >= 0" in err
    rc, _, err = _run_cli(es, capsys, "gate", "--tolerance", "1", str(out), str(sample_runs))
    assert rc == 2 and "go with --write" in err
    # a null metric cannot be expected: left out, said on stderr
    nulled = _moved_copy(sample_runs, tmp_path / "null", lambda v: None)
    rc, _, err = _run_cli(es, capsys, "gate", "--write", str(out), "--tolerance", "1e-6", str(nulled))
    assert rc == 0 and "mIoU: no value (None); no gate" in err
    assert {r["metric"] for r in tomllib.loads(out.read_text())["gate"]} == {"mIoU_S", "mIoU_M", "mIoU_L"}


def test_sample_gates_hold_for_fresh_runs(es, capsys, sample_runs, tmp_path):
    """gates/sample.toml's expectations, for the protocols run here, match runs made now."""
    rows = tomllib.loads((REPO / "gates" / "sample.toml").read_text())["gate"]
    have = {(r.name, r.protocol.id) for r in find_records([sample_runs])}
    subset = [r for r in rows if (r["model"], r["protocol"]) in have]
    assert len({(r["model"], r["protocol"]) for r in subset}) == len(have) == 7
    rc, out, _ = _run_cli(es, capsys, "gate", str(_gates_file(tmp_path / "s.toml", subset)), str(sample_runs))
    assert rc == 0, out
    protos = {p.id for p in load_protocols().values()}
    assert {r["protocol"] for r in rows} <= protos
    assert all(r["run_id"].startswith(f"{r['model']}__{r['protocol'].split('@')[0]}__") for r in rows)


# -- paired bootstrap ----------------------------------------------------------------------------------------
def test_bootstrap_hand_computed_cases():
    # d = [1, 0]: resampled means are 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4 -> 95 % CI [0, 1]
    r = paired_bootstrap([1.0, 0.0], [0.0, 0.0], resamples=4000, seed=3)
    assert (r.delta, r.ci_low, r.ci_high, r.mean_a, r.mean_b) == (50.0, 0.0, 100.0, 50.0, 0.0)
    # d = [0, 0, 1]: mean = K/3 with K ~ Binomial(3, 1/3); P(K <= 2) = 26/27 = 0.963
    r = paired_bootstrap([0.5, 0.5, 1.0], [0.5, 0.5, 0.0], resamples=20000, seed=0, confidence=0.90)
    assert r.ci_low == 0.0 and r.ci_high == pytest.approx(200 / 3)  # 95th percentile: K = 2 -> 2/3
    r = paired_bootstrap([0.5, 0.5, 1.0], [0.5, 0.5, 0.0], resamples=20000, seed=0, confidence=0.95)
    assert r.ci_high == 100.0  # 97.5th percentile lies beyond 26/27: K = 3
    # a constant difference has no spread
    a = np.array([0.8, 0.6, 0.7, 0.9])
    r = paired_bootstrap(a, a - 0.1, resamples=500)
    assert (
        r.delta == pytest.approx(10.0)
        and r.ci_low == pytest.approx(10.0)
        and r.ci_high == pytest.approx(10.0)
    )


def test_bootstrap_is_seeded_antisymmetric_and_chunk_independent():
    rng = np.random.default_rng(7)
    a, b = rng.random(101), rng.random(101)
    r1 = paired_bootstrap(a, b, resamples=999, seed=5)
    assert r1 == paired_bootstrap(a, b, resamples=999, seed=5, chunk_elements=101 * 7)
    r2 = paired_bootstrap(b, a, resamples=999, seed=5)
    assert r2.delta == pytest.approx(-r1.delta) and r2.ci_low == pytest.approx(-r1.ci_high)
    assert r1 != paired_bootstrap(a, b, resamples=999, seed=6)
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 2.0])


def test_pairing_refuses_different_instance_sets():
    a = [{"image_id": 1, "ann_id": 1, "iou": 0.5}, {"image_id": 1, "ann_id": 2, "iou": 0.7}]
    keys, ia, ib = pair_instances(a, list(reversed(a)))
    assert keys == [(1, 1), (1, 2)] and list(ia) == list(ib) == [0.5, 0.7]
    with pytest.raises(ValueError, match="1 only in A"):
        pair_instances(a, a[:1])
    b = [{**a[0], "prompt": {"box": [0, 0, 2, 2]}}, {**a[1]}]
    pair_instances(a, b)
    with pytest.raises(ValueError, match="prompted differently"):
        pair_instances(a, b, same_prompts=True)


def test_compare_cli(es, capsys, sample_runs, tmp_path):
    a, b = sample_runs / "oracle" / "coco-box", sample_runs / "box-fill" / "coco-box"
    rc, out, err = _run_cli(es, capsys, "compare", str(a), str(b), "--resamples", "2000")
    assert rc == 0, err
    rec = json.loads((b / "record.json").read_text())
    m = rec["metrics"]["mIoU"]
    assert re.search(rf"\| all +\| +202 \| +100\.00 \| +{m:.2f} \| +\+{100 - m:.2f} \|", out), out
    assert re.search(r"\| S +\|", out) and "2000 resamples, seed 0" in out
    assert "A and B differ in: model oracle vs box-fill" in out
    # drop one instance from B: the sets differ
    shutil.copytree(b, tmp_path / "b")
    lines = (tmp_path / "b" / "instances.jsonl").read_text().splitlines()
    (tmp_path / "b" / "instances.jsonl").write_text("\n".join(lines[1:]) + "\n")
    rec["counts"]["instances"] -= 1
    (tmp_path / "b" / "record.json").write_text(json.dumps(rec))
    rc, _, err = _run_cli(es, capsys, "compare", str(a), str(tmp_path / "b"))
    assert rc == 2 and "different instances" in err
    rc, _, err = _run_cli(es, capsys, "compare", str(a), str(sample_runs / "oracle" / "coco-1click"))
    assert rc == 2 and "not measured on the same things" in err and "coco-box@1 vs coco-1click@1" in err


def _edited_copy(src: Path, dest: Path, edit) -> Path:
    shutil.copytree(src, dest)
    rec = json.loads((dest / "record.json").read_text())
    edit(rec)
    (dest / "record.json").write_text(json.dumps(rec))
    return dest


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda r: r["dataset"].update(limit=3, image_ids_sha256="0" * 64) or r["counts"].update(images=3),
            "image ids: all 26 images vs --limit 3 (3 images)",
        ),
        (
            lambda r: r["dataset"].update(image_ids_sha256="0" * 64),
            "image ids: all 26 images sha256 ",
        ),
        (
            lambda r: r["dataset"].update(annotation_file="/elsewhere/ann.json", annotation_sha256="e" * 64),
            "annotation file (",
        ),
        (lambda r: r["protocol"].update(version=2, id="coco-box@2"), "protocol coco-box@1 vs coco-box@2"),
    ],
)
def test_compare_refusal_names_what_differs(es, capsys, sample_runs, tmp_path, edit, named):
    a = sample_runs / "oracle" / "coco-box"
    b = _edited_copy(sample_runs / "box-fill" / "coco-box", tmp_path / "b", edit)
    rc, _, err = _run_cli(es, capsys, "compare", str(a), str(b))
    assert rc == 2 and "not measured on the same things" in err and named in err, err
    # the two sides of each named difference are never the same text
    for part in err.split("things: ")[1].split("\n")[0].split("; "):
        left, _, right = part.partition(" vs ")
        assert left.split(": ")[-1] != right, part


def test_compare_refuses_other_detections_clicks_and_click_seeds(es, capsys, sample_runs, tmp_path):
    vitdet = sample_runs / "box-fill" / "coco-vitdet"
    other_boxes = _edited_copy(
        vitdet, tmp_path / "boxes", lambda r: r["boxes"].update(file="other.json", sha256="f" * 64)
    )
    rc, _, err = _run_cli(
        es, capsys, "compare", str(sample_runs / "oracle" / "coco-vitdet"), str(other_boxes)
    )
    assert rc == 2 and "detections file: " in err and "other.json sha256 ffffffffffff" in err
    click = sample_runs / "oracle" / "coco-1click"
    seed = _edited_copy(click, tmp_path / "seed", lambda r: r.update(seed=7))
    rc, _, err = _run_cli(es, capsys, "compare", str(click), str(seed))
    assert rc == 2 and "random-click seed (--seed): 0 vs 7" in err
    clicks = _edited_copy(click, tmp_path / "clicks", lambda r: r["protocol"]["options"].update(clicks=3))
    rc, _, err = _run_cli(es, capsys, "compare", str(click), str(clicks))
    assert rc == 2 and "options that change what is measured: clicks=as shipped vs 3" in err


def test_compare_ap_bootstraps_over_images(es, capsys, sample_runs, tmp_path):
    """AP records: A − B in AP points over images (overall and S/M/L), from each run's masks; the
    full-sample A and B are the records' own AP (the masks re-scored by the official evaluator)."""
    a, b = sample_runs / "oracle" / "coco-vitdet", sample_runs / "box-fill" / "coco-vitdet"
    rc, out, err = _run_cli(es, capsys, "compare", str(a), str(b), "--format", "csv")
    assert rc == 0, err
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(out))}
    assert list(rows) == ["AP", "APS", "APM", "APL"]
    ra, rb = (json.loads((x / "record.json").read_text())["metrics"] for x in (a, b))
    for metric, r in rows.items():
        assert int(r["images"]) == 26 and int(r["undefined"]) == 0
        assert float(r["AP_A"]) == pytest.approx(ra[metric], abs=1e-6)
        assert float(r["AP_B"]) == pytest.approx(rb[metric], abs=1e-6)
        assert float(r["delta"]) == pytest.approx(ra[metric] - rb[metric], abs=1e-6)
        assert float(r["ci_low"]) <= float(r["delta"]) <= float(r["ci_high"])
    rc, md, _ = _run_cli(es, capsys, "compare", str(b), str(a), "--resamples", "300", "--seed", "3")
    assert rc == 0 and "paired percentile bootstrap over images" in md and "300 resamples, seed 3" in md
    assert re.search(r"\| AP +\| +26 \| +11\.90 \| +99\.65 \| +-87\.75 \| +\[-\d", md), md
    rc, md, _ = _run_cli(es, capsys, "compare", str(a), str(a))
    assert rc == 0 and "1000 resamples" in md and "A and B differ in: nothing (the same run twice)" in md
    assert re.search(r"\| APL +\| +26 \| +100\.00 \| +100\.00 \| +\+0\.00 \| +\[\+0\.00, \+0\.00\] \|", md), (
        md
    )
    # the masks must be there and belong to the record; the annotation file must be the scored one
    gone = _edited_copy(b, tmp_path / "gone", lambda r: None)
    (gone / "segm_results.json").unlink()
    rc, _, err = _run_cli(es, capsys, "compare", str(a), str(gone))
    assert rc == 2 and "segm_results.json" in err
    wrong = _edited_copy(b, tmp_path / "wrong", lambda r: r["metrics"].update(AP=50.0))
    rc, _, err = _run_cli(es, capsys, "compare", str(a), str(wrong))
    assert rc == 2 and "gives AP 11.900054, the record says 50.0" in err
    lvis_ann = REPO / "evalsuite" / "data" / "sample_data" / "annotations" / "lvis_v1_val.json"
    rc, _, err = _run_cli(es, capsys, "compare", str(a), str(b), "--ann", str(lvis_ann))
    assert rc == 2 and "SHA-256" in err and "--ann" in err
    rc, _, err = _run_cli(es, capsys, "compare", str(a), str(sample_runs / "box-fill" / "coco-box"))
    assert rc == 2 and "protocol coco-vitdet@1 vs coco-box@1; task ap vs miou" in err


def test_compare_ap_on_lvis_with_a_faster_backend_record(es, capsys, tmp_path):
    """LVIS: the frequency groups too; a run scored by faster-coco-eval is re-scored by the official
    evaluator for the bootstrap and must reproduce its record."""
    boxes = tmp_path / "boxes.json"
    assert es(["make-boxes", "lvis", "--data", "sample", "--seed", "0", "--out", str(boxes)]) == 0
    common = {"data": "sample", "out": tmp_path, "progress": False, "workers": 0, "boxes": boxes}
    run(RunConfig(["lvis-vitdet"], "oracle", **common))
    run(RunConfig(["lvis-vitdet"], "box-fill", ap_backend="faster", **common))
    capsys.readouterr()
    a, b = tmp_path / "oracle" / "lvis-vitdet", tmp_path / "box-fill" / "lvis-vitdet"
    rc, out, err = _run_cli(es, capsys, "compare", str(a), str(b), "--format", "csv", "--resamples", "200")
    assert rc == 0, err
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(out))}
    assert list(rows) == ["AP", "APS", "APM", "APL", "APr", "APc", "APf"]
    rb = json.loads((b / "record.json").read_text())
    assert rb["scoring"]["backend"] == "faster"
    for metric, r in rows.items():
        assert float(r["AP_B"]) == pytest.approx(rb["metrics"][metric], abs=1e-6)
        assert float(r["ci_low"]) <= float(r["delta"]) <= float(r["ci_high"])


def test_compare_from_python_defaults_resamples_by_protocol_kind(sample_runs):
    from evalsuite import api

    res = api.load(sample_runs)
    ap = res.compare("oracle", "box-fill", protocol="coco-vitdet")
    assert (
        ap.attrs["resamples"] == 1000
        and ap.attrs["kind"] == "ap"
        and list(ap["metric"]) == ["AP", "APS", "APM", "APL"]
    )
    miou = res.compare("oracle", "box-fill", protocol="coco-box", resamples=500)
    assert miou.attrs["resamples"] == 500 and list(miou["instances"]) == ["all", "S", "M", "L"]


# -- NoC --------------------------------------------------------------------------------------------------
def test_noc_hand_computed():
    assert noc([0.5, 0.86, 0.91], 0.85, max_clicks=3) == 2
    assert noc([0.5, 0.86, 0.91], 0.90, max_clicks=3) == 3
    assert noc([0.85], 0.85, max_clicks=20) == 1  # reaching the threshold exactly counts
    assert noc([0.5] * 20, 0.85) == 20  # never reached: the cap
    assert noc([0.1] * 5 + [0.99], 0.85, max_clicks=5) == 5  # clicks beyond the cap do not count
    with pytest.raises(ValueError, match="need 20"):
        noc([0.5, 0.6], 0.85)
    with pytest.raises(ValueError):
        noc([0.9], 85)
    s = summarize_noc([[0.9] * 20, [0.5] * 19 + [0.86]])
    assert s.noc == {0.85: 10.5, 0.90: 10.5}
    assert s.failures == {0.85: 0, 0.90: 1}
    assert s.miou_at[0] == pytest.approx(70.0) and s.miou_at[19] == pytest.approx(88.0)


class DiskRunner(Runner):
    """A deterministic point model: disks around positive clicks minus disks around negative ones."""

    name = "disk"
    prompt_kinds = frozenset({PROMPT_POINTS})
    RADII = (5, 14, 30)

    def set_image(self, image: np.ndarray) -> None:
        self.h, self.w = image.shape[:2]

    def predict(self, boxes=None, points=None, point_labels=None, multimask=True) -> Prediction:
        yy, xx = np.mgrid[: self.h, : self.w]
        n = len(points)
        masks = np.zeros((n, len(self.RADII), self.h, self.w), dtype=bool)
        for i in range(n):
            for j, r in enumerate(self.RADII):
                pos = np.zeros((self.h, self.w), dtype=bool)
                neg = np.zeros_like(pos)
                for (x, y), lab in zip(points[i], point_labels[i], strict=True):
                    disk = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
                    pos, neg = (pos | disk, neg) if lab == 1 else (pos, neg | disk)
                masks[i, j] = pos & ~neg
        return Prediction(torch.from_numpy(masks), torch.tensor([[0.2, 0.9, 0.5]] * n))


def test_noc_task_and_the_sam_click_rule_are_one_clicker():
    """NoC's IoU after click k equals what the k-click protocol with click_rule=sam scores, click by click."""
    reader = locate("coco", "sample").open()
    sample = reader.sample(reader.image_ids()[1])
    cache = MaskCache(sample)
    runner = DiskRunner()
    runner.set_image(load_rgb(sample.path))
    ctx = TaskContext(reader=reader, image_ids=[sample.image_id])
    miou = MIoUTask(get_protocol("coco-3click").with_options({"click_rule": "sam"}), ctx)
    records, _ = miou.run_image(runner, cache)
    nocs, _ = NocTask(get_protocol("coco-noc20").with_options({"clicks": 3}), ctx).run_image(runner, cache)
    gt = select_instances(cache, include_crowd=False)
    assert len(records) == len(nocs) == len(gt.instances) >= 3
    saw_negative = False
    for rec, seq in zip(records, nocs, strict=True):
        assert len(seq.ious) == 3 and seq.ious[-1] == pytest.approx(rec.iou, abs=1e-12)
        assert seq.prompt == rec.prompt
        saw_negative |= 0 in rec.prompt["labels"]
    assert saw_negative  # the loop was exercised beyond the first click


def test_noc_cli_on_the_sample(es, capsys, tmp_path):
    rc, out, err = _run_cli(
        es,
        capsys,
        "noc",
        "--model",
        "oracle",
        "--data",
        "sample",
        "--limit",
        "1",
        "--set",
        "clicks=3",
        "--out",
        str(tmp_path),
    )
    assert rc == 0, err
    folder = tmp_path / "oracle+clicks=3+limit1" / "coco-noc20"
    record = json.loads((folder / "record.json").read_text())
    assert record["metrics"]["NoC@85"] == 1.0 and record["metrics"]["NoF@90"] == 0.0
    assert record["higher_is_better"]["NoC@85"] is False and record["higher_is_better"]["mIoU@3"] is True
    rows = [json.loads(line) for line in (folder / "instances.jsonl").read_text().splitlines()]
    assert len(rows) == record["counts"]["instances"] > 0 and all(r["ious"] == [1.0, 1.0, 1.0] for r in rows)
    assert "coco-noc20@1 (clicks=3)" in out
    rc, _, err = _run_cli(es, capsys, "noc", "--model", "box-fill", "--data", "sample", "--limit", "1")
    assert rc == 2 and "points prompts" in err


def test_records_are_not_modified_by_reporting(es, capsys, sample_runs):
    snapshot = {p: p.read_bytes() for p in sample_runs.rglob("*") if p.is_file()}
    _run_cli(es, capsys, "report", str(sample_runs))
    _run_cli(es, capsys, "export", "per-size", str(sample_runs))
    assert {p: p.read_bytes() for p in sample_runs.rglob("*") if p.is_file()} == snapshot
