"""detectron2-style evaluator for the detector-box protocols: collect masks, score with AP at the end."""

from __future__ import annotations

from typing import Any

from .ap import evaluate_segm


class APEvaluator:
    """``reset() / process(records) / merge(other) / evaluate()`` over predicted masks.

    The state is the list of records, so shards merge by concatenation; ``evaluate``
    sorts by (image id, detection id) first and hands the official evaluator the
    same results whatever the processing order was.
    """

    def __init__(self, family: str, gt: dict, image_ids: list[int], backend: str = "official") -> None:
        self.family = family
        self.gt = gt
        self.image_ids = list(image_ids)
        self.backend = backend
        self.reset()

    def reset(self) -> None:
        self._records: list = []

    def process(self, records) -> None:
        self._records.extend(records)

    def merge(self, other: APEvaluator) -> None:
        self._records.extend(other._records)

    def evaluate(self) -> dict[str, Any]:
        """``metrics`` (percent), ``counts`` and the COCO results list as an artifact."""
        records = sorted(self._records, key=lambda r: (r.image_id, r.det_id))
        keys = [(r.image_id, r.det_id) for r in records]
        if len(set(keys)) != len(keys):
            raise RuntimeError("a detection was scored twice; refusing to report")
        results = [r.to_result() for r in records]
        scored = evaluate_segm(self.family, self.gt, results, image_ids=self.image_ids, backend=self.backend)
        return {
            "metrics": scored["metrics"],
            "counts": {"detections_scored": len(results)},
            "evaluator": {"backend": self.backend, "stats": scored["stats"]},
            "artifacts": {"segm_results.json": results},
        }
