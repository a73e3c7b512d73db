"""Each format on a synthetic fixture in a catalogue entry's layout, end to end through the CLI or engine.

Expected numbers are computed from the fixtures' masks by numpy (``dataset_fixtures``), not by the
readers: the box-fill model's IoU is |mask| / |tight box|; the oracle answers every prompt with the
ground truth (100 %, one click to any target), which shows the click and NoC protocols run on the
format. Tiny images (24×32): the whole module takes a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import box_fill_iou, write_instance_folder, write_mask_folder, write_sa1b

from evalsuite.cli import main
from evalsuite.data.folders import InstanceFolderReader, MaskFolderReader
from evalsuite.data.locate import locate
from evalsuite.data.masks import decode_segmentation
from evalsuite.data.sa1b import Sa1bReader
from evalsuite.engine import RunConfig, run
from evalsuite.errors import InputError


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EVALSUITE_DATA", raising=False)


def _record(out: Path, protocol: str) -> dict:
    (path,) = out.glob(f"*/{protocol}/record.json")
    return json.loads(path.read_text())


def _decoded(sample) -> list[np.ndarray]:
    return [decode_segmentation(i.segmentation, sample.height, sample.width) for i in sample.instances]


# -- mask PNGs (HQ-Seg-44K, GrabCut, Berkeley) -----------------------------------------------------------
@pytest.mark.parametrize(
    ("dataset", "masks", "images"),
    [
        ("dis5k-vd", "DIS5K/DIS-VD/gt", "DIS5K/DIS-VD/im"),
        ("coift", "thin_object_detection/COIFT/masks", "thin_object_detection/COIFT/images"),
        ("hrsod", "thin_object_detection/HRSOD/masks_max255", "thin_object_detection/HRSOD/images"),
        ("thinobject5k-te", "ThinObject5K/masks_test", "ThinObject5K/images_test"),  # without the parent
        ("grabcut", "GrabCut/boundary_GT", "GrabCut/data_GT"),
        ("berkeley", "Berkeley/masks", "Berkeley/images"),
    ],
)
def test_mask_png_box_protocol_from_the_cli(dataset, masks, images, tmp_path, capsys) -> None:
    """`evalsuite run <dataset>-box --model box-fill --data-root FIXTURE` prints mIoU (and the HQ sets'
    mBIoU column); the data are named by their content, never by the published dataset's name."""
    objects = write_mask_folder(tmp_path / "data", masks, images)
    out = tmp_path / "runs"
    argv = ["run", f"{dataset}-box", "--model", "box-fill", "--data-root", str(tmp_path / "data")]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rec = _record(out, f"{dataset}-box")
    expected = 100 * np.mean([box_fill_iou(m) for m in objects])
    assert rec["metrics"]["mIoU"] == pytest.approx(expected, abs=1e-9)
    assert f"{expected:.1f}" in printed and "mIoU" in printed
    if dataset not in ("grabcut", "berkeley"):  # the HQ sets: SAM-HQ's two metrics, side by side
        assert list(rec["metrics"]) == ["mIoU", "mBIoU"] and "mBIoU" in printed
    d = rec["dataset"]
    assert d["family"] == dataset and d["official"] is False
    assert d["name"] == f"{dataset}-file-{d['annotation_sha256'][:8]}"  # found in place: not the official set
    assert rec["counts"] == {**rec["counts"], "images": 3, "instances": 3, "skipped": {}}


def test_mask_reader_thresholds_channels_and_pairs(tmp_path) -> None:
    objects = write_mask_folder(tmp_path, "gt", "im")
    reader = MaskFolderReader(tmp_path / "gt", tmp_path / "im")
    assert reader.image_ids() == [1, 2, 3] and reader.categories == {1: {"id": 1, "name": "object"}}
    for i, obj in zip(reader.image_ids(), objects, strict=True):
        s = reader.sample(i)
        (mask,) = _decoded(s)
        assert np.array_equal(mask, obj) and s.instances[0].area == obj.sum()
        assert s.path == tmp_path / "im" / f"img_{i - 1:02d}.jpg"
    loose = MaskFolderReader(tmp_path / "gt", tmp_path / "im", threshold=99)  # 100 and 128 now count
    assert _decoded(loose.sample(1))[0].sum() == objects[0].sum() + 10
    assert loose.annotation_sha256 != reader.annotation_sha256  # the threshold is part of the data
    (tmp_path / "im" / "img_01.jpg").unlink()
    with pytest.raises(InputError, match=r"no image for 1 of 3 annotation file\(s\).*img_01.png"):
        MaskFolderReader(tmp_path / "gt", tmp_path / "im")


