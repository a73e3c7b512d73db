"""The catalogue of bad inputs: each gives one line naming the file and the id, with the right exit status.

Exit status 2 means bad input (fix the file or the command), 1 a runtime failure; no traceback
unless --debug; with --skip-bad the bad item is skipped and counted in the run record.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_folder
from pycocotools import mask as mask_utils

from evalsuite.cli import main
from evalsuite.data.locate import sample_root
from evalsuite.engine.runfolder import RunFolder
from evalsuite.models import build_model
from evalsuite.models.weights import save_official_format


@pytest.fixture
def data_root(tmp_path) -> Path:
    """A writable copy of the sample COCO set in the real-data layout (annotations/, val2017/)."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copytree(sample_root() / "val2017", root / "val2017")
    shutil.copy(sample_root() / "annotations" / "instances_val2017.json", root / "annotations")
    return root


def _ann_file(root: Path) -> Path:
    return root / "annotations" / "instances_val2017.json"


def _edit(root: Path, change) -> dict:
    data = json.loads(_ann_file(root).read_text())
    change(data)
    _ann_file(root).write_text(json.dumps(data))
    return data


def _run(root: Path, out: Path, *extra: str, protocol: str = "coco-box", model: str = "oracle") -> int:
    return main(["run", protocol, "--model", model, "--data-root", str(root), "--out", str(out), *extra])


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("evalsuite: error: ") and "Traceback" not in err, err
    return err


def _record(out: Path, protocol: str = "coco-box", model: str = "oracle") -> dict:
    return json.loads((run_folder(out, model, protocol) / "record.json").read_text())


# --- annotation files ------------------------------------------------------------------------


