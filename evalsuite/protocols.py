"""Protocol definitions, loaded from the versioned TOML files in ``protocols/``.

A protocol is data: name, version, dataset family, task kind, the metrics it reports and its options.
Which options exist is declared once: per task kind here (:data:`TASK_OPTIONS`), per prompt rule by the
prompt rules (:mod:`evalsuite.prompts.strategies`), per metric by the metrics (:mod:`evalsuite.metrics`).
A run may override options (``--set key=value``) and the metrics (``--set metrics=mIoU,mBIoU``, or
``metrics=+mBIoU`` to add one); every record stores the full option set, its hash and the overrides, so
two numbers are comparable exactly when their protocol name, version and options agree.

The rest of evalsuite asks this module, never a particular rule's option names, what a protocol's prompts
are: which prompt kinds the model must take (:attr:`Protocol.prompt_kinds`), whether the seed shapes them
(:func:`seeded_prompts`), whether they depend on the model's answers (:func:`adaptive_prompts`), and how
many clicks a clicks-only protocol gives (:func:`click_count`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from .data.registry import datasets, read_template
from .data.registry import state as registry_state
from .errors import InputError, UnknownNameError, did_you_mean
from .metrics.base import metric_classes, metric_options, resolve_metrics
from .options import OptionSpec
from .prompts.strategies import (
    KIND_BOX,
    PROMPT_OPTION,
    PromptStrategy,
    has_default_rule,
    selectors,
    strategies,
    strategy_class,
)

_MASK_CHOICE_HELP = (
    "which output is the answer: score = the highest predicted IoU (the papers' 'most confident mask'), "
    "single = the model asked for one output (SAM's token 0), oracle = the output closest to the ground "
    "truth, box_iou = the output that overlaps the prompt box most (FastSAM's rule)"
)
_CROWD = OptionSpec(bool, help="also score COCO iscrowd=1 annotations (EfficientViT-SAM keeps them)")
_EMPTY = OptionSpec(
    choices=("skip", "zero"),
    required=False,
    default="skip",
    help="an annotation whose decoded mask is empty: skip = not scored (counted as empty_mask); zero = "
    "prompted and scored like the others, so its IoU is 0 (an empty ground truth overlaps nothing), and "
    "annotations of area < 1 are not scored (EfficientViT-SAM's rule; the prompt rule must prompt an "
    "empty mask: box_source=ann or click_rule=sam)",
)

#: options of each task kind (the prompt rule and the metrics add their own). Column options change what
#: a table column measures; the others are model variants (rows).
TASK_OPTIONS: dict[str, dict[str, OptionSpec]] = {
    "miou": {
        "include_crowd": _CROWD,
        "mask_choice": OptionSpec(
            choices=("score", "single", "oracle", "box_iou"), column=False, help=_MASK_CHOICE_HELP
        ),
        "empty_mask": _EMPTY,
    },
    "ap": {
        "mask_choice": OptionSpec(
            choices=("score", "single", "box_iou"), column=False, help=_MASK_CHOICE_HELP
        ),
        "refine": OptionSpec(
            choices=(0, 1),
            column=False,
            help="1: SAM's mask-refinement iteration (the chosen mask's low-res logits go back in with the "
            "same box; models that take a mask prompt)",
        ),
        "max_dets": OptionSpec(int, minimum=1, maximum=10_000, help="detections kept per image"),
    },
    "noc": {
        "include_crowd": _CROWD,
        "mask_choice": OptionSpec(
            choices=("score", "single", "oracle"), column=False, help=_MASK_CHOICE_HELP
        ),
    },
}
#: NoC counts clicks, so its protocols take adaptive click rules only (each click answers the last mask)
_ADAPTIVE_ONLY = frozenset({"noc"})
#: the pseudo-option naming the metrics a protocol reports (``--set metrics=...``)
METRICS_KEY = "metrics"


def _task_prompts(task: str) -> tuple[str, ...]:
    if task == "ap":
        return (KIND_BOX,)  # the detection file's boxes
    adaptive = True if task in _ADAPTIVE_ONLY else None
    return tuple(
        dict.fromkeys(s.prompt for s in strategies().values() if adaptive is None or s.adaptive == adaptive)
    )


def _selector_specs(task: str, prompt: str) -> dict[str, OptionSpec]:
    """The options that select ``prompt``'s rule (``click_rule``...), each with its rule values."""
    adaptive = True if task in _ADAPTIVE_ONLY else None
    optional = has_default_rule(prompt) and adaptive is None
    return {
        key: OptionSpec(
            choices=rules,
            required=not optional,
            help="the prompt rule (`evalsuite ls prompts`)"
            + (f"; absent: the {prompt} rule" if optional else ""),
        )
        for key, rules in selectors(prompt, adaptive).items()
    }