# -- instance-id PNGs (DAVIS) ----------------------------------------------------------------------------
def test_davis_box_click_and_noc_protocols(tmp_path) -> None:
    """The DAVIS entry (RITM's reading: every non-zero pixel is the one object) runs box, 1-click, NoC."""
    maps = write_instance_folder(tmp_path / "data", "DAVIS/gt", "DAVIS/img")
    merged = [m[1] | m[2] | _void_row() for m in maps]  # RITM: any non-zero value, the 255 band too
    common = {"data_root": tmp_path / "data", "out": tmp_path / "runs", "progress": False}
    (box,) = run(RunConfig(["davis-box"], "box-fill", **common))
    expected = 100 * np.mean([box_fill_iou(m) for m in merged])
    assert box.record.metrics["mIoU"] == pytest.approx(expected, abs=1e-9)
    click, noc = run(RunConfig(["davis-1click", "davis-noc20"], "oracle", **common))
    assert click.record.metrics["mIoU"] == 100.0 and click.record.counts.instances == 2
    assert noc.record.metrics["NoC@90"] == 1.0 and noc.record.counts.instances == 2
    rows = [json.loads(x) for x in (click.folder / "instances.jsonl").read_text().splitlines()]
    for row in rows:  # each click lies inside its object
        (x, y), obj = row["prompt"]["points"][0], merged[row["image_id"] - 1]
        assert obj[int(y), int(x)]


def _void_row() -> np.ndarray:
    m = np.zeros((24, 32), dtype=bool)
    m[0, :] = True
    return m


def test_instance_ids_and_void(tmp_path) -> None:
    maps = write_instance_folder(tmp_path, "gt", "img")
    reader = InstanceFolderReader(tmp_path / "gt", tmp_path / "img", void=255)
    for i, ids in zip(reader.image_ids(), maps, strict=True):
        s = reader.sample(i)
        assert [inst.ann_id for inst in s.instances] == [1, 2]
        for inst, mask in zip(s.instances, _decoded(s), strict=True):
            assert np.array_equal(mask, ids[inst.ann_id])  # the void band belongs to no object
    merged = InstanceFolderReader(tmp_path / "gt", tmp_path / "img", void=255, merge=True).sample(1)
    assert [i.ann_id for i in merged.instances] == [1]
    assert np.array_equal(_decoded(merged)[0], maps[0][1] | maps[0][2])


# -- SA-1B ------------------------------------------------------------------------------------------------
def test_sa1b_box_click_and_noc_protocols(tmp_path) -> None:
    masks = write_sa1b(tmp_path / "data")
    common = {"data_root": tmp_path / "data", "out": tmp_path / "runs", "progress": False}
    (box,) = run(RunConfig(["sa1b-1k-box"], "box-fill", **common))
    expected = 100 * np.mean([box_fill_iou(m) for ms in masks.values() for m in ms])
    assert box.record.metrics["mIoU"] == pytest.approx(expected, abs=1e-9)
    assert box.record.counts.instances == 6 and box.record.dataset.family == "sa1b-1k"
    assert box.record.dataset.name.startswith("sa1b-1k-file-") and box.record.dataset.official is False
    click, noc = run(RunConfig(["sa1b-1k-1click", "sa1b-1k-noc20"], "oracle", **common))
    assert click.record.metrics["mIoU"] == 100.0 and noc.record.metrics["NoC@85"] == 1.0
    rows = [json.loads(x) for x in (box.folder / "instances.jsonl").read_text().splitlines()]
    assert sorted(r["ann_id"] for r in rows) == [0, 1, 2, 1000, 1001, 1002]  # SA-1B's own annotation ids


def test_sa1b_subset_options(tmp_path) -> None:
    write_sa1b(tmp_path, "anns", images=3, per_image=5)
    every = Sa1bReader(tmp_path / "anns", tmp_path / "anns")
    some = Sa1bReader(tmp_path / "anns", tmp_path / "anns", first=2, instances_per_image=2)
    assert every.image_ids() == [1, 2, 3] and some.image_ids() == [1, 2]
    picked = [i.ann_id for i in some.sample(2).instances]
    assert len(picked) == 2 and picked == sorted(picked) and set(picked) <= {1000 + k for k in range(5)}
    assert picked == [i.ann_id for i in some.sample(2).instances]  # deterministic
    assert every.annotation_sha256 != some.annotation_sha256
    doc = json.loads((tmp_path / "anns" / "sa_100.json").read_text())
    doc["annotations"][0]["segmentation"]["size"] = [5, 5]
    (tmp_path / "anns" / "sa_100.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"sa_100.json: annotation 0: bad segmentation"):
        every.sample(1)


# -- what the catalogue refuses ---------------------------------------------------------------------------
def test_no_sample_and_nothing_found_are_one_line(tmp_path, capsys) -> None:
    assert main(["run", "coift-box", "--model", "box-fill", "--data", "sample", "--out", str(tmp_path)]) == 2
    assert "dataset coift has no bundled sample" in capsys.readouterr().err
    rc = main(
        ["run", "sa1b-1k-box", "--model", "box-fill", "--data-root", str(tmp_path), "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "annotations not found under" in err and "sa_000130.tar" in err
    assert err.count("\n") == 2  # the message and its hint
    with pytest.raises(InputError, match="cannot be downloaded by evalsuite: accept the SA-1B terms"):
        from evalsuite.fetch.datasets import download_dataset

        download_dataset("sa1b-1k", tmp_path)


def test_locate_tries_each_layout(tmp_path) -> None:
    write_mask_folder(tmp_path, "COIFT/masks", "COIFT/images")  # SAM-HQ's data/ without its parent folder
    src = locate("coift", data_root=tmp_path)
    assert src.ann_file == tmp_path / "COIFT/masks" and src.images == tmp_path / "COIFT/images"
    assert len(src.open().image_ids()) == 3
