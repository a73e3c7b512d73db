"""Boundary IoU (mBIoU) against a reference written from its definition, not from the code under test.

The definition (Cheng et al., CVPR 2021, as SAM-HQ's ``train/utils/misc.py`` computes it): d =
int(round(ratio · sqrt(H² + W²))), at least 1; the mask eroded d times by a 3×3 square, the outside of the
image counting as background; boundary = mask minus its erosion; boundary IoU = IoU of the two boundaries.
The references here erode with scipy's ``binary_erosion`` (``border_value=0``) and, separately, with an
explicit loop that keeps a pixel iff every pixel of its (2d+1)² window is in the mask.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from evalsuite.metrics.boundary import (
    BoundaryIoUMetric,
    boundary_iou_host,
    boundary_iou_torch,
    boundary_width,
)
from evalsuite.metrics.miou import InstanceRecord, size_bucket


def _d(h: int, w: int, ratio: float) -> int:
    return max(1, math.floor(ratio * math.sqrt(h * h + w * w) + 0.5))  # no exact halves at these sizes


def _boundary_scipy(mask: np.ndarray, d: int) -> np.ndarray:
    eroded = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), iterations=d, border_value=0)
    return mask & ~eroded


def _boundary_window(mask: np.ndarray, d: int) -> np.ndarray:
    h, w = mask.shape
    padded = np.zeros((h + 2 * d, w + 2 * d), dtype=bool)
    padded[d : d + h, d : d + w] = mask
    keep = np.ones((h, w), dtype=bool)
    for dy in range(2 * d + 1):
        for dx in range(2 * d + 1):
            keep &= padded[dy : dy + h, dx : dx + w]
    return mask & ~keep


def _biou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _masks(draw, h: int, w: int) -> np.ndarray:
    """A random mask: noise, or a union of rectangles (objects with real boundaries)."""
    if draw(st.booleans()):
        return np.asarray(draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w)), bool).reshape(h, w)
    m = np.zeros((h, w), dtype=bool)
    for _ in range(draw(st.integers(0, 3))):
        r0, c0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        m[r0 : draw(st.integers(r0 + 1, h)), c0 : draw(st.integers(c0 + 1, w))] = True
    return m


@st.composite
def mask_pairs(draw):
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    n = draw(st.integers(1, 3))
    pred = np.stack([_masks(draw, h, w) for _ in range(n)])
    gt = np.stack([_masks(draw, h, w) for _ in range(n)])
    return pred, gt, draw(st.sampled_from([0.02, 0.08, 0.2]))


@settings(max_examples=150, deadline=None)
@given(mask_pairs())
def test_boundary_iou_matches_two_references_on_random_masks(case):
    pred, gt, ratio = case
    n, h, w = gt.shape
    d = _d(h, w, ratio)
    assert boundary_width(h, w, ratio) == d
    for i in range(n):
        bs = _boundary_scipy(pred[i], d), _boundary_scipy(gt[i], d)
        bw = _boundary_window(pred[i], d), _boundary_window(gt[i], d)
        np.testing.assert_array_equal(bs[0], bw[0])  # the two references agree with each other
        np.testing.assert_array_equal(bs[1], bw[1])
    expected = [_biou(_boundary_scipy(pred[i], d), _boundary_scipy(gt[i], d)) for i in range(n)]
    assert boundary_iou_host(pred, gt, ratio) == expected  # exact: ratios of the same integer counts
    assert boundary_iou_torch(torch.from_numpy(pred), torch.from_numpy(gt), ratio) == expected


def test_boundary_width_and_a_hand_worked_case():
    # 10x10 image: 0.02 * sqrt(200) = 0.28 rounds to 0, so d = 1; a 5x5 square's boundary is its 16-pixel rim
    assert boundary_width(10, 10) == 1
    assert boundary_width(480, 640) == 16  # 0.02 * 800
    gt = np.zeros((1, 10, 10), dtype=bool)
    gt[0, 2:7, 2:7] = True
    pred = np.zeros_like(gt)
    pred[0, 2:7, 3:8] = True  # shifted one column: rims share 8 of 16 + 16 - 8 = 24 pixels
    assert boundary_iou_host(pred, gt) == [8 / 24]
    # a mask touching the image edge: the edge counts as outside, so the row at the edge is boundary
    edge = np.zeros((1, 10, 10), dtype=bool)
    edge[0, :5, :] = True
    assert boundary_iou_host(edge, edge) == [1.0]
    assert int(_boundary_scipy(edge[0], 1).sum()) == 10 + 10 + 2 * 3  # top row, row 4, and the sides
    assert boundary_iou_host(np.zeros_like(gt), np.zeros_like(gt)) == [0.0]  # nothing on either side


def test_mbiou_aggregates_like_miou_by_size_and_category():
    def rec(ann, area, biou, cat=1):
        return InstanceRecord(
            1, ann, cat, area, size_bucket(area), 0.5, {"box": [0, 0, 1, 1]}, 0, 1.0, {"biou": biou}
        )

    m = BoundaryIoUMetric()
    m.process([rec(1, 10.0, 0.2), rec(2, 5000.0, 0.6, cat=2), rec(3, 1e5, 1.0, cat=2)])
    res = m.evaluate()
    assert res.metrics["mBIoU"] == pytest.approx(60.0)
    assert res.metrics["mBIoU_S"] == pytest.approx(20.0) and res.metrics["mBIoU_L"] == pytest.approx(100.0)
    assert res.per_category[2]["mBIoU"] == pytest.approx(80.0)
    # inclusive buckets (EfficientViT-SAM's): an area of exactly 32² counts as small and as medium
    m = BoundaryIoUMetric(size_buckets="inclusive")
    m.process([rec(1, 1024.0, 0.4), rec(2, 10.0, 0.0)])
    res = m.evaluate()
    assert res.metrics["mBIoU_S"] == pytest.approx(20.0) and res.metrics["mBIoU_M"] == pytest.approx(40.0)
    assert res.counts["instances_by_size"] == {"S": 2, "M": 1, "L": 0}
