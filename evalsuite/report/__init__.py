"""Reports from run records: paper-layout tables, exports, plots, gates and statistics.

Everything here reads :class:`~evalsuite.record.RunRecord` s (and their per-item logs), never a
live run, and imports nothing from the models, the tasks or the engine: the qualitative grid
draws masks that :mod:`evalsuite.engine.replay` re-predicted.
"""

from .rules import single_record

__all__ = ["single_record"]