def test_truncated_annotation_json(data_root, tmp_path, capsys):
    text = _ann_file(data_root).read_text()
    _ann_file(data_root).write_text(text[: len(text) // 2])
    assert _run(data_root, tmp_path / "out") == 2
    err = _err(capsys)
    assert str(_ann_file(data_root)) in err and "not valid JSON" in err


def test_missing_keys(data_root, tmp_path, capsys):
    data = _edit(data_root, lambda d: d["images"][3].pop("height"))
    assert _run(data_root, tmp_path / "out") == 2
    err = _err(capsys)
    assert str(_ann_file(data_root)) in err and f"image {data['images'][3]['id']} lacks height" in err


@pytest.mark.parametrize("section", ["images", "annotations"])
def test_duplicate_ids(section, data_root, tmp_path, capsys):
    def dup(d):
        d[section][1]["id"] = d[section][0]["id"]

    data = _edit(data_root, dup)
    assert _run(data_root, tmp_path / "out") == 2
    assert f"id {data[section][0]['id']} appears twice" in _err(capsys)


def test_dangling_image_id(data_root, tmp_path, capsys):
    data = _edit(data_root, lambda d: d["annotations"][0].update(image_id=424242))
    assert _run(data_root, tmp_path / "out") == 2
    assert f"annotation {data['annotations'][0]['id']} refers to image 424242" in _err(capsys)


def test_zero_size_image_in_annotations(data_root, tmp_path, capsys):
    data = _edit(data_root, lambda d: d["images"][2].update(height=0))
    assert _run(data_root, tmp_path / "out") == 2
    assert f"image {data['images'][2]['id']} has size 0x" in _err(capsys)


@pytest.mark.parametrize(
    ("segmentation", "problem"),
    [
        ([[10.0, 10.0, 20.0, 20.0]], "needs an even number, at least 3 points"),
        ([[10.0, 10.0, 20.0, 20.0, 30.0]], "needs an even number"),
        ([], "empty polygon list"),
        ({"counts": "", "size": None}, "RLE"),
        ({"counts": [5, 5], "size": "IMAGE"}, "add up to 10"),
        # compressed RLE of a mask one column short: pycocotools would leave that column as garbage
        ({"counts": "SHORT", "size": None}, "compressed RLE counts add up to"),
        ({"counts": "TRUNCATED", "size": None}, "end inside a run"),
        ({"counts": "!!!", "size": None}, "only '0' to 'o'"),
        # a vertex at 3e8: pycocotools would allocate until the kernel kills the process
        ([[0, 0, 3e8, 0, 3e8, 3e8]], "far outside the 640x480 (WxH) image"),
        ([[0, 0, 10**400, 0, 10, 10]], "not a list of finite numbers"),
    ],
)
def test_bad_segmentations_fail_or_are_skipped_and_counted(
    segmentation, problem, data_root, tmp_path, capsys
):
    def spoil(d):
        img = d["images"][0]
        ann = next(a for a in d["annotations"] if a["image_id"] == img["id"] and not a.get("iscrowd"))
        seg = json.loads(
            json.dumps(segmentation).replace('"IMAGE"', json.dumps([img["height"], img["width"]]))
        )
        if isinstance(seg, dict) and seg["size"] is None:
            seg["size"] = [img["height"], img["width"]]
        if isinstance(seg, dict) and seg["counts"] in ("SHORT", "TRUNCATED"):
            h, w = img["height"], img["width"]
            mask = np.zeros((h, w), np.uint8)
            mask[10:20, 10:30] = 1
            counts = mask_utils.encode(np.asfortranarray(mask))["counts"].decode()
            short = mask_utils.encode(np.asfortranarray(mask[:, :-1]))["counts"].decode()
            seg["counts"] = short if seg["counts"] == "SHORT" else counts[:-1]
        ann["segmentation"] = seg
        d["_bad"] = (img["id"], ann["id"])

    data = _edit(data_root, spoil)
    image_id, ann_id = data["_bad"]
    assert _run(data_root, tmp_path / "out", "--limit", "2") == 2
    err = _err(capsys)
    assert (
        str(_ann_file(data_root)) in err
        and f"image {image_id}, annotation {ann_id}" in err
        and problem in err
    )
    assert _run(data_root, tmp_path / "out2", "--limit", "2", "--skip-bad") == 0
    assert _record(tmp_path / "out2")["counts"]["skipped"]["bad_annotation"] == 1


def test_bad_ground_truth_is_never_skipped_for_ap(data_root, tmp_path, capsys):
    data = _edit(data_root, lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3, 4]]))
    boxes = tmp_path / "b.json"
    assert (
        main(["make-boxes", "coco", "--data", "real", "--data-root", str(data_root), "--out", str(boxes)])
        == 0
    )
    capsys.readouterr()
    rc = _run(
        data_root,
        tmp_path / "out",
        "--boxes",
        str(boxes),
        "--skip-bad",
        protocol="coco-vitdet",
        model="box-fill",
    )
    assert rc == 2 and f"annotation {data['annotations'][0]['id']}: bad segmentation" in _err(capsys)


@pytest.mark.parametrize(
    ("change", "problem"), [((2, 0), "non-positive size"), ((0, 3e8), "far outside the 640x480 (WxH) image")]
)
def test_bad_annotation_box_with_box_source_ann(change, problem, data_root, tmp_path, capsys):
    def spoil(d):
        ann = next(
            a for a in d["annotations"] if a["image_id"] == d["images"][0]["id"] and not a.get("iscrowd")
        )
        ann["bbox"][change[0]] = change[1]
        d["_id"] = ann["id"]

    data = _edit(data_root, spoil)
    assert _run(data_root, tmp_path / "out", "--limit", "1", "--set", "box_source=ann") == 2
    err = _err(capsys)
    assert f"annotation {data['_id']}: bbox" in err and problem in err and str(_ann_file(data_root)) in err
    assert _run(data_root, tmp_path / "o2", "--limit", "1", "--set", "box_source=ann", "--skip-bad") == 0
    (folder,) = (tmp_path / "o2").glob("oracle*/coco-box")  # the run is named after the option
    assert json.loads((folder / "record.json").read_text())["counts"]["skipped"]["bad_annotation"] == 1


