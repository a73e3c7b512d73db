"""Plots from run records: what each kind shows, that nothing is cut off or overlaps, PNG and PDF files.

Real runs on the sample (``oracle``, ``box-fill``) give records with timing, per-instance logs and
logged AP masks; small hand-made records (schema 1 with a timing part added where a test needs one)
give crowded, variant and mixed-device cases.
"""

from __future__ import annotations

import json
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from PIL import Image
from records_fixtures import make_sample_runs, synthetic_record

from evalsuite.cli import main
from evalsuite.data.readers import CocoReader
from evalsuite.engine.replay import MATCH, UNMATCHED, UNSCORED, choose_rows, detection_images, repredict
from evalsuite.engine.replay import _match_image as match_image
from evalsuite.provenance import cpuinfo_model_name, device_info
from evalsuite.record import find_records, read_record
from evalsuite.report.plot_labels import LABEL_GID
from evalsuite.report.plots import plot_clicks, plot_detections, plot_qualitative, plot_sizes, plot_speed


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory) -> Path:
    return make_sample_runs(tmp_path_factory.mktemp("runs"))


def _run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# -- inspection helpers -------------------------------------------------------------------------------------
def drawn_texts(fig: Figure, monkeypatch) -> list[tuple[Text, Bbox]]:
    """Every text the renderer really draws (visible, non-empty, tick labels in view) with its extent."""
    seen: list[Text] = []
    original = Text.draw

    def record(self, renderer):
        if self.get_visible() and self.get_text().strip():
            seen.append(self)
        return original(self, renderer)

    with monkeypatch.context() as m:
        m.setattr(Text, "draw", record)
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [(t, t.get_window_extent(renderer)) for t in dict.fromkeys(seen)]


def texts_outside(fig: Figure, monkeypatch) -> list[str]:
    frame = fig.bbox
    return [
        t.get_text()
        for t, box in drawn_texts(fig, monkeypatch)
        if box.x0 < frame.x0 - 1 or box.y0 < frame.y0 - 1 or box.x1 > frame.x1 + 1 or box.y1 > frame.y1 + 1
    ]


def point_labels(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_gid() == LABEL_GID]


def label_box(t: Text, renderer) -> Bbox:
    """A placed label's text box, without its leader line (Annotation's extent includes the arrow)."""
    t.update_positions(renderer)
    return Text.get_window_extent(t, renderer)


def _overlap(a: Bbox, b: Bbox) -> bool:
    return min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)


def _timing(ips: float) -> dict:
    phase = {"median_s": 0.01, "total_s": 1.0}
    return {
        "warmup_images": 5,
        "timed_images": 95,
        "data": phase,
        "encoder": phase,
        "decoder": phase,
        "host": phase,
        "loop_s": 10.0,
        "model_images_per_s": ips,
        "run_images_per_s": ips / 10,
    }


def timed_record(
    root: Path,
    name: str,
    protocol: str,
    value: float,
    ips: float | None,
    model: str | None = None,
    params: int | None = None,
    label: str | None = None,
    weights: str = "official",
    device: str = "Test GPU",
) -> Path:
    """A record of run ``name`` with a timing part (``ips`` None: a schema-1 record without one)."""
    metric = "AP" if protocol.endswith("vitdet") else "mIoU"
    path = synthetic_record(root, model or name, protocol, {metric: value}, folder=name)
    rec = json.loads(path.read_text())
    rec["environment"]["device_name"] = device
    if ips is not None:
        rec.update(schema_version=2, name=name, run_id=f"{name}__{protocol}__{'t' * 10}", timing=_timing(ips))
        rec["model"].update(parameters=params, label=label, weights=weights)
    path.write_text(json.dumps(rec))
    return path


