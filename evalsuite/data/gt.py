"""Ground truth of one image: decoded once (in the decode workers), shared by every task run on it.

Masks are C-order bool and, from the decode workers, rows of one K×H×W stack: the instances a task
keeps are usually consecutive rows, so selecting them copies nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .masks import decode_segmentation
from .types import Instance, Sample

SKIP_CROWD = "crowd"
_HINT = "fix the annotation, or pass --skip-bad to skip such annotations (counted)"
SKIP_EMPTY = "empty_mask"


@dataclass
class GroundTruth:
    """The instances of one image kept for scoring, with their decoded masks."""

    instances: list[Instance]
    masks: np.ndarray  # K×H×W bool
    skipped: Counter


SKIP_BAD_ANNOTATION = "bad_annotation"


def area_problem(area: float) -> str | None:
    """Why an annotation's ``area`` cannot bucket it (S/M/L go by this number), or None.

    A missing area (NaN here, see the readers) or a negative one would silently land the instance
    in the small bucket; evalsuite does not guess it from the mask (that would alter the data).
    """
    if math.isnan(area):
        return "no area (the S/M/L size buckets are by the annotation's area)"
    if area < 0:
        return f"area {area:g} is negative (the S/M/L size buckets are by the annotation's area)"
    return None


@dataclass
class DecodedMasks:
    """An image's decoded annotations as one C-order K×H×W bool stack (row ``rows[ann_id]``), plus the
    annotations that failed to decode (their errors). One block of memory: a decode worker hands it to
    the main process as a single shared-memory buffer, and consecutive rows are used without a copy."""

    stack: np.ndarray  # K×H×W bool, C order
    rows: dict[int, int]
    errors: dict[int, InputError]


def _allocate(count: int, height: int, width: int) -> np.ndarray:
    return np.empty((count, height, width), dtype=bool)


class MaskCache:
    """Decodes each annotation of an image once, shared by all protocols run on it.

    A malformed annotation is remembered as an error (with the file and ids); it is
    raised when the annotation is needed, or counted as a skip with ``--skip-bad``.
    """

    def __init__(
        self,
        sample: Sample,
        decoded: dict[int, np.ndarray | InputError] | DecodedMasks | None = None,
    ) -> None:
        self.sample = sample
        self._stack: np.ndarray | None = None
        self._rows: dict[int, int] = {}
        if isinstance(decoded, DecodedMasks):
            self._stack, self._rows = decoded.stack, decoded.rows
            self._masks: dict[int, np.ndarray | InputError] = dict(decoded.errors)
        else:
            self._masks = dict(decoded or {})

    def _problem(self, inst: Instance) -> InputError | None:
        s = self.sample
        if problem := area_problem(inst.area):
            where = f"{s.ann_file}: " if s.ann_file else ""
            return InputError(f"{where}image {s.image_id}, annotation {inst.ann_id}: {problem}", hint=_HINT)
        return None

    def _error(self, inst: Instance, e: Exception) -> InputError:
        s = self.sample
        where = f"{s.ann_file}: " if s.ann_file else ""
        return InputError(
            f"{where}image {s.image_id}, annotation {inst.ann_id}: bad segmentation ({e})", hint=_HINT
        )

    def _decode(self, inst: Instance) -> np.ndarray | InputError:
        if problem := self._problem(inst):
            return problem
        s = self.sample
        try:
            return decode_segmentation(inst.segmentation, s.height, s.width)
        except Exception as e:  # pycocotools raises bare exceptions on malformed input
            return self._error(inst, e)

    def decode_all(self) -> dict[int, np.ndarray | InputError]:
        """Every annotation's mask or error."""
        for inst in self.sample.instances:
            if inst.ann_id not in self._masks and inst.ann_id not in self._rows:
                self._masks[inst.ann_id] = self._decode(inst)
        return {i.ann_id: self._lookup(i) for i in self.sample.instances}

    def decode_stacked(self, allocate: Callable[[int, int, int], np.ndarray] = _allocate) -> DecodedMasks:
        """Every annotation decoded straight into one K×H×W stack made by ``allocate(K, H, W)`` (the decode
        workers pass shared memory), in annotation order; errors apart."""
        s = self.sample
        unique = list(dict.fromkeys(i.ann_id for i in s.instances))
        by_id = {i.ann_id: i for i in s.instances}
        errors: dict[int, InputError] = {}
        todo = []
        for ann_id in unique:
            if problem := self._problem(by_id[ann_id]):
                errors[ann_id] = problem
            else:
                todo.append(ann_id)
        stack = allocate(len(todo), s.height, s.width)
        rows: dict[int, int] = {}
        for ann_id in todo:
            got = self._decode(by_id[ann_id])
            if isinstance(got, InputError):
                errors[ann_id] = got
            else:
                stack[len(rows)] = got
                rows[ann_id] = len(rows)
        if len(rows) < len(todo):  # a failed decode left a row unused: close the gap
            stack = stack[: len(rows)]
        return DecodedMasks(stack, rows, errors)

    def _lookup(self, inst: Instance) -> np.ndarray | InputError:
        row = self._rows.get(inst.ann_id)
        if row is not None:
            assert self._stack is not None
            return self._stack[row]
        return self._masks[inst.ann_id]

    def row_of(self, inst: Instance) -> int | None:
        """The instance's row in the decoded stack (None where it was decoded on its own)."""
        return self._rows.get(inst.ann_id)

    @property
    def stack(self) -> np.ndarray | None:
        return self._stack

    def get(self, inst: Instance) -> np.ndarray:
        if inst.ann_id not in self._masks and inst.ann_id not in self._rows:
            self._masks[inst.ann_id] = self._decode(inst)
        mask = self._lookup(inst)
        if isinstance(mask, InputError):
            raise mask
        return mask


def select_instances(
    cache: MaskCache, include_crowd: bool, skip_bad: bool = False, score_empty: bool = False
) -> GroundTruth:
    """Instances to score: crowd excluded unless asked for; counts by reason.

    Empty masks: by default an instance whose decoded mask is empty is dropped (SAM's rule);
    ``score_empty`` (``empty_mask=zero``, EfficientViT-SAM's rule) scores every annotation of area >= 1,
    an empty decoded mask included, and drops those of area < 1 before decoding them.
    """
    kept: list[Instance] = []
    masks: list[np.ndarray] = []
    rows: list[int | None] = []
    skipped: Counter = Counter()
    for inst in cache.sample.instances:
        if inst.iscrowd and not include_crowd:
            skipped[SKIP_CROWD] += 1
            continue
        if score_empty and not inst.area >= 1:
            skipped[SKIP_EMPTY] += 1
            continue
        try:
            mask = cache.get(inst)
        except InputError:
            if not skip_bad:
                raise
            skipped[SKIP_BAD_ANNOTATION] += 1
            continue
        if not score_empty and not mask.any():
            skipped[SKIP_EMPTY] += 1
            continue
        kept.append(inst)
        masks.append(mask)
        rows.append(cache.row_of(inst))
    h, w = cache.sample.height, cache.sample.width
    if not masks:
        return GroundTruth(kept, np.zeros((0, h, w), dtype=bool), skipped)
    first = rows[0]
    if first is not None and cache.stack is not None and rows == list(range(first, first + len(rows))):
        return GroundTruth(kept, cache.stack[first : first + len(rows)], skipped)  # a view, no copy
    return GroundTruth(kept, np.stack(masks), skipped)
