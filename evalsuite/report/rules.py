"""The rules that keep a report honest.

Rows are runs (by name), columns are what a protocol measures. A cell takes exactly one result:
identical copies of one record collapse, two records of one run name and protocol that disagree
are refused. A column never mixes protocol versions, datasets, detection files or random-click
seeds: those numbers were measured on different things. Options split a column only where they
change what it measures (:attr:`evalsuite.options.OptionSpec.column`: the number of clicks, the
box source, the instance set); options that change how a model answers (which output, a
refinement step) make rows — variants of a model — and stay visible in the row's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..paper import QuotedValue, quoted_values
from ..protocols import Protocol, load_protocols
from ..record import RunRecord, find_records


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
    return (r.protocol.name, tuple(column_options(r).items()))


def paper_column_options(protocol: str, paper_options: dict[str, Any]) -> dict[str, Any] | None:
    """The column options a paper row's options put its value in (None: the row's options do not fit)."""
    shipped = load_protocols().get(protocol)
    if shipped is None:
        return None
    try:
        measured = shipped.with_options(paper_options)
    except InputError:  # e.g. refine=1 quoted for a row that also has mIoU protocols: not this one
        return None
    return measured.column_overrides


def paper_value(
    model: str, protocol: str, metric: str, column: dict[str, Any] | None = None
) -> QuotedValue | None:
    """The paper's value for a cell: the model, protocol and metric, in the column measured with ``column``.

    A paper's number belongs to the column its options define: the EfficientViT-SAM box mIoU
    (annotation box, crowd included) stands beside ``coco-box (box_source=ann, include_crowd=true)``,
    never beside the tight-box column. Options that make a row (SAM ViT-H's refinement step) do not
    move the value; they decide whether a Δ is fair (:func:`paper_comparability`).
    """
    for qv in quoted_values(model, protocol, metric):
        if paper_column_options(protocol, qv.options) == dict(column or {}):
            return qv
    return None


def _same_result(a: RunRecord, b: RunRecord) -> bool:
    """Copies of one result: same run id (same settings fingerprint) and the same metrics."""
    return a.run_id == b.run_id and a.data_key() == b.data_key() and a.metrics == b.metrics


def difference(a: RunRecord, b: RunRecord) -> str:
    """What differs between two records, named (for refusals)."""
    parts = []
    for label, fa, fb in (
        ("protocol version", a.protocol.id, b.protocol.id),
        ("options", a.protocol.options, b.protocol.options),
        ("dataset", a.dataset.name, b.dataset.name),
        ("annotation sha256", a.dataset.annotation_sha256, b.dataset.annotation_sha256),
        ("image ids (--limit?)", a.dataset.image_ids_sha256, b.dataset.image_ids_sha256),
        ("detections sha256", a.boxes_sha256, b.boxes_sha256),
        ("model", a.model.name, b.model.name),
        ("weights", a.model.weights, b.model.weights),
        ("checkpoint sha256", a.model.checkpoint_sha256, b.model.checkpoint_sha256),
        ("precision", a.model.precision, b.model.precision),
        ("seed", a.seed, b.seed),
        ("run id", a.run_id, b.run_id),
    ):
        if fa != fb:
            if isinstance(fa, dict) and isinstance(fb, dict):
                keys = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
                parts.append("options " + ", ".join(f"{k}={fa.get(k)!r} vs {fb.get(k)!r}" for k in keys))
            else:
                parts.append(f"{label} {fa} vs {fb}")
    if not parts:
        diff = [k for k in sorted(set(a.metrics) | set(b.metrics)) if a.metric(k) != b.metric(k)]
        parts.append(
            "metrics "
            + ", ".join(f"{k} {a.metric(k)} vs {b.metric(k)}" for k in diff[:3])
            + " (same settings, different numbers)"
        )
    return "; ".join(parts)


def unique_cells(records: Sequence[RunRecord]) -> dict[tuple[str, str], RunRecord]:
    """One record per (run name, protocol name); refuses two records of a cell that disagree."""
    cells: dict[tuple[str, str], RunRecord] = {}
    for r in records:
        key = (r.name, r.protocol.name)
        if key not in cells:
            cells[key] = r
            continue
        other = cells[key]
        if not _same_result(other, r):
            raise InputError(
                f"two records named {r.name!r} for protocol {r.protocol.name!r} disagree "
                f"({difference(other, r)}): {other.path} and {r.path}",
                hint="give the runs different names (--name), or pass only the record you mean to report",
            )
    return cells


def check_columns(records: Iterable[RunRecord]) -> None:
    """Refuse a column whose records differ in protocol version, data, detection file or click seed."""
    first: dict[tuple, RunRecord] = {}
    for r in records:
        ref = first.setdefault(column_key(r), r)
        if ref.data_key() == r.data_key():
            continue
        what = []
        if ref.protocol.id != r.protocol.id:
            what.append(f"protocol versions {ref.protocol.id} vs {r.protocol.id}")
        if (ref.dataset.annotation_sha256, ref.dataset.image_ids_sha256) != (
            r.dataset.annotation_sha256,
            r.dataset.image_ids_sha256,
        ):
            what.append(
                f"datasets {ref.dataset.name} vs {r.dataset.name} (annotation file or image ids differ)"
            )
        if ref.boxes_sha256 != r.boxes_sha256:
            what.append(f"detection files {ref.boxes_sha256} vs {r.boxes_sha256}")
        if ref.prompt_seed != r.prompt_seed:
            what.append(f"click seeds {ref.prompt_seed} vs {r.prompt_seed} (different random clicks)")
        raise InputError(
            f"column {r.protocol.name!r} would mix results that are not comparable: {'; '.join(what)} "
            f"({ref.name}: {ref.path}; {r.name}: {r.path})",
            hint="report them separately, or re-run one of them with the other's protocol settings",
        )


def single_record(path: Any) -> RunRecord:
    """Exactly one record from a record file or a run folder (for compare and the qualitative grid)."""
    found = find_records([path])
    if len(found) > 1:
        raise InputError(
            f"{path} holds {len(found)} records; name one run folder or record.json",
            hint="e.g. " + str(found[0].path),
        )
    return found[0]


@dataclass(frozen=True)
class Comparability:
    """Whether a measured value may be set against the paper's (Δ), and if not, why."""

    ok: bool
    reason: str = ""


def paper_comparability(r: RunRecord, quoted: QuotedValue) -> Comparability:
    """Δ against the paper only for the paper's weights, data, detections and options (shipped + row's)."""
    paper_options = quoted.options
    if r.model.random_weights:
        return Comparability(False, "random weights")
    if r.model.weights == "file":
        return Comparability(False, "not the official checkpoint")
    shipped = load_protocols().get(r.protocol.name)
    if shipped is None or shipped.version != r.protocol.version:
        return Comparability(False, "another protocol version")
    if r.protocol.options != {**shipped.options, **paper_options}:
        return Comparability(False, "other protocol options than the paper's")
    if r.dataset.name.startswith("sample-"):
        return Comparability(False, "the synthetic sample, not COCO/LVIS")
    if r.dataset.limit is not None:
        return Comparability(False, "a subset of the images (--limit)")
    if quoted.boxes:
        return Comparability(False, f"the paper prompted with other detection boxes ({quoted.boxes})")
    return Comparability(True)