# -- every kind ----------------------------------------------------------------------------------------------
def _render_every_kind(runs: Path, out: Path) -> dict[str, Figure]:
    records = find_records([runs])
    box = read_record(runs / "box-fill/coco-box/record.json")
    vitdet = read_record(runs / "box-fill/coco-vitdet/record.json")
    kinds = {
        "speed": lambda o: plot_speed(records, o),
        "clicks": lambda o: plot_clicks(records, o),
        "sizes": lambda o: plot_sizes(records, o),
        "qualitative": lambda o: plot_qualitative(repredict(box, choose_rows(box, worst=2)), "worst", o),
        "qualitative_ap": lambda o: plot_detections(detection_images(vitdet, worst=2), "AP", o),
    }
    return {k: draw([out / f"{k}.png", out / f"{k}.pdf"]).figure for k, draw in kinds.items()}


def test_every_kind_writes_png_and_pdf_with_embedded_fonts_and_no_text_cut_off(
    sample_runs, tmp_path, monkeypatch
):
    figures = _render_every_kind(sample_runs, tmp_path)
    for kind, fig in figures.items():
        with Image.open(tmp_path / f"{kind}.png") as im:  # the figure's own size: nothing trimmed away
            assert im.size == (round(fig.get_figwidth() * 100), round(fig.get_figheight() * 100))
        pdf = (tmp_path / f"{kind}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF")
        assert b"/FontFile2" in pdf and b"/Type3" not in pdf, f"{kind}: fonts not embedded as TrueType"
        assert b"CreationDate" not in pdf
        assert texts_outside(fig, monkeypatch) == [], kind
        # frozen after layout: labels placed afterwards were measured on the final axes
        assert not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
        assert not any(ax.get_legend() for ax in fig.axes), f"{kind}: legends belong to the figure"
        assert len(fig.legends) == 1, kind


def test_plot_files_are_deterministic(sample_runs, tmp_path):
    records = find_records([sample_runs])
    for i in (1, 2):
        plot_speed(records, [tmp_path / f"s{i}.png", tmp_path / f"s{i}.pdf"])
    assert (tmp_path / "s1.png").read_bytes() == (tmp_path / "s2.png").read_bytes()
    assert (tmp_path / "s1.pdf").read_bytes() == (tmp_path / "s2.pdf").read_bytes()


def test_y_axes_never_show_more_than_100_percent(sample_runs):
    records = find_records([sample_runs])  # the oracle scores 100 everywhere
    for plot in (plot_speed(records), plot_clicks(records), plot_sizes(records)):
        for ax in plot.figure.axes:
            lo, hi = ax.get_ylim()
            shown = [v for v in ax.get_yticks() if lo <= v <= hi]
            assert shown and max(shown) == 100 and min(shown) >= 0
            assert hi <= 105 + 0.1 * (hi - lo)  # at most a marker's margin above 100


def test_cli_renders_each_kind_and_refuses_options_of_other_kinds(sample_runs, tmp_path, capsys):
    for kind, src in [
        ("speed", sample_runs),
        ("clicks", sample_runs),
        ("sizes", sample_runs),
        ("qualitative", sample_runs / "box-fill" / "coco-box"),
        ("qualitative", sample_runs / "box-fill" / "coco-vitdet"),
    ]:
        png, pdf = tmp_path / f"{kind}.png", tmp_path / f"{kind}.pdf"
        rc, _, err = _run_cli(
            capsys, "plot", kind, str(src), "--dpi", "60", "--out", str(png), "--out", str(pdf)
        )
        assert rc == 0, err
        assert f"wrote {png}" in err and "differs from the logged" not in err
        assert png.stat().st_size > 5_000 and pdf.stat().st_size > 1_000
    rc, _, err = _run_cli(capsys, "plot", "sizes", str(sample_runs), "--table", "4", "--out", str(png))
    assert rc == 2 and "--table does not apply to plot sizes" in err
    rc, _, err = _run_cli(
        capsys, "plot", "clicks", str(sample_runs), "--protocol", "coco-box", "--out", str(png)
    )
    assert rc == 2 and "--protocol does not apply to plot clicks" in err
    vitdet = str(sample_runs / "box-fill" / "coco-vitdet")
    rc, _, err = _run_cli(capsys, "plot", "qualitative", vitdet, "--instance", "1:2", "--out", str(png))
    assert rc == 2 and "--image" in err
    box = str(sample_runs / "box-fill" / "coco-box")
    rc, _, err = _run_cli(capsys, "plot", "qualitative", box, "--image", "100003", "--out", str(png))
    assert rc == 2 and "apply to AP records" in err


