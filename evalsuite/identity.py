"""What a number measured — a run's identity — and the one set of rules built on it.

Every result evalsuite prints is one cell of a grid: a *model* (which network, which weights,
which options) on some *data* (which annotation file, which images, what was skipped) under a
*protocol* (which prompts, which options, which random clicks, which detections), computed in
some *execution* (precision, software). :class:`RunIdentity` holds those four parts, read from a
run record; the functions below are the only place that decides, from two identities:

* **same run** (:func:`resume_problems`): a run folder may be resumed only by the identical run;
* **same column** (:func:`column_key`) and **same table** (:func:`measure_key`, :func:`group_rows`):
  records in one column measured the same thing on the same data;
* **same row** (:func:`row_key`, :func:`select_cells`): one run name is one model;
* **pairable** (:func:`pairing_problems`): a paired bootstrap needs the same items;
* **paper-comparable** (:func:`paper_comparability`): a paper's value and Δ stand beside a measured
  one only when everything is the paper's.

Reports, exports, plots, ``compare``, gates, ``load()`` and the engine's resume all ask here;
nobody else lists identity fields (a test keeps it so). The table of fields is in
``docs/comparability.md``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .data.catalog import DEFAULT_FOR_FAMILY, OFFICIAL, is_sample
from .errors import InputError
from .paper import QuotedValue
from .protocols import Protocol, load_protocols, seeded_prompts
from .record import RunRecord

#: skip reasons that are the protocol's own rules (every run of the protocol excludes them alike)
RULE_SKIPS = frozenset({"crowd", "empty_mask", "over_max_dets"})
#: counted but still scored (the item stays in the data): a non-finite predicted score
SCORED_ANYWAY = frozenset({"non_finite_model_score"})
#: the precision the papers measured in
PAPER_PRECISION = "fp32"


def _items(d: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(d.items()))


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _options_text(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(options.items()))


def _short(sha: str | None) -> str:
    return "none" if not sha else sha[:12] + "…"


# -- the four parts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelIdentity:
    """Which model answered: registered name (or a Python object's name and fingerprint), weights."""

    name: str
    weights: str  # official | unverified | file | random:SEED | none | unknown
    weights_sha256: str | None
    fingerprint: str | None  # a Python object's: "version:<given>" or "probe:<sha256 of its outputs>"
    options: tuple[tuple[str, Any], ...]  # the model's own options (ModelSpec.options)

    def describe(self) -> str:
        text = self.name
        if self.weights.startswith("random"):
            text += f" ({self.weights} weights)"
        elif self.weights in ("file", "unverified") and self.weights_sha256:
            text += f" (checkpoint sha256 {_short(self.weights_sha256)})"
        if self.fingerprint:
            text += f" [{self.fingerprint}]"
        if self.options:
            text += f" ({_options_text(dict(self.options))})"
        return text


@dataclass(frozen=True)
class DataIdentity:
    """What was scored: the dataset, the annotation file's SHA-256, the image set and what was skipped."""

    dataset: str
    annotation_sha256: str
    image_ids_sha256: str
    images: int
    limit: int | None
    official: bool | None  # the annotation file is the dataset's official one (None: not recorded)
    skipped: tuple[tuple[str, int], ...]  # bad-input skips only (the protocol's rules are not skips)

    @property
    def skipped_total(self) -> int:
        return sum(n for _, n in self.skipped)


@dataclass(frozen=True)
class ProtocolIdentity:
    """How it was measured: protocol and version, options, the random-click seed, the detections."""

    id: str
    name: str
    column_options: tuple[tuple[str, Any], ...]
    row_options: tuple[tuple[str, Any], ...]
    prompt_seed: int | None  # only where it shapes the prompts (random clicks)
    detections_sha256: str | None
    detections_kind: str  # "" (none) | "official" | "pseudo" | "other" | "unrecorded" (schema ≤ 2)
    detections_file: str


@dataclass(frozen=True)
class ExecutionIdentity:
    precision: str
    software: str  # evalsuite version


@dataclass(frozen=True)
class RunIdentity:
    model: ModelIdentity
    data: DataIdentity
    protocol: ProtocolIdentity
    execution: ExecutionIdentity

    @classmethod
    def of(cls, r: RunRecord) -> RunIdentity:
        m, d = r.model, r.dataset
        return cls(
            ModelIdentity(m.name, m.weights, m.checkpoint_sha256, m.fingerprint, _items(m.options)),
            DataIdentity(
                d.name,
                d.annotation_sha256,
                d.image_ids_sha256,
                r.counts.images,
                d.limit,
                _official_data(r),
                _items(bad_skips(r.counts.skipped)),
            ),
            ProtocolIdentity(
                r.protocol.id,
                r.protocol.name,
                _items(column_options(r)),
                _items(row_options(r)),
                prompt_seed(r),
                r.boxes_sha256,
                "" if r.boxes is None else (r.boxes.kind or "unrecorded"),
                "" if r.boxes is None else r.boxes.file,
            ),
            ExecutionIdentity(m.precision, r.software.evalsuite),
        )


def prompt_seed(r: RunRecord) -> int | None:
    """The run's seed where it shapes the prompts (a seeded prompt rule: random clicks), else None."""
    return r.seed if seeded_prompts(r.protocol.task, r.protocol.options) else None


def bad_skips(skipped: Mapping[str, int]) -> dict[str, int]:
    """The skips that changed the data (bad input under ``--skip-bad``), not the protocol's own rules."""
    return {k: int(v) for k, v in skipped.items() if v and k not in RULE_SKIPS | SCORED_ANYWAY}


def _official_data(r: RunRecord) -> bool | None:
    """The run's annotation file is the official one (records before schema 3: judged by the pinned hash)."""
    if r.dataset.official is not None:
        return r.dataset.official
    spec = OFFICIAL.get(r.dataset.name)
    if spec is None or spec.sha256 is None:
        return None
    return r.dataset.annotation_sha256 == spec.sha256


# -- options: what makes a column, what makes a row -----------------------------------------------------
def _as_shipped(name: str, task: str, options: dict[str, Any]) -> Protocol:
    """The protocol ``name`` with these options, its defaults the shipped ones (none if not shipped)."""
    shipped = load_protocols().get(name)
    defaults = shipped.options if shipped is not None else {}
    return Protocol(name, 0, "", task, "", (), options=dict(options), defaults=dict(defaults))


def column_options(r: RunRecord) -> dict[str, Any]:
    """The changed options that define what the record's column measures (computed: old records work too)."""
    return _as_shipped(r.protocol.name, r.protocol.task, r.protocol.options).column_overrides


def row_options(r: RunRecord) -> dict[str, Any]:
    """The changed options that only change how the model answers (a variant of the model: a row)."""
    return _as_shipped(r.protocol.name, r.protocol.task, r.protocol.options).row_overrides


def column_key(r: RunRecord) -> tuple:
    """Which column a record belongs to: its protocol and the column-defining options it changed."""
    return (r.protocol.name, tuple(sorted(column_options(r).items())))


def measure_key(r: RunRecord) -> tuple:
    """What the records of one column must share to stand in one table: the protocol version, the data
    (annotation file, image set, bad-input skips), the random clicks and the detections."""
    i = RunIdentity.of(r)
    return (
        column_key(r),
        i.protocol.id,
        i.data.annotation_sha256,
        i.data.image_ids_sha256,
        i.data.skipped,
        i.protocol.prompt_seed,
        i.protocol.detections_sha256,
    )


def row_key(r: RunRecord) -> tuple:
    """What the records of one run name share: one model (weights, fingerprint, options), one precision."""
    i = RunIdentity.of(r)
    return (i.model, i.execution.precision)


# -- differences in words -------------------------------------------------------------------------------
def differences(a: RunRecord, b: RunRecord) -> list[str]:
    """Every identity field in which two records differ, named with both values."""
    ia, ib = RunIdentity.of(a), RunIdentity.of(b)
    out: list[str] = []

    def diff(label: str, x: Any, y: Any) -> None:
        if x != y:
            out.append(f"{label} {x} vs {y}")

    diff("protocol", ia.protocol.id, ib.protocol.id)
    oa, ob = a.protocol.options, b.protocol.options
    if oa != ob:
        keys = sorted(k for k in set(oa) | set(ob) if oa.get(k) != ob.get(k))
        out.append("options " + ", ".join(f"{k}={oa.get(k)!r} vs {ob.get(k)!r}" for k in keys))
    diff("dataset", ia.data.dataset, ib.data.dataset)
    if ia.data.annotation_sha256 != ib.data.annotation_sha256:
        diff("annotation sha256", _short(ia.data.annotation_sha256), _short(ib.data.annotation_sha256))
    if ia.data.image_ids_sha256 != ib.data.image_ids_sha256:
        out.append(f"image ids: {_images(a)} vs {_images(b)}")
    if ia.data.skipped != ib.data.skipped:
        out.append(f"skipped {_skips_text(ia.data) or 'nothing'} vs {_skips_text(ib.data) or 'nothing'}")
    if ia.protocol.detections_sha256 != ib.protocol.detections_sha256:
        out.append(f"detections {_detections(a)} vs {_detections(b)}")
    diff("random-click seed", _fmt(ia.protocol.prompt_seed), _fmt(ib.protocol.prompt_seed))
    diff("model", ia.model.describe(), ib.model.describe())
    diff("precision", ia.execution.precision, ib.execution.precision)
    return out


def describe_difference(a: RunRecord, b: RunRecord) -> str:
    """What differs between two records, in one line (for refusals and compare's header)."""
    parts = differences(a, b)
    if not parts and a.run_id != b.run_id:
        parts.append(f"run id {a.run_id} vs {b.run_id}")
    if not parts:
        diff = [k for k in sorted(set(a.metrics) | set(b.metrics)) if a.metric(k) != b.metric(k)]
        if not diff:
            return "nothing (the same run twice)"
        parts.append(
            "metrics "
            + ", ".join(f"{k} {a.metric(k)} vs {b.metric(k)}" for k in diff[:3])
            + " (same settings, different numbers)"
        )
    return "; ".join(parts)


def _images(r: RunRecord) -> str:
    n = f"{r.counts.images} images"
    return f"--limit {r.dataset.limit} ({n})" if r.dataset.limit is not None else f"all {n}"


def _skips_text(d: DataIdentity) -> str:
    return ", ".join(f"{n} {k}" for k, n in d.skipped)


def _detections(r: RunRecord) -> str:
    if r.boxes is None:
        return "none"
    return f"{r.boxes.file or '?'} sha256 {_short(r.boxes.sha256)}"


def same_result(a: RunRecord, b: RunRecord) -> bool:
    """Copies of one result: the same run id and identity, the same numbers."""
    return a.run_id == b.run_id and RunIdentity.of(a) == RunIdentity.of(b) and a.metrics == b.metrics


# -- selecting records: by name, one per cell, one model per name ---------------------------------------
@dataclass(frozen=True)
class Excluded:
    """A record left out of a report, with the reason in words."""

    record: RunRecord
    reason: str

    def line(self) -> str:
        where = f" ({self.record.path})" if self.record.path is not None else ""
        return f"{self.record.name} {self.record.protocol.label}{where}: {self.reason}"


@dataclass
class Selection:
    """The records a report uses — one per (run name, protocol) — and those it left out, with reasons."""

    cells: dict[tuple[str, str], RunRecord]
    excluded: list[Excluded] = field(default_factory=list)

    @property
    def records(self) -> list[RunRecord]:
        return list(self.cells.values())


def filter_names(
    records: Iterable[RunRecord], names: Sequence[str] | None = None, exclude: Sequence[str] | None = None
) -> list[RunRecord]:
    """The records whose run name matches one of the ``names`` globs (all without) and none of ``exclude``."""
    out = []
    for r in records:
        if names and not any(fnmatch.fnmatchcase(r.name, g) for g in names):
            continue
        if exclude and any(fnmatch.fnmatchcase(r.name, g) for g in exclude):
            continue
        out.append(r)
    return out


def select_cells(records: Iterable[RunRecord]) -> Selection:
    """One record per (run name, protocol); everything that cannot be shown honestly is left out, named.

    Identical copies of one result collapse. Two records of one cell that disagree are both left out
    (nothing says which is right). A run name whose records come from two models (or weights,
    fingerprints, model options, precisions) is left out whole: one row must be one model.
    """
    by_cell: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        copies = by_cell.setdefault((r.name, r.protocol.name), [])
        if not any(same_result(c, r) for c in copies):
            copies.append(r)
    sel = Selection({})
    for key, copies in by_cell.items():
        if len(copies) == 1:
            sel.cells[key] = copies[0]
            continue
        why = describe_difference(copies[0], copies[1])
        for r in copies:
            sel.excluded.append(
                Excluded(
                    r,
                    f"{len(copies)} records of this run name and protocol disagree ({why}); "
                    "pass the one you mean, or give the runs different names (--name)",
                )
            )
    by_name: dict[str, list[RunRecord]] = {}
    for (name, _), r in sel.cells.items():
        by_name.setdefault(name, []).append(r)
    for name, recs in by_name.items():
        models = {row_key(r): r for r in recs}
        if len(models) < 2:
            continue
        a, b = list(models.values())[:2]
        what = "; ".join(
            d for d in differences(a, b) if d.startswith(("model", "precision"))
        ) or describe_difference(a, b)
        for r in recs:
            del sel.cells[(name, r.protocol.name)]
            sel.excluded.append(
                Excluded(r, f"run name {name!r} holds runs of different models ({what}); name each apart")
            )
    return sel


# -- tables: groups of rows whose columns measured the same thing ---------------------------------------
@dataclass
class Group:
    """Rows (run names) of one table: in every column, all records share :func:`measure_key`."""

    names: list[str]
    keys: dict[tuple, tuple]  # column key -> measure key

    def records(self, cells: Mapping[tuple[str, str], RunRecord]) -> list[RunRecord]:
        return [r for (n, _), r in cells.items() if n in self.names]


def group_rows(cells: Mapping[tuple[str, str], RunRecord]) -> list[Group]:
    """Partition the run names so that each column of a group measured one thing on one data set.

    Rows keep all their cells together. The runs on the full, official data come first (they are the
    ones the paper's values may stand beside), then the others in name order; each row joins the first
    group it fits, or opens a new one.
    """
    by_name: dict[str, list[RunRecord]] = {}
    for (name, _), r in sorted(cells.items()):
        by_name.setdefault(name, []).append(r)

    def rank(name: str) -> tuple:
        ids = [RunIdentity.of(r) for r in by_name[name]]
        full = all(not _data_notes(i) for i in ids)
        default_seed = all(not i.protocol.prompt_seed for i in ids)
        return (not full, not default_seed, name)

    groups: list[Group] = []
    for name in sorted(by_name, key=rank):
        mine = {column_key(r): measure_key(r) for r in by_name[name]}
        for g in groups:
            if all(g.keys.get(c, k) == k for c, k in mine.items()):
                g.names.append(name)
                g.keys.update(mine)
                break
        else:
            groups.append(Group([name], dict(mine)))
    return groups


def group_title(records: Sequence[RunRecord]) -> str:
    """What the records of a table group were measured on, in words (for a heading)."""
    parts: list[str] = []
    for r in records:
        i = RunIdentity.of(r)
        text = f"{i.data.dataset}, {_images(r)}"
        if i.data.skipped:
            text += f", skipped {_skips_text(i.data)}"
        if i.protocol.prompt_seed:
            text += f", seed {i.protocol.prompt_seed}"
        if text not in parts:
            parts.append(text)
    return "; ".join(parts)


# -- paired comparisons ---------------------------------------------------------------------------------
def pairing_problems(a: RunRecord, b: RunRecord) -> list[str]:
    """Why two runs cannot be compared item by item, each reason naming the field and both values.

    Paired runs must have measured the same thing: the same protocol and version, the same column
    options, the same annotation file, images and skips, the same detections and, for random clicks,
    the same seed. Everything else (model, weights, checkpoint, precision, row options) is what a
    comparison is for.
    """
    out: list[str] = []
    if a.protocol.id != b.protocol.id:
        out.append(f"protocol {a.protocol.id} vs {b.protocol.id}")
        if a.protocol.task != b.protocol.task:
            out.append(f"task {a.protocol.task} vs {b.protocol.task}")
    elif (ca := column_options(a)) != (cb := column_options(b)):
        keys = sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))
        shipped = "as shipped"
        out.append(
            "options that change what is measured: "
            + ", ".join(f"{k}={_fmt(ca.get(k, shipped))} vs {_fmt(cb.get(k, shipped))}" for k in keys)
        )
    ia, ib = RunIdentity.of(a), RunIdentity.of(b)
    da, db = a.dataset, b.dataset
    if ia.data.annotation_sha256 != ib.data.annotation_sha256:
        names = f"{da.name} vs {db.name}; " if da.name != db.name else ""
        out.append(
            f"annotation file ({names}{da.annotation_file or '?'} sha256 {_short(da.annotation_sha256)} "
            f"vs {db.annotation_file or '?'} sha256 {_short(db.annotation_sha256)})"
        )
    if ia.data.image_ids_sha256 != ib.data.image_ids_sha256:
        xa, xb = _images(a), _images(b)
        if xa == xb:  # same count and limit, other ids: say so with the fingerprints
            xa += f" sha256 {_short(da.image_ids_sha256)}"
            xb += f" sha256 {_short(db.image_ids_sha256)}"
        out.append(f"image ids: {xa} vs {xb}")
    if ia.data.skipped != ib.data.skipped:
        out.append(
            f"skipped items (--skip-bad): {_skips_text(ia.data) or 'none'} vs "
            f"{_skips_text(ib.data) or 'none'}"
        )
    if ia.protocol.detections_sha256 != ib.protocol.detections_sha256:
        out.append(f"detections file: {_detections(a)} vs {_detections(b)}")
    if ia.protocol.prompt_seed != ib.protocol.prompt_seed:
        out.append(
            f"random-click seed (--seed): {_fmt(ia.protocol.prompt_seed)} vs "
            f"{_fmt(ib.protocol.prompt_seed)} (the clicks differ)"
        )
    return out


