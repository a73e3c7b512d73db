"""evalsuite: zero-shot evaluation of promptable segmentation models.

Reproduces the Table 4 (mIoU with box / click prompts) and Table 5 (detector-box
instance-segmentation AP) protocols of the EfficientSAM paper with the official
COCO / LVIS tooling underneath.
"""

__version__ = "0.1.0"