# -- speed ---------------------------------------------------------------------------------------------------
def test_speed_is_a_panel_per_column_one_point_per_run_and_no_line(sample_runs):
    records = find_records([sample_runs])
    fig = plot_speed(records).figure
    # each dataset's headline column of each table: never two protocols in one panel
    assert [ax.get_title() for ax in fig.axes] == [
        "COCO box · Table 4",
        "LVIS box · Table 4",
        "COCO mask AP · Table 5",
    ]
    assert all(len(ln.get_xdata()) <= 1 for ax in fig.axes for ln in ax.get_lines())  # no line joins points
    coco_box = fig.axes[0]
    points = [c for c in coco_box.collections if isinstance(c, PathCollection)]
    assert len(points) == 2  # oracle and box-fill: one point each
    assert fig.get_figwidth() > fig.get_figheight()  # a slide is landscape
    title = fig.legends[0].get_title().get_text().replace("\n", " ")
    assert "sample-coco, all 26 images" in title  # the data the runs measured heads the figure
    only5 = plot_speed(records, tables=["5"]).figure
    assert [ax.get_title() for ax in only5.axes] == ["COCO mask AP · Table 5"]
    assert only5.axes[0].get_ylabel() == "mask AP (%)"
    picked = plot_speed(records, protocols=["coco-1click", "coco-3click"]).figure
    assert [ax.get_title() for ax in picked.axes] == ["COCO 1 click · Table 4", "COCO 3 click · Table 4"]


def test_speed_x_is_the_model_throughput_and_untimed_records_are_left_out(tmp_path, monkeypatch):
    timed_record(tmp_path, "efficientsam-ti", "coco-box", 75.0, ips=40.0, params=10_000_000)
    timed_record(tmp_path, "efficientsam-s", "coco-box", 77.0, ips=12.5, params=26_000_000)
    timed_record(tmp_path, "sam-vit-h", "coco-box", 78.0, ips=None)  # schema 1: no timing part
    plot = plot_speed(find_records([tmp_path]))
    (ax,) = plot.figure.axes
    xs = sorted(float(c.get_offsets()[0][0]) for c in ax.collections if isinstance(c, PathCollection))
    assert xs == [12.5, 40.0]
    assert any("without model timing" in n and "sam-vit-h" in n for n in plot.notes)
    texts = " ".join(t.get_text() for t, _ in drawn_texts(plot.figure, monkeypatch))
    assert "Not drawn: 1 record(s) without model timing" in texts.replace("\n", " ")
    assert "Device: Test GPU" in texts


def _shown_xticks(tmp_path: Path, rates: tuple[float, ...]) -> list[str]:
    for i, ips in enumerate(rates):
        timed_record(tmp_path, f"run{i}", "coco-box", 60.0 + i, ips=ips, model="efficientsam-ti")
    (ax,) = plot_speed(find_records([tmp_path])).figure.axes
    lo, hi = ax.get_xlim()
    return [t.get_text() for t, v in zip(ax.get_xticklabels(), ax.get_xticks(), strict=True) if lo <= v <= hi]


def test_speed_log_ticks_are_plain_numbers_as_dense_as_fits(tmp_path):
    assert _shown_xticks(tmp_path / "a", (3.0, 40.0)) == ["2", "5", "10", "20", "50", "100"]
    assert _shown_xticks(tmp_path / "b", (0.8, 400.0)) == ["1", "3", "10", "30", "100", "300", "1,000"]


