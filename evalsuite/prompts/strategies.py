"""Prompt rules: how a protocol prompts each ground-truth instance, one class each, found by a registry.

A rule owns its option declarations (name, type, bounds, help: what `evalsuite ls prompts` shows) and
its prompt generation. It is registered in the entry-point group ``evalsuite.prompts`` — evalsuite's
own rules are declared in its ``pyproject.toml`` exactly as a plugin declares its own — so a new rule
is one class and one entry point, with no edit of any other module. A protocol selects its rule with
the ``prompt`` option (what the protocol is: ``box`` or ``clicks``) and, where a prompt has several
rules, a selector option: ``click_rule`` for clicks; a rule may name its own (box + clicks:
``box_click_rule``), so that one ``--set`` never means two things in a run of several protocols. Every
rule is pure: prompts are functions of the masks, the ids and the seed, and — for adaptive rules — of the
masks the model predicted in the previous round. The task runs the rounds (it owns the model); a one-shot
rule has one round.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import numpy as np

from ..data.types import Instance
from ..entrypoints import load_group
from ..errors import InputError
from ..options import OptionSpec

#: the prompt kinds a model must accept (see :attr:`evalsuite.models.Runner.prompt_kinds`)
KIND_BOX = "box"
KIND_POINTS = "points"
#: clicks per instance are bounded: every click is a point the decoder attends to
MAX_CLICKS = 100
ENTRY_POINT_GROUP = "evalsuite.prompts"
#: the option that selects a rule among those of one ``prompt``
RULE_OPTION = "click_rule"
PROMPT_OPTION = "prompt"


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
    """N prompts: boxes (N×4 xyxy) and/or points (N×P×2 xy) with labels (N×P)."""

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
        """One JSON object per prompt, as logged with each instance: ``box``, ``points`` + ``labels``."""
        rows: list[dict[str, Any]] = [{} for _ in range(len(self))]
        if self.boxes is not None:
            for row, b in zip(rows, self.boxes, strict=True):
                row["box"] = b.tolist()
        if self.points is not None and self.labels is not None:
            for row, p, lab in zip(rows, self.points, self.labels, strict=True):
                row["points"] = p.tolist()
                row["labels"] = lab.tolist()
        return rows

    @classmethod
    def from_json(cls, rows: Sequence[Mapping[str, Any]]) -> PromptSet:
        """The prompts of logged rows (all of one form), e.g. to prompt a model again with them."""
        boxes = points = labels = None
        if rows and all("box" in r for r in rows):
            boxes = np.asarray([r["box"] for r in rows], dtype=np.float64).reshape(len(rows), 4)
        if rows and all("points" in r for r in rows):
            points = np.asarray([r["points"] for r in rows], dtype=np.float64).reshape(len(rows), -1, 2)
            labels = np.asarray([r["labels"] for r in rows], dtype=np.int64).reshape(len(rows), -1)
        if boxes is None and points is None:
            raise InputError("a logged prompt has neither a box nor points")
        return cls(boxes, points, labels)


class PromptStrategy(ABC):
    """One prompt rule. ``rounds``: how many times the model is prompted per instance."""

    #: value of the protocol's ``prompt`` option this rule serves ("box" | "clicks")
    prompt: ClassVar[str]
    #: value of :attr:`selector` that selects it; None: the rule of its ``prompt`` when no selector is set
    rule: ClassVar[str | None] = None
    #: the option whose value (``rule``) selects it among the rules of its ``prompt``
    selector: ClassVar[str] = RULE_OPTION
    #: the prompt kinds the model must take (all of them)
    kinds: ClassVar[frozenset[str]]
    #: options this rule reads (besides ``prompt`` / ``click_rule``), with their declarations
    options: ClassVar[dict[str, OptionSpec]] = {}
    #: the prompts depend on the run's seed (records name the seed; comparisons need it equal)
    seeded: ClassVar[bool] = False
    #: the prompts depend on the model's own answers (an iterative rule: two models get different prompts)
    adaptive: ClassVar[bool] = False
    #: the option counting the clicks of a clicks-only rule (the x axis of mIoU vs clicks); None: not one
    count_option: ClassVar[str | None] = None
    #: the registry name (set by the registry from the entry point's name)
    name: ClassVar[str] = ""

    def __init__(self, options: Mapping[str, Any]) -> None:
        defaults = {k: s.default for k, s in self.options.items() if not s.required}
        self.opts: dict[str, Any] = {**defaults, **options}

    @property
    def rounds(self) -> int:
        return 1

    @abstractmethod
    def first(self, inp: PromptInput, stats: Counter) -> PromptSet:
        """The prompts of round 1 (``stats`` counts anything worth reporting, e.g. repeated clicks)."""

    def next(self, inp: PromptInput, previous: PromptSet, predicted: np.ndarray) -> PromptSet:
        """The prompts of the next round, given the masks (N×H×W bool) chosen in the previous one."""
        raise RuntimeError(f"{type(self).__name__} prompts once; there is no next round")

    def problems(self, instances: Sequence[Instance], height: int, width: int) -> list[str | None]:
        """Per instance, why this rule cannot prompt it (None: it can; e.g. an unusable annotation box).
        The task refuses those with one line, or skips and counts them under ``--skip-bad``."""
        return [None] * len(instances)

    def prompts_empty_masks(self) -> bool:
        """Whether this rule (with its options) can prompt an instance whose mask is empty
        (``empty_mask=zero`` scores such instances; most rules need the mask's pixels)."""
        return False

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring (what `evalsuite ls prompts` shows)."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.__name__


# -- the registry -------------------------------------------------------------------------------------
def _check(name: str, obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, PromptStrategy)):
        raise InputError(
            f"{ENTRY_POINT_GROUP}: entry {name!r} is not a PromptStrategy subclass",
            hint=f'fix the [project.entry-points."{ENTRY_POINT_GROUP}"] table of its package',
        )


