"""Ground-truth mask decoding with pycocotools (polygons, compressed and uncompressed RLE)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

from .values import is_finite_number, is_int, short

#: polygon vertices may lie outside the image by up to this many image sizes on each side (real
#: annotations stray a few pixels; pycocotools rasterises a polygon edge by edge, so a vertex at
#: 3e8 makes it allocate until the process is killed)
COORD_MARGIN = 1.0
#: pycocotools stores RLE runs as 32-bit unsigned integers
MAX_RUN = 2**32 - 1


def coordinate_bounds(height: int, width: int) -> tuple[float, float, float, float]:
    """``(x_min, x_max, y_min, y_max)`` a polygon vertex or prompt box may reach: [-W, 2W] × [-H, 2H]."""
    return (
        -COORD_MARGIN * width,
        (1 + COORD_MARGIN) * width,
        -COORD_MARGIN * height,
        (1 + COORD_MARGIN) * height,
    )


def compressed_counts(counts: str | bytes) -> list[int] | str:
    """The runs of a compressed RLE string, or why pycocotools would mis-decode it.

    COCO's string form (``maskApi.c`` ``rleToString``): each run is written in 5-bit groups, least
    significant first, one character per group (``chr(48 + group)``, 0x20 set while more groups
    follow, 0x10 of the last group the sign); from the third run on, the value written is the
    difference to the run two before. pycocotools decodes whatever it is given: a character outside
    ``0``..``o``, a string that ends inside a run (it reads past the end), a run of more than 7
    characters (its shifts overflow) or a run that comes out negative or beyond 32 bits (it is
    stored as a 32-bit unsigned) all give garbage, so they are refused here.
    """
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            return "compressed RLE counts are not ASCII"
    runs: list[int] = []
    x = k = 0
    more = False
    for p, ch in enumerate(counts):
        c = ord(ch) - 48
        if not 0 <= c < 64:
            return f"compressed RLE counts hold {ch!r} at position {p} (only '0' to 'o' occur)"
        x |= (c & 0x1F) << (5 * k)
        more = bool(c & 0x20)
        k += 1
        if more:
            if k == 7:  # 7 groups of 5 bits hold any run; the encoder never writes more
                return f"compressed RLE run {len(runs)} is longer than 7 characters (at position {p})"
            continue
        if c & 0x10:
            x -= 1 << (5 * k)  # sign-extend
        if len(runs) > 2:
            x += runs[-2]
        if not 0 <= x <= MAX_RUN:
            return f"compressed RLE run {len(runs)} decodes to {x} (runs are 0 to {MAX_RUN})"
        runs.append(x)
        x = k = 0
    if more:
        return "compressed RLE counts end inside a run (the string is truncated)"
    return runs


def _grouped_cumsum(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cumulative sums of ``values`` restarting wherever ``groups`` (sorted runs of labels) changes."""
    if values.size == 0:
        return values
    cs = np.cumsum(values)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    before = (cs - values)[starts]
    sizes = np.diff(np.r_[starts, values.size])
    return cs - np.repeat(before, sizes)


def bad_compressed_counts(counts: list[str], pixels: np.ndarray) -> np.ndarray:
    """Indices of the compressed counts strings (non-empty, ASCII) that :func:`compressed_counts`
    refuses or whose runs do not add up to ``pixels`` (h*w of each): all strings at once, in numpy."""
    n = len(counts)
    if n == 0:
        return np.zeros(0, np.int64)
    lengths = np.fromiter((len(c) for c in counts), np.int64, n)
    buf = np.frombuffer("".join(counts).encode("ascii"), np.uint8).astype(np.int64) - 48
    owner = np.repeat(np.arange(n), lengths)
    bad = np.zeros(n, bool)
    bad[owner[(buf < 0) | (buf > 63)]] = True
    buf = np.clip(buf, 0, 63)
    last = np.cumsum(lengths) - 1
    more = (buf & 0x20) != 0
    bad[more[last]] = True  # ends inside a run
    end = ~more
    end[last] = True  # runs never cross strings
    ends = np.flatnonzero(end)
    starts = np.r_[0, ends[:-1] + 1]
    run_len = ends - starts + 1
    run_owner = owner[ends]
    bad[run_owner[run_len > 7]] = True  # 7 groups of 5 bits hold any run; more is malformed
    k = np.arange(buf.size) - np.repeat(starts, run_len)
    groups = np.where(k < 7, (buf & 0x1F) << (5 * np.minimum(k, 6)), 0)
    x = np.add.reduceat(groups, starts)
    width = 5 * np.minimum(run_len, 7)
    negative = (buf[ends] & 0x10) != 0
    x[negative] -= np.left_shift(1, width[negative])
    first_run = np.flatnonzero(np.r_[True, run_owner[1:] != run_owner[:-1]])
    runs_per = np.diff(np.r_[first_run, run_owner.size])
    r = np.arange(run_owner.size) - np.repeat(first_run, runs_per)
    c = x.copy()
    for parity, lowest in ((0, 2), (1, 1)):  # from the 4th run on, each is a delta to the run 2 before
        sel = np.flatnonzero((r % 2 == parity) & (r >= lowest))
        c[sel] = _grouped_cumsum(x[sel], run_owner[sel])
    bad[run_owner[(c < 0) | (c > MAX_RUN)]] = True
    sums = np.add.reduceat(c, first_run)
    owners = run_owner[first_run]
    bad[owners[sums != pixels[owners]]] = True
    return np.flatnonzero(bad)