def option_schema(
    task: str, options: Mapping[str, Any], metrics: Sequence[str] | None = None
) -> dict[str, OptionSpec]:
    """Every option a protocol of ``task`` with these selector options (and, where known, these reported
    ``metrics``) has, with its declaration."""
    if task not in TASK_OPTIONS:
        raise InputError(f"unknown task {task!r}; expected one of {', '.join(TASK_OPTIONS)}")
    schema = {PROMPT_OPTION: OptionSpec(choices=_task_prompts(task), help="what the protocol prompts with")}
    schema.update(TASK_OPTIONS[task])
    if metrics:
        with contextlib.suppress(InputError):  # unknown names are refused by the protocol's own check
            schema.update(metric_options(resolve_metrics(metrics, task, "")))
    if task == "ap":
        return schema
    prompt = options.get(PROMPT_OPTION)
    if isinstance(prompt, str):
        schema.update(_selector_specs(task, prompt))
    # an unknown prompt or click rule is refused by the value check of its selector
    with contextlib.suppress(InputError):
        schema.update(strategy_class(options).options)
    return schema


class Options(dict):
    """A protocol's options: those it names, plus the optional ones it accepts at their defaults.

    The dict holds what the protocol names (what records, hashes and run ids see, so options declared
    later leave earlier ones unchanged); ``key in options``, ``options[key]`` and ``options.get(key)``
    also answer for an optional option left at its default — which a run may still change with
    ``--set`` — and for ``metrics``.
    """

    def __init__(
        self,
        given: Mapping[str, Any],
        schema: Mapping[str, OptionSpec],
        settable: frozenset[str] = frozenset(),
    ) -> None:
        optional = {k: s.default for k, s in schema.items() if not s.required}
        super().__init__({k: v for k, v in given.items() if not (k in optional and optional[k] == v)})
        self.declared_defaults = optional
        self.accepted = frozenset(schema) | settable | {METRICS_KEY}

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self.accepted

    def __missing__(self, key: str) -> Any:
        if key in self.declared_defaults:
            return self.declared_defaults[key]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        return self.declared_defaults.get(key, default)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_options, (dict(self), self.declared_defaults, self.accepted))


def _rebuild_options(given: dict, defaults: dict, accepted: frozenset) -> Options:
    out = Options.__new__(Options)
    dict.update(out, given)
    out.declared_defaults = dict(defaults)
    out.accepted = frozenset(accepted)
    return out


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol (e.g. ``coco-3click`` v1) with its options."""

    name: str
    version: int
    dataset: str  # the registered dataset it runs on (evalsuite.data.registry)
    task: str  # "miou" | "ap" | "noc"
    summary: str
    metrics: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    #: the options as shipped (what the paper's numbers belong to)
    defaults: dict[str, Any] = field(default_factory=dict)
    #: the metrics as shipped
    shipped_metrics: tuple[str, ...] | None = None

    @property
    def id(self) -> str:
        """``name@version``, how records and reports name a protocol."""
        return f"{self.name}@{self.version}"

    @property
    def options_hash(self) -> str:
        """Short SHA-256 of the canonical option set."""
        blob = json.dumps(dict(self.options), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def overrides(self) -> dict[str, Any]:
        """Options that differ from the shipped protocol."""
        return {k: v for k, v in sorted(self.options.items()) if self.defaults.get(k) != v}

    @property
    def column_overrides(self) -> dict[str, Any]:
        """Overrides that change what a table column measures (clicks, box source, instance set)."""
        schema = option_schema(self.task, self.options, self.metrics)
        return {k: v for k, v in self.overrides.items() if k not in schema or schema[k].column}

    @property
    def row_overrides(self) -> dict[str, Any]:
        """Overrides that only change how the model answers (a variant of the model: a table row)."""
        column = self.column_overrides
        return {k: v for k, v in self.overrides.items() if k not in column}

    @property
    def metrics_changed(self) -> bool:
        """The run reports other metrics than the shipped protocol (its log holds other fields)."""
        return self.shipped_metrics is not None and self.metrics != self.shipped_metrics

    @property
    def label(self) -> str:
        """``coco-1click@1``, or ``coco-1click@1 (clicks=3)`` with overrides (never a bare, wrong id)."""
        if not self.overrides:
            return self.id
        text = ", ".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.overrides.items()
        )
        return f"{self.id} ({text})"

    @property
    def prompt_kinds(self) -> frozenset[str]:
        """What the model must take (all of it): the prompt rule's kinds; the boxes of an AP protocol."""
        if self.task == "ap":
            return frozenset({KIND_BOX})
        return strategy_class(self.options).kinds

    @property
    def prompt_kind(self) -> str:
        """What the model must take, in one word: ``box``, ``points`` or ``box+points``."""
        return "+".join(sorted(self.prompt_kinds))

    def accepts(self, key: str) -> bool:
        """Whether ``--set key=...`` may apply to this protocol: its options, optional ones included, those
        of the other prompt rules it can select, and ``metrics``."""
        schema = option_schema(self.task, self.options, self.metrics)
        return key in schema or key in settable_options(self.task, self.options) or key == METRICS_KEY

    def with_options(self, overrides: Mapping[str, Any]) -> Protocol:
        """A copy with some options (and the reported metrics: ``metrics``) changed, validated."""
        if not overrides:
            return self
        given = dict(overrides)
        metrics = self.metrics
        if METRICS_KEY in given:
            metrics = metric_names(given.pop(METRICS_KEY), self.metrics, self.name)
            resolve_metrics(metrics, self.task, f"{self.name}: --set metrics")
        merged = {**self.options, **given}
        validate_options(merged, self.name, self.task, metrics)
        return replace(
            self,
            metrics=metrics,
            options=canonical_options(merged, self.task, metrics),
            shipped_metrics=self.metrics if self.shipped_metrics is None else self.shipped_metrics,
        )


