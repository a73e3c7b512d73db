"""Where a paper's value belongs, and picking one record.

Which records may share a cell, a column, a row or a table, and when a paper's value may stand
beside a measured one, is decided in :mod:`evalsuite.identity` (one place for every report, the
engine and the Python API). This module adds what only reports need: the paper value of a cell.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..identity import filter_names
from ..paper import QuotedValue, quoted_values
from ..protocols import load_protocols
from ..record import RunRecord, find_records


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
    move the value; they decide whether a Δ is fair (:func:`evalsuite.identity.paper_comparability`).
    """
    for qv in quoted_values(model, protocol, metric):
        if paper_column_options(protocol, qv.options) == dict(column or {}):
            return qv
    return None


def single_record(path: Any, names: list[str] | None = None, exclude: list[str] | None = None) -> RunRecord:
    """Exactly one record from a record file or a run folder (for compare and the qualitative grid),
    chosen among several by run-name globs (``names`` / ``exclude``)."""
    found = filter_names(find_records([path]), names, exclude)
    if not found:
        raise InputError(f"{path}: no record with a run name matching the selection")
    if len(found) > 1:
        raise InputError(
            f"{path} holds {len(found)} records; name one run folder or record.json, or select by --name",
            hint="e.g. " + str(found[0].path),
        )
    return found[0]
