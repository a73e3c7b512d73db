"""Readers, mask decoding, instance filtering and dataset location, on real COCO/LVIS files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from evalsuite.data.gt import SKIP_CROWD, SKIP_EMPTY, MaskCache, select_instances
from evalsuite.data.images import load_rgb
from evalsuite.data.locate import locate
from evalsuite.data.masks import decode_segmentation, encode_mask
from evalsuite.data.readers import CocoReader, LvisReader, lvis_image_relpath
from evalsuite.data.types import Instance, Sample
from evalsuite.errors import DataNotFoundError, InputError


@pytest.mark.parametrize(
    ("url", "rel"),
    [
        ("http://images.cocodataset.org/val2017/000000266409.jpg", "val2017/000000266409.jpg"),
        ("http://images.cocodataset.org/train2017/000000391895.jpg", "train2017/000000391895.jpg"),
        ("https://example.org/a/b/train2017/x.jpg?dl=1", "train2017/x.jpg"),
    ],
)
def test_lvis_path_from_coco_url(url, rel):
    assert str(lvis_image_relpath(url)) == rel


def test_lvis_reader_resolves_train_and_val_images(tmp_path):
    data = {
        "images": [
            {
                "id": 1,
                "height": 4,
                "width": 5,
                "coco_url": "http://images.cocodataset.org/train2017/000000000001.jpg",
            },
            {
                "id": 2,
                "height": 4,
                "width": 5,
                "coco_url": "http://images.cocodataset.org/val2017/000000000002.jpg",
            },
        ],
        "annotations": [],
        "categories": [{"id": 1, "name": "x", "frequency": "r"}],
    }
    ann = tmp_path / "lvis.json"
    ann.write_text(json.dumps(data))
    reader = LvisReader(ann, tmp_path / "root")
    assert reader.sample(1).path == tmp_path / "root" / "train2017" / "000000000001.jpg"
    assert reader.sample(2).path == tmp_path / "root" / "val2017" / "000000000002.jpg"


def test_real_lvis_file_reads(realdata):
    reader = LvisReader(realdata / "lvis_val_100" / "lvis_val_100.json", Path("/coco"))
    assert len(reader) == 100
    assert sum(len(s.instances) for s in reader) == 977
    assert len(reader.categories) == 1230
    s = reader.sample(266409)
    assert s.path == Path("/coco/val2017/000000266409.jpg")
    assert all(not i.iscrowd for i in s.instances)


def test_real_coco_annotations_decode_and_count(realdata):
    """The 100-image val2014 file: counts, and our decoding equals pycocotools' own annToMask."""
    ann_file = realdata / "coco_val2014_100" / "instances_val2014_100.json"
    reader = CocoReader(ann_file, Path("/coco"))
    assert len(reader) == 100
    instances = [i for s in reader for i in s.instances]
    assert len(instances) == 839
    assert sum(i.iscrowd for i in instances) == 9
    assert len({i.category_id for i in instances}) == 70

    official = COCO(str(ann_file))
    kinds = Counter()
    for sample in reader:
        for inst in sample.instances:
            mask = decode_segmentation(inst.segmentation, sample.height, sample.width)
            np.testing.assert_array_equal(mask, official.annToMask(official.anns[inst.ann_id]).astype(bool))
            kinds["polygon" if isinstance(inst.segmentation, list) else "rle"] += 1
    assert kinds["rle"] == 9 and kinds["polygon"] == 830


def test_real_image_39769_masks_match_areas_and_boxes(coco_39769):
    reader = CocoReader(coco_39769 / "annotations" / "instances_val2017.json", coco_39769)
    (sample,) = list(reader)
    image = load_rgb(sample.path, (sample.height, sample.width), sample.image_id)
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    assert Counter(i.category_id for i in sample.instances) == {17: 2, 75: 2, 63: 1, 65: 1}
    for inst in sample.instances:
        mask = decode_segmentation(inst.segmentation, sample.height, sample.width)
        assert abs(mask.sum() - inst.area) / inst.area < 0.004
        ys, xs = np.nonzero(mask)
        np.testing.assert_allclose([xs.min(), ys.min()], inst.bbox[:2], atol=1.0)
    cats = [i for i in sample.instances if i.category_id == 17]
    m1, m2 = (decode_segmentation(c.segmentation, 480, 640) for c in cats)
    assert not (m1 & m2).any()  # the two cats do not overlap