def compressed_rle_problems(rles: list[object]) -> dict[int, str]:
    """Why each of many compressed RLEs (``{"size": [h, w], "counts": str}``) is unfit, by index.

    The same checks as :func:`rle_problem`, vectorised over all the strings at once (a run's log may
    hold millions of masks); the message of each bad one comes from :func:`rle_problem`.
    """
    problems: dict[int, str] = {}
    index: list[int] = []
    counts: list[str] = []
    pixels: list[int] = []
    for i, rle in enumerate(rles):
        size = rle.get("size") if isinstance(rle, dict) else None
        c = rle.get("counts") if isinstance(rle, dict) else None
        if (
            isinstance(size, list)
            and len(size) == 2
            and all(is_int(v) and v > 0 for v in size)
            and isinstance(c, str)
            and c
            and c.isascii()
        ):
            index.append(i)
            counts.append(c)
            pixels.append(size[0] * size[1])
        else:
            problems[i] = rle_problem(rle) or "malformed RLE"
    for j in bad_compressed_counts(counts, np.asarray(pixels, dtype=np.int64)):
        i = index[int(j)]
        problems[i] = rle_problem(rles[i]) or "malformed compressed RLE"
    return dict(sorted(problems.items()))


def _polygon_problem(k: int, poly: object, height: int, width: int) -> str | None:
    if not isinstance(poly, list) or not all(is_finite_number(v) for v in poly):
        return f"polygon {k} is not a list of finite numbers"
    if len(poly) < 6 or len(poly) % 2:
        return f"polygon {k} has {len(poly)} coordinates (needs an even number, at least 3 points)"
    x0, x1, y0, y1 = coordinate_bounds(height, width)
    xs, ys = poly[0::2], poly[1::2]
    if not (x0 <= min(xs) and max(xs) <= x1 and y0 <= min(ys) and max(ys) <= y1):
        worst = next(
            (v, axis)
            for v, axis, lo, hi in [(v, "x", x0, x1) for v in xs] + [(v, "y", y0, y1) for v in ys]
            if not lo <= v <= hi
        )
        return (
            f"polygon {k} has {worst[1]} = {short(worst[0])}, far outside the {width}x{height} (WxH) image "
            f"(vertices may lie in [{x0:g}, {x1:g}] x [{y0:g}, {y1:g}])"
        )
    return None


def segmentation_problem(segmentation: Any, height: int, width: int) -> str | None:
    """Why pycocotools would mis-decode this segmentation, or None if it is well formed.

    pycocotools does not check its input: an odd-length polygon, RLE counts that do not add up to
    the image size (it leaves the rest of the mask as uninitialised memory) or a polygon vertex far
    outside the image (it allocates memory in proportion to the edge lengths) decode to silently
    wrong masks or kill the process, so they are refused here, before any decoding.
    """
    if isinstance(segmentation, list):
        if not segmentation:
            return "empty polygon list"
        for k, poly in enumerate(segmentation):
            if problem := _polygon_problem(k, poly, height, width):
                return problem
        return None
    if isinstance(segmentation, dict):
        counts, size = segmentation.get("counts"), segmentation.get("size")
        if counts is None or size is None:
            return "RLE without 'counts' and 'size'"
        if not (isinstance(size, list) and len(size) == 2 and all(is_int(v) for v in size)):
            return f"RLE size {short(size)} is not [height, width]"
        if size != [height, width]:
            return f"RLE size {size} differs from the image size [{height}, {width}]"
        if isinstance(counts, list):
            if not all(is_int(c) and 0 <= c <= MAX_RUN for c in counts):
                return "RLE counts are not non-negative integers"
            if sum(counts) != height * width:
                return f"RLE counts add up to {sum(counts)}, not height*width = {height * width}"
            return None
        if isinstance(counts, (str, bytes)):
            if not counts:
                return "empty compressed RLE counts"
            runs = compressed_counts(counts)
            if isinstance(runs, str):
                return runs
            if sum(runs) != height * width:
                return f"compressed RLE counts add up to {sum(runs)}, not height*width = {height * width}"
            return None
        return f"RLE counts of type {type(counts).__name__}"
    return f"segmentation of type {type(segmentation).__name__} (expected polygons or RLE)"