def settable_options(task: str, options: Mapping[str, Any]) -> frozenset[str]:
    """Options a run may set on a protocol beyond its current ones: those of every rule of its ``prompt``
    (a run may switch rules with ``click_rule``), with their selectors. (A metric's options apply where the
    metric is reported.)"""
    if task == "ap":
        return frozenset()
    prompt = options.get(PROMPT_OPTION)
    mine = [s for s in strategies().values() if s.prompt == prompt]
    return frozenset({k for s in mine for k in s.options} | {s.selector for s in mine if s.rule is not None})


def canonical_options(options: Mapping[str, Any], task: str, metrics: Sequence[str] | None) -> Options:
    """The options as a protocol holds them (:class:`Options`: optional ones at their default left out)."""
    return Options(options, option_schema(task, options, metrics), settable_options(task, options))


def metric_names(value: Any, current: Sequence[str], where: str) -> tuple[str, ...]:
    """``--set metrics=...``: a list or comma-separated names; a leading ``+`` adds to ``current``."""
    if isinstance(value, str):
        add = value.startswith("+")
        names = tuple(n.strip() for n in value.lstrip("+").split(",") if n.strip())
        names = (*current, *(n for n in names if n not in current)) if add else names
    elif isinstance(value, (list, tuple)) and all(isinstance(n, str) for n in value):
        names = tuple(value)
    else:
        raise InputError(f"{where}: metrics must be names, got {value!r}")
    if not names:
        raise InputError(f"{where}: metrics is empty", hint="e.g. --set metrics=mIoU,mBIoU (or +mBIoU)")
    return names


def _all_option_keys() -> set[str]:
    keys = {k for t in TASK_OPTIONS.values() for k in t} | {PROMPT_OPTION}
    keys |= {k for s in strategies().values() for k in (*s.options, s.selector)}
    keys |= {k for m in metric_classes().values() for k in m.options}
    return keys


def validate_options(
    options: Mapping[str, Any], where: str, task: str, metrics: Sequence[str] | None = None
) -> None:
    """Every option known, typed and in bounds; every required option of this protocol kind present."""
    schema = option_schema(task, options, metrics)
    for key, value in options.items():
        if key not in schema:
            known = sorted(_all_option_keys())
            if key in known:
                raise InputError(f"{where}: option {key!r} does not apply to this protocol")
            raise InputError(
                f"{where}: unknown option {key!r}.{did_you_mean(key, known)}",
                hint="options: " + ", ".join(schema),
            )
        schema[key].check(key, value, where)
    if missing := {k for k, s in schema.items() if s.required} - set(dict(options)):
        raise InputError(f"{where}: missing option(s) {', '.join(sorted(missing))}")


def declared_options() -> dict[str, OptionSpec]:
    """Every declared protocol option by name (the first declaration of a name), for parsing ``--set``."""
    specs: dict[str, OptionSpec] = {}
    for t in TASK_OPTIONS.values():
        for k, s in t.items():
            specs.setdefault(k, s)
    for rule in strategies().values():
        for k, spec in rule.options.items():
            specs.setdefault(k, spec)
        specs.setdefault(rule.selector, OptionSpec(str))
    for m in metric_classes().values():
        for k, spec in m.options.items():
            specs.setdefault(k, spec)
    return specs


def parse_override(
    text: str, task: str | None = None, options: dict[str, Any] | None = None
) -> tuple[str, Any]:
    """``key=value`` from the command line, typed by the option's declaration."""
    if "=" not in text:
        raise InputError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = (s.strip() for s in text.split("=", 1))
    if key == METRICS_KEY:
        return key, raw
    specs = dict(TASK_OPTIONS.get(task, {})) if task is not None else {}
    for k, s in declared_options().items():
        specs.setdefault(k, s)
    spec = specs.get(key)
    return key, raw if spec is None else spec.parse(key, raw)


