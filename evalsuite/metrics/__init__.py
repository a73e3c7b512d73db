"""Metrics: per-item fields measured from masks, pure aggregations (mIoU, mBIoU, NoC), AP through the
official scorers, and the registry that finds them (entry points ``evalsuite.metrics``)."""

from .base import (
    ItemField,
    MaskBatch,
    Metric,
    MetricResult,
    MetricSet,
    metric_classes,
    metric_for,
    metric_options,
    resolve_metrics,
)
from .boundary import BoundaryIoUMetric, boundary_iou_host, boundary_iou_torch, boundary_width
from .iou import mask_iou
from .miou import InstanceRecord, MIoUMetric, per_category_miou, size_bucket, summarize_miou
from .noc import ClickRecord, NocMetric, noc, summarize_noc

__all__ = [
    "BoundaryIoUMetric",
    "ClickRecord",
    "InstanceRecord",
    "ItemField",
    "MIoUMetric",
    "MaskBatch",
    "Metric",
    "MetricResult",
    "MetricSet",
    "NocMetric",
    "boundary_iou_host",
    "boundary_iou_torch",
    "boundary_width",
    "mask_iou",
    "metric_classes",
    "metric_for",
    "metric_options",
    "noc",
    "per_category_miou",
    "resolve_metrics",
    "size_bucket",
    "summarize_miou",
    "summarize_noc",
]
