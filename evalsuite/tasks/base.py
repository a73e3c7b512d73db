"""The interface every task (what a protocol does per image) implements.

The engine only knows this interface: it reads images, hands each to the tasks that still need
it, logs their per-item records for resume, and at the end asks each task's metric for the
numbers. Adding a task kind is one module and one entry in :data:`evalsuite.tasks.TASKS` (plus
its option declarations in :data:`evalsuite.protocols.TASK_OPTIONS`).

A task runs its own metric (:attr:`Task.primary_metric`: the one whose per-item field its records
always hold, e.g. ``iou``) and every other metric its protocol lists (``metrics = ["mIoU", "mBIoU"]``):
those see the masks through :meth:`evalsuite.metrics.Metric.measure`, and their fields ride in each
record's ``extra``.
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
from ..metrics.base import ItemField, Metric, MetricSet, resolve_metrics
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
    #: the per-item record type (has ``to_json`` / ``from_json``); an instance reads rows with the extra
    #: fields of its protocol's metrics
    record_type: Any

    #: the metric the task always runs (its records' own per-item field)
    primary_metric: ClassVar[type[Metric] | None] = None

    def __init__(self, protocol: Protocol, ctx: TaskContext) -> None:
        self.protocol = protocol
        self.options = protocol.options
        self.ctx = ctx
        listed = resolve_metrics(protocol.metrics, protocol.task, protocol.name)
        #: the other metrics the protocol lists: they measure the masks and own fields of ``extra``
        self.extra_metrics: list[type[Metric]] = [m for m in listed if m is not self.primary_metric]
        self.extra_fields: tuple[ItemField, ...] = tuple(f for m in self.extra_metrics for f in m.fields)
        #: reads a logged row back (``record_type.from_json``), with the fields the metrics declared
        self.record_type = _Reader(type(self).record_type, self.extra_fields)

    @classmethod
    def check_runner(cls, protocol: Protocol, runner: Runner) -> None:
        """Refuse, before any work, a model that cannot serve this protocol."""
        if missing := sorted(protocol.prompt_kinds - runner.prompt_kinds):
            raise UnsupportedPromptError(
                f"model {runner.name!r} does not take {' and '.join(missing)} prompts, which protocol "
                f"{protocol.name} needs",
                hint=f"it takes: {', '.join(sorted(runner.prompt_kinds))}",
            )

    def fingerprint(self) -> dict[str, Any]:
        """Task-specific settings that determine the result (beyond protocol, model, seed, data): the
        metrics, where a run reports others than the shipped protocol (its log holds other fields)."""
        return {"metrics": list(self.protocol.metrics)} if self.protocol.metrics_changed else {}

    def measuring_metrics(self) -> list[Metric]:
        """Fresh instances of the extra metrics (for measuring masks; they hold no records then)."""
        return [m.from_options(self.options) for m in self.extra_metrics]

    def new_metric(self) -> Metric:
        """A fresh accumulator for this protocol's records: the task's own metric and the listed others."""
        return MetricSet([self.own_metric(), *self.measuring_metrics()])

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
    def own_metric(self) -> Metric:
        """A fresh accumulator of the task's own metric."""


class _Reader:
    """``from_json`` of a task's record type, with the extra fields its protocol's metrics declared."""

    def __init__(self, record: Any, fields: tuple[ItemField, ...]) -> None:
        self.record = record
        self.fields = fields

    def from_json(self, data: dict[str, Any]) -> Any:
        return self.record.from_json(data, self.fields) if self.fields else self.record.from_json(data)
