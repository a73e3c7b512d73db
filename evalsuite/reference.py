"""The papers' reference numbers (``protocols/paper/*.toml``): quoted, never measured.

Reports put these beside measured values with their source; nothing else in
evalsuite may treat them as results.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class PaperValue:
    """One number quoted from a paper, with where it comes from."""

    value: float
    table: str
    row: str
    source: str


@cache
def _tables() -> tuple[dict, ...]:
    folder = resources.files("evalsuite._protocols").joinpath("paper")
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".toml")), key=lambda p: p.name)
    return tuple(tomllib.loads(p.read_text(encoding="utf-8")) for p in files)


def paper_value(model: str, protocol: str, metric: str) -> PaperValue | None:
    """The paper's value for (evalsuite model name, protocol name, metric), if the paper has one."""
    for table in _tables():
        for row in table["rows"]:
            if not row.get("model") or row["model"] != model or protocol not in row["values"]:
                continue
            cell = row["values"][protocol]
            value = (
                cell.get(metric)
                if isinstance(cell, dict)
                else (cell if metric == table.get("metric") else None)
            )
            if value is not None:
                source = table["source"] + (f" — {row['provenance']}" if row.get("provenance") else "")
                return PaperValue(float(value), table["table"], row["label"], source)
    return None
