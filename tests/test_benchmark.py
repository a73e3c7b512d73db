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
@pytest.mark.heavy  # a smoke run of a measuring script, not a check of evalsuite (CI's 20-minute budget)
def test_tiny_benchmark_writes_positive_throughputs(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the tiny config is the CPU one
    cmd = [sys.executable, str(SCRIPT), "--tiny", "--images", "2", "--overhead-images", "8"]
    cmd += ["--overhead-what-if", "--json", str(out)]
    proc = subprocess.run(
        [*cmd, "--workdir", str(tmp_path / "work")],
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
    assert doc["weights"] == "random:0"  # deterministic weights, nothing downloaded or written

    # stage (d): the suite without a network, decoding in a decode worker, from the records' timing part
    overhead = doc["suite_overhead"]
    assert overhead["img_s"] > 0 and overhead["ms_per_image"] > 0
    assert overhead["workers"] >= 1
    assert set(overhead["parts_ms"]) == {"data", "encoder", "decoder", "host"}
    as_is, what_if = overhead["configs"]
    assert (as_is["engine"], what_if["engine"]) == ("as is", "what-if: P1-P4, P6")
    assert as_is["ms_per_image"] == overhead["ms_per_image"]
    # the engine proposals patched in change the speed only: box-fill scores exactly the same
    assert what_if["mIoU"] == as_is["mIoU"]

    (row,) = doc["results"]
    assert (row["model"], row["precision"], row["images"]) == ("efficientsam-ti", "fp32", 2)
    assert row["official"] == "SamPredictor"
    for key in ("a_img_s", "b_img_s", "c_img_s", "a_over_b", "a_over_c"):
        assert row[key] > 0, key
    assert row["instances"] > 0
    assert row["a_parts_ms"]["encoder"] > 0  # (a)'s own timing part, every image timed
    # (a) and (b) did the same work: same instances, the same chosen masks up to batching numerics
    assert row["miou_a"] == pytest.approx(row["miou_b"], abs=0.5)
    assert set(row["targets"]) == {"a/b", "a/c"}
