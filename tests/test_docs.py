"""The docs say what the code does: the README's model table is generated from the model specs, and
every verification claim in it is held by the team's fidelity files."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from conftest import require_shared

from evalsuite.models import builtin_model_names, get_spec

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("models_table", ROOT / "tools" / "models_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_model_table_is_the_specs():
    tool = _tool()
    assert tool.readme_table((ROOT / "README.md").read_text(encoding="utf-8")) == tool.table(), (
        "README.md's model table is stale: run python tools/models_table.py --write"
    )


@pytest.mark.shared
@pytest.mark.parametrize("name", [n for n in builtin_model_names() if "golden" in get_spec(n).verification])
def test_a_golden_claim_has_its_golden_and_a_test_that_reads_it(name):
    fidelity = require_shared("fidelity")
    verification = get_spec(name).verification
    if verification.startswith("golden"):  # its own golden, and a test that reads it
        assert (fidelity / "golden" / f"{name}.npz").is_file()
        tests = " ".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*_fidelity.py"))
        assert f'"{name}"' in tests, f"no fidelity test names {name}"
    # "key layout; the code of <model> (golden)": the models it names have goldens of that same code
    named = [
        n
        for n in builtin_model_names()
        if n != name and re.search(rf"(?<![\w.+-]){re.escape(n)}(?![\w+-])", verification)
    ]
    assert named or verification.startswith("golden")
    for other in named:
        assert (fidelity / "golden" / f"{other}.npz").is_file(), other
        assert get_spec(other).verification.startswith("golden"), other


@pytest.mark.shared
@pytest.mark.parametrize(
    "name", [n for n in builtin_model_names() if "key layout" in get_spec(n).verification]
)
def test_a_key_layout_claim_has_its_manifest(name):
    assert (require_shared("fidelity") / "manifests" / f"{name}.json").is_file()