def _sample_with(instances, h=6, w=7):
    return Sample(image_id=1, path=Path("x"), height=h, width=w, instances=tuple(instances))


def _poly_inst(ann_id, poly, iscrowd=False):
    return Instance(ann_id, 1, 1.0, (0, 0, 1, 1), [poly], iscrowd)


def test_crowd_and_empty_filtering_counts():
    square = [1, 1, 4, 1, 4, 4, 1, 4]
    sliver = [2.0, 2.0, 2.2, 2.0, 2.2, 2.1]  # covers no pixel centre: decodes empty
    crowd_rle = encode_mask(np.ones((6, 7), bool))
    insts = [
        _poly_inst(1, square),
        _poly_inst(2, sliver),
        Instance(3, 1, 42.0, (0, 0, 7, 6), crowd_rle, True),
        _poly_inst(4, square),
    ]
    gt = select_instances(MaskCache(_sample_with(insts)), include_crowd=False)
    assert [i.ann_id for i in gt.instances] == [1, 4]
    assert gt.skipped == {SKIP_CROWD: 1, SKIP_EMPTY: 1}
    gt = select_instances(MaskCache(_sample_with(insts)), include_crowd=True)
    assert [i.ann_id for i in gt.instances] == [1, 3, 4]
    assert gt.skipped == {SKIP_EMPTY: 1}
    assert gt.masks.shape == (3, 6, 7) and gt.masks[1].all()


def test_uncompressed_and_compressed_rle_decode_alike():
    mask = np.zeros((5, 8), bool)
    mask[1:4, 2:7] = True
    compressed = encode_mask(mask)
    # uncompressed COCO RLE: run lengths in column-major order, starting with zeros
    flat = mask.flatten(order="F").astype(int)
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    uncompressed = {"counts": runs, "size": [5, 8]}
    np.testing.assert_array_equal(decode_segmentation(compressed, 5, 8), mask)
    np.testing.assert_array_equal(decode_segmentation(uncompressed, 5, 8), mask)


def test_grayscale_image_is_decoded_to_rgb(tmp_path):
    from PIL import Image

    path = tmp_path / "g.jpg"
    Image.fromarray(np.full((4, 6), 200, np.uint8), mode="L").save(path)
    rgb = load_rgb(path, (4, 6))
    assert rgb.shape == (4, 6, 3) and (rgb[..., 0] == rgb[..., 2]).all()
    with pytest.raises(InputError, match="differs"):
        load_rgb(path, (6, 4), image_id=9)
    with pytest.raises(DataNotFoundError, match="image 9"):
        load_rgb(tmp_path / "missing.jpg", image_id=9)


def test_locate_reports_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("EVALSUITE_DATA", raising=False)
    with pytest.raises(DataNotFoundError) as e:
        locate("coco", data_root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "annotations" / "instances_val2017.json") in msg and "--data sample" in msg
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "lvis_v1_val.json").write_text("{}")
    src = locate("lvis", data_root=tmp_path)
    assert src.ann_file == tmp_path / "annotations" / "lvis_v1_val.json" and src.image_root == tmp_path
    monkeypatch.setenv("EVALSUITE_DATA", str(tmp_path))
    assert locate("lvis").ann_file == src.ann_file


def test_malformed_annotation_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(InputError, match=r"bad\.json: not valid JSON"):
        CocoReader(bad, tmp_path)
    bad.write_text(json.dumps({"images": [{"id": 3}], "annotations": [], "categories": []}))
    with pytest.raises(InputError, match="image 3 lacks height, width, file_name"):
        CocoReader(bad, tmp_path)
