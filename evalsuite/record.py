"""The run record: one typed definition, written by the engine and read by every report.

A run record says what was measured (metrics, counts) and everything needed to trust and
compare it: protocol and options, data and its SHA-256, model, weights and checkpoint SHA-256,
software, device, how the session ran and how long each part took. :class:`RunRecord` is a
frozen dataclass tree with :meth:`RunRecord.to_json` / :meth:`RunRecord.from_json`; the engine
builds one, reports, gates, comparisons and the Python API read them back. Nothing else in
evalsuite reads ``record.json`` keys by hand.

Schema history: 1 (evalsuite ≤ 0.1: no run name, no weights kind, no timing part) is still
read — its records upgrade in memory with ``name`` = model name and ``weights`` = ``unknown``
(``none`` for weightless baselines). 3 added what a run's identity needs
(:mod:`evalsuite.identity`): whether the annotation file is the official one, a Python model's
fingerprint, the model's own options, the detection file's kind; schema-2 records read with those
unknown. Other versions are refused with one line naming the schema.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError

SCHEMA_VERSION = 3
READABLE_SCHEMAS = (1, 2, 3)
RECORD_FILE = "record.json"


def _finite_or_none(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class ProtocolPart:
    """The protocol a result was measured under: ``name@version`` and every option."""

    name: str
    version: int
    id: str
    task: str
    options: dict[str, Any]
    options_hash: str
    #: options that differ from the shipped protocol (empty: the protocol as published)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``coco-1click@1``, or ``coco-1click@1 (clicks=3)`` when options were overridden."""
        if not self.overrides:
            return self.id
        return f"{self.id} ({', '.join(f'{k}={_fmt_option(v)}' for k, v in sorted(self.overrides.items()))})"


def _fmt_option(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


@dataclass(frozen=True)
class DatasetPart:
    name: str
    family: str
    annotation_file: str
    annotation_sha256: str
    image_ids_sha256: str
    limit: int | None = None
    #: the annotation file is the dataset's official one (pinned SHA-256, or recorded by `evalsuite
    #: download`); None: not recorded (schema ≤ 2)
    official: bool | None = None


@dataclass(frozen=True)
class BoxesPart:
    """The detection file of an AP protocol."""

    file: str
    sha256: str
    detections_in_file: int
    #: "official" (the published ViTDet-H file), "pseudo" (make-boxes), "other"; "" not recorded (schema ≤ 2)
    kind: str = ""
    label: str = ""  # what the file is, for captions ("ViTDet-H (TinySAM release)")


@dataclass(frozen=True)
class CountsPart:
    images: int
    skipped: dict[str, int] = field(default_factory=dict)
    instances: int | None = None  # mIoU / NoC protocols
    instances_by_size: dict[str, int] | None = None
    detections_scored: int | None = None  # AP protocols

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"images": self.images}
        out.update(_drop_none({"instances": self.instances, "instances_by_size": self.instances_by_size}))
        out.update(_drop_none({"detections_scored": self.detections_scored}))
        out["skipped"] = dict(sorted(self.skipped.items()))
        return out


#: what the weights of a run were: the official file (its SHA-256 published, or recorded when
#: `evalsuite download` fetched it from the official URL), unverified (a file at the official cache
#: path whose SHA-256 nobody vouched for), a file of the user's, random:SEED, untrained (a network
#: built without loading any weights, passed from Python), none (a weightless baseline), or unknown
#: (schema-1 records, which did not say)
WEIGHT_KINDS = ("official", "unverified", "file", "untrained", "none", "unknown")


@dataclass(frozen=True)
class ModelPart:
    name: str  # registry name (or the runner's name for a model passed from Python)
    checkpoint: str | None
    checkpoint_sha256: str | None
    precision: str
    label: str | None = None  # display name ("EfficientSAM-S")
    weights: str = "unknown"  # see WEIGHT_KINDS, or random:SEED
    parameters: int | None = None
    #: a model passed from Python: "version:<given>" or "probe:<SHA-256 of its outputs on a fixed input>"
    fingerprint: str | None = None
    #: the model's own options (ModelSpec.options) changed from their official defaults
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def official_weights(self) -> bool:
        """The paper's numbers apply: official weights, or none at all (schema 1: not known, assumed)."""
        return self.weights in ("official", "none", "unknown")

    @property
    def random_weights(self) -> bool:
        return self.weights.startswith("random")


