"""The catalogue of bad inputs: each gives one line naming the file and the id, with the right exit status.

Exit status 2 means bad input (fix the file or the command), 1 a runtime failure; no traceback
unless --debug; with --skip-bad the bad item is skipped and counted in the run record.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

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
    return json.loads((out / model / protocol / "record.json").read_text())


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


def test_non_positive_annotation_box_with_box_source_ann(data_root, tmp_path, capsys):
    def spoil(d):
        ann = next(
            a for a in d["annotations"] if a["image_id"] == d["images"][0]["id"] and not a.get("iscrowd")
        )
        ann["bbox"][2] = 0
        d["_id"] = ann["id"]

    data = _edit(data_root, spoil)
    assert _run(data_root, tmp_path / "out", "--limit", "1", "--set", "box_source=ann") == 2
    assert f"annotation {data['_id']}: bbox" in _err(capsys)


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
    # the bad image inside a batch of two: skipped the same way, the good one still embedded
    assert _run(data_root, tmp_path / "out3", "--limit", "2", "--skip-bad", "--image-batch", "2") == 0
    logs = [out / "oracle" / "coco-box" / "instances.jsonl" for out in (tmp_path / "out2", tmp_path / "out3")]
    assert logs[0].read_text() == logs[1].read_text() != ""
    assert _record(tmp_path / "out3")["counts"] == record["counts"]


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


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="unknown protocol"):
        main(["--debug", "run", "nope", "--model", "oracle", "--data", "sample", "--out", str(tmp_path)])
