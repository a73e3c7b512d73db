"""Mask AP of the collected predictions, scored at the end by an AP backend (Table 5 protocols)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from .ap import COCO_METRICS, LVIS_METRICS, LVISEVAL, evaluate_segm, evaluator_of
from .base import Metric, MetricResult


class DetectionLike(Protocol):
    image_id: int
    det_id: int

    def to_result(self) -> dict[str, Any]: ...


class APMetric(Metric[DetectionLike]):
    """Mask AP of the predicted masks by the dataset's AP evaluator (COCOeval / LVISEval), through
    ``backend`` (official or faster). ``family``: the evaluator, or a dataset that declares one.

    ``evaluate`` sorts by (image id, detection id) first and hands the backend the same results
    whatever the processing order was. The metrics are the evaluator's whole summary (COCO's 12 numbers,
    LVIS's 13; see :mod:`.ap`). Per-category AP / APS / APM / APL come from the backend's own
    precision array (see :mod:`.ap`), with ``n`` the category's scored ground-truth objects.
    """

    higher_is_better: ClassVar[dict[str, bool]] = dict.fromkeys((*COCO_METRICS, *LVIS_METRICS), True)
    task_kinds = frozenset({"ap"})

    def __init__(self, family: str, gt: dict, image_ids: list[int], backend: str = "official") -> None:
        self.family = family
        self.gt = gt
        self.image_ids = list(image_ids)
        self.backend = backend
        super().__init__()

    def evaluate(self) -> MetricResult:
        records = sorted(self._records, key=lambda r: (r.image_id, r.det_id))
        keys = [(r.image_id, r.det_id) for r in records]
        if len(set(keys)) != len(keys):
            raise RuntimeError("a detection was scored twice; refusing to report")
        results = [r.to_result() for r in records]
        scored = evaluate_segm(self.family, self.gt, results, image_ids=self.image_ids, backend=self.backend)
        names = LVIS_METRICS if evaluator_of(self.family) == LVISEVAL else COCO_METRICS
        return MetricResult(
            metrics=scored["metrics"],
            higher_is_better={k: self.higher_is_better[k] for k in names},
            counts={"detections_scored": len(results)},
            per_category=scored["per_category"],
            artifacts={"segm_results.json": results},
            backend={"backend": self.backend, "stats": scored["stats"]},
        )
