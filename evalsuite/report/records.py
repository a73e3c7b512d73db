"""Loading run records for reports, and the rules that keep a report honest.

Reports are built from ``record.json`` files only. Two checks guard every table, gate and
comparison: a (model, protocol) cell takes exactly one result (identical copies of one record
collapse; anything else is refused), and a column (one protocol name) never mixes protocol
versions, option sets, datasets or detection files — numbers made under different rules are
not comparable and must not sit side by side.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..records import RECORD_FILE, SCHEMA_VERSION, read_jsonl

#: keys every record must have for a report to use it (dotted paths)
_REQUIRED = (
    "schema_version",
    "run_id",
    "protocol.name",
    "protocol.version",
    "protocol.id",
    "protocol.task",
    "protocol.options",
    "protocol.options_hash",
    "dataset.name",
    "dataset.family",
    "model.name",
    "metrics",
)


def _get(data: dict, dotted: str) -> Any:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


def _finite_or_none(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class RunRecord:
    """One ``record.json`` and where it lives (its run folder holds the per-item log)."""

    path: Path
    data: dict[str, Any] = field(repr=False, compare=False)

    # -- identity ---------------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    @property
    def model(self) -> str:
        return str(self.data["model"]["name"])

    @property
    def checkpoint(self) -> str | None:
        return self.data["model"].get("checkpoint")

    @property
    def checkpoint_sha256(self) -> str | None:
        return self.data["model"].get("checkpoint_sha256")

    @property
    def protocol(self) -> str:
        """Protocol name, e.g. ``coco-box`` (a report column)."""
        return str(self.data["protocol"]["name"])

    @property
    def protocol_id(self) -> str:
        """``name@version``."""
        return str(self.data["protocol"]["id"])

    @property
    def version(self) -> int:
        return int(self.data["protocol"]["version"])

    @property
    def task(self) -> str:
        return str(self.data["protocol"]["task"])

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.data["protocol"]["options"])

    @property
    def options_hash(self) -> str:
        return str(self.data["protocol"]["options_hash"])

    @property
    def family(self) -> str:
        return str(self.data["dataset"]["family"])

    @property
    def dataset(self) -> str:
        return str(self.data["dataset"]["name"])

    @property
    def annotation_sha256(self) -> str | None:
        return self.data["dataset"].get("annotation_sha256")

    @property
    def image_ids_sha256(self) -> str | None:
        return self.data["dataset"].get("image_ids_sha256")

    @property
    def boxes_sha256(self) -> str | None:
        """SHA-256 of the detection file (AP protocols), else None."""
        boxes = self.data.get("boxes")
        return boxes.get("sha256") if isinstance(boxes, dict) else None

    @property
    def device_name(self) -> str:
        env = self.data.get("environment") or {}
        return str(env.get("device_name") or env.get("device") or "unknown device")

    # -- results ----------------------------------------------------------------------------------
    def metric(self, name: str) -> float | None:
        """A metric as a finite float, or None where it is missing, null or NaN."""
        return _finite_or_none(self.data["metrics"].get(name))

    @property
    def metrics(self) -> dict[str, float | None]:
        return {k: _finite_or_none(v) for k, v in self.data["metrics"].items()}

    @property
    def primary_metric(self) -> str:
        """The headline metric: mIoU for Table 4 protocols, AP for Table 5."""
        return "AP" if self.task == "ap" else "mIoU"

    @property
    def prompt_seed(self) -> int | None:
        """The seed where it shapes the prompts (random clicks), else None (boxes ignore it)."""
        if self.options.get("prompt") == "clicks" and self.options.get("click_rule", "random") == "random":
            return self.data.get("seed")
        return None

    def comparable_key(self) -> tuple:
        """What must agree for two results to share a column: protocol, options, data, detections, clicks."""
        return (
            self.protocol_id,
            self.options_hash,
            self.annotation_sha256,
            self.image_ids_sha256,
            self.boxes_sha256,
            self.prompt_seed,
        )

    @cached_property
    def _instances(self) -> list[dict]:
        log = (self.data.get("files") or {}).get("log", "instances.jsonl")
        if self.task != "miou" or log != "instances.jsonl":
            raise InputError(
                f"{self.path}: {self.protocol_id} is an AP protocol; per-instance IoUs exist only for "
                "the mIoU protocols (Table 4)"
            )
        path = self.folder / log
        if not path.is_file():
            raise InputError(
                f"{path}: per-instance log not found beside the record",
                hint="copy the whole run folder (record.json and instances.jsonl) together",
            )
        rows = read_jsonl(path)
        expected = (self.data.get("counts") or {}).get("instances")
        if expected is not None and expected != len(rows):
            raise InputError(
                f"{path}: {len(rows)} instance lines, but the record counts {expected}",
                hint="the log does not belong to this record (or is incomplete)",
            )
        return rows

    def instances(self) -> list[dict]:
        """Per-instance rows of ``instances.jsonl`` (mIoU protocols), checked against the record's count."""
        return self._instances


