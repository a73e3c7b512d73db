"""Synthetic COCO/LVIS sample data written by evalsuite.data.sample_gen (do not edit)."""
