"""The Python API: the README's "Use from Python" example runs as written; evaluate() takes a name, a
Runner or a callable; results are pandas DataFrames with the documented columns."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalsuite
from evalsuite.api import SUMMARY_COLUMNS
from evalsuite.models.baselines import BoxFillRunner

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section has one example"
    return blocks[0]


def _documented(label: str) -> list[str]:
    """The column names the README lists after ``label`` (back-quoted, comma separated)."""
    section = README.read_text(encoding="utf-8").split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    text = " ".join(section.split())
    found = re.search(re.escape(label) + r" columns: `([^`]*)`", text) or re.search(
        re.escape(label) + r"[^`]*`([^`]*)`", text
    )
    assert found, label
    return [c.strip() for c in found.group(1).split(",")]


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written would land here
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))  # no weights: random ones need none
    scope: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(_readme_example(), "README.md (Use from Python)", "exec"), scope)
    res = scope["res"]
    assert isinstance(res.summary, pd.DataFrame) and list(res.summary.columns) == list(SUMMARY_COLUMNS)
    assert set(res.summary["name"]) == {"efficientsam-ti+random0+limit3", "my-filler"}
    assert "Table 4" in printed.getvalue() and "my-filler" in printed.getvalue()
    assert "mean_delta" in printed.getvalue() or "Δ" in printed.getvalue()
    assert os.listdir(tmp_path) == []  # out=None: nothing written (and nothing downloaded)


def test_the_documented_columns_are_the_columns():
    assert _documented("`Results.summary`") == list(SUMMARY_COLUMNS)


def test_evaluate_takes_a_name_a_runner_or_a_callable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_name = evalsuite.evaluate("box-fill", "coco-box", data="sample", limit=2, progress=False)
    runner = BoxFillRunner()
    runner.name = "my-box-fill"
    by_runner = evalsuite.evaluate(runner, ["coco-box"], data="sample", limit=2, progress=False)

    def fill(image, prompts, labels):
        masks = np.zeros((len(prompts), *image.shape[:2]), dtype=bool)
        for m, (x0, y0, x1, y1) in zip(masks, np.asarray(prompts).round().astype(int), strict=True):
            m[y0:y1, x0:x1] = True
        return masks

    by_callable = evalsuite.evaluate(fill, "coco-box", data="sample", limit=2, name="fill", progress=False)
    assert list(tmp_path.iterdir()) == []  # out=None writes nothing
    values = [r.summary.set_index("metric").loc["mIoU", "value"] for r in (by_name, by_runner, by_callable)]
    assert values[0] == values[1]  # the same network, registered or handed over
    assert [r.records[0].name for r in (by_name, by_runner, by_callable)] == [
        "box-fill+limit2",  # a derived name carries the limit
        "my-box-fill+limit2",
        "fill",  # a name given is the name
    ]
    inst = (by_name + by_callable).instances
    assert {"name", "protocol_id", "image_id", "ann_id", "iou", "size", "prompt"} <= set(inst.columns)
    assert len(inst) == 2 * by_name.records[0].counts.instances


def test_evaluate_with_out_writes_what_the_cli_writes_and_load_reads_it(tmp_path):
    res = evalsuite.evaluate("box-fill", "coco-box", data="sample", limit=2, out=tmp_path, progress=False)
    assert (tmp_path / "box-fill+limit2" / "coco-box" / "record.json").is_file()
    again = evalsuite.load(tmp_path)
    assert [r.run_id for r in again.records] == [r.run_id for r in res.records]
    pd.testing.assert_frame_equal(again.summary, res.summary)


def test_bad_model_objects_are_one_line_errors():
    with pytest.raises(evalsuite.InputError, match="registered name, a Runner or a callable"):
        evalsuite.evaluate(42, "coco-box", data="sample")