@cache
def strategies() -> dict[str, type[PromptStrategy]]:
    """Every registered prompt rule by name; two rules selected alike (prompt, selector, rule) are an
    error naming both, as is a prompt with two rules that need no selector."""
    found: dict[str, type[PromptStrategy]] = load_group(ENTRY_POINT_GROUP, _check)
    by_selector: dict[tuple[str, str | None, str | None], str] = {}
    for name, cls in found.items():
        cls.name = name
        key = (cls.prompt, None if cls.rule is None else cls.selector, cls.rule)
        if key in by_selector:
            how = f"prompt={cls.prompt}" + (f", {cls.selector}={cls.rule}" if cls.rule else "")
            raise InputError(
                f"prompt rules {by_selector[key]!r} and {name!r} are both selected by {how}",
                hint="give one of them another rule value",
            )
        by_selector[key] = name
    return found


def prompt_values() -> tuple[str, ...]:
    """The values of ``prompt`` some rule serves."""
    return tuple(dict.fromkeys(s.prompt for s in strategies().values()))


def selectors(prompt: str, adaptive: bool | None = None) -> dict[str, tuple[str, ...]]:
    """The selector options of ``prompt``'s rules, each with the rule values it takes (only adaptive
    rules, or only one-shot ones, where asked)."""
    out: dict[str, list[str]] = {}
    for s in strategies().values():
        if s.prompt == prompt and s.rule is not None and (adaptive is None or s.adaptive == adaptive):
            out.setdefault(s.selector, []).append(s.rule)
    return {k: tuple(v) for k, v in out.items()}


def click_rules(prompt: str | None = None, adaptive: bool | None = None) -> tuple[str, ...]:
    """The ``click_rule`` values (of one ``prompt``; only adaptive rules, or only one-shot ones)."""
    return tuple(
        s.rule
        for s in strategies().values()
        if s.rule is not None
        and s.selector == RULE_OPTION
        and (prompt is None or s.prompt == prompt)
        and (adaptive is None or s.adaptive == adaptive)
    )


def has_default_rule(prompt: str) -> bool:
    """Whether ``prompt`` has a rule that needs no selector (the selectors are then optional)."""
    return any(s.prompt == prompt and s.rule is None for s in strategies().values())


def strategy_class(options: Mapping[str, Any]) -> type[PromptStrategy]:
    """The strategy a protocol's options select (InputError when none does, or when two would)."""
    prompt = options.get(PROMPT_OPTION)
    mine = [s for s in strategies().values() if s.prompt == prompt]
    chosen = [s for s in mine if s.rule is not None and options.get(s.selector) == s.rule]
    if not chosen:
        chosen = [
            s for s in mine if s.rule is None and not any(options.get(o.selector) for o in mine if o.rule)
        ]
    if len(chosen) == 1:
        return chosen[0]
    named = ", ".join(f"{k}={options.get(k)!r}" for k in dict.fromkeys(s.selector for s in mine if s.rule))
    if len(chosen) > 1:
        raise InputError(
            f"prompt={prompt!r} with {named}: rules {', '.join(s.name for s in chosen)} both apply"
        )
    raise InputError(f"no prompt strategy for prompt={prompt!r}" + (f", {named}" if named else ""))


def strategy_for(options: Mapping[str, Any]) -> PromptStrategy:
    return strategy_class(options)(options)