@dataclass(frozen=True)
class PaperValue:
    """A number quoted from a paper beside the measured one (never a measurement)."""

    value: float
    source: str
    row: str


@dataclass(frozen=True)
class ScoringPart:
    """The AP backend and its raw output (AP protocols)."""

    backend: str
    stats: Any


@dataclass(frozen=True)
class SoftwarePart:
    evalsuite: str
    commit: str | None
    dirty: bool | None
    python: str
    packages: dict[str, str | None]
    #: version + SHA-256 prefix of evalsuite's own code and protocol files ("" before schema 3)
    code: str = ""


@dataclass(frozen=True)
class EnvironmentPart:
    device: str
    device_name: str


@dataclass(frozen=True)
class ExecutionPart:
    """How the session that finished the run went (differs between resumed or sharded runs)."""

    finished_utc: str
    wall_s: float
    images_this_session: int
    world_size: int
    torch_threads: int | None = None
    decode_workers: int | None = None
    image_batch: int | None = None
    peak_gpu_memory_bytes: int | None = None
    protocol_s_this_session: float | None = None
    #: anything else the session noted (requested image batch, kernel choices such as the attention form)
    notes: dict[str, Any] = field(default_factory=dict)

    _KNOWN = (
        "finished_utc",
        "wall_s",
        "images_this_session",
        "world_size",
        "torch_threads",
        "decode_workers",
        "image_batch",
        "peak_gpu_memory_bytes",
        "protocol_s_this_session",
    )

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self._KNOWN}
        return {**out, **self.notes}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecutionPart:
        known = {k: data.get(k) for k in cls._KNOWN}
        return cls(
            finished_utc=str(known["finished_utc"] or ""),
            wall_s=float(known["wall_s"] or 0.0),
            images_this_session=int(known["images_this_session"] or 0),
            world_size=int(known["world_size"] or 1),
            torch_threads=known["torch_threads"],
            decode_workers=known["decode_workers"],
            image_batch=known["image_batch"],
            peak_gpu_memory_bytes=known["peak_gpu_memory_bytes"],
            protocol_s_this_session=known["protocol_s_this_session"],
            notes={k: v for k, v in data.items() if k not in cls._KNOWN},
        )


@dataclass(frozen=True)
class PhaseTime:
    """One part of the per-image work: median over timed images and total (seconds)."""

    median_s: float
    total_s: float


@dataclass(frozen=True)
class TimingPart:
    """Where the time of the timed images went (detectron2's ``inference_on_dataset`` style).

    The first ``warmup_images`` images of the session are not timed (lazy initialisation, kernel
    selection, caches). On CUDA the device is synchronised around every model call, so encoder and
    decoder times are the device's. ``data`` is the wait for decoded images, ``encoder`` the image
    encoder (shared by every protocol of the session), ``decoder`` this protocol's prompt + mask
    decoder calls, ``host`` its prompt building, scoring and logging.
    """

    warmup_images: int
    timed_images: int
    data: PhaseTime
    encoder: PhaseTime
    decoder: PhaseTime
    host: PhaseTime
    loop_s: float  # wall time of the timed images' loop iterations
    model_images_per_s: float | None  # timed images / (encoder + decoder)
    run_images_per_s: float | None  # session images / session wall time
    peak_device_memory_bytes: int | None = None
    device_synchronized: bool = False
    #: spread of the per-image model time (encoder + this protocol's decoder) over the timed images:
    #: 10th and 90th percentiles in seconds (None: recorded before evalsuite kept them)
    model_s_p10: float | None = None
    model_s_p90: float | None = None