# -- the paper ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparability:
    """Whether a measured value may be set against the paper's (Δ), and if not, why (in words)."""

    ok: bool
    reason: str = ""


def _data_notes(i: RunIdentity) -> list[str]:
    """Why the data of a run are not the paper's data, in words (empty: they are)."""
    d = i.data
    notes = []
    if is_sample(d.dataset):
        notes.append("sample data")
    elif d.official is not True:
        official = next((o for o in OFFICIAL.values() if o.name == d.dataset), None)
        notes.append(
            "annotation file not verified as the official one (`evalsuite download` records it)"
            if official is not None and d.official is None
            else "custom annotation file"
        )
    if d.limit is not None:
        notes.append(f"--limit {d.limit}")
    if d.skipped:
        notes.append(f"{_skips_text(d)} skipped")
    return notes


def identity_notes(r: RunRecord) -> list[str]:
    """Everything about a record that keeps it from being the paper's measurement, in words."""
    i = RunIdentity.of(r)
    notes = _data_notes(i)
    m = i.model
    if m.weights.startswith("random"):
        notes.append(f"random weights ({m.weights})")
    elif m.weights == "file":
        notes.append("not the official checkpoint")
    elif m.weights == "untrained":
        notes.append("an untrained network (no weights loaded)")
    elif m.weights == "unverified":
        notes.append(f"checkpoint not verified as the official file (`evalsuite download weights {m.name}`)")
    if m.fingerprint:
        notes.append("a model passed from Python")
    if m.options:  # the model's own options changed from the official predictor's defaults
        notes.append(f"model options {_options_text(dict(m.options))}")
    if i.execution.precision != PAPER_PRECISION:
        notes.append(f"precision {i.execution.precision}")
    if i.protocol.detections_kind == "pseudo":
        notes.append("pseudo-detections (make-boxes), not a detector")
    elif i.protocol.detections_kind == "unrecorded":
        notes.append("the detection file is not recorded as the published one (a record older than schema 3)")
    elif i.protocol.detections_kind == "other":
        notes.append("another detection file than the published ViTDet-H one")
    return notes