@pytest.mark.parametrize("area", ["missing", -5.0])
def test_missing_or_negative_area_fails_or_is_skipped_for_miou(area, data_root, tmp_path, capsys):
    """The S/M/L buckets go by `area`: a missing or negative one is never bucketed as small silently."""

    def spoil(d):
        img = d["images"][0]
        ann = next(a for a in d["annotations"] if a["image_id"] == img["id"] and not a.get("iscrowd"))
        if area == "missing":
            del ann["area"]
        else:
            ann["area"] = area
        d["_bad"] = (img["id"], ann["id"])

    data = _edit(data_root, spoil)
    image_id, ann_id = data["_bad"]
    assert _run(data_root, tmp_path / "out", "--limit", "2") == 2
    err = _err(capsys)
    assert str(_ann_file(data_root)) in err and f"image {image_id}, annotation {ann_id}" in err
    assert ("no area" if area == "missing" else "area -5 is negative") in err
    assert _run(data_root, tmp_path / "out2", "--limit", "2", "--skip-bad") == 0
    record = _record(tmp_path / "out2")
    assert record["counts"]["skipped"]["bad_annotation"] == 1
    logged = (run_folder(tmp_path / "out2", "oracle", "coco-box") / "instances.jsonl").read_text()
    assert f'"ann_id":{ann_id},' not in logged


def _boxes(root: Path, tmp_path: Path) -> Path:
    boxes = tmp_path / "boxes.json"
    args = ["make-boxes", "coco", "--data", "real", "--data-root", str(root), "--out", str(boxes)]
    assert main(args) == 0
    return boxes


def test_ap_protocols_refuse_a_missing_area_before_any_work(data_root, tmp_path, capsys):
    boxes = _boxes(data_root, tmp_path)
    data = _edit(data_root, lambda d: d["annotations"][-1].pop("area"))
    capsys.readouterr()
    out = tmp_path / "out"
    rc = _run(data_root, out, "--boxes", str(boxes), "--limit", "1", protocol="coco-vitdet", model="box-fill")
    assert rc == 2
    err = _err(capsys)
    assert str(_ann_file(data_root)) in err and f"annotation {data['annotations'][-1]['id']}" in err
    assert "lacks area" in err
    assert not out.exists(), "refused before any image was run"


@pytest.mark.parametrize(("ids", "backend"), [("zero", "official"), ("negative", "faster")])
def test_ids_the_ap_evaluators_would_score_wrong_are_refused_before_any_work(
    ids, backend, data_root, tmp_path, capsys
):
    """pycocotools / LVISEval / faster-coco-eval record a match by the GT id and read 0 as 'no match'
    (the annotation silently counts as missed); faster-coco-eval never matches negative annotation ids
    and crashes on negative image ids. The official backend scores negative ids correctly."""
    boxes = _boxes(data_root, tmp_path)

    def renumber(d):
        if ids == "zero":
            d["annotations"][3]["id"] = 0
        else:
            for ann in d["annotations"]:
                ann["id"] = -ann["id"]

    _edit(data_root, renumber)
    capsys.readouterr()
    out = tmp_path / "out"
    args = ["--boxes", str(boxes), "--limit", "2", "--ap-backend", backend]
    assert _run(data_root, out, *args, protocol="coco-vitdet", model="box-fill") == 2
    err = _err(capsys)
    assert str(_ann_file(data_root)) in err
    assert ("annotation id 0" if ids == "zero" else "--ap-backend official") in err
    assert not out.exists(), "refused before any image was run"
    assert _run(data_root, tmp_path / "miou", "--limit", "2") == 0  # the mIoU protocols do not care


