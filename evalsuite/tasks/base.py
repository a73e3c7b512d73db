"""The interface every task (what a protocol does per image) implements.

The evaluation loop only knows this interface: it reads images, hands each to
the tasks that still need it, logs their records for resume, and at the end
asks each task's evaluator for metrics. Adding a task kind is one module and
one entry in :data:`evalsuite.tasks.TASKS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..data.readers import DatasetReader
from ..errors import UnsupportedPromptError
from ..models.base import PROMPT_BOX, PROMPT_POINTS, Runner
from ..protocols import Protocol
from .gt import MaskCache


@dataclass
class TaskContext:
    """What a task may use besides its protocol: run settings and the open dataset."""

    reader: DatasetReader
    image_ids: list[int]
    seed: int = 0
    prompt_batch: int = 64
    boxes: Path | None = None
    skip_bad: bool = False
    evaluator_backend: str = "official"
    extra: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """One protocol bound to a dataset and run settings."""

    #: file name of the per-item log in the run folder
    log_name: ClassVar[str]
    #: the per-item record type (has ``to_json`` / ``from_json``)
    record_type: ClassVar[type]

    def __init__(self, protocol: Protocol, ctx: TaskContext) -> None:
        self.protocol = protocol
        self.options = protocol.options
        self.ctx = ctx

    @staticmethod
    def check_runner(protocol: Protocol, runner: Runner) -> None:
        """Refuse, before any work, a model that cannot serve this protocol."""
        kind = PROMPT_BOX if protocol.options.get("prompt", "box") == "box" else PROMPT_POINTS
        if kind not in runner.prompt_kinds:
            raise UnsupportedPromptError(
                f"model {runner.name!r} does not take {kind} prompts, which protocol {protocol.name} needs",
                hint=f"it takes: {', '.join(sorted(runner.prompt_kinds))}",
            )

    def fingerprint(self) -> dict[str, Any]:
        """Task-specific settings that determine the result (beyond protocol, model, seed, data)."""
        return {}

    def provenance(self) -> dict[str, Any]:
        """Task-specific facts for the run record (e.g. the detection file's SHA-256)."""
        return {}

    def initial_skips(self) -> Counter:
        """Skips counted before any image is processed (e.g. invalid detections dropped on load)."""
        return Counter()

    @abstractmethod
    def run_image(self, runner: Runner, cache: MaskCache) -> tuple[list, Counter]:
        """Records for the image currently set on ``runner``, and skip counts by reason."""

    @abstractmethod
    def new_evaluator(self):
        """A fresh evaluator: ``process(records)``, ``merge(other)``, ``evaluate() -> dict``."""
