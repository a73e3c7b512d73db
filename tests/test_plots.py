"""Plots from run records: every kind renders PNG and PDF; the qualitative grid re-predicts logged prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from records_fixtures import make_sample_runs, synthetic_record

from evalsuite.cli import main


@pytest.fixture(scope="module")
def es():
    return main


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory) -> Path:
    return make_sample_runs(tmp_path_factory.mktemp("runs"))


def _run_cli(es, capsys, *args: str) -> tuple[int, str, str]:
    rc = es(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _check_png(path: Path, pixels: tuple[int, int]) -> None:
    assert path.stat().st_size > 5_000
    with Image.open(path) as im:
        assert im.size == pixels


@pytest.mark.parametrize(
    "kind,extra,inches",
    [
        ("speed", ["--protocol", "coco-box", "--protocol", "coco-vitdet"], (8.4, 4.3)),
        ("clicks", [], (4.6, 3.8)),
        ("sizes", ["--protocol", "coco-box", "--protocol", "coco-vitdet"], (7.2, 3.4)),
    ],
)
def test_record_plots_render_png_and_pdf(es, capsys, sample_runs, tmp_path, kind, extra, inches):
    png, pdf = tmp_path / f"{kind}.png", tmp_path / f"{kind}.pdf"
    rc, _, err = _run_cli(
        es,
        capsys,
        "plot",
        kind,
        str(sample_runs),
        *extra,
        "--dpi",
        "60",
        "--out",
        str(png),
        "--out",
        str(pdf),
    )
    assert rc == 0, err
    _check_png(png, (round(inches[0] * 60), round(inches[1] * 60)))
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1_000


def test_qualitative_grid_repredicts_the_logged_prompts(es, capsys, sample_runs, tmp_path):
    png = tmp_path / "q.png"
    rc, _, err = _run_cli(
        es,
        capsys,
        "plot",
        "qualitative",
        str(sample_runs / "box-fill" / "coco-box"),
        "--worst",
        "2",
        "--dpi",
        "50",
        "--out",
        str(png),
        "--out",
        str(tmp_path / "q.pdf"),
    )
    assert rc == 0, err
    assert "differs from the logged" not in err  # re-prediction reproduces the logged IoUs
    _check_png(png, (round(7.5 * 50), round((2.45 * 2 + 0.5) * 50)))
    rc, _, err = _run_cli(
        es,
        capsys,
        "plot",
        "qualitative",
        str(sample_runs / "oracle" / "coco-3click"),
        "--instance",
        "100003:900001",
        "--out",
        str(tmp_path / "o.png"),
    )
    assert rc == 0, err
    rc, _, err = _run_cli(
        es, capsys, "plot", "qualitative", str(sample_runs / "oracle" / "coco-vitdet"), "--out", str(png)
    )
    assert rc == 2 and "needs an mIoU record" in err


def test_speed_plot_refuses_mixed_devices(es, capsys, tmp_path):
    synthetic_record(tmp_path, "efficientsam-s", "coco-box", {"mIoU": 76.0})
    path = synthetic_record(tmp_path, "efficientsam-ti", "coco-box", {"mIoU": 75.0})
    rec = json.loads(path.read_text())
    rec["environment"]["device_name"] = "Other GPU"
    path.write_text(json.dumps(rec))
    rc, _, err = _run_cli(es, capsys, "plot", "speed", str(tmp_path), "--out", str(tmp_path / "s.png"))
    assert rc == 2 and "different devices" in err


def test_cpu_device_is_named_by_its_model():
    from evalsuite.provenance import cpuinfo_model_name, device_info

    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
    assert cpuinfo_model_name(text) == "AMD EPYC 7763 64-Core Processor"
    assert cpuinfo_model_name("processor\t: 0\n") is None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        assert device_info("cpu")["device_name"] == cpuinfo_model_name(cpuinfo.read_text())
