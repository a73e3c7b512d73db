"""The pipeline benchmark runs end to end in its tiny CPU configuration (speed is not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "bench_pipeline.py"


@pytest.mark.slow
def test_tiny_benchmark_writes_positive_throughputs(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the tiny config is the CPU one
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--json", str(out), "--workdir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| efficientsam-ti | fp32 |" in proc.stdout  # the printed table

    doc = json.loads(out.read_text())
    assert doc["environment"]["device"] == "cpu"
    assert doc["environment"]["device_name"]
    assert doc["suite_overhead"]["img_s"] > 0 and doc["suite_overhead"]["ms_per_image"] > 0  # stage (d)
    (row,) = doc["results"]
    assert (row["model"], row["precision"], row["images"]) == ("efficientsam-ti", "fp32", 3)
    for key in ("a_img_s", "b_img_s", "c_img_s", "a_over_b", "a_over_c"):
        assert row[key] > 0, key
    assert row["instances"] > 0
    # (a) and (b) did the same work: same instances, the same chosen masks up to batching numerics
    assert row["miou_a"] == pytest.approx(row["miou_b"], abs=0.5)
    assert set(row["targets"]) == {"a/b", "a/c"}
