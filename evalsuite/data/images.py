"""Image decoding exactly as the annotations expect it.

Images are decoded to RGB (COCO holds grayscale and CMYK JPEGs) with no EXIF
rotation applied: COCO/LVIS annotations refer to the stored pixel grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataNotFoundError, InputError


def load_rgb(
    path: Path, expected_hw: tuple[int, int] | None = None, image_id: int | None = None
) -> np.ndarray:
    """Read an image as an H×W×3 uint8 RGB array.

    ``expected_hw`` is the (height, width) the annotation file declares; a
    mismatch means the annotations do not belong to this file, so it is an error.
    """
    who = f"image {image_id} ({path})" if image_id is not None else str(path)
    if not path.is_file():
        raise DataNotFoundError(f"{who}: file not found", hint="check --data-root / the images folder")
    try:
        with Image.open(path) as im:
            rgb = np.array(im.convert("RGB"))  # writable: models may convert it in place
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise InputError(
            f"{who}: cannot decode image ({e})", hint="the file is corrupt or truncated"
        ) from None
    if expected_hw is not None and rgb.shape[:2] != tuple(expected_hw):
        raise InputError(
            f"{who}: size {rgb.shape[0]}x{rgb.shape[1]} (HxW) differs from the annotation file's "
            f"{expected_hw[0]}x{expected_hw[1]}",
            hint="the image does not match its annotation; check the dataset version",
        )
    return rgb
