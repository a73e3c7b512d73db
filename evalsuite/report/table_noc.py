"""evalsuite's own NoC table: interactive segmentation with SAM's clicker, laid out like a paper table.

No paper of the suite has a NoC table, so its layout is made here from the NoC protocols the
records used (``coco-noc20``, ``lvis-noc20``, or any other ``noc`` protocol): per dataset, NoC@85,
NoC@90 (mean clicks to reach the IoU; lower is better), NoF@85, NoF@90 (instances that never reach it)
and the mIoU after 1, 3, 5 and 20 clicks (those the records have: a run capped at 5 clicks has no
mIoU@20). It has no quoted rows: every value is measured.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InputError
from ..paper import PaperColumn, PaperTable
from ..protocols import load_protocols
from ..record import RunRecord

NOC_TABLE = "NoC"
#: the columns of each dataset, in order (mIoU@20: the last click of the shipped protocols)
NOC_COLUMNS = ("NoC@85", "NoC@90", "NoF@85", "NoF@90", "mIoU@1", "mIoU@3", "mIoU@5", "mIoU@20")
NOC_TITLE = (
    "Interactive segmentation with SAM's clicker: clicks to reach IoU 85 / 90 % (NoC), "
    "instances that never reach it (NoF) and mIoU after k clicks"
)
NOC_NOTE = (
    "NoC@t: mean number of clicks until IoU ≥ t % (an instance that never gets there counts as the click "
    "cap); NoF@t: how many instances never got there; lower is better for both. mIoU@k: mIoU after k clicks."
)


def noc_protocols(records: Sequence[RunRecord]) -> list[str]:
    """The NoC protocols of the records: the shipped ones in their order, then others by name."""
    shipped = [n for n, p in load_protocols().items() if p.task == "noc"]
    used = {r.protocol.name for r in records if r.protocol.task == "noc"}
    return [n for n in shipped if n in used] + sorted(used - set(shipped))


def noc_spec(records: Sequence[RunRecord]) -> PaperTable:
    """The NoC table's layout for ``records`` (a group of columns per NoC protocol)."""
    protocols = noc_protocols(records)
    if not protocols:
        raise InputError(
            "no NoC records (coco-noc20, lvis-noc20) for the NoC table",
            hint="`evalsuite noc --model ...` makes them",
        )
    families = {r.protocol.name: r.dataset.family for r in records}
    columns = tuple(
        PaperColumn(_group(p, families[p], protocols, families), metric, p, metric)
        for p in protocols
        for metric in NOC_COLUMNS
        if any(r.metric(metric) is not None for r in records if r.protocol.name == p)  # @20: 20 clicks
    )
    return PaperTable(NOC_TABLE, NOC_TITLE, "measured by evalsuite", NOC_NOTE, columns, ())


def _group(protocol: str, family: str, protocols: list[str], families: dict[str, str]) -> str:
    """ "COCO"; the protocol's name where two NoC protocols share a dataset."""
    shared = sum(families[p] == family for p in protocols) > 1
    return protocol if shared else family.upper()
