"""No module outside the dataset modules branches on ``"coco"`` / ``"lvis"``: adding a dataset is one module.

What the grep looks at: every string literal in ``evalsuite/**/*.py`` (parsed, so comments are never
read), except docstrings. It flags

* a literal that *is* a dataset identifier of COCO or LVIS: the whole string, ignoring case, is
  ``coco`` / ``lvis`` or starts with ``coco`` / ``lvis`` followed by ``-``, ``_`` or ``.`` (a protocol
  name ``coco-box``, a dataset name ``lvis-v1-val``, a file name ``lvis_v1_val.json``, a field name
  ``coco_url``), and
* a literal naming their hosts (``cocodataset.org``, ``lvisdataset.org``).

What it allows, and why:

* **the dataset modules**: ``evalsuite/datasets/`` (the catalogue entries) and
  ``evalsuite/data/readers.py`` (the COCO-instances and LVIS *format* readers, whose file layout and
  field names are the format), and the bundled sample data;
* **the paper facts**: ``protocols/paper/*.toml`` and the shipped protocol files are TOML, not looked at;
* **prose addressed to people** — any literal with a space in it: messages, hints and help text may
  name the datasets to users ("is this a COCO file?"); code cannot branch on them;
* **the Python package called ``lvis``** (a dependency, not the dataset), in the three places that
  name it as a package: the versions recorded in ``provenance.py``, the import check of ``doctor``,
  and the loggers the lvis package writes to, silenced in ``metrics/ap.py``.

The AP scorer a dataset needs is named after the scorer (``COCOeval`` / ``LVISEval``, see
``metrics/ap.py``), which a dataset declares; the grep does not flag those names (they are the
evaluator classes' names, not dataset identifiers).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "evalsuite"
IDENTIFIER = re.compile(r"(coco|lvis)([-_.].*)?", re.IGNORECASE | re.DOTALL)
HOST = re.compile(r"(cocodataset|lvisdataset)\.org", re.IGNORECASE)
DATASET_MODULES = ("datasets/", "data/readers.py", "data/sample_data/")
#: the Python package `lvis` named as a package (file, literal)
PACKAGE_NAMES = {
    ("provenance.py", "lvis"),
    ("fetch/doctor.py", "lvis"),
    ("metrics/ap.py", "lvis"),
    ("metrics/ap.py", "lvis.results"),
}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings (module, class, function)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def offending_literals(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(DATASET_MODULES):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in sorted(ast.walk(tree), key=lambda n: getattr(n, "lineno", 0)):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in docs:
                continue
            text = node.value
            if " " in text or (rel, text) in PACKAGE_NAMES:
                continue
            if IDENTIFIER.fullmatch(text) or HOST.search(text):
                found.append(f"evalsuite/{rel}:{node.lineno}: {text!r}")
    return found


def test_no_coco_or_lvis_literals_outside_the_dataset_modules() -> None:
    assert offending_literals() == []


def test_the_grep_finds_what_it_is_meant_to(tmp_path: Path) -> None:
    """The check itself: identifiers and hosts are caught, prose, docstrings and other words are not."""
    (tmp_path / "m.py").write_text(
        '"""A docstring about coco and lvis."""\n'
        'A = "coco"\nB = {"lvis": 1}\nC = "coco-box"\nD = "LVIS_v1_val.json"\n'
        'E = "https://images.cocodataset.org/x"\nF = f"{A}-vitdet"\n'
        'G = "is this a COCO file?"\nH = "COCOeval"\nI = "pycocotools"\nJ = "faster_coco_eval"\n'
    )
    found = offending_literals(tmp_path)
    assert [f.split(": ", 1)[1] for f in found] == [
        "'coco'",
        "'lvis'",
        "'coco-box'",
        "'LVIS_v1_val.json'",
        "'https://images.cocodataset.org/x'",
    ]
