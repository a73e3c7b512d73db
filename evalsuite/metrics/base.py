"""The interface every metric accumulator implements, and the typed result it returns.

detectron2's evaluator shape: ``reset()``, ``process(records)``, ``merge(other)``, ``evaluate()``.
The state is the list of small per-item records, so a run can be re-scored offline from its log
and shards merge by concatenation; ``evaluate`` sorts first, so the result never depends on the
order items were processed in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

RecordT = TypeVar("RecordT")


@dataclass(frozen=True)
class MetricResult:
    """What a metric gives a run record."""

    metrics: dict[str, float | None]  # percent (or clicks for NoC); None where there is no honest number
    higher_is_better: dict[str, bool]
    counts: dict[str, Any] = field(default_factory=dict)  # instances, instances_by_size, detections_scored
    per_category: dict[int, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)  # extra files for the run folder (JSON)
    backend: dict[str, Any] | None = None  # AP: the backend name and its raw stats


class Metric(ABC, Generic[RecordT]):
    """An accumulator over per-item records (see the module docstring)."""

    #: direction of every metric this accumulator reports (the run record copies it)
    higher_is_better: ClassVar[dict[str, bool]]

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._records: list[RecordT] = []

    def process(self, records: Iterable[RecordT]) -> None:
        self._records.extend(records)

    def merge(self, other: Metric[RecordT]) -> None:
        self._records.extend(other._records)

    @abstractmethod
    def evaluate(self) -> MetricResult:
        """The metrics of everything processed."""
