"""The interface every metric implements, the typed result it returns, and the registry that finds them.

A metric works in two steps, so a run can be re-scored offline from its log and shards merge by
concatenation:

1. **measure** (torchmetrics' ``update(preds, target)``, detectron2's ``process(inputs, outputs)``): it
   sees the model's chosen masks and their ground truth for a batch of items (:class:`MaskBatch`), where
   the masks are — on the model's device, vectorised over the batch — and returns the values of the
   per-item fields it owns (:attr:`Metric.fields`, e.g. ``iou``, ``biou``). The task writes them into
   each item's logged record; a record carries exactly the fields its protocol's metrics declared.
2. **process / merge / evaluate** (detectron2's evaluator): it accumulates logged records and turns them
   into numbers; ``evaluate`` sorts first, so the result never depends on the order items came in.

A protocol lists the numbers it reports (``metrics = ["mIoU", "mBIoU"]``); each name belongs to one
registered metric (:meth:`Metric.reports`), and the metrics those names belong to are the objects that
run. Metrics are registered in the entry-point group ``evalsuite.metrics`` (evalsuite's own in its
``pyproject.toml``, as a plugin declares its own), with their options (:attr:`Metric.options`), which
then join the option set of every protocol that runs them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch

from ..entrypoints import load_group
from ..errors import InputError
from ..options import OptionSpec

RecordT = TypeVar("RecordT")
ENTRY_POINT_GROUP = "evalsuite.metrics"


@dataclass(frozen=True)
class MetricResult:
    """What a metric gives a run record."""

    metrics: dict[str, float | None]  # percent (or clicks for NoC); None where there is no honest number
    higher_is_better: dict[str, bool]
    counts: dict[str, Any] = field(default_factory=dict)  # instances, instances_by_size, detections_scored
    per_category: dict[int, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)  # extra files for the run folder (JSON)
    backend: dict[str, Any] | None = None  # AP: the backend name and its raw stats


@dataclass(frozen=True)
class ItemField:
    """A per-item field a metric owns: its name in the logged row, and what a valid logged value is."""

    name: str
    valid: Callable[[Any], bool]
    help: str = ""


class MaskBatch:
    """What a metric sees of a batch of items: the chosen masks and their ground truth.

    ``pred``: N×H×W bool on the model's device; ``gt``: N×H×W bool, C-order on the host (numpy) or a
    tensor. :meth:`gt_on` moves the ground truth to a device once, whichever metrics ask for it.
    """

    def __init__(self, pred: torch.Tensor, gt: np.ndarray | torch.Tensor) -> None:
        if tuple(pred.shape) != tuple(gt.shape):
            raise ValueError(f"mask shapes differ: {tuple(pred.shape)} vs {tuple(gt.shape)}")
        self.pred = pred
        self.gt = gt
        self._moved: dict[torch.device, torch.Tensor] = {}

    def __len__(self) -> int:
        return int(self.pred.shape[0])

    @property
    def on_host(self) -> bool:
        return self.pred.device.type == "cpu"

    def gt_on(self, device: torch.device) -> torch.Tensor:
        """The ground truth as a bool tensor on ``device`` (copied once per device)."""
        if device not in self._moved:
            g = self.gt if isinstance(self.gt, torch.Tensor) else torch.from_numpy(np.asarray(self.gt))
            self._moved[device] = g.to(device, non_blocking=True)
        return self._moved[device]

    def host(self) -> tuple[np.ndarray, np.ndarray]:
        """Both sides as numpy bool arrays on the host (no copy where they already are)."""
        p = self.pred.cpu().numpy()
        g = self.gt.cpu().numpy() if isinstance(self.gt, torch.Tensor) else np.asarray(self.gt)
        return (p if p.dtype == np.bool_ else p.astype(bool)), (g if g.dtype == np.bool_ else g.astype(bool))


class Metric(ABC, Generic[RecordT]):
    """An accumulator over per-item records (see the module docstring)."""

    #: the registry name (set from the entry point's name)
    name: ClassVar[str] = ""
    #: direction of every metric this accumulator reports (the run record copies it)
    higher_is_better: ClassVar[dict[str, bool]]
    #: the task kinds whose items it can score ("miou", "noc", "ap")
    task_kinds: ClassVar[frozenset[str]] = frozenset()
    #: the per-item fields it owns (measured from the masks, logged with each item)
    fields: ClassVar[tuple[ItemField, ...]] = ()
    #: options it reads, with their declarations (they join its protocols' options)
    options: ClassVar[dict[str, OptionSpec]] = {}
    #: measured after every round of an adaptive prompt rule (a list per item), not only the last
    per_round: ClassVar[bool] = False

    def __init__(self) -> None:
        self.reset()

    @classmethod
    def reports(cls, metric: str) -> bool:
        """Whether ``metric`` (a name a protocol lists) is one of the numbers this metric gives."""
        return metric in cls.higher_is_better

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Metric:
        """The metric for a protocol with these options (declared options absent: their defaults)."""
        return cls()

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.__name__

    def measure(self, batch: MaskBatch) -> dict[str, list[Any]]:
        """The values of :attr:`fields` for every item of ``batch`` (one list per field, in item order)."""
        return {}

    def reset(self) -> None:
        self._records: list[RecordT] = []

    def process(self, records: Iterable[RecordT]) -> None:
        self._records.extend(records)

    def merge(self, other: Metric[RecordT]) -> None:
        self._records.extend(other._records)

    @abstractmethod
    def evaluate(self) -> MetricResult:
        """The metrics of everything processed."""


def option_values(options: Mapping[str, Any], declared: Mapping[str, OptionSpec]) -> dict[str, Any]:
    """The declared options' values: given ones, defaults for optional ones left out."""
    return {k: options.get(k, spec.default) for k, spec in declared.items()}


