"""The engine: runs protocols on a model and writes one typed record per protocol.

:func:`run` takes a :class:`RunConfig`; the loop (:mod:`.loop`) reads images (decode workers,
:mod:`.loader`), embeds them in batches, serves every protocol of the run from one embedding,
logs per-item records for resume (:mod:`.runfolder`), shards across ``torchrun`` processes
(:mod:`.distributed`), times every part (:mod:`.timing`) and builds the records (:mod:`.scoring`).
"""

from .config import AP_BACKENDS, PRECISIONS, RunConfig
from .loop import RunOutcome, precision_mode, resolve_protocols, run

__all__ = [
    "AP_BACKENDS",
    "PRECISIONS",
    "RunConfig",
    "RunOutcome",
    "precision_mode",
    "resolve_protocols",
    "run",
]
