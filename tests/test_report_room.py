"""The report room stays easy to change (issue 22): short, simple functions, and one place that renders.

No function in ``evalsuite/report/`` is longer than 60 lines or more complex than cyclomatic complexity
15 (ruff's C90, as ``.ci/run`` runs it), and ``api.py`` renders nothing itself: every table, comparison
and summary is rendered by the report room.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import evalsuite

PACKAGE = Path(evalsuite.__file__).resolve().parent
MAX_LINES = 60


def function_lengths(folder: Path) -> dict[str, int]:
    """``file:function`` → lines from its ``def`` to its last line (docstring and body)."""
    out = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                out[f"{path.name}:{node.name}"] = node.end_lineno - start + 1
    return out


def test_no_report_function_is_longer_than_60_lines():
    lengths = function_lengths(PACKAGE / "report")
    assert len(lengths) > 100  # the measurement sees the room
    assert {f: n for f, n in lengths.items() if n > MAX_LINES} == {}


def test_the_length_measure_counts_a_whole_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (tmp_path / "m.py").write_text(f"@decorator\ndef long():\n{body}\n\n\ndef short():\n    return 1\n")
    assert function_lengths(tmp_path) == {"m.py:long": 63, "m.py:short": 2}


def test_report_functions_stay_below_cyclomatic_complexity_15():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it is in the test extra)")
    done = subprocess.run(
        [
            ruff,
            "check",
            "--select",
            "C90",
            "--config",
            "lint.mccabe.max-complexity = 15",
            str(PACKAGE / "report"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_api_renders_nothing_itself():
    """Markdown, CSV, LaTeX, HTML and JSON come from evalsuite/report/, which api.py calls."""
    text = (PACKAGE / "api.py").read_text(encoding="utf-8")
    assert not re.search(r"\.to_(markdown|csv|latex|html)\(|json\.dumps\(|<table|\| --- \|", text)
