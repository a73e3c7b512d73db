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


def read_json(path: Path) -> tuple[Any, str]:
    """Parse a JSON file and return ``(data, sha256 of its bytes)``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(
            f"{path}: not valid JSON ({e})", hint="the file is truncated or corrupt; download it again"
        ) from None
    return data, hashlib.sha256(raw).hexdigest()
