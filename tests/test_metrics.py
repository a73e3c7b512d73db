"""IoU and mIoU aggregation against independent numpy computations and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from evalsuite.metrics import (
    InstanceRecord,
    MIoUMetric,
    mask_iou,
    per_category_miou,
    size_bucket,
    summarize_miou,
)


def _rec(image_id, ann_id, iou, area=100.0, cat=1):
    return InstanceRecord(image_id, ann_id, cat, area, size_bucket(area), iou, {"box": [0, 0, 1, 1]}, 0, 1.0)


@settings(max_examples=60, deadline=None)
@given(arrays(bool, (3, 9, 11)), arrays(bool, (3, 9, 11)))
def test_mask_iou_matches_numpy(a, b):
    inter = (a & b).sum(axis=(1, 2))
    union = (a | b).sum(axis=(1, 2))
    expected = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    got = mask_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


def test_mask_iou_perfect_disjoint_and_shape_check():
    m = torch.zeros(4, 4, dtype=torch.bool)
    m[1:3, 1:3] = True
    assert mask_iou(m, m).item() == 1.0
    assert mask_iou(m, ~m).item() == 0.0
    with pytest.raises(ValueError):
        mask_iou(m, m[:3])


@pytest.mark.parametrize(
    ("area", "bucket"), [(0, "S"), (1023.99, "S"), (1024, "M"), (9215.5, "M"), (9216, "L"), (1e6, "L")]
)
def test_size_buckets_are_cocos(area, bucket):
    assert size_bucket(area) == bucket


def test_summarize_hand_case():
    recs = [
        _rec(1, 1, 0.5, area=10),
        _rec(1, 2, 1.0, area=2000),
        _rec(2, 3, 0.25, area=10),
        _rec(2, 4, 0.0, 1e5),
    ]
    s = summarize_miou(recs)
    assert s["mIoU"] == pytest.approx(100 * (0.5 + 1.0 + 0.25 + 0.0) / 4)
    assert s["mIoU_S"] == pytest.approx(37.5)
    assert s["mIoU_M"] == pytest.approx(100.0)
    assert s["mIoU_L"] == pytest.approx(0.0)
    assert (s["n"], s["n_S"], s["n_M"], s["n_L"]) == (4, 2, 1, 1)


def test_empty_bucket_is_none_not_zero():
    s = summarize_miou([_rec(1, 1, 0.7, area=5)])
    assert s["mIoU_M"] is None and s["mIoU_L"] is None and s["n_M"] == 0


def test_per_category():
    out = per_category_miou([_rec(1, 1, 1.0, cat=3), _rec(1, 2, 0.0, cat=3), _rec(1, 3, 0.5, cat=7)])
    assert out == {3: {"mIoU": 50.0, "n": 2}, 7: {"mIoU": 50.0, "n": 1}}


def test_evaluator_merge_is_order_independent_and_refuses_duplicates():
    a, b = MIoUMetric(), MIoUMetric()
    a.process([_rec(2, 5, 0.1), _rec(1, 1, 0.9)])
    b.process([_rec(1, 2, 0.4)])
    a.merge(b)
    c = MIoUMetric()
    c.process([_rec(1, 2, 0.4), _rec(2, 5, 0.1), _rec(1, 1, 0.9)])
    assert a.evaluate() == c.evaluate()
    assert [r.key for r in a.records] == [(1, 1), (1, 2), (2, 5)]
    a.process([_rec(1, 1, 0.9)])
    with pytest.raises(RuntimeError, match="twice"):
        a.evaluate()
