"""Metrics: per-instance IoU records and their pure aggregations."""

from .iou import mask_iou
from .miou import InstanceRecord, MIoUEvaluator, per_category_miou, size_bucket, summarize_miou

__all__ = [
    "InstanceRecord",
    "MIoUEvaluator",
    "mask_iou",
    "per_category_miou",
    "size_bucket",
    "summarize_miou",
]
