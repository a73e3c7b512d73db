"""Metrics: per-item records and pure aggregations (mIoU, NoC), AP through the official scorers."""

from .base import Metric, MetricResult
from .iou import mask_iou
from .miou import InstanceRecord, MIoUMetric, per_category_miou, size_bucket, summarize_miou
from .noc import ClickRecord, NocMetric, noc, summarize_noc

__all__ = [
    "ClickRecord",
    "InstanceRecord",
    "MIoUMetric",
    "Metric",
    "MetricResult",
    "NocMetric",
    "mask_iou",
    "noc",
    "per_category_miou",
    "size_bucket",
    "summarize_miou",
    "summarize_noc",
]
