"""Protocol definitions, loaded from the versioned TOML files in ``protocols/``.

A protocol is data: name, version, dataset family, task kind and options. Which options exist is
declared once: per task kind here (:data:`TASK_OPTIONS`), per prompt rule by the prompt strategies
(:mod:`evalsuite.prompts.strategies`). A run may override options (``--set key=value``); every
record stores the full option set, its hash and the overrides, so two numbers are comparable
exactly when their protocol name, version and options agree.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tomllib
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from .data.registry import datasets, read_template
from .data.registry import state as registry_state
from .errors import InputError, UnknownNameError, did_you_mean
from .options import OptionSpec
from .prompts.strategies import KIND_BOX, click_rules, prompt_values, strategy_class

#: options of each task kind (the prompt strategy adds its own). Column options change what a table
#: column measures; the others are model variants (rows).
TASK_OPTIONS: dict[str, dict[str, OptionSpec]] = {
    "miou": {
        "include_crowd": OptionSpec(bool, help="also score COCO iscrowd=1 annotations"),
        # argmax predicted IoU; single-output token; best vs GT; highest IoU with the prompt box
        "mask_choice": OptionSpec(choices=("score", "single", "oracle", "box_iou"), column=False),
    },
    "ap": {
        "mask_choice": OptionSpec(choices=("score", "single", "box_iou"), column=False),
        # SAM's mask-refinement iteration (models that take a mask prompt)
        "refine": OptionSpec(choices=(0, 1), column=False),
        "max_dets": OptionSpec(int, minimum=1, maximum=10_000, help="detections kept per image"),
    },
    "noc": {
        "include_crowd": OptionSpec(bool),
        "mask_choice": OptionSpec(choices=("score", "single", "oracle"), column=False),
    },
}
#: prompt kinds each task kind can use (the AP task prompts with the detection file's boxes)
TASK_PROMPTS: dict[str, tuple[str, ...]] = {"miou": prompt_values(), "ap": ("box",), "noc": ("clicks",)}
#: NoC counts clicks of the iterative SAM rule
TASK_CLICK_RULES: dict[str, tuple[str, ...]] = {"noc": ("sam",)}


def option_schema(task: str, options: dict[str, Any]) -> dict[str, OptionSpec]:
    """Every option a protocol of ``task`` with these selector options has, with its declaration."""
    if task not in TASK_OPTIONS:
        raise InputError(f"unknown task {task!r}; expected one of {', '.join(TASK_OPTIONS)}")
    schema = {"prompt": OptionSpec(choices=TASK_PROMPTS[task])}
    schema.update(TASK_OPTIONS[task])
    if task == "ap":
        return schema
    if options.get("prompt") == "clicks":
        schema["click_rule"] = OptionSpec(choices=TASK_CLICK_RULES.get(task, click_rules()))
    # an unknown prompt or click rule is refused by the value check of its selector
    with contextlib.suppress(InputError):
        schema.update(strategy_class(options).options)
    return schema


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

    @property
    def id(self) -> str:
        """``name@version``, how records and reports name a protocol."""
        return f"{self.name}@{self.version}"

    @property
    def options_hash(self) -> str:
        """Short SHA-256 of the canonical option set."""
        blob = json.dumps(self.options, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def overrides(self) -> dict[str, Any]:
        """Options that differ from the shipped protocol."""
        return {k: v for k, v in sorted(self.options.items()) if self.defaults.get(k) != v}

    @property
    def column_overrides(self) -> dict[str, Any]:
        """Overrides that change what a table column measures (clicks, box source, instance set)."""
        schema = option_schema(self.task, self.options)
        return {k: v for k, v in self.overrides.items() if k not in schema or schema[k].column}

    @property
    def row_overrides(self) -> dict[str, Any]:
        """Overrides that only change how the model answers (a variant of the model: a table row)."""
        column = self.column_overrides
        return {k: v for k, v in self.overrides.items() if k not in column}

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
    def prompt_kind(self) -> str:
        """What the model must take: box or points."""
        return KIND_BOX if self.options.get("prompt", "box") == "box" else "points"

    def with_options(self, overrides: dict[str, Any]) -> Protocol:
        """A copy with some options changed (validated against the schema)."""
        if not overrides:
            return self
        merged = {**self.options, **overrides}
        validate_options(merged, self.name, self.task)
        return replace(self, options=merged)


def validate_options(options: dict[str, Any], where: str, task: str) -> None:
    """Every option known, typed and in bounds; exactly the options this protocol kind has."""
    schema = option_schema(task, options)
    for key, value in options.items():
        if key not in schema:
            known = sorted(
                {k for t in TASK_OPTIONS.values() for k in t}
                | {"prompt", "click_rule", "clicks", "box_source"}
            )
            if key in known:
                raise InputError(f"{where}: option {key!r} does not apply to this protocol")
            raise InputError(
                f"{where}: unknown option {key!r}.{did_you_mean(key, known)}",
                hint="options: " + ", ".join(schema),
            )
        schema[key].check(key, value, where)
    if missing := set(schema) - set(options):
        raise InputError(f"{where}: missing option(s) {', '.join(sorted(missing))}")


def parse_override(
    text: str, task: str | None = None, options: dict[str, Any] | None = None
) -> tuple[str, Any]:
    """``key=value`` from the command line, typed by the option's declaration."""
    if "=" not in text:
        raise InputError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = (s.strip() for s in text.split("=", 1))
    specs: dict[str, OptionSpec] = {}
    for t, opts in TASK_OPTIONS.items():
        if task in (None, t):
            specs.update(opts)
    specs.update({"clicks": OptionSpec(int), "box_source": OptionSpec(str), "click_rule": OptionSpec(str)})
    spec = specs.get(key)
    return key, raw if spec is None else spec.parse(key, raw)


def _protocol_files():
    return sorted(
        (p for p in resources.files("evalsuite._protocols").iterdir() if p.name.endswith(".toml")),
        key=lambda p: p.name,
    )


def _protocol(data: dict[str, Any], where: str, **fill: Any) -> Protocol:
    options = dict(data.get("options", {}))
    validate_options(options, where, data["task"])
    return Protocol(
        name=str(fill.get("name") or data["name"]),
        version=int(data["version"]),
        dataset=str(fill.get("dataset") or data["dataset"]),
        task=data["task"],
        summary=data.get("summary", "").replace("{title}", fill.get("title", "")),
        metrics=tuple(fill.get("metrics") or data.get("metrics", ())),
        options=options,
        defaults=dict(options),
    )


@cache
def _shipped() -> dict[str, Protocol]:
    """The protocol files shipped in ``protocols/`` (the COCO / LVIS ones, written before templates)."""
    found: dict[str, Protocol] = {}
    for path in _protocol_files():
        proto = _protocol(tomllib.loads(path.read_text(encoding="utf-8")), path.name)
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
            out[name] = _protocol(
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
        key=lambda p: (p.dataset, task_order.get(p.task, 9), p.options.get("clicks", 0), p.name),
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
