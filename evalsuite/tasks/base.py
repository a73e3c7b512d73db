"""The interface every task (what a protocol does per image) implements.

The engine only knows this interface: it reads images, hands each to the tasks that still need
it, logs their per-item records for resume, and at the end asks each task's metric for the
numbers. Adding a task kind is one module and one entry in :data:`evalsuite.tasks.TASKS` (plus
its option declarations in :data:`evalsuite.protocols.TASK_OPTIONS`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..data.gt import MaskCache
from ..data.readers import DatasetReader
from ..errors import UnsupportedPromptError
from ..metrics.base import Metric
from ..models.base import Runner
from ..protocols import Protocol
from ..record import BoxesPart


@dataclass
class TaskContext:
    """What a task may use besides its protocol: run settings and the open dataset."""

    reader: DatasetReader
    image_ids: list[int]
    seed: int = 0
    prompt_batch: int = 64
    boxes: Path | None = None
    skip_bad: bool = False
    ap_backend: str = "official"


class Task(ABC):
    """One protocol bound to a dataset and run settings."""

    #: file name of the per-item log in the run folder
    log_name: ClassVar[str]
    #: the per-item record type (has ``to_json`` / ``from_json``)
    record_type: ClassVar[Any]

    def __init__(self, protocol: Protocol, ctx: TaskContext) -> None:
        self.protocol = protocol
        self.options = protocol.options
        self.ctx = ctx

    @classmethod
    def check_runner(cls, protocol: Protocol, runner: Runner) -> None:
        """Refuse, before any work, a model that cannot serve this protocol."""
        kind = protocol.prompt_kind
        if kind not in runner.prompt_kinds:
            raise UnsupportedPromptError(
                f"model {runner.name!r} does not take {kind} prompts, which protocol {protocol.name} needs",
                hint=f"it takes: {', '.join(sorted(runner.prompt_kinds))}",
            )

    def fingerprint(self) -> dict[str, Any]:
        """Task-specific settings that determine the result (beyond protocol, model, seed, data)."""
        return {}

    def boxes(self) -> BoxesPart | None:
        """The detection file the task prompts with (AP protocols), for the run record."""
        return None

    def initial_skips(self) -> Counter:
        """Skips counted before any image is processed (e.g. invalid detections dropped on load)."""
        return Counter()

    @abstractmethod
    def run_image(self, runner: Runner, cache: MaskCache) -> tuple[list, Counter]:
        """Records for the image currently set on ``runner``, and skip counts by reason."""

    @abstractmethod
    def new_metric(self) -> Metric:
        """A fresh metric accumulator for this protocol's records."""