def paper_comparability(r: RunRecord, quoted: QuotedValue) -> Comparability:
    """A paper's value and Δ stand beside a record only when everything is the paper's: the official
    annotation file with all its images and nothing skipped, official (verified) weights, the paper's
    protocol version and options, fp32, and the detections the paper used."""
    shipped = load_protocols().get(r.protocol.name)
    reasons = identity_notes(r)
    if shipped is None or shipped.version != r.protocol.version:
        reasons.append("another protocol version")
    elif r.protocol.options != {**shipped.options, **quoted.options}:
        reasons.append("other protocol options than the paper's")
    if quoted.boxes:
        reasons.append(f"the paper prompted with other detection boxes ({quoted.boxes})")
    return Comparability(not reasons, "; ".join(reasons))


def default_dataset(family: str) -> str | None:
    """The official dataset a family's shipped protocols measure."""
    spec = DEFAULT_FOR_FAMILY.get(family)
    return None if spec is None else spec.name


# -- resume ---------------------------------------------------------------------------------------------
#: the run folder's settings key of evalsuite's code version (engine.scoring writes it)
CODE_KEY = "evalsuite_code"
#: fingerprint keys of a run folder, in words (messages only)
_FINGERPRINT_WORDS = {
    "protocol": "protocol",
    "options": "protocol options",
    "model": "model",
    "checkpoint_sha256": "checkpoint",
    "weights": "weights",
    "model_fingerprint": "model fingerprint (a Python model's outputs or version=)",
    "model_options": "model options",
    "precision": "precision",
    "seed": "seed",
    "dataset": "dataset",
    "annotation_sha256": "annotation file",
    "image_ids_sha256": "image set (--limit?)",
    "skip_bad": "--skip-bad",
    "boxes_sha256": "detections file",
    "evalsuite_code": "evalsuite's code (version+hash; finish the run with the evalsuite that started it, "
    "or --overwrite to start again)",
}


def resume_problems(stored: Mapping[str, Any], new: Mapping[str, Any], finished: bool = False) -> list[str]:
    """Why a run folder made with ``stored`` settings cannot be resumed by a run with ``new`` ones.

    A changed evalsuite (its code version) may not continue unfinished work — one result would mix
    two versions' numbers — but a *finished* run's record stands as it is (``finished``).
    """
    out = []
    for k in sorted(set(stored) | set(new)):
        if finished and k == CODE_KEY:
            continue
        if stored.get(k) != new.get(k):
            word = _FINGERPRINT_WORDS.get(k, k)
            a, b = stored.get(k, "(none)"), new.get(k, "(none)")
            if isinstance(a, str) and isinstance(b, str) and len(a) == len(b) == 64:
                a, b = _short(a), _short(b)
            out.append(f"{word}: {a} then, {b} now")
    return out


def check_names(names: Sequence[str] | None, what: str = "--name") -> list[str] | None:
    """Globs for :func:`filter_names` (refuses empty patterns)."""
    if names is None:
        return None
    out = [n for n in names if n]
    if len(out) != len(names):
        raise InputError(f"{what}: empty pattern")
    return out
