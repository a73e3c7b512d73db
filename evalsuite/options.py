"""Options as typed, bounded declarations: protocol options, model options and run options.

Each option a protocol may carry is declared once — by its task kind (:mod:`evalsuite.protocols`),
by the prompt rule that reads it (:mod:`evalsuite.prompts.strategies`) or by a metric that reads it
(:mod:`evalsuite.metrics`) — with its type or choices, its bounds, its help text, and whether it
changes *what a column measures* (the prompt, the instance set, the detections kept) or only *how a
model answers* (which output is taken, a refinement step). Reports put records that differ in a
column option into different columns, labelled with the option; records that differ only in answer
options are rows (variants) of one column.

An option is *required* (every protocol of its kind names it in its TOML file) or *optional*: absent,
it has its declared ``default``, and a protocol's recorded options (and their hash) name it only when
a run changes it — so options added later leave every earlier record, run id and gate as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import InputError

_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class OptionSpec:
    """One option: ``choices`` (the allowed values), or ``kind`` (int / float / bool / str) and bounds."""

    kind: type = str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    #: True: changes what a table column measures (e.g. the number of clicks); False: a model variant
    column: bool = True
    help: str = ""
    #: the value when none is given (model options, and optional protocol options)
    default: Any = None
    #: a protocol option that every protocol of its kind must name (False: optional, absent = ``default``)
    required: bool = True

    def check(self, key: str, value: Any, where: str) -> None:
        """Refuse a value of the wrong type, outside the choices or outside the bounds (one line)."""
        if self.choices is not None:
            if value not in self.choices or isinstance(value, bool) != isinstance(self.choices[0], bool):
                raise InputError(
                    f"{where}: option {key}={value!r} not one of {', '.join(map(str, self.choices))}"
                )
            return
        numeric = self.kind in (int, float)
        ok = isinstance(value, self.kind) or (self.kind is float and isinstance(value, int))
        if not ok or (numeric and isinstance(value, bool)):
            raise InputError(f"{where}: option {key} must be {self.kind.__name__}, got {value!r}")
        if not numeric:
            return
        if self.minimum is not None and value < self.minimum:
            raise InputError(f"{where}: option {key}={value} is below its minimum {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise InputError(f"{where}: option {key}={value} is above its maximum {self.maximum:g}")

    def parse(self, key: str, raw: str) -> Any:
        """A command-line string (``--set key=raw``) as this option's type."""
        if self.kind is bool or (self.choices and isinstance(self.choices[0], bool)):
            if raw.lower() not in _BOOL_WORDS:
                raise InputError(f"--set {key}: expected true or false, got {raw!r}")
            return _BOOL_WORDS[raw.lower()]
        if self.kind is int or (self.choices and isinstance(self.choices[0], int)):
            try:
                return int(raw)
            except ValueError:
                raise InputError(f"--set {key}: expected an integer, got {raw!r}") from None
        if self.kind is float or (self.choices and isinstance(self.choices[0], float)):
            try:
                return float(raw)
            except ValueError:
                raise InputError(f"--set {key}: expected a number, got {raw!r}") from None
        return raw

    def describe(self) -> str:
        """The allowed values in a few words, for listings: ``one of a, b``, ``int 1..100``."""
        if self.choices is not None:
            return "one of " + ", ".join(_text(c) for c in self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{self.kind.__name__} {self.minimum:g}..{self.maximum:g}"
        if self.minimum is not None:
            return f"{self.kind.__name__} >= {self.minimum:g}"
        return self.kind.__name__

    def line(self, key: str) -> str:
        """``key (one of a, b; default a): help`` — how `evalsuite ls` shows a declaration."""
        facts = [self.describe()]
        if not self.required or self.default is not None:
            facts.append(f"default {_text(self.default)}" if self.default is not None else "optional")
        facts.append("changes the column" if self.column else "a model variant (row)")
        return f"{key} ({'; '.join(facts)})" + (f": {self.help}" if self.help else "")


def _text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)