# -- what a protocol's prompts are (asked by reports, comparisons, identity) -------------------------------
def _strategy(task: str, options: Mapping[str, Any]) -> type[PromptStrategy] | None:
    if task == "ap":
        return None
    try:
        return strategy_class(options)
    except InputError:
        return None


def seeded_prompts(task: str, options: Mapping[str, Any]) -> bool:
    """Whether the run's seed shapes this protocol's prompts (random clicks)."""
    s = _strategy(task, options)
    return s is not None and s.seeded


def adaptive_prompts(task: str, options: Mapping[str, Any]) -> bool:
    """Whether the prompts depend on the model's own answers (an iterative clicker)."""
    s = _strategy(task, options)
    return s is not None and s.adaptive


def count_option(task: str, options: Mapping[str, Any]) -> str | None:
    """The option that counts a clicks-only protocol's clicks (None: not such a protocol)."""
    s = _strategy(task, options)
    return None if s is None else s.count_option


def click_count(task: str, options: Mapping[str, Any]) -> int | None:
    """How many clicks a clicks-only protocol gives each instance (None: not such a protocol)."""
    key = count_option(task, options)
    if key is None:
        return None
    value = options.get(key, strategy_class(options).options[key].default)
    return None if value is None else int(value)


def _protocol_files():
    return sorted(
        (p for p in resources.files("evalsuite._protocols").iterdir() if p.name.endswith(".toml")),
        key=lambda p: p.name,
    )


def protocol_from_toml(data: Mapping[str, Any], where: str, **fill: Any) -> Protocol:
    """A protocol from the contents of its TOML file, checked (options and metrics); ``fill`` gives a
    template's name, dataset, title and metrics (``protocols/templates``)."""
    options = dict(data.get("options", {}))
    metrics = tuple(fill.get("metrics") or data.get("metrics", ()))
    validate_options(options, where, data["task"], metrics)
    resolve_metrics(metrics, data["task"], where)
    canonical = canonical_options(options, data["task"], metrics)
    return Protocol(
        name=str(fill.get("name") or data["name"]),
        version=int(data["version"]),
        dataset=str(fill.get("dataset") or data["dataset"]),
        task=data["task"],
        summary=data.get("summary", "").replace("{title}", fill.get("title", "")),
        metrics=metrics,
        options=canonical,
        defaults=canonical,
    )


@cache
def _shipped() -> dict[str, Protocol]:
    """The protocol files shipped in ``protocols/`` (the COCO / LVIS ones, written before templates)."""
    found: dict[str, Protocol] = {}
    for path in _protocol_files():
        proto = protocol_from_toml(tomllib.loads(path.read_text(encoding="utf-8")), path.name)
        if proto.name in found:
            raise RuntimeError(f"protocol {proto.name!r} is defined twice")
        found[proto.name] = proto
    return found


def _generated(shipped: dict[str, Protocol]) -> dict[str, Protocol]:
    """``<dataset>-<template>`` for each registered dataset's ``protocols`` (``protocols/templates``);
    a shipped file of that name stands instead. A dataset's ``metrics`` replace its mIoU protocols'."""
    out: dict[str, Protocol] = {}
    for spec in datasets().values():
        for template in spec.protocols:
            name = f"{spec.name}-{template}"
            if name in shipped:
                if shipped[name].dataset != spec.name:
                    raise InputError(f"protocol {name!r} is shipped for dataset {shipped[name].dataset!r}")
                continue
            data = read_template(template)
            metrics = spec.metrics if data["task"] == "miou" else ()
            where = f"template {template} for dataset {spec.name}"
            out[name] = protocol_from_toml(
                data, where, name=name, dataset=spec.name, title=spec.title, metrics=metrics
            )
    return out


def load_protocols() -> dict[str, Protocol]:
    """Every protocol by name: the shipped files and those made from the registered datasets' templates
    (paper order: dataset, task, clicks)."""
    return _all_protocols(registry_state())


@cache
def _all_protocols(state: object) -> dict[str, Protocol]:
    found = dict(_shipped())
    found.update(_generated(found))
    task_order = {"miou": 0, "noc": 1, "ap": 2}
    order = sorted(
        found.values(),
        key=lambda p: (p.dataset, task_order.get(p.task, 9), click_count(p.task, p.options) or 0, p.name),
    )
    return {p.name: p for p in order}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name`` (with a 'did you mean' for typos)."""
    protocols = load_protocols()
    if name not in protocols:
        raise UnknownNameError(
            f"unknown protocol {name!r}.{did_you_mean(name, list(protocols))}",
            hint="`evalsuite ls` lists the protocols",
        )
    return protocols[name]