def _lvis_ann(tmp_path: Path, change) -> Path:
    data = json.loads((sample_root() / "annotations" / "lvis_v1_val.json").read_text())
    change(data)
    path = tmp_path / "lvis_v1_val.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["images"][3].pop("neg_category_ids"), "lacks neg_category_ids"),
        (lambda d: d["images"][0].pop("not_exhaustive_category_ids"), "lacks not_exhaustive_category_ids"),
        (lambda d: d["images"][0].update(neg_category_ids="4"), "neg_category_ids '4' is not a list"),
        (lambda d: d["categories"][2].pop("frequency"), "lacks frequency"),
        (lambda d: d["categories"][0].update(frequency="x"), "has frequency 'x'"),
        (lambda d: d["annotations"][5].update(area=-1), "negative area"),
    ],
)
def test_lvis_evaluator_keys_are_checked_before_any_work(change, message, tmp_path, capsys):
    """LVISEval needs these keys; without them it failed after every image had run, naming no file."""
    ann = _lvis_ann(tmp_path, change)
    boxes = tmp_path / "boxes.json"
    assert main(["make-boxes", "lvis", "--data", "sample", "--out", str(boxes)]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    args = ["run", "lvis-vitdet", "--model", "box-fill", "--data", "sample", "--ann", str(ann)]
    assert main([*args, "--boxes", str(boxes), "--out", str(out), "--limit", "2"]) == 2
    err = _err(capsys)
    assert str(ann) in err and message in err
    assert not out.exists(), "refused before any image was run"
    # an mIoU protocol does not need them
    if "area" not in message:
        assert (
            main(
                [
                    "run",
                    "lvis-box",
                    "--model",
                    "oracle",
                    "--data",
                    "sample",
                    "--ann",
                    str(ann),
                    "--out",
                    str(tmp_path / "miou"),
                    "--limit",
                    "2",
                ]
            )
            == 0
        )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('"area": 1' + "0" * 400, "area <an integer of 401 digits> is not a finite number"),
        ('"area": 1e999', "area inf is not a finite number"),
        ('"area": 1' + "0" * 5000, "a value cannot be read"),
        ('"bbox": [1.7e308, 0, 1.7e308, 1]', "beyond the range of a float"),
        ('"bbox": [0, 0, 1' + "0" * 400 + ", 1]", "is not [x, y, w, h] of finite numbers"),
        ('"segmentation": ' + "[" * 100000 + "]" * 100000, "nested too deeply"),
    ],
)
def test_numbers_beyond_float_range_and_deep_nesting_in_annotations(
    raw, message, data_root, tmp_path, capsys
):
    """JSON allows what Python cannot read or convert: each is one line naming the file."""
    data = json.loads(_ann_file(data_root).read_text())
    text = json.dumps(data)  # ", " and ": " separators
    key = raw.split(":")[0]
    first = data["annotations"][0]
    old = f"{key}: {json.dumps(first[key.strip(chr(34))])}"
    assert old in text
    _ann_file(data_root).write_text(text.replace(old, raw, 1))
    assert _run(data_root, tmp_path / "out") == 2
    err = _err(capsys)
    assert str(_ann_file(data_root)) in err and message in err
    assert len(err) < 1000


@pytest.mark.parametrize(
    ("bbox", "score", "reason"),
    [
        ("[1.7e308, 10, 1.7e308, 10]", "0.5", "bad_box"),  # x + w is infinite
        ("[1" + "0" * 400 + ", 10, 10, 10]", "0.5", "bad_box"),  # beyond the float range
        ("[10, 10, 10, 10]", "1" + "0" * 400, "non_finite_score"),
        ("[0, 0, 3e8, 3e8]", "0.5", "box_outside_image"),  # a prompt far outside the image
    ],
)
def test_detections_beyond_float_range_or_far_outside_the_image(
    bbox, score, reason, data_root, tmp_path, capsys
):
    boxes = _boxes(data_root, tmp_path)
    dets = json.loads(boxes.read_text())
    first = dets[0]
    bad = (
        f'{{"image_id": {first["image_id"]}, "category_id": {first["category_id"]}, '
        f'"bbox": {bbox}, "score": {score}}}'
    )
    boxes.write_text("[" + bad + "," + json.dumps(dets)[1:])
    capsys.readouterr()
    args = ["--boxes", str(boxes), "--limit", "2"]
    assert _run(data_root, tmp_path / "out", *args, protocol="coco-vitdet", model="box-fill") == 2
    err = _err(capsys)
    assert str(boxes) in err and "detection #0" in err and len(err) < 1000
    assert (
        _run(data_root, tmp_path / "o2", *args, "--skip-bad", protocol="coco-vitdet", model="box-fill") == 0
    )
    assert _record(tmp_path / "o2", "coco-vitdet", "box-fill")["counts"]["skipped"][reason] == 1


def test_deeply_nested_detection_file(data_root, tmp_path, capsys):
    boxes = tmp_path / "boxes.json"
    boxes.write_text("[" * 200000 + "]" * 200000)
    assert (
        _run(data_root, tmp_path / "out", "--boxes", str(boxes), protocol="coco-vitdet", model="box-fill")
        == 2
    )
    err = _err(capsys)
    assert str(boxes) in err and "nested too deeply" in err