@dataclass(frozen=True)
class RunRecord:
    """One finished (model, protocol) run. ``path`` / ``items`` are where it was read from, not data."""

    schema_version: int
    run_id: str
    name: str
    protocol: ProtocolPart
    dataset: DatasetPart
    counts: CountsPart
    model: ModelPart
    seed: int
    metrics: dict[str, float | None]
    higher_is_better: dict[str, bool]
    per_category: dict[str, dict[str, Any]]
    paper: dict[str, PaperValue]
    software: SoftwarePart
    environment: EnvironmentPart
    execution: ExecutionPart
    files: dict[str, str]
    boxes: BoxesPart | None = None
    scoring: ScoringPart | None = None
    timing: TimingPart | None = None
    path: Path | None = field(default=None, compare=False, repr=False)
    #: per-item rows held in memory (a run made from Python without an output folder)
    items_in_memory: tuple[dict[str, Any], ...] | None = field(default=None, compare=False, repr=False)

    # -- convenience --------------------------------------------------------------------------------
    @property
    def folder(self) -> Path | None:
        return None if self.path is None else self.path.parent

    def metric(self, name: str) -> float | None:
        """A metric as a finite float, or None where it is missing, null or NaN."""
        return _finite_or_none(self.metrics.get(name))

    @property
    def primary_metric(self) -> str:
        """The headline metric: mIoU for Table 4 protocols, AP for Table 5, NoC@90 for NoC."""
        return {"ap": "AP", "noc": "NoC@90"}.get(self.protocol.task, "mIoU")

    @property
    def boxes_sha256(self) -> str | None:
        return None if self.boxes is None else self.boxes.sha256

    def items(self) -> list[dict[str, Any]]:
        """The per-item rows (``instances.jsonl`` / ``detections.jsonl``), checked against the counts."""
        if self.items_in_memory is not None:
            return list(self.items_in_memory)
        if self.path is None:
            raise InputError(f"run {self.run_id}: no folder and no items in memory")
        log = self.files.get("log", "instances.jsonl")
        path = self.path.parent / log
        if not path.is_file():
            raise InputError(
                f"{path}: per-item log not found beside the record",
                hint="copy the whole run folder (record.json and its .jsonl logs) together",
            )
        rows = read_jsonl(path)
        expected = self.counts.instances if self.protocol.task != "ap" else self.counts.detections_scored
        if expected is not None and expected != len(rows):
            raise InputError(
                f"{path}: {len(rows)} lines, but the record counts {expected}",
                hint="the log does not belong to this record (or is incomplete)",
            )
        return rows

    # -- JSON ---------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The ``record.json`` object (keys in a fixed, readable order)."""
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "name": self.name,
            "protocol": asdict(self.protocol),
            "dataset": asdict(self.dataset),
        }
        if self.boxes is not None:
            out["boxes"] = asdict(self.boxes)
        out["counts"] = self.counts.to_json()
        out["model"] = asdict(self.model)
        out["seed"] = self.seed
        out["metrics"] = dict(self.metrics)
        out["higher_is_better"] = dict(self.higher_is_better)
        out["per_category"] = self.per_category
        out["paper"] = {k: asdict(v) for k, v in self.paper.items()}
        if self.scoring is not None:
            out["scoring"] = asdict(self.scoring)
        out["software"] = asdict(self.software)
        out["environment"] = asdict(self.environment)
        out["execution"] = self.execution.to_json()
        if self.timing is not None:
            out["timing"] = asdict(self.timing)
        out["files"] = dict(self.files)
        return out

    @classmethod
    def from_json(cls, data: Any, path: Path | None = None) -> RunRecord:
        """Parse a record object (schema 1 or 2); every problem is one line naming ``path``."""
        where = str(path) if path is not None else "record"
        if not isinstance(data, dict):
            raise InputError(f"{where}: a run record is a JSON object")
        if "schema_version" not in data or "run_id" not in data:
            raise InputError(f"{where}: not a run record (no schema_version / run_id)")
        schema = data.get("schema_version")
        if schema not in READABLE_SCHEMAS:
            raise InputError(
                f"{where}: record schema version {schema!r}; this evalsuite reads versions "
                f"{', '.join(map(str, READABLE_SCHEMAS))}",
                hint="render it with the evalsuite version that wrote it",
            )
        try:
            return _parse(data, path)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            missing = f"missing {e.args[0]!r}" if isinstance(e, KeyError) else str(e)
            raise InputError(f"{where}: not a run record of schema {schema} ({missing})") from None


