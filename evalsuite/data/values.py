"""Checks of single JSON values, safe for anything ``json.loads`` can return.

JSON has no limits on numbers: an integer may have hundreds of digits (``float()`` of it raises
``OverflowError``, ``str()`` of one with more than 4300 digits raises ``ValueError``) and
``1e999`` parses to infinity. Every check here answers True/False instead of raising, and
:func:`short` prints any value for an error message without raising or flooding the terminal.
"""

from __future__ import annotations

import math

#: ids are 64-bit signed integers (numpy arrays, faster-coco-eval and most tools store them so)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def is_int(v: object) -> bool:
    """A JSON integer (``True``/``False`` are not)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_int64(v: object) -> bool:
    """A JSON integer that fits a signed 64-bit integer."""
    return is_int(v) and INT64_MIN <= v <= INT64_MAX  # type: ignore[operator]


def as_float(v: object) -> float | None:
    """The value as a finite float, or None (not a number, a bool, NaN, infinite, or beyond float range)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except OverflowError:  # an integer beyond the float range
        return None
    return f if math.isfinite(f) else None


def is_finite_number(v: object) -> bool:
    """A JSON number representable as a finite float."""
    return as_float(v) is not None


def finite_sum(*values: float) -> bool:
    """True when the float sum of ``values`` is finite (``x + w`` may overflow to infinity)."""
    total = 0.0
    for v in values:
        total += v
    return math.isfinite(total)


def short(v: object, limit: int = 60) -> str:
    """``repr(v)`` for an error message: cut to ``limit`` characters, and never raising."""
    if is_int(v) and v.bit_length() > 64:  # type: ignore[attr-defined]
        try:
            return f"<an integer of {len(str(abs(v)))} digits>"  # type: ignore[arg-type]
        except ValueError:  # more than 4300 digits: Python refuses to print it
            return f"<an integer of about {int(v.bit_length() * 0.30103) + 1} digits>"  # type: ignore[attr-defined]
    try:
        text = repr(v)
    except (ValueError, RecursionError):  # a deeply nested list
        text = f"<a deeply nested {type(v).__name__}>"
    return text if len(text) <= limit else text[: limit - 4] + " ..."


#: first word of the seed material of integers of which one is negative ("neg1" in ASCII)
NEGATIVE_MARKER = 0x6E656731


def _words(n: int) -> list[int]:
    """32-bit words of a non-negative integer, least significant first ([] for 0)."""
    out = []
    while n:
        out.append(n & 0xFFFFFFFF)
        n >>= 32
    return out


def seed_material(*values: int) -> list[int]:
    """What ``np.random.default_rng`` is seeded with for a tuple of integers (seed, ids), any sign.

    All non-negative: the list of the values itself, as evalsuite always seeded, so every recorded
    click and pseudo-detection (and the gates pinned on them) stays the same.

    With a negative member (converted datasets use negative ids; ``--seed -1``): a list of 32-bit
    words: ``NEGATIVE_MARKER``, then per value ``2·len + sign`` followed by the ``len`` words of its
    absolute value (least significant first), then as many ``0`` words as there are values. numpy
    seeds from the concatenated 32-bit words of each integer, and an integer's last word is never 0
    unless the integer is 0 (the single word ``0``); a word list ending in n zeros after more than n
    words is therefore made by no n non-negative integers, and the mapping is injective: negative
    ids never share seed material with any other ids.
    """
    if all(v >= 0 for v in values):
        return list(values)
    material = [NEGATIVE_MARKER]
    for v in values:
        words = _words(abs(v))
        material += [2 * len(words) + (v < 0), *words]
    return [*material, *[0] * len(values)]
