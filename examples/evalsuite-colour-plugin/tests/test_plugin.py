"""The example plugin, installed like any package: found through its entry points, its weights fetched,
verified and loaded through evalsuite's own path, and run — with no edit of evalsuite.

Run after `pip install ./examples/evalsuite-colour-plugin` (``.ci/run`` does): the weights file the
package ships is served from a local HTTP server and downloaded with ``--base-url``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests"))  # the evalsuite test suite's loopback server

from loopback import loopback_server  # noqa: E402

from evalsuite.cli import main  # noqa: E402
from evalsuite.models import get_spec, model_names  # noqa: E402

colour_net = pytest.importorskip("evalsuite_colour_plugin.colour_net")


def test_both_models_are_registered_with_their_facts():
    assert {"colour-grow", "colour-net"} <= set(model_names())
    spec = get_spec("colour-net")
    assert spec.weights is not None and spec.weights.sha256 and spec.label == "Colour-Net (example)"


def test_weights_are_downloaded_verified_and_loaded_like_a_built_in_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))
    shipped = colour_net.WEIGHTS.read_bytes()
    with loopback_server(tmp_path / "srv") as server:
        # a file with the right name but other bytes is refused by its SHA-256 and never kept
        server.serve("colour_net_v1.pt", shipped[:100] + bytes([shipped[100] ^ 0xFF]) + shipped[101:])
        assert main(["download", "weights", "colour-net", "--base-url", server.url, "--no-progress"]) == 1
        assert "colour-net: FAILED" in capsys.readouterr().out
        server.serve("colour_net_v1.pt", shipped)
        assert main(["download", "weights", "colour-net", "--base-url", server.url, "--no-progress"]) == 0
    path = tmp_path / "home" / "checkpoints" / "colour_net_v1.pt"
    assert path.read_bytes() == shipped
    out = tmp_path / "runs"
    assert (
        main(
            [
                "run",
                "coco-box",
                "--model",
                "colour-net",
                "--data",
                "sample",
                "--limit",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    record = json.loads((out / "colour-net+limit3" / "coco-box" / "record.json").read_text())
    assert (
        record["model"]["weights"] == "official"
        and record["model"]["checkpoint_sha256"] == get_spec("colour-net").weights.sha256
    )
    assert record["model"]["label"] == "Colour-Net (example)" and record["model"]["parameters"] > 0
    assert 0 < record["metrics"]["mIoU"] <= 100


def test_random_weights_need_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "empty"))
    out = tmp_path / "runs"
    args = [
        "run",
        "coco-box",
        "--model",
        "colour-net",
        "--data",
        "sample",
        "--limit",
        "2",
        "--weights",
        "random:1",
    ]
    assert main([*args, "--out", str(out)]) == 0
    record = json.loads((out / "colour-net+random1+limit2" / "coco-box" / "record.json").read_text())
    assert record["model"]["weights"] == "random:1" and record["paper"] == {}


# -- the other extension points: a dataset, a metric and a prompt rule (with an option), from outside --------
extensions = pytest.importorskip("evalsuite_colour_plugin.extensions")


def _shape_masks() -> dict[int, np.ndarray]:
    from PIL import Image

    files = sorted((extensions.SHAPES / "masks").glob("*.png"))
    return {i: np.asarray(Image.open(f).convert("L")) > 128 for i, f in enumerate(files, 1)}


def _box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    out = np.zeros_like(mask)
    out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    return out


def test_a_dataset_a_metric_and_a_prompt_rule_from_a_plugin_run_end_to_end(tmp_path, capsys):
    """`colour-shapes` (dataset), `mDice` (metric) and `extreme` with its `side` option (prompt rule) are
    found through this package's entry points and run by evalsuite's engine, unchanged; the numbers are
    checked against numpy on the shipped masks."""
    assert main(["ls", "datasets"]) == 0
    assert "colour-shapes" in capsys.readouterr().out
    out = tmp_path / "runs"
    assert main(["run", "colour-shapes-box", "--model", "box-fill", "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "box-fill" / "colour-shapes-box" / "record.json").read_text())
    masks = list(_shape_masks().values())
    iou = [m.sum() / _box(m).sum() for m in masks]  # box-fill: the tight box filled
    dice = [2 * m.sum() / (m.sum() + _box(m).sum()) for m in masks]
    assert record["metrics"]["mIoU"] == pytest.approx(100 * np.mean(iou), abs=1e-9)
    assert record["metrics"]["mDice"] == pytest.approx(100 * np.mean(dice), abs=1e-9)

    argv = ["run", "colour-shapes-1click", "--model", "colour-grow", "--out", str(out), "--no-progress"]
    assert main([*argv, "--set", "click_rule=extreme", "--set", "side=bottom"]) == 0
    log = out / "colour-grow+click_rule=extreme+side=bottom" / "colour-shapes-1click" / "instances.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    by_image = _shape_masks()
    for row in rows:
        ys, xs = np.nonzero(by_image[row["image_id"]])
        bottom = ys.max()
        assert row["prompt"]["points"] == [[float(xs[ys == bottom].min()), float(bottom)]]
    assert main([*argv, "--set", "click_rule=extreme", "--set", "side=middle"]) == 2
    assert "side=" in capsys.readouterr().err