def _typed(cls: type, data: Mapping[str, Any]) -> Any:
    """Build a flat dataclass from a dict, ignoring keys it does not know (forward compatible)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


#: what a record says about its software when it says nothing (hand-made or trimmed records)
_UNKNOWN_SOFTWARE: dict[str, Any] = {
    "evalsuite": "unknown",
    "commit": None,
    "dirty": None,
    "python": "unknown",
    "packages": {},
}


def _parse(data: dict[str, Any], path: Path | None) -> RunRecord:
    """Required: schema_version, run_id, protocol (name, version, id, task, options, options_hash),
    dataset (name, family), model (name), metrics; everything else has a default."""
    schema = data["schema_version"]
    proto = data["protocol"]
    model = dict(data["model"])
    if schema == 1:  # no run name, no weights kind, no label
        model.setdefault("weights", "none" if model.get("checkpoint") is None else "unknown")
    boxes = data.get("boxes")
    scoring = data.get("scoring") or data.get("evaluator")  # schema 1 called the AP backend "evaluator"
    paper = {
        m: PaperValue(float(v["value"]), str(v["source"]), str(v["row"]))
        for m, v in (data.get("paper") or {}).items()
    }
    timing = data.get("timing")
    if timing is not None:
        timing = TimingPart(
            **{
                **timing,
                **{k: PhaseTime(**timing[k]) for k in ("data", "encoder", "decoder", "host")},
            }
        )
    return RunRecord(
        schema_version=int(schema),
        run_id=str(data["run_id"]),
        name=str(data.get("name") or model["name"]),
        protocol=ProtocolPart(
            name=str(proto["name"]),
            version=int(proto["version"]),
            id=str(proto["id"]),
            task=str(proto["task"]),
            options=dict(proto["options"]),
            options_hash=str(proto["options_hash"]),
            overrides=dict(proto.get("overrides") or {}),
        ),
        dataset=_typed(
            DatasetPart,
            {"annotation_file": "", "annotation_sha256": "", "image_ids_sha256": "", **data["dataset"]},
        ),
        counts=_typed(CountsPart, data.get("counts") or {"images": 0}),
        model=_typed(
            ModelPart, {"checkpoint": None, "checkpoint_sha256": None, "precision": "fp32", **model}
        ),
        seed=int(data.get("seed", 0)),
        metrics=dict(data["metrics"]),
        higher_is_better={k: bool(v) for k, v in (data.get("higher_is_better") or {}).items()},
        per_category=dict(data.get("per_category") or {}),
        paper=paper,
        software=_typed(SoftwarePart, {**_UNKNOWN_SOFTWARE, **(data.get("software") or {})}),
        environment=_typed(
            EnvironmentPart,
            {"device": "unknown", "device_name": "unknown", **(data.get("environment") or {})},
        ),
        execution=ExecutionPart.from_json(data.get("execution") or {}),
        files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
        boxes=None if boxes is None else _typed(BoxesPart, {"file": "", "detections_in_file": 0, **boxes}),
        scoring=None if scoring is None else ScoringPart(str(scoring["backend"]), scoring.get("stats")),
        timing=timing,
        path=path,
    )


# -- files --------------------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict]:
    """Parse a JSONL file, tolerating a torn last line (a crash mid-write)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i >= len(lines) - 2:  # only the last (possibly unterminated) line may be torn
                break
            raise InputError(
                f"{path}: line {i + 1} is not valid JSON",
                hint="delete the damaged file to resume without its images, or use --overwrite to start over",
            ) from None
    return out


def read_record(path: Path | str) -> RunRecord:
    """Parse and validate one ``record.json``; every problem names the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: record not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    return RunRecord.from_json(data, path.resolve())


def find_records(paths: Iterable[Path | str]) -> list[RunRecord]:
    """Records named by ``paths``: a ``record.json`` file, or a folder searched recursively.

    The same file named twice (directly and through a folder) counts once. A path that does not
    exist, or a set of paths holding no record at all, is an error.
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
    return sorted(seen.values(), key=lambda r: (r.name, r.protocol.name, str(r.path)))
