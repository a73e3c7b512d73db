"""Machine-readable output and NoC as a first-class result (issues 22 and 21.4).

`report`, `compare`, `gate` and `run` print JSON that validates against the shipped, versioned schemas;
an AP record carries the evaluators' whole summary, equal to pycocotools' ``COCOeval.stats`` and to
``LVISEval.get_results()`` on the same predictions; NoC records make a table, a comparison and a terminal
summary of their own.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from lvis import LVISEval, LVISResults
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import evalsuite
from evalsuite.cli import main
from evalsuite.compat import patch_lvis_numpy_float
from evalsuite.data.readers import PreloadedLVIS
from evalsuite.metrics.ap import COCO_METRICS, LVIS_METRICS
from evalsuite.report.render_json import SCHEMAS, schema
from evalsuite.report.summary import summary_table


def square_clicks(image, prompts, labels):
    """A cheap point model: a 31 px square around each positive click (boxes: the box filled)."""
    prompts = np.asarray(prompts)
    out = np.zeros((len(prompts), *image.shape[:2]), dtype=bool)
    if labels is None:
        for m, (x0, y0, x1, y1) in zip(out, prompts.round().astype(int), strict=True):
            m[y0:y1, x0:x1] = True
        return out
    for m, pts, lab in zip(out, prompts.round().astype(int), labels, strict=True):
        for (x, y), positive in zip(pts, lab, strict=True):
            if positive == 1:
                m[max(0, y - 15) : y + 16, max(0, x - 15) : x + 16] = True
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """box-fill and oracle on coco-box, box-fill on coco-/lvis-vitdet (pseudo-detections), oracle and a
    click-square model on coco-noc20 (1 image, 5 clicks)."""
    out = tmp_path_factory.mktemp("runs")
    for family in ("coco", "lvis"):
        boxes = out / "boxes" / f"{family}.json"
        assert main(["make-boxes", family, "--data", "sample", "--seed", "0", "--out", str(boxes)]) == 0
        evalsuite.evaluate(
            "box-fill", f"{family}-vitdet", data="sample", boxes=boxes, out=out, progress=False, workers=0
        )
    for model in ("box-fill", "oracle"):
        evalsuite.evaluate(model, "coco-box", data="sample", out=out, progress=False, workers=0)
    # 5 clicks, not 20: the SAM clicker's rounds cost seconds on a CPU (the NoC table then has no mIoU@20)
    common = {
        "data": "sample",
        "limit": 1,
        "out": out,
        "progress": False,
        "workers": 0,
        "options": {"clicks": 5},
    }
    evalsuite.evaluate("oracle", "coco-noc20", **common)
    evalsuite.evaluate(square_clicks, "coco-noc20", name="squares", version="1", **common)
    return out


def _json(capsys, *args: str) -> dict:
    capsys.readouterr()
    rc = main(list(args))
    captured = capsys.readouterr()
    assert rc in (0, 1), captured.err
    return json.loads(captured.out)


def _valid(doc: dict) -> dict:
    name = doc["schema"]
    assert doc["schema_version"] == SCHEMAS[name]
    jsonschema.Draft202012Validator.check_schema(schema(name))
    jsonschema.validate(doc, schema(name))
    return doc


def test_every_schema_is_shipped_valid_and_documented():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "json.md").read_text(encoding="utf-8")
    for name, version in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema(name))
        assert schema(name)["properties"]["schema_version"] == {"const": version}
        assert f"`{name}`" in docs, name


def test_report_json_validates_and_says_what_the_markdown_says(runs, capsys):
    doc = _valid(_json(capsys, "report", str(runs), "--format", "json"))
    tables = {t["table"]: t for t in doc["tables"]}
    assert set(tables) == {"4", "5", "NoC"}
    t4 = tables["4"]
    rows = {r["name"]: r for r in t4["rows"]}
    box = [c["title"] for c in t4["columns"]].index("COCO box")
    assert rows["oracle"]["cells"][box]["measured"] == pytest.approx(100.0)
    assert rows["oracle"]["cells"][box]["paper"] is None  # sample data: no paper value, and a note says why
    t5 = tables["5"]
    titles = [c["title"] for c in t5["columns"]]
    # the paper's columns first, then the rest of each dataset's evaluator summary
    assert titles[:4] == ["COCO AP", "COCO APS", "COCO APM", "COCO APL"]
    assert "COCO AR@100" in titles and "LVIS APf" in titles and "LVIS AR@300" in titles
    assert titles.index("COCO ARL") < titles.index("LVIS AP")
    paper_only = _valid(
        _json(capsys, "report", str(runs), "--table", "5", "--columns", "paper", "--format", "json")
    )
    assert [c["title"] for c in paper_only["tables"][0]["columns"]][:4] == titles[:4]
    assert not any("AR" in c["title"] for c in paper_only["tables"][0]["columns"])


def test_ap_records_carry_the_evaluators_whole_summary_equal_to_cocoeval_and_lvis_eval(runs):
    res = evalsuite.load(runs, names="box-fill")
    coco = next(r for r in res.records if r.protocol.name == "coco-vitdet")
    lvis = next(r for r in res.records if r.protocol.name == "lvis-vitdet")
    assert list(coco.metrics) == list(COCO_METRICS) and len(COCO_METRICS) == 12
    assert list(lvis.metrics) == list(LVIS_METRICS)

    gt = json.loads(Path(coco.dataset.annotation_file).read_text())
    dets = json.loads((coco.folder / "segm_results.json").read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), "segm")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    ours = [coco.metrics[m] for m in COCO_METRICS]
    assert ours == pytest.approx([100.0 * s for s in ev.stats], abs=1e-9)

    patch_lvis_numpy_float()
    lgt = json.loads(Path(lvis.dataset.annotation_file).read_text())
    ldets = json.loads((lvis.folder / "segm_results.json").read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        lvis_gt = PreloadedLVIS(copy.deepcopy(lgt))
        lev = LVISEval(lvis_gt, LVISResults(lvis_gt, copy.deepcopy(ldets), max_dets=300), "segm")
        lev.run()
    theirs = lev.get_results()
    keys = ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR@300", "ARs@300", "ARm@300"]
    keys.append("ARl@300")
    for ours_name, their_key in zip(LVIS_METRICS, keys, strict=True):
        expected = theirs[their_key]
        got = lvis.metrics[ours_name]
        assert (got is None and expected == -1) or got == pytest.approx(100.0 * expected, abs=1e-9)


def test_terminal_summary_shows_apf_the_ar_numbers_and_the_noc_columns(runs):
    res = evalsuite.load(runs)
    text = summary_table(res.records)
    assert "APf" in text and "AR@300" in text and "AR@100" in text
    assert "NoC@90" in text and "mIoU@5" in text and "mIoU@4 " not in text
    noc_rows = [line for line in text.splitlines() if line.startswith("| coco-noc20")]
    assert noc_rows and all(re.search(r"\| +\d+\.\d\d \|", line) for line in noc_rows)  # clicks: 2 decimals


def test_run_summary_json(tmp_path, capsys):
    args = [
        "run",
        "coco-box",
        "--model",
        "box-fill",
        "--data",
        "sample",
        "--limit",
        "2",
        "--out",
        str(tmp_path),
    ]
    doc = _valid(_json(capsys, *args, "--format", "json", "--no-progress", "--workers", "0"))
    (run,) = doc["runs"]
    assert run["name"] == "box-fill+limit2" and run["metrics"]["mIoU"] > 0
    assert Path(run["record"]).is_file() and "sample data" in " ".join(run["notes"])


def test_compare_json_for_miou_ap_and_noc_records(runs, capsys):
    miou = _valid(
        _json(
            capsys,
            "compare",
            str(runs / "oracle" / "coco-box"),
            str(runs / "box-fill" / "coco-box"),
            "--format",
            "json",
            "--resamples",
            "200",
        )
    )
    assert miou["kind"] == "miou" and miou["rows"][0]["subset"] == "all" and miou["rows"][0]["delta"] > 0
    noc = _valid(
        _json(
            capsys,
            "compare",
            str(runs / "squares" / "coco-noc20"),
            str(runs / "oracle+clicks=5+limit1" / "coco-noc20"),
            "--format",
            "json",
        )
    )
    assert noc["kind"] == "noc" and noc["unit"] == "clicks"
    first = noc["rows"][0]
    assert (first["metric"], first["subset"]) == ("NoC@85", "all")
    assert first["b"] == pytest.approx(1.0)  # the oracle is right at the first click
    assert first["a"] - first["b"] == pytest.approx(first["delta"])


def test_compare_of_noc_records_from_python_is_a_paired_bootstrap_in_clicks(runs):
    res = evalsuite.load(runs)
    cmp = res.compare("squares", "oracle+clicks=5+limit1")
    frame = cmp.frame
    assert set(frame["metric"]) == {"NoC@85", "NoC@90"}
    assert (frame["ci_low"] <= frame["delta"]).all() and (frame["delta"] <= frame["ci_high"]).all()
    assert "clicks" in repr(cmp) and "<table" in cmp._repr_html_()


def test_noc_table_in_the_report(runs, capsys):
    capsys.readouterr()
    assert main(["report", str(runs), "--table", "noc"]) == 0
    out = capsys.readouterr().out
    assert "NoC table (evalsuite, measured)" in out
    for column in ("COCO NoC@85", "COCO NoC@90", "COCO NoF@85", "COCO mIoU@1", "COCO mIoU@5"):
        assert column in out
    assert "mIoU@20" not in out  # a column no record has (these runs stop at 5 clicks) is left out
    oracle = next(line for line in out.splitlines() if line.startswith("| oracle+clicks=5+limit1"))
    assert "1.00" in oracle and "100.0" in oracle  # clicks to two places, mIoU to one


def test_gate_json_lists_every_verdict(runs, capsys, tmp_path):
    gates = tmp_path / "g.toml"
    assert main(["gate", "--write", str(gates), "--tolerance", "1e-6", str(runs / "oracle")]) == 0
    doc = _valid(_json(capsys, "gate", str(gates), str(runs), "--format", "json"))
    assert doc["passed"] and doc["failed"] == 0 and doc["total"] == len(doc["gates"]) > 0
    text = gates.read_text().replace("expected = 100.0", "expected = 99.0", 1)
    gates.write_text(text)
    capsys.readouterr()
    assert main(["gate", str(gates), str(runs), "--format", "json", "--failures-only"]) == 1
    doc = _valid(json.loads(capsys.readouterr().out))
    assert not doc["passed"] and doc["failed"] == 1 and [g["status"] for g in doc["gates"]] == ["MISS"]


def test_noc_help_offers_no_ap_options(capsys):
    assert main(["noc", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--dataset" in text and "--format" in text
    for ap_only in ("--boxes", "--ap-backend", "--refine"):
        assert ap_only not in text
