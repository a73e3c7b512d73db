"""The Python API in a notebook (issue 22): docs/python_api.ipynb runs headlessly in a real Jupyter kernel
(nbclient) and every object renders as HTML; the objects' plain-text forms stay useful outside Jupyter."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest
from matplotlib.figure import Figure

import evalsuite
from evalsuite.report.views import Comparison, GateOutcome, TableView

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "python_api.ipynb"


def _outputs(nb, tag: str) -> list[dict]:
    (cell,) = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    return cell["outputs"]


def _html(nb, tag: str) -> str:
    html = [o["data"]["text/html"] for o in _outputs(nb, tag) if "text/html" in o.get("data", {})]
    assert html, f"cell {tag!r} rendered no HTML"
    return "".join(html)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    folder = tmp_path_factory.mktemp("nb")
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    assert list(folder.iterdir()) == []  # nothing written beside the notebook (records stay in memory)
    return nb


@pytest.mark.slow
def test_the_notebook_runs_and_every_object_renders_as_html(executed):
    names = "".join(o["data"]["text/plain"] for o in _outputs(executed, "discover") if "data" in o)
    for name in ("'evaluate'", "'load'", "'Results'", "'RunConfig'"):
        assert name in names  # tab completion finds the entry points
    widgets = [
        o
        for o in _outputs(executed, "evaluate")
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets, "evaluate() shows tqdm's notebook widget by default in Jupyter"
    results = _html(executed, "results")
    assert (
        "evalsuite Results: 3 records" in results and "oracle+limit3" in results and "sample data" in results
    )
    table = _html(executed, "table")
    assert "<table" in table and "Table 4 (evalsuite, measured)" in table
    assert ">COCO</th>" in table and ">box</th>" in table  # grouped column heads, as in the paper
    assert "100.0" in table and "box-fill+limit3" in table  # the oracle scores 100
    compare = _html(executed, "compare")
    assert "95% CI" in compare and "Δ (A − B)" in compare and "instances" in compare
    gate = _html(executed, "gate")
    assert "1 of 1 gates passed" in gate and "<table" in gate
    plot = _outputs(executed, "plot")
    assert any("image/png" in o.get("data", {}) for o in plot), "the figure shows inline"
    assert "<table" in _html(executed, "export") and "mIoU_S" in _html(executed, "export")


def test_objects_speak_plainly_outside_jupyter():
    res = evalsuite.evaluate("box-fill", "coco-box", data="sample", limit=2, progress=False)
    res += evalsuite.evaluate("oracle", "coco-box", data="sample", limit=2, progress=False)
    assert repr(res).startswith("Results(2 records: box-fill+limit2 coco-box@1 mIoU ")
    assert "<table" in res._repr_html_()
    table = res.table(4)
    assert isinstance(table, TableView) and "**Table 4 (evalsuite, measured)." in str(table)
    assert "box-fill+limit2" in table and table.markdown == res.table(4, format="md")
    assert "\\begin{tabular}" in table.latex and table.csv.startswith("table,row,")
    assert isinstance(table.frame, pd.DataFrame) and table.to_dict()["tables"][0]["table"] == "4"
    assert repr(table).startswith("<TableView Table 4: 2 rows")
    cmp = res.compare("oracle+limit2", "box-fill+limit2", resamples=200)
    assert isinstance(cmp, Comparison) and "mIoU Δ +" in repr(cmp) and "| all " in str(cmp)
    assert cmp["delta"].iloc[0] == cmp.frame["delta"].iloc[0] > 0  # indexes like the DataFrame it wraps
    export = res.export("per-size")
    assert isinstance(export, pd.DataFrame) and res.export("per-size", format="csv").startswith("name,")
    fig = res.plot("sizes")
    assert isinstance(fig, Figure) and fig._repr_png_()[:4] == b"\x89PNG"
    with pytest.raises(evalsuite.InputError, match="unknown plot"):
        res.plot("pie")
    assert {"evaluate", "load", "Results", "RunConfig", "InputError"} <= set(dir(evalsuite))
    assert set(evalsuite.__all__) <= set(dir(evalsuite))


def test_a_gate_outcome_says_its_verdict(tmp_path):
    res = evalsuite.evaluate("oracle", "coco-box", data="sample", limit=1, progress=False)
    rec = res.records[0]
    gates = tmp_path / "g.toml"
    row = f'model = "{rec.name}", protocol = "{rec.protocol.id}", metric = "mIoU", tolerance = 0.0'
    gates.write_text(f'gate = [{{ {row}, expected = 99.0, run_id = "x" }}]\n')
    outcome = res.gate(gates)
    assert isinstance(outcome, GateOutcome) and not outcome and not outcome.passed
    assert (
        repr(outcome)
        == "<GateOutcome 0 of 1 gates passed; 1 failed (first miss: oracle+limit1 coco-box@1 mIoU: MISS)>"
    )
    assert outcome.to_dict()["failed"] == 1 and "MISS" in outcome._repr_html_()
