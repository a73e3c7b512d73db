"""Protocol definitions, loaded from the versioned TOML files in ``protocols/``.

A protocol is data: name, version, dataset family, task and options. The option
schema below is the one place that says which options exist and which values
they take; a run may override options (``--set key=value``), and every record
stores the full option set and its hash, so two numbers are comparable exactly
when their protocol name, version and options hash agree.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from .errors import InputError, UnknownNameError, did_you_mean

#: option name -> allowed values (a tuple) or a type for free values
OPTION_SCHEMA: dict[str, tuple | type] = {
    "prompt": ("box", "clicks"),
    "box_source": ("tight", "ann"),  # tight box of the decoded mask, or the annotation's bbox
    "click_rule": ("random", "sam"),  # EfficientSAM paper's random clicks, or SAM's error-region clicks
    "clicks": int,
    "include_crowd": bool,
    # argmax predicted IoU; single-output token; best vs GT (mIoU only); highest IoU with the prompt box
    "mask_choice": ("score", "single", "oracle", "box_iou"),
    "refine": (0, 1),  # AP protocols: SAM's mask-refinement iteration (models that take a mask prompt)
    "max_dets": int,  # AP protocols: detections kept per image, highest scores first
}
#: (task, prompt) -> the options such a protocol has (all of them, each with its default in the TOML)
_OPTIONS_FOR = {
    ("miou", "box"): {"prompt", "box_source", "include_crowd", "mask_choice"},
    ("miou", "clicks"): {"prompt", "click_rule", "clicks", "include_crowd", "mask_choice"},
    ("ap", "box"): {"prompt", "mask_choice", "refine", "max_dets"},
}


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol (e.g. ``coco-3click`` v1) with its options."""

    name: str
    version: int
    dataset: str  # "coco" | "lvis"
    task: str  # "miou"
    summary: str
    metrics: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``name@version``, how records and reports name a protocol."""
        return f"{self.name}@{self.version}"

    @property
    def options_hash(self) -> str:
        """Short SHA-256 of the canonical option set."""
        blob = json.dumps(self.options, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_options(self, overrides: dict[str, Any]) -> Protocol:
        """A copy with some options changed (validated against the schema)."""
        if not overrides:
            return self
        merged = {**self.options, **overrides}
        _validate_options(merged, self.name, self.task)
        return replace(self, options=merged)


def _validate_options(options: dict[str, Any], where: str, task: str) -> None:
    for key, value in options.items():
        if key not in OPTION_SCHEMA:
            raise InputError(
                f"{where}: unknown option {key!r}.{did_you_mean(key, list(OPTION_SCHEMA))}",
                hint="options: " + ", ".join(OPTION_SCHEMA),
            )
        allowed = OPTION_SCHEMA[key]
        if isinstance(allowed, tuple):
            if value not in allowed:
                raise InputError(f"{where}: option {key}={value!r} not one of {', '.join(map(str, allowed))}")
        elif not isinstance(value, allowed) or (allowed is int and isinstance(value, bool)):
            raise InputError(f"{where}: option {key} must be {allowed.__name__}, got {value!r}")
    expected = _OPTIONS_FOR.get((task, options.get("prompt")))
    if expected is None:
        raise InputError(
            f"{where}: task {task!r} with prompt {options.get('prompt')!r} is not a known combination"
        )
    if missing := expected - set(options):
        raise InputError(f"{where}: missing option(s) {', '.join(sorted(missing))}")
    if extra := set(options) - expected:
        raise InputError(f"{where}: option(s) {', '.join(sorted(extra))} do not apply to this protocol")
    if options.get("clicks", 1) < 1 or options.get("max_dets", 1) < 1:
        raise InputError(f"{where}: clicks and max_dets must be >= 1")


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line, with the value typed by the schema."""
    if "=" not in text:
        raise InputError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = (s.strip() for s in text.split("=", 1))
    kind = OPTION_SCHEMA.get(key)
    if kind is bool:
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise InputError(f"--set {key}: expected true or false, got {raw!r}")
        return key, raw.lower() in ("true", "1", "yes")
    if kind is int:
        try:
            return key, int(raw)
        except ValueError:
            raise InputError(f"--set {key}: expected an integer, got {raw!r}") from None
    return key, raw


def _protocol_files():
    return sorted(
        (p for p in resources.files("evalsuite._protocols").iterdir() if p.name.endswith(".toml")),
        key=lambda p: p.name,
    )


@cache
def load_protocols() -> dict[str, Protocol]:
    """Every protocol shipped with evalsuite, by name."""
    found: dict[str, Protocol] = {}
    for path in _protocol_files():
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        options = dict(data.get("options", {}))
        _validate_options(options, path.name, data["task"])
        proto = Protocol(
            name=data["name"],
            version=int(data["version"]),
            dataset=data["dataset"],
            task=data["task"],
            summary=data.get("summary", ""),
            metrics=tuple(data.get("metrics", ())),
            options=options,
        )
        if proto.name in found:
            raise RuntimeError(f"protocol {proto.name!r} is defined twice")
        found[proto.name] = proto
    # Paper order: per dataset, box first, then clicks by count.
    order = sorted(found.values(), key=lambda p: (p.dataset, p.task, p.options.get("clicks", 0), p.name))
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
