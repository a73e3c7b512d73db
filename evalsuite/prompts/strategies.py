"""Prompt strategies: how a protocol prompts each ground-truth instance, as a small registry.

A strategy owns its option schema and its prompt generation; a new prompt rule is one class
added to :data:`STRATEGIES`. A protocol picks its strategy with the ``prompt`` option (and, for
clicks, ``click_rule``). Every strategy is pure: prompts are functions of the masks, the ids and
the seed, and — for iterative rules — of the masks the model predicted in the previous round.
The task runs the rounds (it owns the model); a one-shot strategy has one round.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..data.types import Instance
from ..errors import InputError
from ..options import OptionSpec
from .boxes import ann_box, tight_box
from .clicks import random_clicks, sam_click

#: the prompt kinds a model must accept (see :attr:`evalsuite.models.Runner.prompt_kinds`)
KIND_BOX = "box"
KIND_POINTS = "points"
#: clicks per instance are bounded: every click is a point the decoder attends to
MAX_CLICKS = 100


@dataclass(frozen=True)
class PromptInput:
    """What a strategy may look at: the image's id and annotation file, the run's seed, the instances."""

    image_id: int
    seed: int
    instances: Sequence[Instance]
    masks: np.ndarray  # N×H×W bool ground truth, one per instance
    ann_file: str | None = None


@dataclass(frozen=True)
class PromptSet:
    """N prompts: boxes (N×4 xyxy) or points (N×P×2 xy) with labels (N×P)."""

    boxes: np.ndarray | None = None
    points: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return (
            len(self.boxes) if self.boxes is not None else len(self.points if self.points is not None else ())
        )

    def kwargs(self) -> dict[str, np.ndarray]:
        """Keyword arguments of :meth:`Runner.predict`."""
        out: dict[str, np.ndarray] = {}
        if self.boxes is not None:
            out["boxes"] = self.boxes
        if self.points is not None and self.labels is not None:
            out["points"] = self.points
            out["point_labels"] = self.labels
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """One JSON object per prompt, as logged with each instance."""
        if self.boxes is not None:
            return [{"box": b.tolist()} for b in self.boxes]
        assert self.points is not None and self.labels is not None
        return [
            {"points": p.tolist(), "labels": lab.tolist()}
            for p, lab in zip(self.points, self.labels, strict=True)
        ]


class PromptStrategy(ABC):
    """One prompt rule. ``rounds``: how many times the model is prompted per instance."""

    #: value of the protocol's ``prompt`` option this strategy serves ("box" | "clicks")
    prompt: ClassVar[str]
    #: value of ``click_rule`` (click strategies), else None
    rule: ClassVar[str | None] = None
    #: the prompt kind the model must take
    kind: ClassVar[str]
    #: options this strategy reads (besides ``prompt`` / ``click_rule``)
    options: ClassVar[dict[str, OptionSpec]] = {}

    def __init__(self, options: dict[str, Any]) -> None:
        self.opts = options

    @property
    def rounds(self) -> int:
        return 1

    @abstractmethod
    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        """The prompts of round 1 (``stats`` counts anything worth reporting, e.g. repeated clicks)."""

    def next(self, inp: PromptInput, previous: PromptSet, predicted: np.ndarray) -> PromptSet:
        """The prompts of the next round, given the masks (N×H×W bool) chosen in the previous one."""
        raise RuntimeError(f"{type(self).__name__} prompts once; there is no next round")


class BoxPrompt(PromptStrategy):
    """The box of each instance: tight around its decoded mask (the paper), or the annotation's bbox."""

    prompt = "box"
    kind = KIND_BOX
    options: ClassVar[dict[str, OptionSpec]] = {
        "box_source": OptionSpec(
            choices=("tight", "ann"), help="tight box of the mask, or the annotation bbox"
        )
    }

    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        if self.opts["box_source"] == "tight":
            return PromptSet(boxes=np.stack([tight_box(m) for m in inp.masks]))
        for inst in inp.instances:
            if not (inst.bbox[2] > 0 and inst.bbox[3] > 0):
                raise InputError(
                    f"{inp.ann_file}: image {inp.image_id}, annotation {inst.ann_id}: "
                    f"bbox {list(inst.bbox)} has a "
                    "non-positive size, so box_source=ann cannot prompt with it",
                    hint="use the default box_source=tight, or fix the annotation",
                )
        return PromptSet(boxes=np.stack([ann_box(i.bbox) for i in inp.instances]))


