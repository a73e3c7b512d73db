"""The benchmarks run end to end in their tiny CPU configurations (speed is not asserted; scores are)."""

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
    cmd += ["--overhead-workers", "auto", "1", "--json", str(out)]
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

    # stage (d): the suite without a network, decoding ahead of the loop, from the records' timing part
    overhead = doc["suite_overhead"]
    assert overhead["img_s"] > 0 and overhead["ms_per_image"] > 0 and overhead["work_ms"] > 0
    assert set(overhead["parts_ms"]) == {"data", "encoder", "decoder", "host"}
    auto, one = overhead["configs"]
    assert (auto["workers"], one["workers"], one["decode"]) == ("suite's choice", "1", "1 process(es)")
    assert auto["ms_per_image"] == overhead["ms_per_image"]
    # decoding in a thread, in a process or in the loop changes the speed only: box-fill scores the same
    assert one["mIoU"] == auto["mIoU"]

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


PEER = REPO / "benchmarks" / "bench_peer.py"
CLICKS = REPO / "benchmarks" / "bench_clicks.py"


@pytest.mark.slow
def test_peer_benchmark_runs_both_sides_on_every_row_with_equal_scores(tmp_path: Path) -> None:
    """The peer baseline against evalsuite, cheap model, tiny: the script itself asserts equal numbers."""
    out = tmp_path / "peer.json"
    cmd = [sys.executable, str(PEER), "--models", "cheap", "--images", "3", "--click-images", "2"]
    cmd += ["--repeats", "1", "--json", str(out), "--workdir", str(tmp_path / "work")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["environment"]["machine"] and doc["environment"]["load_average_at_start"] is not None
    rows = {r["row"]: r for r in doc["rows"]}
    assert set(rows) == {"box", "1click", "3click-sam", "noc20"}
    for r in rows.values():
        assert r["model"] == "cheap" and r["plain_median"] > 0 and r["suite_median"] > 0 and r["ratio"] > 0
        assert r["instances"] > 0
    assert set(rows["noc20"]["metrics"]) == {"NoC@85", "NoC@90", "mIoU@20"}
    assert "| cheap | fp32 | box |" in proc.stdout


@pytest.mark.slow
def test_peer_plain_loop_and_the_suite_agree_on_a_network_with_random_weights(tmp_path: Path) -> None:
    """EfficientSAM-Ti (random weights) on one image, SAM-rule clicks: the same model object on both sides
    gives exactly the same mIoU (the clicks, masks and IoUs are the same)."""
    import argparse

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_peer
        from bench_pipeline import make_dataset
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from evalsuite.models import build_model

    root = tmp_path / "coco"
    make_dataset(root, 1, 4, seed=3)
    runner = build_model("efficientsam-ti", weights="random:0")
    args = argparse.Namespace(device="cpu", workers=None, seed=0)
    plain = bench_peer.plain_loop(runner, root, [1], "3click-sam")
    suite = bench_peer.suite_run(runner, root, tmp_path / "runs", 1, "3click-sam", args, "fp32")
    assert plain.instances == suite["instances"] > 0
    assert plain.metrics["mIoU"] == suite["metrics"]["mIoU"]


@pytest.mark.slow
@pytest.mark.heavy  # a smoke run of a measuring script (clicks' equality: tests/test_clicks_opencv.py)
def test_click_benchmark_finds_identical_clicks(tmp_path: Path) -> None:
    out = tmp_path / "clicks.json"
    cmd = [sys.executable, str(CLICKS), "--instances", "3", "--clicks", "3", "--repeats", "1"]
    proc = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    clicks = json.loads(out.read_text())["clicks"]
    assert clicks["identical"] == clicks["clicks"] == 9 and clicks["speedup"] > 0
