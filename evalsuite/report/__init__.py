"""Reports from run records: paper-layout tables, exports, plots, gates and statistics.

Everything here reads ``record.json`` / ``instances.jsonl`` files, never a live run, except
:mod:`evalsuite.report.live` (re-prediction for the qualitative grid, and the NoC click loop).
"""

from .records import RunRecord, check_columns, find_records, read_record, unique_cells

__all__ = ["RunRecord", "check_columns", "find_records", "read_record", "unique_cells"]
