"""Prompts handed to promptable segmentation models: boxes and clicks.

Everything here is pure and deterministic (numpy in, numpy / plain Python out),
so the same object always gets the same prompt, whatever the model, run or
shard layout. Points are ``(x, y)`` with pixel ``(row r, col c)`` at ``(c, r)``;
boxes are float64 xyxy in pixel-edge coordinates (as ``pycocotools.mask.toBbox``).
"""

from evalsuite.prompts.boxes import ann_box, tight_box, xywh_to_xyxy, xyxy_to_xywh
from evalsuite.prompts.clicks import (
    distance_transform_padded,
    random_clicks,
    sam_click,
    sam_click_center,
)

__all__ = [
    "ann_box",
    "distance_transform_padded",
    "random_clicks",
    "sam_click",
    "sam_click_center",
    "tight_box",
    "xywh_to_xyxy",
    "xyxy_to_xywh",
]