def read_record(path: Path) -> RunRecord:
    """Parse and validate one ``record.json``; every problem names the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: record not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a run record is a JSON object")
    for key in _REQUIRED:
        try:
            _get(data, key)
        except KeyError:
            raise InputError(f"{path}: not a run record (missing {key!r})") from None
    if data["schema_version"] != SCHEMA_VERSION:
        raise InputError(
            f"{path}: record schema version {data['schema_version']!r}; this evalsuite reads "
            f"version {SCHEMA_VERSION}",
            hint="render it with the evalsuite version that wrote it",
        )
    return RunRecord(path.resolve(), data)


def find_records(paths: Iterable[Path | str]) -> list[RunRecord]:
    """Records named by ``paths``: a ``record.json`` file, or a folder searched recursively.

    The same file named twice (directly and through a folder) counts once. A path that
    does not exist, or a set of paths holding no record at all, is an error.
    """
    seen: dict[Path, RunRecord] = {}
    given = [Path(p) for p in paths]
    for p in given:
        if p.is_dir():
            files = sorted(p.rglob(RECORD_FILE))
        elif p.is_file():
            files = [p]
        else:
            raise InputError(f"{p}: no such file or folder")
        for f in files:
            resolved = f.resolve()
            if resolved not in seen:
                seen[resolved] = read_record(f)
    if not seen:
        raise InputError(
            f"no {RECORD_FILE} found under {', '.join(map(str, given)) or '(nothing)'}",
            hint="pass run folders (evalsuite run --out DIR) or record.json files",
        )
    return sorted(seen.values(), key=lambda r: (r.model, r.protocol, str(r.path)))


def _same_result(a: RunRecord, b: RunRecord) -> bool:
    """Copies of one result: same run id (same settings fingerprint) and the same metrics."""
    return a.run_id == b.run_id and a.comparable_key() == b.comparable_key() and a.metrics == b.metrics


def _difference(a: RunRecord, b: RunRecord) -> str:
    parts = []
    for label, fa, fb in (
        ("protocol version", a.protocol_id, b.protocol_id),
        ("options_hash", a.options_hash, b.options_hash),
        ("dataset", a.dataset, b.dataset),
        ("annotation sha256", a.annotation_sha256, b.annotation_sha256),
        ("image ids", a.image_ids_sha256, b.image_ids_sha256),
        ("detections sha256", a.boxes_sha256, b.boxes_sha256),
        ("checkpoint sha256", a.checkpoint_sha256, b.checkpoint_sha256),
        ("seed", a.data.get("seed"), b.data.get("seed")),
        ("run id", a.run_id, b.run_id),
    ):
        if fa != fb:
            parts.append(f"{label} {fa} vs {fb}")
    if not parts:
        diff = [k for k in sorted(set(a.metrics) | set(b.metrics)) if a.metrics.get(k) != b.metrics.get(k)]
        parts.append(
            "metrics "
            + ", ".join(f"{k} {a.metrics.get(k)} vs {b.metrics.get(k)}" for k in diff[:3])
            + " (same settings, different numbers)"
        )
    return "; ".join(parts)


def unique_cells(records: Sequence[RunRecord]) -> dict[tuple[str, str], RunRecord]:
    """One record per (model, protocol name); refuses two records of a cell that disagree."""
    cells: dict[tuple[str, str], RunRecord] = {}
    for r in records:
        key = (r.model, r.protocol)
        if key not in cells:
            cells[key] = r
            continue
        other = cells[key]
        if not _same_result(other, r):
            raise InputError(
                f"two records for model {r.model!r} and protocol {r.protocol!r} disagree "
                f"({_difference(other, r)}): {other.path} and {r.path}",
                hint="pass only the record you mean to report (a file or a narrower folder)",
            )
    return cells


def check_columns(records: Iterable[RunRecord]) -> None:
    """Refuse a protocol column whose records differ in version, options, data or detection file."""
    first: dict[str, RunRecord] = {}
    for r in records:
        ref = first.setdefault(r.protocol, r)
        if ref.comparable_key() == r.comparable_key():
            continue
        what = []
        if ref.protocol_id != r.protocol_id:
            what.append(f"protocol versions {ref.protocol_id} vs {r.protocol_id}")
        if ref.options_hash != r.options_hash:
            changed = sorted(
                k for k in set(ref.options) | set(r.options) if ref.options.get(k) != r.options.get(k)
            )
            what.append(
                f"options_hash {ref.options_hash} vs {r.options_hash} ("
                + ", ".join(f"{k}={ref.options.get(k)!r} vs {r.options.get(k)!r}" for k in changed)
                + ")"
            )
        if (ref.annotation_sha256, ref.image_ids_sha256) != (r.annotation_sha256, r.image_ids_sha256):
            what.append(f"datasets {ref.dataset} vs {r.dataset} (annotation file or image ids differ)")
        if ref.boxes_sha256 != r.boxes_sha256:
            what.append(f"detection files {ref.boxes_sha256} vs {r.boxes_sha256}")
        if ref.prompt_seed != r.prompt_seed:
            what.append(f"click seeds {ref.prompt_seed} vs {r.prompt_seed} (different random clicks)")
        raise InputError(
            f"column {r.protocol!r} would mix results that are not comparable: {'; '.join(what)} "
            f"({ref.model}: {ref.path}; {r.model}: {r.path})",
            hint="report them separately, or re-run one of them with the other's protocol settings",
        )


def single_record(path: Path | str) -> RunRecord:
    """Exactly one record from a record file or a run folder (for compare and the qualitative grid)."""
    found = find_records([path])
    if len(found) > 1:
        raise InputError(
            f"{path} holds {len(found)} records; name one run folder or record.json",
            hint="e.g. " + str(found[0].path),
        )
    return found[0]
