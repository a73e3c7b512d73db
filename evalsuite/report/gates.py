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
none), a ``weights = "random:0"`` gate accepts only that seed, and a ``weights = "file"`` gate (a
fine-tune gated in the user's CI) accepts only the checkpoint whose ``checkpoint_sha256`` it names.
``model_fingerprint`` pins a model passed from Python the same way.
A row passes when a record of that run and protocol exists (with that options hash, if given,
and those weights) and ``|actual − expected| ≤ tolerance``. A missing record, a missing / null /
NaN metric or a value outside the tolerance is a miss; any miss makes ``evalsuite gate`` exit 1.

Gates files are written from run records, never by hand: :func:`write_gates` (``evalsuite gate --write
FILE RUNS...``) takes every metric of each record (or the ones named) with the tolerances given, and a
header that documents the ``evalsuite run`` commands that made the records (model, protocols, options,
data, seed, name, weights, detections, from what the records say).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EvalsuiteError, InputError
from ..identity import select_cells
from ..record import RunRecord
from ..run_options import record_flags


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
    checkpoint_sha256: str | None = None  # weights = "file": the one checkpoint the gate holds for
    model_fingerprint: str | None = None  # a model passed from Python (evaluate(..., version=...))

    def accepts_weights(self, record: RunRecord) -> str | None:
        """Why the record's model is not the one the gate holds for (None: it is)."""
        m = record.model
        if self.weights == "official":
            ok = m.official_weights
        elif self.weights == "file":
            ok = m.weights in ("file", "unverified") and m.checkpoint_sha256 == self.checkpoint_sha256
        else:
            ok = m.weights == self.weights
        if not ok:
            got = m.weights + (f" sha256 {m.checkpoint_sha256}" if m.checkpoint_sha256 else "")
            want = self.weights + (f" sha256 {self.checkpoint_sha256}" if self.checkpoint_sha256 else "")
            return f"record weights {got}, gate wants {want}"
        if self.model_fingerprint != m.fingerprint:
            return f"record model fingerprint {m.fingerprint}, gate wants {self.model_fingerprint}"
        return None


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
_OPTIONAL = ("options_hash", "weights", "checkpoint_sha256", "model_fingerprint")


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
    gates = [_gate(row, f"{path}: gate {i}") for i, row in enumerate(rows, 1)]
    keys = [(g.model, g.protocol, g.options_hash, g.metric) for g in gates]
    if len(set(keys)) != len(keys):
        raise InputError(f"{path}: a (model, protocol, metric) row appears twice")
    return gates


def _required(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The required keys of a gate row, type-checked."""
    values: dict[str, Any] = {}
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
    return values


def _gate(row: Mapping[str, Any], where: str) -> Gate:
    """One checked gate row."""
    if extra := set(row) - set(_KEYS) - set(_OPTIONAL):
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    values = _required(row, where)
    opt = row.get("options_hash")
    if opt is not None and not isinstance(opt, str):
        raise InputError(f"{where}: options_hash must be a string")
    weights = row.get("weights", "official")
    if not isinstance(weights, str) or not (weights in ("official", "file") or weights.startswith("random:")):
        raise InputError(f"{where}: weights must be 'official', 'file' or 'random:SEED', got {weights!r}")
    sha, fingerprint = row.get("checkpoint_sha256"), row.get("model_fingerprint")
    if (weights == "file") != isinstance(sha, str) or (sha is not None and not isinstance(sha, str)):
        raise InputError(f"{where}: weights = 'file' goes with checkpoint_sha256 (and only it)")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise InputError(f"{where}: model_fingerprint must be a string")
    return Gate(
        options_hash=opt, weights=weights, checkpoint_sha256=sha, model_fingerprint=fingerprint, **values
    )


def check_gates(gates: Sequence[Gate], records: Sequence[RunRecord]) -> list[GateResult]:
    """One result per gate. Records that cannot count (two disagreeing records of one run name and
    protocol, a name used by two models) are no record, with the reason."""
    wanted = {(g.model, g.protocol.split("@")[0]) for g in gates}
    sel = select_cells([r for r in records if (r.name, r.protocol.name) in wanted])
    why_not = {(e.record.name, e.record.protocol.name): e.reason for e in sel.excluded}
    out = []
    for g in gates:
        key = (g.model, g.protocol.split("@")[0])
        rec = sel.cells.get(key)
        if rec is None:
            detail = why_not.get(key, "no record of this model and protocol")
            out.append(GateResult(g, None, "NO RECORD", detail=detail))
            continue
        if rec.protocol.id != g.protocol:
            out.append(GateResult(g, None, "NO RECORD", rec, f"record is {rec.protocol.id}"))
            continue
        if g.options_hash and rec.protocol.options_hash != g.options_hash:
            out.append(
                GateResult(g, None, "NO RECORD", rec, f"record options_hash {rec.protocol.options_hash}")
            )
            continue
        if (why := g.accepts_weights(rec)) is not None:
            out.append(GateResult(g, None, "NO RECORD", rec, why))
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


def render_results(results: Sequence[GateResult], failures_only: bool = False) -> str:
    """A Markdown table: expected, actual, Δ, tolerance, result and both run ids (``failures_only``:
    only the rows that missed; the closing count covers every row)."""
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
    shown = [r for r in results if not (failures_only and r.passed)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"] if shown else []
    for r in shown:
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
    if lines:
        lines.append("")
    lines.append(
        f"{len(results) - failed} of {len(results)} gates passed" + (f"; {failed} failed" if failed else "")
    )
    return "\n".join(lines) + "\n"


# -- writing gates from records ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tolerances:
    """The tolerance of each metric: ``per_metric`` where named, else ``default`` (as typed, kept as text
    so the file says ``1e-6``, not ``1e-06``)."""

    default: str | None = None
    per_metric: Mapping[str, str] | None = None

    @classmethod
    def parse(cls, specs: Sequence[str]) -> Tolerances:
        """``["1e-6", "mIoU=0.05"]``: a bare value is the default, ``METRIC=VALUE`` one metric's."""
        default: str | None = None
        per: dict[str, str] = {}
        for spec in specs:
            metric, _, value = spec.rpartition("=")
            value = value.strip()
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or number < 0:
                raise InputError(f"--tolerance {spec}: the tolerance must be a finite number >= 0")
            if metric:
                if metric.strip() in per:
                    raise InputError(f"--tolerance: {metric.strip()} is given twice")
                per[metric.strip()] = value
            elif default is not None:
                raise InputError(
                    "--tolerance: two default tolerances; name the metric: --tolerance METRIC=VALUE"
                )
            else:
                default = value
        return cls(default, per)

    def text(self, metric: str) -> str | None:
        return (self.per_metric or {}).get(metric, self.default)


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string
    return repr(float(v))


def _shell(word: str) -> str:
    import shlex

    return shlex.quote(word)


def _command_flags(r: RunRecord) -> tuple[str, ...]:
    """The ``evalsuite run`` flags (beyond the protocols) that made a record, from what it says (as each
    run option declares: :func:`evalsuite.run_options.record_flags`); each flag with its value as one
    shell word group."""
    return tuple(f"{flag} {_shell(value)}" for flag, value in record_flags(r))


def _wrap(
    words: Sequence[str], first: str = "# ", rest: str = "#   ", command: bool = False, width: int = 108
) -> list[str]:
    """Words as comment lines of at most ``width`` characters where possible (a ``command`` continues
    its lines with a backslash)."""
    cont = " \\" if command else ""
    lines: list[str] = []
    line = first
    for w in words:
        if line not in (first, rest) and len(line) + 1 + len(w) + len(cont) > width:
            lines.append(line + cont)
            line = rest
        line += w if line in (first, rest) else " " + w
    lines.append(line)
    return lines


def _software(r: RunRecord) -> str:
    sw = r.software
    if not sw.commit:
        return f"evalsuite {sw.evalsuite}"
    return f"evalsuite {sw.evalsuite} (commit {sw.commit[:10]}{', dirty' if sw.dirty else ''})"


def _header(records: Sequence[RunRecord], tolerances: Tolerances, written_by: str | None) -> list[str]:
    commands: dict[tuple[str, ...], list[str]] = {}
    for r in records:
        commands.setdefault(_command_flags(r), []).append(r.protocol.name)
    software = sorted({_software(r) for r in records})
    devices = sorted({f"{r.environment.device} ({r.environment.device_name})" for r in records})
    out = [
        "# Accuracy gates, written from run records by `evalsuite gate --write` (never typed in).",
        "# Check: `evalsuite gate THIS_FILE RUNS_DIR` (exit 1 on any miss; see evalsuite/report/gates.py).",
        "#",
    ]
    prose = (
        "Every expected value was copied from the run named in `run_id`, made with "
        f"{', '.join(software)} on {', '.join(devices)}, from these commands (as the records say):"
    )
    out += _wrap(prose.split(), rest="# ")
    out.append("#")
    for flags, protocols in commands.items():
        out += _wrap(["evalsuite", "run", *protocols, *flags], "#   ", "#       ", command=True)
    out.append("#")
    for name, (path, sha) in sorted(
        {r.dataset.name: (r.dataset.annotation_file, r.dataset.annotation_sha256) for r in records}.items()
    ):
        out += _wrap(f"Data {name}: {path or '?'} (sha256 {sha[:16]}…)".split(" "))
    for file, sha in sorted({(r.boxes.file, r.boxes.sha256) for r in records if r.boxes is not None}):
        out += _wrap(f"Detections: {file or '?'} (sha256 {sha[:16]}…)".split(" "))
    per = ", ".join(f"{m}: {v}" for m, v in sorted((tolerances.per_metric or {}).items()))
    tol = " ".join(x for x in (tolerances.default or "", f"({per})" if per else "") if x)
    out.append(f"# Tolerance: {tol} (absolute, in the metric's unit: percent points, clicks for NoC).")
    if written_by:
        out += _wrap(["Written", "by:", *written_by.split(" ")])
    out += [
        "# A deliberate change re-runs the commands above and re-writes this file (new values, new run ids).",
        "#",
        "# Columns: model (the run's name), protocol name@version, options_hash (the record's options must",
        "# match), metric, expected, tolerance, weights (when not official), run_id (the run that set it).",
    ]
    return out


def write_gates(
    records: Sequence[RunRecord],
    tolerances: Tolerances,
    metrics: Sequence[str] | None = None,
    written_by: str | None = None,
) -> tuple[str, list[str]]:
    """A gates file (TOML text) expecting each record's metrics, and notes on what was left out.

    ``metrics``: the metrics to gate (default: every metric of each record). A metric without a value
    (null / NaN) cannot be expected and is left out with a note; a metric without a tolerance is an
    error. Every gate row records the identity of its model (weights; a checkpoint's SHA-256; a Python
    model's fingerprint), so a fine-tune's gate holds for that checkpoint only. Records that cannot
    count (see :func:`evalsuite.identity.select_cells`) are refused, named.
    """
    sel = select_cells(records)
    if sel.excluded:
        raise InputError(
            "cannot gate records that are not one result: " + " | ".join(e.line() for e in sel.excluded),
            hint="pass only the runs you mean to gate",
        )
    chosen = sorted(sel.records, key=lambda r: (r.name, r.protocol.id))
    if metrics:
        known = {m for r in chosen for m in r.metrics}
        if unknown := [m for m in metrics if m not in known]:
            raise InputError(
                f"--metric {', '.join(unknown)}: no record has it (they have {', '.join(sorted(known))})"
            )
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    missing_tolerance: set[str] = set()
    for r in chosen:
        names = [m for m in r.metrics if not metrics or m in metrics]
        if not names:
            notes.append(f"{r.name} {r.protocol.id}: none of the chosen metrics; no gate")
        for metric in names:
            row = _gate_row(r, metric, tolerances, notes)
            if row is None and r.metric(metric) is not None:
                missing_tolerance.add(metric)
            elif row is not None:
                rows.append(row)
    if missing_tolerance:
        raise InputError(
            f"no tolerance for {', '.join(sorted(missing_tolerance))}",
            hint="give --tolerance VALUE (every metric) or --tolerance METRIC=VALUE",
        )
    if not rows:
        raise InputError("no gate to write: the records have no metric values")
    return _gates_text(rows, chosen, tolerances, written_by), notes


def _gate_row(r: RunRecord, metric: str, tolerances: Tolerances, notes: list[str]) -> dict[str, Any] | None:
    """The gate row of one metric of a record (None: no value, noted; or no tolerance)."""
    value = r.metric(metric)
    if value is None:
        notes.append(f"{r.name} {r.protocol.id} {metric}: no value ({r.metrics.get(metric)}); no gate")
        return None
    tol = tolerances.text(metric)
    if tol is None:
        return None
    row: dict[str, Any] = {
        "model": r.name,
        "protocol": r.protocol.id,
        "options_hash": r.protocol.options_hash,
        "metric": metric,
        "expected": value,
        "tolerance": tol,
    }
    row.update(_model_identity(r))
    row["run_id"] = r.run_id
    return row


def _gates_text(
    rows: Sequence[dict[str, Any]],
    records: Sequence[RunRecord],
    tolerances: Tolerances,
    written_by: str | None,
) -> str:
    def cell(key: str, v: Any) -> str:
        return f"{key} = {v if key == 'tolerance' else _toml_value(v)}"

    lines = _header(records, tolerances, written_by)
    lines.append("gate = [")
    lines += ["  { " + ", ".join(cell(k, v) for k, v in row.items()) + " }," for row in rows]
    lines.append("]")
    return "\n".join(lines) + "\n"


def _model_identity(r: RunRecord) -> dict[str, str]:
    """The gate-row fields that pin the record's model (nothing for official weights or none)."""
    m, out = r.model, {}
    if m.random_weights:
        out["weights"] = m.weights
    elif m.weights in ("file", "unverified") and m.checkpoint_sha256:
        out["weights"], out["checkpoint_sha256"] = "file", m.checkpoint_sha256
    if m.fingerprint:
        out["model_fingerprint"] = m.fingerprint
    return out