def rle_problem(rle: object) -> str | None:
    """Why a compressed RLE (``{"size": [h, w], "counts": str}``) is inconsistent in itself, or None."""
    if not isinstance(rle, dict):
        return f"segmentation is a {type(rle).__name__}, not an RLE object"
    size = rle.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(is_int(v) and v > 0 for v in size)):
        return f"RLE size {short(size)} is not [height, width]"
    if not isinstance(rle.get("counts"), str):
        return "RLE counts are not a compressed string"
    return segmentation_problem(rle, *size)


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> dict:
    """One compressed RLE for an annotation's segmentation, as ``COCO.annToRLE`` builds it.

    Raises ValueError for a malformed segmentation (see :func:`segmentation_problem`).
    """
    if problem := segmentation_problem(segmentation, height, width):
        raise ValueError(problem)
    if isinstance(segmentation, list):  # polygons: one RLE per part, merged
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, height, width)  # uncompressed RLE
    if isinstance(segmentation, dict):
        return segmentation  # compressed RLE
    raise ValueError(f"unsupported segmentation type {type(segmentation).__name__}")


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """H×W bool mask of an annotation's segmentation at the image's original size, in C (row-major) order.

    pycocotools decodes in Fortran order; every later step (IoU counts, boxes, clicks, stacking) reads
    rows, so the one copy is made here (in the decode workers), by OpenCV's blocked transpose: a
    Fortran-order H×W array is the C-order W×H one, and ``np.ascontiguousarray`` of it takes 70x longer.
    """
    decoded = mask_utils.decode(segmentation_to_rle(segmentation, height, width))
    return cv2.transpose(decoded.T).view(bool)


def encode_mask(mask: np.ndarray) -> dict:
    """Compressed RLE of a bool mask, with ``counts`` as str (JSON-ready, COCO results format)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def box_bounds(boxes: np.ndarray, height: int, width: int) -> list[tuple[int, int, int, int]]:
    """``(r0, r1, c0, c1)`` of each xyxy box: the rows ``r0 <= r < r1`` and columns ``c0 <= c < c1`` whose
    pixel centres ``(c + 0.5, r + 0.5)`` lie inside it (``x0 <= c + 0.5 < x1``), clipped to the image.

    The same float64 comparisons as rasterising the box, made on the 1-D centre grids only (the set of
    centres inside is a contiguous range); a box with a NaN coordinate holds no pixel.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    xs = np.arange(width, dtype=np.float64) + 0.5
    ys = np.arange(height, dtype=np.float64) + 0.5
    out = []
    for x0, y0, x1, y1 in b.tolist():
        if any(v != v for v in (x0, y0, x1, y1)):  # NaN: no comparison holds
            out.append((0, 0, 0, 0))
            continue
        c0, c1 = (int(v) for v in np.searchsorted(xs, [x0, x1], side="left"))
        r0, r1 = (int(v) for v in np.searchsorted(ys, [y0, y1], side="left"))
        out.append((r0, max(r0, r1), c0, max(c0, c1)))
    return out


def box_masks(boxes: np.ndarray, height: int, width: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """N×H×W bool masks of the pixels whose centres lie inside each xyxy box (on ``device``).

    Pixel (r, c) has centre (c + 0.5, r + 0.5); for the integer pixel-edge boxes
    of the box protocols this is exactly the box's pixels. On the CPU the masks are filled by
    slices (:func:`box_bounds`); elsewhere they are compared on the device.
    """
    dev = torch.device(device)
    if dev.type == "cpu":
        bounds = box_bounds(boxes, height, width)
        out = np.zeros((len(bounds), height, width), dtype=bool)
        for k, (r0, r1, c0, c1) in enumerate(bounds):
            out[k, r0:r1, c0:c1] = True
        return torch.from_numpy(out)
    b = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4).to(dev)
    xs = torch.arange(width, dtype=torch.float64, device=dev) + 0.5
    ys = torch.arange(height, dtype=torch.float64, device=dev) + 0.5
    inx = (xs[None] >= b[:, 0:1]) & (xs[None] < b[:, 2:3])
    iny = (ys[None] >= b[:, 1:2]) & (ys[None] < b[:, 3:4])
    return iny[:, :, None] & inx[:, None, :]