def test_negative_ids_and_a_negative_seed_run(data_root, tmp_path, capsys):
    """Converted datasets use negative ids; --seed -1 is an integer like any other."""

    def negate(d):
        for img in d["images"]:
            img["id"] = -img["id"]
        for ann in d["annotations"]:
            ann["id"], ann["image_id"] = -ann["id"], -ann["image_id"]

    _edit(data_root, negate)
    for protocol in ("coco-box", "coco-3click"):
        assert _run(data_root, tmp_path / "out", "--limit", "3", "--seed", "-1", protocol=protocol) == 0
        assert _record(tmp_path / "out", protocol)["metrics"]["mIoU"] == 100.0
    boxes = _boxes(data_root, tmp_path)
    rc = _run(data_root, tmp_path / "out", "--boxes", str(boxes), "--limit", "3", protocol="coco-vitdet")
    assert rc == 0, capsys.readouterr().err


# --- image files -----------------------------------------------------------------------------


def _first_image(root: Path) -> tuple[int, Path]:
    img = json.loads(_ann_file(root).read_text())["images"][0]
    return img["id"], root / "val2017" / img["file_name"]


@pytest.mark.parametrize("damage", ["missing", "truncated", "zero_bytes", "not_an_image"])
def test_bad_image_files(damage, data_root, tmp_path, capsys):
    image_id, path = _first_image(data_root)
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "zero_bytes":
        path.write_bytes(b"")
    else:
        path.write_text("<html>not found</html>")
    assert _run(data_root, tmp_path / "out", "--limit", "2") == 2
    err = _err(capsys)
    assert f"image {image_id}" in err and str(path) in err
    assert _run(data_root, tmp_path / "out2", "--limit", "2", "--skip-bad") == 0
    record = _record(tmp_path / "out2")
    assert record["counts"]["skipped"]["bad_image"] == 1 and record["counts"]["images"] == 2
    # --skip-bad is part of the run's identity: the same folder without it is another run, not this record
    capsys.readouterr()
    assert _run(data_root, tmp_path / "out2", "--limit", "2") == 2
    err = _err(capsys)
    assert "--skip-bad" in err and "--overwrite" in err and "Traceback" not in err
    # the bad image inside a batch of two: skipped the same way, the good one still embedded
    assert _run(data_root, tmp_path / "out3", "--limit", "2", "--skip-bad", "--image-batch", "2") == 0
    logs = [
        run_folder(out, "oracle", "coco-box") / "instances.jsonl"
        for out in (tmp_path / "out2", tmp_path / "out3")
    ]
    assert logs[0].read_text() == logs[1].read_text() != ""
    assert _record(tmp_path / "out3")["counts"] == record["counts"]


