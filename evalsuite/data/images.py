"""Image decoding exactly as the annotations expect it.

Images are decoded to RGB (COCO holds grayscale and CMYK JPEGs) with no EXIF
rotation applied: COCO/LVIS annotations refer to the stored pixel grid.

Two guards and one conversion go beyond ``PIL.Image.convert("RGB")``:

* **Decompression bombs.** An image of more pixels than Pillow's limit (``Image.MAX_IMAGE_PIXELS``,
  89 478 485 by default; COCO's largest image has 640×640) is refused with one line naming it (a
  counted ``bad_image`` skip with ``--skip-bad``): Pillow itself only warns up to twice its limit and
  would decode it. A real large image is read after raising the limit with the environment variable
  ``EVALSUITE_MAX_IMAGE_PIXELS`` (a positive integer; it sets ``Image.MAX_IMAGE_PIXELS``).
* **16-bit grayscale** (``I;16`` PNG/TIFF): ``convert("RGB")`` clips every value above 255 to white.
  evalsuite keeps the high byte (``value >> 8``), which is what Pillow itself does for 16-bit colour
  PNGs and what OpenCV's ``imread`` (SAM's own loader) does for any 16-bit PNG. 32-bit integer and
  float images (modes ``I``, ``F``) have no agreed 8-bit form and are refused with a line.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataNotFoundError, InputError

#: raises Pillow's decompression-bomb limit (pixels per image) for real large images
MAX_PIXELS_ENV = "EVALSUITE_MAX_IMAGE_PIXELS"
#: Pillow's own default limit, kept when the variable is not set
DEFAULT_MAX_PIXELS = 89_478_485
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
#: held while Pillow's process-wide pixel limit is changed for one image
_PILLOW_SETTINGS = threading.Lock()


def max_image_pixels() -> int | None:
    """The pixel limit in force: ``$EVALSUITE_MAX_IMAGE_PIXELS`` if set, else Pillow's (None: no limit)."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return Image.MAX_IMAGE_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(
            f"{MAX_PIXELS_ENV}={raw!r} is not a positive number of pixels",
            hint=f"e.g. {MAX_PIXELS_ENV}=200000000, or unset it for Pillow's limit of {DEFAULT_MAX_PIXELS}",
        )
    return value


def _to_rgb(im: Image.Image, who: str) -> np.ndarray:
    """H×W×3 uint8 of an opened image (see the module docstring for 16-bit and 32-bit modes)."""
    if im.mode in _SIXTEEN_BIT:
        gray = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode in ("I", "F"):
        kind = "32-bit integer" if im.mode == "I" else "floating-point"
        raise InputError(
            f"{who}: a {kind} image (Pillow mode {im.mode}) has no agreed 8-bit RGB form",
            hint="convert it to an 8-bit (or 16-bit) image; or pass --skip-bad to skip such images (counted)",
        )
    return np.array(im.convert("RGB"))  # writable: models may convert it in place


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
    limit = max_image_pixels()
    bomb_hint = (
        f"if the image is real, raise the limit with the environment variable {MAX_PIXELS_ENV} "
        "(pixels per image); or pass --skip-bad to skip such images (counted)"
    )
    # Pillow's limit is a process-wide setting (and its warning filters too): images are decoded in a
    # thread beside the model, so its own check is switched off under a lock and made here instead,
    # refusing everything above the limit (Pillow itself only warns up to twice it)
    with _PILLOW_SETTINGS:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with Image.open(path) as im:
                pixels = im.width * im.height
                if limit is not None and pixels > limit:
                    raise InputError(
                        f"{who}: refused as a possible decompression bomb ({pixels} pixels, more than the "
                        f"limit of {limit})",
                        hint=bomb_hint,
                    )
                rgb = _to_rgb(im, who)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise InputError(
                f"{who}: refused as a possible decompression bomb ({e})", hint=bomb_hint
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise InputError(
                f"{who}: cannot decode image ({e})", hint="the file is corrupt or truncated"
            ) from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    if expected_hw is not None and rgb.shape[:2] != tuple(expected_hw):
        raise InputError(
            f"{who}: size {rgb.shape[0]}x{rgb.shape[1]} (HxW) differs from the annotation file's "
            f"{expected_hw[0]}x{expected_hw[1]}",
            hint="the image does not match its annotation; check the dataset version",
        )
    return rgb
