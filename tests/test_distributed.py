"""Several processes, one result: torchrun with 2 CPU processes (gloo) against a single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SetImageHook

from evalsuite.engine import RunConfig, run

PROTOCOLS = ["coco-box", "coco-3click", "lvis-1click"]
FILES = ("instances.jsonl", "images.jsonl", "record.json")


def _cli(out: Path, nproc: int) -> None:
    args = ["run", *PROTOCOLS, "--model", "oracle", "--data", "sample", "--out", str(out), "--workers", "0"]
    if nproc == 1:
        cmd = [sys.executable, "-m", "evalsuite", *args]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "evalsuite",
            *args,
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def _stable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("execution", "timing")}


def _compare(a: Path, b: Path) -> None:
    for protocol in PROTOCOLS:
        fa, fb = a / "oracle" / protocol, b / "oracle" / protocol
        assert (fa / "instances.jsonl").read_bytes() == (fb / "instances.jsonl").read_bytes(), protocol
        assert (fa / "images.jsonl").read_bytes() == (fb / "images.jsonl").read_bytes(), protocol
        ra, rb = (json.loads((f / "record.json").read_text()) for f in (fa, fb))
        assert _stable(ra) == _stable(rb), protocol
        assert not list(fb.glob("*.rank*.jsonl")), "part files must be folded into the canonical logs"


@pytest.mark.slow
def test_two_processes_give_the_same_files_as_one(tmp_path):
    _cli(tmp_path / "one", 1)
    _cli(tmp_path / "two", 2)
    _compare(tmp_path / "one", tmp_path / "two")
    record = json.loads((tmp_path / "two" / "oracle" / "coco-box" / "record.json").read_text())
    assert record["execution"]["world_size"] == 2


@pytest.mark.slow
def test_resume_with_a_different_number_of_processes(tmp_path, monkeypatch):
    _cli(tmp_path / "ref", 1)
    SetImageHook(monkeypatch, interrupt_after=9)
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(PROTOCOLS, "oracle", data="sample", out=tmp_path / "mixed", progress=False, workers=0))
    assert (tmp_path / "mixed" / "oracle" / "coco-box" / "images.rank0.jsonl").is_file()
    _cli(tmp_path / "mixed", 2)  # the rest, by two processes
    _compare(tmp_path / "ref", tmp_path / "mixed")


def test_several_protocols_encode_each_image_once(tmp_path, monkeypatch):
    hook = SetImageHook(monkeypatch)
    outcomes = run(
        RunConfig(
            ["coco-box", "coco-1click", "coco-3click", "coco-5click"],
            "oracle",
            data="sample",
            out=tmp_path,
            progress=False,
        )
    )
    assert hook.calls == outcomes[0].record.to_json()["counts"]["images"]


def test_shard_never_duplicates_or_pads():
    from evalsuite.engine.distributed import DistContext

    items = list(range(11))
    shards = [DistContext(rank=r, world_size=3).shard(items) for r in range(3)]
    assert sorted(i for s in shards for i in s) == items and [len(s) for s in shards] == [4, 4, 3]