def _png(width: int, height: int, depth: int, colour: int, pixels: bytes | None) -> bytes:
    """A PNG file from raw rows (``None``: a header with no image data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = chunk(b"IDAT", zlib.compress(pixels)) if pixels is not None else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + body + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_or_skipped_and_the_limit_can_be_raised(
    data_root, tmp_path, capsys, monkeypatch
):
    image_id, path = _first_image(data_root)
    path.write_bytes(_png(20000, 20000, 8, 0, None))  # 400 Mpx declared in a few bytes
    assert _run(data_root, tmp_path / "out", "--limit", "2") == 2
    err = _err(capsys)
    assert f"image {image_id}" in err and str(path) in err and "decompression bomb" in err
    assert "EVALSUITE_MAX_IMAGE_PIXELS" in err
    assert _run(data_root, tmp_path / "out2", "--limit", "2", "--skip-bad") == 0
    assert _record(tmp_path / "out2")["counts"]["skipped"]["bad_image"] == 1
    # between Pillow's limit and twice it Pillow only warns (and would decode): refused the same way
    path.write_bytes(_png(10000, 10000, 8, 0, None))
    assert _run(data_root, tmp_path / "out3", "--limit", "2") == 2
    assert "decompression bomb" in _err(capsys)
    # raised for real large images: the guard lets it through (this one then fails to decode)
    monkeypatch.setenv("EVALSUITE_MAX_IMAGE_PIXELS", str(500_000_000))
    assert _run(data_root, tmp_path / "out4", "--limit", "2") == 2
    err = _err(capsys)
    assert "cannot decode image" in err and "decompression bomb" not in err
    monkeypatch.setenv("EVALSUITE_MAX_IMAGE_PIXELS", "lots")
    assert _run(data_root, tmp_path / "out5", "--limit", "2") == 2
    assert "EVALSUITE_MAX_IMAGE_PIXELS='lots'" in _err(capsys)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(data_root, tmp_path, capsys):
    from evalsuite.data.images import load_rgb

    image_id, path = _first_image(data_root)
    img = next(i for i in json.loads(_ann_file(data_root).read_text())["images"] if i["id"] == image_id)
    h, w = img["height"], img["width"]
    values = (np.arange(h * w, dtype=np.uint64) * 97 % 65536).astype(">u2").reshape(h, w)
    path.write_bytes(_png(w, h, 16, 0, b"".join(b"\x00" + row.tobytes() for row in values)))
    rgb = load_rgb(path, (h, w), image_id)
    expected = (values.astype(np.uint16) >> 8).astype(np.uint8)
    assert rgb.dtype == np.uint8 and rgb.shape == (h, w, 3)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert len(np.unique(rgb)) > 200, "not clipped to white"
    assert _run(data_root, tmp_path / "out", "--limit", "2") == 0


def test_thirty_two_bit_images_are_refused_or_skipped(data_root, tmp_path, capsys):
    from PIL import Image

    image_id, path = _first_image(data_root)
    with Image.open(path) as im:
        w, h = im.size
    Image.fromarray(np.full((h, w), 70000, dtype=np.int32)).save(path, format="TIFF")
    assert _run(data_root, tmp_path / "out", "--limit", "2") == 2
    err = _err(capsys)
    assert f"image {image_id}" in err and str(path) in err and "32-bit integer image" in err
    assert _run(data_root, tmp_path / "out2", "--limit", "2", "--skip-bad") == 0
    assert _record(tmp_path / "out2")["counts"]["skipped"]["bad_image"] == 1


# --- checkpoints and names -------------------------------------------------------------------


def test_truncated_checkpoint(tmp_path, capsys):
    runner = build_model("efficientsam-ti")
    path = save_official_format("efficientsam-ti", runner.model.state_dict(), tmp_path)
    path.write_bytes(path.read_bytes()[:5000])
    args = ["run", "coco-box", "--model", "efficientsam-ti", "--data", "sample", "--checkpoint", str(path)]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    assert str(path) in _err(capsys)


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_checkpoint_with_missing_or_extra_keys(change, tmp_path, capsys):
    sd = build_model("efficientsam-ti").model.state_dict()
    if change == "missing":
        sd.pop("image_encoder.pos_embed")
    else:
        sd["image_encoder.surprise"] = torch.zeros(1)
    path = save_official_format("efficientsam-ti", sd, tmp_path)
    args = ["run", "coco-box", "--model", "efficientsam-ti", "--data", "sample", "--checkpoint", str(path)]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = _err(capsys)
    assert str(path) in err and (
        "image_encoder.pos_embed" in err if change == "missing" else "surprise" in err
    )


def test_wrong_checkpoint_format(tmp_path, capsys):
    path = tmp_path / "weights.pt"
    torch.save({"optimizer": {"lr": 0.1}}, path)
    args = ["run", "coco-box", "--model", "efficientsam-ti", "--data", "sample", "--checkpoint", str(path)]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    assert str(path) in _err(capsys)


# --- output folder ---------------------------------------------------------------------------


def test_output_path_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("not a folder")
    assert main(["run", "coco-box", "--model", "oracle", "--data", "sample", "--out", str(out)]) == 2
    assert str(out) in _err(capsys)


def test_unwritable_output_folder(tmp_path, capsys, monkeypatch):
    def deny(self, path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(Path(path) / "config.json"))

    monkeypatch.setattr(RunFolder, "__init__", deny)
    assert main(["run", "coco-box", "--model", "oracle", "--data", "sample", "--out", str(tmp_path)]) == 2
    err = _err(capsys)
    assert "Permission denied" in err and "writable --out" in err


def test_full_disk_keeps_finished_images_and_resumes(tmp_path, capsys, monkeypatch):
    real = RunFolder.append_image
    calls = {"n": 0}

    def fill_up(self, image_row, rows):
        calls["n"] += 1
        if calls["n"] > 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "instances.rank0.jsonl"))
        real(self, image_row, rows)

    monkeypatch.setattr(RunFolder, "append_image", fill_up)
    args = ["run", "coco-box", "--model", "oracle", "--data", "sample", "--out", str(tmp_path)]
    assert main(args) == 1
    err = _err(capsys)
    assert "no space left" in err and "re-run the same command to resume" in err
    monkeypatch.setattr(RunFolder, "append_image", real)
    assert main(args) == 0
    record = _record(tmp_path)
    assert record["execution"]["images_this_session"] == record["counts"]["images"] - 4


def test_nan_checkpoint_is_recorded_with_null_scores_and_counted(data_root, tmp_path, capsys):
    """A checkpoint with NaN weights: masks from NaN logits are empty (IoU 0, finite) and the predicted
    scores are NaN, which JSON cannot hold: logged as null and counted, never a crash of the writer."""
    sd = build_model("efficientsam-ti").model.state_dict()
    sd = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in sd.items()}
    path = save_official_format("efficientsam-ti", sd, tmp_path)
    boxes = _boxes(data_root, tmp_path)
    capsys.readouterr()
    common = ["--limit", "1", "--checkpoint", str(path)]
    assert _run(data_root, tmp_path / "out", *common, model="efficientsam-ti") == 0
    (folder,) = (tmp_path / "out").glob("efficientsam-ti*/coco-box")  # named after the checkpoint
    record = json.loads((folder / "record.json").read_text())
    rows = [json.loads(line) for line in (folder / "instances.jsonl").open()]
    assert rows and all(r["score"] is None and r["iou"] == 0.0 for r in rows)
    assert record["counts"]["skipped"]["non_finite_model_score"] == len(rows) == record["counts"]["instances"]
    ap = ["--boxes", str(boxes), *common]
    assert _run(data_root, tmp_path / "out", *ap, protocol="coco-vitdet", model="efficientsam-ti") == 0
    (folder,) = (tmp_path / "out").glob("efficientsam-ti*/coco-vitdet")
    record = json.loads((folder / "record.json").read_text())
    assert record["counts"]["skipped"]["non_finite_model_score"] == record["counts"]["detections_scored"] > 0
    assert all(json.loads(line)["mask_score"] is None for line in (folder / "detections.jsonl").open())


def _finished_run(tmp_path: Path) -> tuple[list[str], Path]:
    args = [
        "run",
        "coco-box",
        "--model",
        "oracle",
        "--data",
        "sample",
        "--out",
        str(tmp_path),
        "--limit",
        "3",
    ]
    assert main(args) == 0
    return args, run_folder(tmp_path, "oracle", "coco-box")


@pytest.mark.parametrize("damage", ["truncated", "a_list", "deep"])
def test_damaged_config_json(damage, tmp_path, capsys):
    args, folder = _finished_run(tmp_path)
    config = folder / "config.json"
    text = config.read_text()
    config.write_text(
        {"truncated": text[: len(text) // 2], "a_list": "[1, 2]", "deep": "[" * 100000 + "]" * 100000}[damage]
    )
    capsys.readouterr()
    assert main(args) == 2
    err = _err(capsys)
    assert str(config) in err and "--overwrite" in err
    assert main([*args, "--overwrite"]) == 0


def test_damaged_record_json_of_a_finished_run(tmp_path, capsys):
    args, folder = _finished_run(tmp_path)
    good = (folder / "record.json").read_text()
    for damage in (good[:100], "[]", '{"schema_version": 2, "run_id": "x"}'):
        (folder / "record.json").write_text(damage)
        capsys.readouterr()
        assert main(args) == 2
        err = _err(capsys)
        assert str(folder / "record.json") in err and "delete" in err and "rebuilt from the logs" in err
    (folder / "record.json").unlink()  # the hint's way out: the record is rebuilt, nothing re-run
    assert main(args) == 0
    rebuilt = json.loads((folder / "record.json").read_text())
    assert rebuilt["execution"]["images_this_session"] == 0
    assert rebuilt["metrics"] == json.loads(good)["metrics"]


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("images.jsonl", "[1, 2]"),
        ("images.jsonl", '{"image_id": "x", "records": 1}'),
        ("images.jsonl", '{"image_id": 5, "records": -1}'),
        ("images.jsonl", "[" * 100000 + "]" * 100000),
        ("instances.jsonl", "7"),
        ("instances.jsonl", "REPLACE"),  # the first row, its fields damaged (the row count still fits)
    ],
)
def test_damaged_run_logs(name, line, tmp_path, capsys):
    args, folder = _finished_run(tmp_path)
    (folder / "record.json").unlink()  # not finished: the logs are read again
    log = folder / name
    lines = log.read_text().splitlines()
    if line == "REPLACE":
        lines[0] = json.dumps({"image_id": json.loads(lines[0])["image_id"], "surprise": 1})
    else:
        lines.insert(1, line)
    log.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(args) == 2
    err = _err(capsys)
    assert name in err and "damaged" in err and ("delete" in err or "--overwrite" in err)
    if name == "images.jsonl":
        assert str(log) in err
    log.unlink()  # the hint's way out: its images are evaluated again
    assert main(args) == 0


@pytest.mark.parametrize("damage", ["cut", "short"])
def test_damaged_mask_in_a_detections_log(damage, data_root, tmp_path, capsys):
    """The evaluator decodes the logged RLEs: one cut or one pixel short is named, never scored."""
    boxes = _boxes(data_root, tmp_path)
    args = ["--boxes", str(boxes), "--limit", "2"]
    assert _run(data_root, tmp_path / "out", *args, protocol="coco-vitdet", model="box-fill") == 0
    folder = run_folder(tmp_path / "out", "box-fill", "coco-vitdet")
    (folder / "record.json").unlink()  # not finished: the logs are scored again
    log = folder / "detections.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    seg = rows[1]["segmentation"]
    if damage == "cut":
        seg["counts"] = seg["counts"][:-1]
    else:  # the runs of a mask one column narrower: pycocotools would leave that column uninitialised
        narrow = mask_utils.decode(seg)[:, :-1]
        seg["counts"] = mask_utils.encode(np.asfortranarray(narrow))["counts"].decode()
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    capsys.readouterr()
    assert _run(data_root, tmp_path / "out", *args, protocol="coco-vitdet", model="box-fill") == 2
    err = _err(capsys)
    assert str(log) in err and f"image {rows[1]['image_id']}: a logged mask is damaged" in err
    log.unlink()  # the hint's way out: its images are predicted again
    assert _run(data_root, tmp_path / "out", *args, protocol="coco-vitdet", model="box-fill") == 0


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path, capsys):
    """Two runs into one folder: the second is refused with one line naming the first; a lock left by a
    killed run is taken over."""
    import subprocess
    import sys

    folder = tmp_path / "oracle+limit2" / "coco-box"
    hold = (
        "import sys, time; from pathlib import Path; from evalsuite.engine.runfolder import RunFolder\n"
        "f = RunFolder(Path(sys.argv[1]), {}, 'instances.jsonl'); print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        args = ["run", "coco-box", "--model", "oracle", "--data", "sample", "--out", str(tmp_path)]
        assert main([*args, "--limit", "2"]) == 2
        err = _err(capsys)
        assert str(folder) in err and f"pid {holder.pid}" in err and "another evalsuite run" in err
        assert main([*args, "--limit", "2", "--overwrite"]) == 2  # not even with --overwrite
        _err(capsys)
    finally:
        holder.kill()
        holder.wait()
    assert (folder / "run.lock").is_file()  # left behind by the killed holder
    assert main([*args, "--limit", "2", "--overwrite"]) == 0
    assert not (folder / "run.lock").exists(), "released at the end of the run"


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="unknown protocol"):
        main(["--debug", "run", "nope", "--model", "oracle", "--data", "sample", "--out", str(tmp_path)])