def test_speed_marks_random_weights_and_draws_the_spread_of_timed_images(tmp_path, monkeypatch):
    timed_record(tmp_path, "sam-vit-b", "coco-box", 70.0, ips=50.0, params=94_000_000, label="SAM (ViT-B)")
    timed_record(
        tmp_path, "sam-vit-h+random0", "coco-box", 0.5, ips=5.0, model="sam-vit-h", weights="random:0"
    )
    rec = json.loads((tmp_path / "sam-vit-b" / "coco-box" / "record.json").read_text())
    rec["timing"].update(model_s_p10=0.01, model_s_p90=0.04)  # a fast and a slow image: 100 and 25 images/s
    (tmp_path / "sam-vit-b" / "coco-box" / "record.json").write_text(json.dumps(rec))
    fig = plot_speed(find_records([tmp_path])).figure
    (ax,) = fig.axes
    points = {float(c.get_offsets()[0][0]): c for c in ax.collections if isinstance(c, PathCollection)}
    assert set(points) == {50.0, 5.0}
    assert points[5.0].get_facecolors()[0][:3].tolist() == [1.0, 1.0, 1.0]  # random weights: hollow
    assert points[50.0].get_sizes()[0] == points[5.0].get_sizes()[0]  # one size: params are in the label
    bars = [c for c in ax.collections if not isinstance(c, PathCollection)]
    (segment,) = bars[0].get_segments()
    assert sorted(segment[:, 0].tolist()) == pytest.approx([25.0, 100.0])  # the 10th-90th percentile
    keys = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("random weights" in k for k in keys) and any("percentile" in k for k in keys)
    assert "SAM (ViT-B) (94M)" in [t.get_text() for t in point_labels(fig)]
    assert texts_outside(fig, monkeypatch) == []


def test_speed_rows_are_run_names_and_labels_fit_apart(tmp_path, monkeypatch):
    """Variants of one model are separate points; a crowd of points still gets clean labels."""
    timed_record(
        tmp_path, "efficientsam-ti", "coco-box", 72.0, ips=30.0, params=10_000_000, label="EfficientSAM-Ti"
    )
    timed_record(tmp_path, "efficientsam-ti+single", "coco-box", 72.5, ips=31.0, model="efficientsam-ti")
    for i in range(6):
        timed_record(
            tmp_path, f"variant-{i}", "coco-box", 71.0 + i * 0.6, ips=26.0 + i, model="efficientsam-s"
        )
    timed_record(
        tmp_path, "efficientsam-ti", "coco-1click", 45.0, ips=29.0, params=10_000_000, label="EfficientSAM-Ti"
    )
    plot = plot_speed(find_records([tmp_path]))
    fig = plot.figure
    labels = point_labels(fig)
    texts = sorted(t.get_text() for t in labels)
    assert "EfficientSAM-Ti (10M)" in texts and "efficientsam-ti+single" in texts
    assert len(texts) == 8  # one label per run, not per column
    assert not [n for n in plot.notes if "overlaps" in n]
    renderer = fig.canvas.get_renderer()
    boxes = {t.get_text(): label_box(t, renderer) for t in labels}
    (ax,) = fig.axes
    frame = ax.get_window_extent(renderer)
    for text, box in boxes.items():
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, text
    assert [(a, b) for (a, ba), (b, bb) in combinations(boxes.items(), 2) if _overlap(ba, bb)] == []
    assert texts_outside(fig, monkeypatch) == []


def test_speed_refuses_mixed_devices(tmp_path, capsys):
    timed_record(tmp_path, "efficientsam-s", "coco-box", 76.0, ips=10.0)
    timed_record(tmp_path, "efficientsam-ti", "coco-box", 75.0, ips=30.0, device="Other GPU")
    rc, _, err = _run_cli(capsys, "plot", "speed", str(tmp_path), "--out", str(tmp_path / "s.png"))
    assert rc == 2 and "different devices" in err


def test_speed_without_any_timed_record_says_why(tmp_path, capsys):
    timed_record(tmp_path, "sam-vit-h", "coco-box", 78.0, ips=None)
    rc, _, err = _run_cli(capsys, "plot", "speed", str(tmp_path), "--out", str(tmp_path / "s.png"))
    assert rc == 2 and "no record has a model throughput" in err


