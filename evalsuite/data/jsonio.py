"""Reading annotation files once: parsed JSON plus the SHA-256 of the exact bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import DataNotFoundError, InputError


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def parse_json(raw: bytes | str, path: Path, hint: str) -> Any:
    """``json.loads`` whose every failure is one :class:`InputError` naming ``path``.

    Besides malformed text, ``json.loads`` raises ``RecursionError`` for arrays or objects nested
    deeper than Python's recursion limit and ``ValueError`` for an integer of more than 4300 digits
    (Python's limit on integer parsing); neither is a JSONDecodeError.
    """
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})", hint=hint) from None
    except RecursionError:
        raise InputError(
            f"{path}: JSON nested too deeply to read (arrays or objects nested beyond Python's recursion "
            "limit)",
            hint=hint,
        ) from None
    except ValueError as e:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise InputError(f"{path}: a value cannot be read ({e})", hint=hint) from None


def read_json(path: Path) -> tuple[Any, str]:
    """Parse a JSON file and return ``(data, sha256 of its bytes)``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: file not found")
    raw = path.read_bytes()
    data = parse_json(raw, path, hint="the file is truncated or corrupt; download it again")
    return data, hashlib.sha256(raw).hexdigest()