_CLICKS = OptionSpec(int, minimum=1, maximum=MAX_CLICKS, help="clicks per instance")


class RandomClicks(PromptStrategy):
    """The EfficientSAM paper's rule: k distinct random positive pixels of the mask, given together.

    Seeded from (seed, image id, annotation id), so clicks do not depend on the model or the run
    layout. An instance with fewer pixels than k uses them all and repeats the last (counted).
    """

    prompt = "clicks"
    rule = "random"
    kind = KIND_POINTS
    options: ClassVar[dict[str, OptionSpec]] = {"clicks": _CLICKS}

    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        k = self.opts["clicks"]
        points, labels = [], []
        for inst, mask in zip(inp.instances, inp.masks, strict=True):
            n_pix = int(mask.sum())
            pts, lab = random_clicks(mask, min(k, n_pix), inp.seed, inp.image_id, inst.ann_id)
            if n_pix < k:  # fewer pixels than clicks: use them all, repeating the last to fill k
                stats["clicks_repeated"] += 1
                pts = np.concatenate([pts, np.repeat(pts[-1:], k - n_pix, axis=0)])
                lab = np.concatenate([lab, np.repeat(lab[-1:], k - n_pix)])
            points.append(pts)
            labels.append(lab)
        return PromptSet(points=np.stack(points), labels=np.stack(labels))


class SamClicks(PromptStrategy):
    """The SAM paper's iterative clicker (RITM style, as EfficientViT-SAM's evaluation).

    Click 1 lands at the interior-most pixel of the object; every later click at the interior-most
    pixel of the larger error region of the previous round's chosen mask (positive for a false
    negative region, negative for a false positive one), all clicks so far given together.
    """

    prompt = "clicks"
    rule = "sam"
    kind = KIND_POINTS
    options: ClassVar[dict[str, OptionSpec]] = {"clicks": _CLICKS}

    @property
    def rounds(self) -> int:
        return int(self.opts["clicks"])

    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        n = len(inp.masks)
        empty = PromptSet(points=np.zeros((n, 0, 2)), labels=np.zeros((n, 0), dtype=np.int64))
        return self._extend(inp, empty, None)

    def next(self, inp: PromptInput, previous: PromptSet, predicted: np.ndarray) -> PromptSet:
        return self._extend(inp, previous, predicted)

    @staticmethod
    def _extend(inp: PromptInput, prev: PromptSet, predicted: np.ndarray | None) -> PromptSet:
        assert prev.points is not None and prev.labels is not None
        new = [
            sam_click(inp.masks[i], None if predicted is None else predicted[i], prev.points[i])
            for i in range(len(inp.masks))
        ]
        points = np.concatenate([prev.points, np.array([[xy] for xy, _ in new], dtype=np.float64)], axis=1)
        labels = np.concatenate([prev.labels, np.array([[lab] for _, lab in new], dtype=np.int64)], axis=1)
        return PromptSet(points=points, labels=labels)


#: every prompt strategy; a protocol's ``prompt`` (+ ``click_rule``) options select one
STRATEGIES: tuple[type[PromptStrategy], ...] = (BoxPrompt, RandomClicks, SamClicks)


def prompt_values() -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.prompt for s in STRATEGIES))


def click_rules() -> tuple[str, ...]:
    return tuple(s.rule for s in STRATEGIES if s.rule is not None)


def strategy_class(options: dict[str, Any]) -> type[PromptStrategy]:
    """The strategy a protocol's options select (InputError when none does)."""
    for s in STRATEGIES:
        if s.prompt == options.get("prompt") and (s.rule is None or s.rule == options.get("click_rule")):
            return s
    raise InputError(
        f"no prompt strategy for prompt={options.get('prompt')!r}, click_rule={options.get('click_rule')!r}"
    )


def strategy_for(options: dict[str, Any]) -> PromptStrategy:
    return strategy_class(options)(options)
