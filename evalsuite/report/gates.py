"""Accuracy gates: expected values with tolerances, checked against run records.

A gates file is TOML with one ``[[gate]]`` table per row::

    [[gate]]
    model = "box-fill"
    protocol = "coco-box@1"          # name@version: a version bump is a different gate
    options_hash = "b26e087a79b1d6a9"  # optional: when given, the record's options must match
    metric = "mIoU"
    expected = 60.392742
    tolerance = 1e-4
    run_id = "box-fill__coco-box__8cd890e935"  # the run that set the expectation (provenance)

(``gate = [ {...}, ... ]``, one inline table per line as in ``gates/sample.toml``, is the same TOML.)
``model`` names the run (its ``--name``; by default the model name). ``weights`` (default
``official``) says which weights the expectation holds for: a record made with random weights or
with another checkpoint never satisfies an ``official`` gate (weightless baselines do: they have
none), and a ``weights = "random:0"`` gate accepts only that seed.
A row passes when a record of that run and protocol exists (with that options hash, if given,
and those weights) and ``|actual − expected| ≤ tolerance``. A missing record, a missing / null /
NaN metric or a value outside the tolerance is a miss; any miss makes ``evalsuite gate`` exit 1.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import EvalsuiteError, InputError
from ..record import RunRecord
from .rules import unique_cells


class GateFailure(EvalsuiteError):
    """At least one gate missed (exit status 1, as a failed test)."""

    exit_code = 1


@dataclass(frozen=True)
class Gate:
    model: str
    protocol: str  # name@version
    metric: str
    expected: float
    tolerance: float
    run_id: str
    options_hash: str | None = None
    weights: str = "official"

    def accepts_weights(self, record: RunRecord) -> bool:
        if self.weights == "official":
            return record.model.official_weights
        return record.model.weights == self.weights


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    actual: float | None
    status: str  # "ok" | "MISS" | "NO VALUE" | "NO RECORD"
    record: RunRecord | None = None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def delta(self) -> float | None:
        return None if self.actual is None else self.actual - self.gate.expected


_KEYS = {"model": str, "protocol": str, "metric": str, "expected": float, "tolerance": float, "run_id": str}


def load_gates(path: Path) -> list[Gate]:
    """Parse a gates file; malformed rows are input errors naming the row."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: gates file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid TOML ({e})") from None
    rows = data.get("gate")
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{path}: no [[gate]] rows")
    gates = []
    for i, row in enumerate(rows, 1):
        where = f"{path}: gate {i}"
        if extra := set(row) - set(_KEYS) - {"options_hash", "weights"}:
            raise InputError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        values = {}
        for key, kind in _KEYS.items():
            if key not in row:
                raise InputError(f"{where}: missing {key!r}")
            v = row[key]
            if kind is float:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise InputError(f"{where}: {key} must be a finite number, got {v!r}")
                v = float(v)
            elif not isinstance(v, str) or not v:
                raise InputError(f"{where}: {key} must be a non-empty string")
            values[key] = v
        if "@" not in values["protocol"]:
            raise InputError(f"{where}: protocol must be name@version, e.g. coco-box@1")
        if values["tolerance"] < 0:
            raise InputError(f"{where}: tolerance must be >= 0")
        opt = row.get("options_hash")
        if opt is not None and not isinstance(opt, str):
            raise InputError(f"{where}: options_hash must be a string")
        weights = row.get("weights", "official")
        if not isinstance(weights, str) or not (weights == "official" or weights.startswith("random:")):
            raise InputError(f"{where}: weights must be 'official' or 'random:SEED', got {weights!r}")
        gates.append(Gate(options_hash=opt, weights=weights, **values))
    keys = [(g.model, g.protocol, g.options_hash, g.metric) for g in gates]
    if len(set(keys)) != len(keys):
        raise InputError(f"{path}: a (model, protocol, metric) row appears twice")
    return gates


def check_gates(gates: Sequence[Gate], records: Sequence[RunRecord]) -> list[GateResult]:
    """One result per gate. Records of one run name and protocol that disagree are refused first."""
    wanted = {(g.model, g.protocol.split("@")[0]) for g in gates}
    cells = unique_cells([r for r in records if (r.name, r.protocol.name) in wanted])
    out = []
    for g in gates:
        rec = cells.get((g.model, g.protocol.split("@")[0]))
        if rec is None:
            out.append(GateResult(g, None, "NO RECORD", detail="no record of this model and protocol"))
            continue
        if rec.protocol.id != g.protocol:
            out.append(GateResult(g, None, "NO RECORD", rec, f"record is {rec.protocol.id}"))
            continue
        if g.options_hash and rec.protocol.options_hash != g.options_hash:
            out.append(
                GateResult(g, None, "NO RECORD", rec, f"record options_hash {rec.protocol.options_hash}")
            )
            continue
        if not g.accepts_weights(rec):
            out.append(
                GateResult(
                    g, None, "NO RECORD", rec, f"record weights {rec.model.weights}, gate wants {g.weights}"
                )
            )
            continue
        actual = rec.metric(g.metric)
        if actual is None:
            raw = rec.metrics.get(g.metric, "missing")
            out.append(GateResult(g, None, "NO VALUE", rec, f"{g.metric} is {raw}"))
            continue
        ok = abs(actual - g.expected) <= g.tolerance
        out.append(GateResult(g, actual, "ok" if ok else "MISS", rec))
    return out


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.6f}" if signed else f"{v:.6f}"


def render_results(results: Sequence[GateResult]) -> str:
    """A Markdown table: expected, actual, Δ, tolerance, result and both run ids."""
    head = [
        "model",
        "protocol",
        "metric",
        "expected",
        "actual",
        "Δ",
        "tolerance",
        "result",
        "set by run",
        "checked run",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in results:
        g = r.gate
        checked = "–" if r.record is None else ("same" if r.record.run_id == g.run_id else r.record.run_id)
        status = r.status + (f" ({r.detail})" if r.detail else "")
        cells = [
            g.model,
            g.protocol,
            g.metric,
            _fmt(g.expected),
            _fmt(r.actual),
            _fmt(r.delta, signed=True),
            f"{g.tolerance:g}",
            status,
            g.run_id,
            checked,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    failed = sum(not r.passed for r in results)
    lines.append("")
    lines.append(
        f"{len(results) - failed} of {len(results)} gates passed" + (f"; {failed} failed" if failed else "")
    )
    return "\n".join(lines) + "\n"