# -- sizes and clicks ----------------------------------------------------------------------------------------
def test_sizes_one_legend_value_on_every_bar_no_empty_slots(tmp_path):
    miou = {"mIoU": 70.0, "mIoU_S": 50.0, "mIoU_M": 70.0, "mIoU_L": 92.0}
    for proto in ("coco-box", "coco-1click", "coco-3click", "lvis-box"):
        synthetic_record(tmp_path, "efficientsam-ti", proto, miou)
    synthetic_record(tmp_path, "efficientsam-s", "coco-box", {**miou, "mIoU_S": None})
    synthetic_record(
        tmp_path, "efficientsam-ti", "coco-box", miou, options={"mask_choice": "single"}, folder="v"
    )
    rec = json.loads((tmp_path / "v/coco-box/record.json").read_text())
    rec.update(schema_version=2, name="efficientsam-ti+single", run_id="v__coco-box__" + "v" * 10)
    (tmp_path / "v/coco-box/record.json").write_text(json.dumps(rec))
    synthetic_record(
        tmp_path, "efficientsam-ti", "coco-vitdet", {"AP": 40.0, "APS": 20.0, "APM": 45.0, "APL": 60.0}
    )
    fig = plot_sizes(find_records([tmp_path])).figure
    assert len(fig.axes) == 5  # five columns, no unused axes
    ax = next(a for a in fig.axes if a.get_title() == "COCO box")  # the paper's column labels
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "efficientsam-s",
        "efficientsam-ti",
        "efficientsam-ti+single",
    ]
    values = [t.get_text() for t in ax.texts]
    assert len(values) == 3 * 3 and values.count("92") == 3 and values.count("n/a") == 1
    rows = {round(a.get_position().y0, 3) for a in fig.axes}
    assert len(rows) == 2
    last = sorted(
        (a for a in fig.axes if round(a.get_position().y0, 3) == min(rows)), key=lambda a: a.get_position().x0
    )
    left, right = last[0].get_position().x0, 1 - last[-1].get_position().x1
    assert abs(left - right) < 0.08  # the short last row is centred, not left-aligned with a gap
    assert next(a for a in fig.axes if a.get_title() == "COCO mask AP").get_ylabel() == "mask AP (%)"
    assert fig.get_figwidth() > fig.get_figheight() and fig.get_figwidth() <= 13.4  # a slide


def test_clicks_variants_are_lines_and_paper_values_only_for_official_weights(tmp_path):
    for proto, v in (("coco-1click", 45.0), ("coco-3click", 66.0)):
        timed_record(
            tmp_path, "efficientsam-ti", proto, v, ips=30.0, params=10_000_000, label="EfficientSAM-Ti"
        )
        timed_record(
            tmp_path,
            "efficientsam-ti+random0",
            proto,
            v - 40,
            ips=30.0,
            model="efficientsam-ti",
            weights="random:0",
        )
    fig = plot_clicks(find_records([tmp_path])).figure
    (ax,) = fig.axes
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(solid) == 2 and len(dashed) == 1
    official = next(ln for ln in solid if ln.get_label() == "EfficientSAM-Ti")
    assert dashed[0].get_color() == official.get_color()
    assert list(dashed[0].get_ydata()) == [45.5, 67.2]  # the paper's Table 4 values
    keys = [t.get_text() for t in fig.legends[0].get_texts()]
    assert keys == [
        "EfficientSAM-Ti",
        "efficientsam-ti+random0",
        "k clicks at once (click protocols)",
        "paper (official weights only)",
    ]
    lo, hi = ax.get_ylim()
    assert lo >= 0 and hi <= 100  # fits the data within 0-100