class MetricSet(Metric[Any]):
    """Several metrics over the same records, as one: the first is the task's own (its counts stand)."""

    higher_is_better: ClassVar[dict[str, bool]] = {}

    def __init__(self, metrics: Sequence[Metric]) -> None:
        self.metrics = list(metrics)
        super().__init__()

    def reset(self) -> None:
        for m in getattr(self, "metrics", ()):
            m.reset()

    def process(self, records: Iterable[Any]) -> None:
        rows = list(records)
        for m in self.metrics:
            m.process(rows)

    def merge(self, other: Metric) -> None:
        assert isinstance(other, MetricSet) and len(other.metrics) == len(self.metrics)
        for mine, theirs in zip(self.metrics, other.metrics, strict=True):
            mine.merge(theirs)

    def evaluate(self) -> MetricResult:
        results = [m.evaluate() for m in self.metrics]
        first = results[0]
        metrics, direction = dict(first.metrics), dict(first.higher_is_better)
        counts, artifacts = dict(first.counts), dict(first.artifacts)
        per_category = {c: dict(v) for c, v in first.per_category.items()}
        backend = first.backend
        for r in results[1:]:
            metrics.update({k: v for k, v in r.metrics.items() if k not in metrics})
            direction.update({k: v for k, v in r.higher_is_better.items() if k not in direction})
            for k, v in r.counts.items():
                counts.setdefault(k, v)
            for c, v in r.per_category.items():
                row = per_category.setdefault(c, {})
                row.update({k: x for k, x in v.items() if k not in row})
            artifacts.update({k: v for k, v in r.artifacts.items() if k not in artifacts})
            backend = backend or r.backend
        return MetricResult(metrics, direction, counts, per_category, artifacts, backend)


# -- the registry -------------------------------------------------------------------------------------
def _check(name: str, obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Metric)):
        raise InputError(
            f"{ENTRY_POINT_GROUP}: entry {name!r} is not a Metric subclass",
            hint=f'fix the [project.entry-points."{ENTRY_POINT_GROUP}"] table of its package',
        )


@cache
def metric_classes() -> dict[str, type[Metric]]:
    """Every registered metric by name."""
    found: dict[str, type[Metric]] = load_group(ENTRY_POINT_GROUP, _check)
    for name, cls in found.items():
        cls.name = name
    return found


def metric_for(metric: str, task: str) -> type[Metric] | None:
    """The registered metric that reports ``metric`` for items of ``task`` (None: none does)."""
    for cls in metric_classes().values():
        if task in cls.task_kinds and cls.reports(metric):
            return cls
    return None


def resolve_metrics(names: Sequence[str], task: str, where: str) -> list[type[Metric]]:
    """The metric classes that give the reported ``names`` (in first-named order): InputError naming a
    name no registered metric of this task kind reports."""
    out: list[type[Metric]] = []
    for n in names:
        cls = metric_for(n, task)
        if cls is None:
            known = sorted(m for m, c in metric_classes().items() if task in c.task_kinds)
            raise InputError(
                f"{where}: no metric reports {n!r} for {task} protocols",
                hint=f"metrics of {task} protocols: {', '.join(known)} (`evalsuite ls metrics`)",
            )
        if cls not in out:
            out.append(cls)
    return out


def metric_options(classes: Iterable[type[Metric]]) -> dict[str, OptionSpec]:
    """The options the metrics read; one key declared differently by two metrics is an error."""
    out: dict[str, OptionSpec] = {}
    for cls in classes:
        for key, spec in cls.options.items():
            if key in out and out[key] != spec:
                raise InputError(f"metric {cls.name!r} declares option {key!r} unlike another metric does")
            out[key] = spec
    return out
