"""Shared fixtures: the team's ../shared folder and small helpers.

Tests that need ../shared skip with a reason where it is absent (a user's
clone); .ci/run sets EVALSUITE_REQUIRE_SHARED=1, which turns that skip into a
failure so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EVALSUITE_SHARED", REPO.parent / "shared"))


_SKIPPED_FOR_SHARED: list[str] = []


def require_shared(*parts: str) -> Path:
    """Path inside ../shared, or skip (fail under CI) when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        msg = f"{path} not found: the team's ../shared folder is needed for this check"
        if os.environ.get("EVALSUITE_REQUIRE_SHARED") == "1":
            pytest.fail(msg + " (mandatory under .ci/run)")
        _SKIPPED_FOR_SHARED.append(str(path))
        pytest.skip(msg)
    return path


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """One clear line when checks were skipped for want of ../shared (they are mandatory in CI)."""
    if _SKIPPED_FOR_SHARED:
        terminalreporter.write_line(
            f"NOTE: {len(_SKIPPED_FOR_SHARED)} fidelity / real-data check(s) skipped: the shared folder "
            f"was not found at {SHARED} (set EVALSUITE_SHARED=DIR to point at it); "
            "they compare the models with the official code's goldens and the metrics with real COCO/LVIS "
            "files, and .ci/run makes them mandatory.",
            yellow=True,
            bold=True,
        )


@pytest.fixture(scope="module")
def fill():
    """../shared/fidelity's ``fill`` module: deterministic weights the goldens were made with."""
    folder = require_shared("fidelity")
    sys.path.insert(0, str(folder))
    try:
        import fill as fill_module

        yield fill_module
    finally:
        sys.path.remove(str(folder))


@pytest.fixture
def realdata() -> Path:
    return require_shared("realdata")


@pytest.fixture
def coco_39769(tmp_path: Path, realdata: Path) -> Path:
    """A data root in the COCO layout holding the real image 39769 and its 6 annotations."""
    src = realdata / "coco_val2017_000000039769"
    (tmp_path / "val2017").mkdir()
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017" / "000000039769.png").write_bytes((src / "000000039769.png").read_bytes())
    (tmp_path / "annotations" / "instances_val2017.json").write_bytes(
        (src / "instances_val2017_39769.json").read_bytes()
    )
    return tmp_path


class SetImageHook:
    """Patches the engine's ``build_model`` so each runner reports the images it embeds.

    The engine embeds images through ``set_images(batch)``; ``calls`` counts the images
    (``batches`` the size of each encoder pass). ``interrupt_after`` raises KeyboardInterrupt (a
    user's Ctrl-C) when a batch would take the count past that many: with batches of B > 1 that is
    at a batch boundary, not after exactly that many images. ``restore()`` undoes the patch.
    """

    def __init__(self, monkeypatch, interrupt_after: int | None = None) -> None:
        from evalsuite.engine import naming as evaluator

        self.calls = 0
        self.batches: list[int] = []
        self._monkeypatch = monkeypatch
        self._evaluator = evaluator
        self._real = evaluator.build_model
        monkeypatch.setattr(evaluator, "build_model", self._build)
        self.interrupt_after = interrupt_after

    def _build(self, *args, **kwargs):
        runner = self._real(*args, **kwargs)
        original = runner.set_images

        def set_images(images):
            if self.interrupt_after is not None and self.calls + len(images) > self.interrupt_after:
                raise KeyboardInterrupt
            self.calls += len(images)
            self.batches.append(len(images))
            original(images)

        runner.set_images = set_images
        return runner

    def restore(self) -> None:
        self._monkeypatch.setattr(self._evaluator, "build_model", self._real)


def run_folder(out: Path, model: str, protocol: str) -> Path:
    """The one run folder of ``model`` on ``protocol`` under ``out``, whatever its derived name says
    beyond the model (``+limit2``, ``@coco-file-<sha8>`` for a custom annotation file, ...)."""
    found = [p for p in Path(out).glob(f"{glob_escape(model)}*/{protocol}") if p.is_dir()]
    found = [p for p in found if p.parent.name == model or p.parent.name[len(model)] in "+@"]
    assert len(found) == 1, f"{out}: expected one run folder of {model} on {protocol}, found {found}"
    return found[0]


def glob_escape(text: str) -> str:
    import glob

    return glob.escape(text)