def test_clicks_draws_the_miou_after_each_click_of_noc_records(tmp_path):
    curve = {f"mIoU@{k}": min(100.0, 40.0 + 3 * k) for k in range(1, 21)}
    noc = {"NoC@85": 15.0, "NoC@90": 17.0, "NoF@85": 3.0, "NoF@90": 5.0, **curve}
    synthetic_record(tmp_path, "efficientsam-ti", "coco-noc20", noc)
    synthetic_record(tmp_path, "efficientsam-ti", "coco-1click", {"mIoU": 45.0})
    fig = plot_clicks(find_records([tmp_path])).figure
    (ax,) = fig.axes
    (noc_line,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-."]
    assert list(noc_line.get_xdata()) == list(range(1, 21))
    assert list(noc_line.get_ydata()) == [curve[f"mIoU@{k}"] for k in range(1, 21)]
    keys = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "after click k of SAM's iterative clicker (NoC)" in keys
    lo, hi = ax.get_ylim()
    assert lo >= 0 and hi == 100


def test_many_long_run_names_still_fit(tmp_path, monkeypatch):
    """Long variant names wrap at their parts and the figure key takes fewer columns: nothing is cut."""
    models = ["efficientsam-ti", "efficientsam-s", "sam-vit-h", "mobilesam", "sam-vit-b", "sam2.1-hiera-l"]
    for i, m in enumerate(models):
        name = f"{m}+mask_choice=single+long-variant-name" if i % 2 else m
        for proto in ("coco-box", "coco-1click", "coco-3click"):
            timed_record(tmp_path, name, proto, 60.0 + i, ips=5.0 * (i + 1), model=m, params=10**7 * (i + 1))
    records = find_records([tmp_path])
    speed = plot_speed(records)
    assert not [n for n in speed.notes if "overlaps" in n]
    assert "efficientsam-s\n+mask_choice=single\n+long-variant-name (20M)" in [
        t.get_text() for t in point_labels(speed.figure)
    ]
    for plot in (speed, plot_clicks(records), plot_sizes(records)):
        assert texts_outside(plot.figure, monkeypatch) == []
    fig = plot_clicks(records).figure
    key = fig.legends[0].get_window_extent(fig.canvas.get_renderer())
    assert key.width <= fig.bbox.width and key.height > 3 * 10  # entries wrapped into rows to fit


# -- qualitative ---------------------------------------------------------------------------------------------
def test_qualitative_grid_outlines_masks_with_readable_titles_and_an_inset(sample_runs):
    record = read_record(sample_runs / "oracle/coco-box/record.json")
    rows = [r for r in record.items() if r["size"] == "S"][:1] + [
        r for r in record.items() if r["size"] == "L"
    ][:1]
    items = repredict(record, rows)
    plot = plot_qualitative(items, "title")
    fig = plot.figure
    assert plot.notes == []  # the oracle's re-predicted IoUs equal the logged ones
    main_axes = fig.axes
    assert len(main_axes) == 6
    titles = [ax.get_title() for ax in main_axes]
    assert titles[0].startswith(f"{items[0].category} (small)") and titles[3].startswith(
        f"{items[1].category} (large)"
    )
    assert titles[2] == "prediction · IoU 1.000"
    assert all(any(isinstance(c, ContourSet) for c in ax.collections) for ax in (main_axes[1], main_axes[2]))
    insets = [child for ax in fig.axes for child in ax.child_axes]
    assert len(insets) >= 1  # the small object's crop shows the full image beside it
    shown = main_axes[0].get_images()[0].get_array().shape
    assert shown[0] * shown[1] < 0.45 * items[0].gt.size  # zoomed: a crop, not the full image


def test_qualitative_shows_progress_only_on_a_terminal(sample_runs, tmp_path, capsys, monkeypatch):
    src = str(sample_runs / "box-fill" / "coco-box")
    rc, _, err = _run_cli(
        capsys, "plot", "qualitative", src, "--worst", "2", "--out", str(tmp_path / "q.png")
    )
    assert rc == 0 and "re-predicting" not in err
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    rc, _, err = _run_cli(
        capsys, "plot", "qualitative", src, "--worst", "2", "--out", str(tmp_path / "q.png")
    )
    assert rc == 0 and "re-predicting" in err and "2/2" in err
    src = str(sample_runs / "box-fill" / "coco-vitdet")
    rc, _, err = _run_cli(capsys, "plot", "qualitative", src, "--out", str(tmp_path / "d.png"))
    assert rc == 0 and "matching detections" in err


def test_qualitative_refuses_an_instance_not_in_the_record(sample_runs, tmp_path, capsys):
    src = str(sample_runs / "oracle" / "coco-3click")
    rc, _, err = _run_cli(
        capsys, "plot", "qualitative", src, "--instance", "1:2", "--out", str(tmp_path / "o.png")
    )
    assert rc == 2 and "not in the record" in err


def _tiny_coco(tmp_path: Path) -> CocoReader:
    """One 40×40 image: two squares of category 1, a crowd region of category 1."""

    def square(x, y, s):
        return [[x, y, x + s, y, x + s, y + s, x, y + s]]

    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": square(0, 0, 10), "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": square(20, 0, 10), "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": square(0, 25, 14), "iscrowd": 1},
    ]
    data = {
        "images": [{"id": 1, "file_name": "x.jpg", "height": 40, "width": 40}],
        "annotations": [{**a, "area": 100.0, "bbox": [0, 0, 10, 10]} for a in anns],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return CocoReader(path, tmp_path)


def _det(det_id: int, category: int, score: float, x: int, y: int, s: int) -> dict:
    from evalsuite.data.masks import encode_mask

    m = np.zeros((40, 40), dtype=bool)
    m[y : y + s, x : x + s] = True
    return {
        "image_id": 1,
        "det_id": det_id,
        "category_id": category,
        "score": score,
        "segmentation": encode_mask(m),
    }


def test_detection_matching_is_greedy_by_score_per_category_and_skips_crowd(tmp_path):
    reader = _tiny_coco(tmp_path)
    rows = [
        _det(0, 1, 0.9, 0, 0, 10),  # exact on GT 1: match
        _det(1, 1, 0.8, 0, 0, 10),  # the same again: GT 1 is taken, unmatched
        _det(2, 2, 0.95, 20, 0, 10),  # exact on GT 2 but another category: unmatched
        _det(3, 1, 0.7, 1, 26, 12),  # inside the crowd region of its category: not scored
        _det(4, 1, 0.3, 20, 0, 10),  # below the score threshold: not shown
    ]
    m = match_image(reader, 1, rows, score_min=0.5, max_shown=20)
    assert [r["det_id"] for r in m.rows] == [2, 0, 1, 3]
    assert m.status == [UNMATCHED, MATCH, UNMATCHED, UNSCORED]
    assert m.ious[1] == pytest.approx(1.0) and m.ious[0] == 0.0
    assert m.missed == [2] and m.below_threshold == 1


def test_detection_view_draws_logged_masks_coloured_by_match(sample_runs, monkeypatch):
    record = read_record(sample_runs / "oracle/coco-vitdet/record.json")
    images = detection_images(record, image_ids=[100003, 107922])
    assert [im.image_id for im in images] == [100003, 107922]
    oracle = [d for im in images for d in im.detections]
    assert oracle and all(d.status == MATCH for d in oracle if d.iou >= 0.999)
    worst = detection_images(read_record(sample_runs / "box-fill/coco-vitdet/record.json"), worst=3)
    errors = [im.count(UNMATCHED) + len(im.missed) for im in worst]
    assert errors == sorted(errors, reverse=True) and len(worst) == 3
    plot = plot_detections(worst, "box-fill")
    labels = point_labels(plot.figure)
    assert labels and texts_outside(plot.figure, monkeypatch) == []
    renderer = plot.figure.canvas.get_renderer()
    for ax in plot.figure.axes:
        mine = [label_box(t, renderer) for t in labels if t.axes is ax]
        assert not any(_overlap(a, b) for a, b in combinations(mine, 2))
    key = plot.figure.legends[0]
    assert key.get_title().get_text() == "box-fill"
    assert [t.get_text() for t in key.get_texts()][:2] == ["detection matching the GT", "unmatched detection"]


# -- provenance ----------------------------------------------------------------------------------------------
def test_cpu_device_is_named_by_its_model():
    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
    assert cpuinfo_model_name(text) == "AMD EPYC 7763 64-Core Processor"
    assert cpuinfo_model_name("processor\t: 0\n") is None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        assert device_info("cpu")["device_name"] == cpuinfo_model_name(cpuinfo.read_text())
