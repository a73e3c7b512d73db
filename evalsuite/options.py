"""Protocol options as typed, bounded declarations.

Each option a protocol may carry is declared once — by its task kind (:mod:`evalsuite.protocols`)
or by the prompt strategy that reads it (:mod:`evalsuite.prompts.strategies`) — with its type or
choices, its bounds, and whether it changes *what a column measures* (the prompt, the instance
set, the detections kept) or only *how a model answers* (which output is taken, a refinement
step). Reports put records that differ in a column option into different columns, labelled with
the option; records that differ only in answer options are rows (variants) of one column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class OptionSpec:
    """One option: ``choices`` (a tuple of allowed values) or ``kind`` (int / bool / str) with bounds."""

    kind: type = str
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    #: True: changes what a table column measures (e.g. the number of clicks); False: a model variant
    column: bool = True
    help: str = ""
    #: the value when none is given (model options; protocol options take theirs from the protocol file)
    default: Any = None

    def check(self, key: str, value: Any, where: str) -> None:
        """Refuse a value of the wrong type, outside the choices or outside the bounds (one line)."""
        if self.choices is not None:
            if value not in self.choices or isinstance(value, bool) != isinstance(self.choices[0], bool):
                raise InputError(
                    f"{where}: option {key}={value!r} not one of {', '.join(map(str, self.choices))}"
                )
            return
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise InputError(f"{where}: option {key} must be {self.kind.__name__}, got {value!r}")
        if not isinstance(value, int):
            return
        if self.minimum is not None and value < self.minimum:
            raise InputError(f"{where}: option {key}={value} is below its minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise InputError(f"{where}: option {key}={value} is above its maximum {self.maximum}")

    def parse(self, key: str, raw: str) -> Any:
        """A command-line string (``--set key=raw``) as this option's type."""
        if self.kind is bool or (self.choices and isinstance(self.choices[0], bool)):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise InputError(f"--set {key}: expected true or false, got {raw!r}")
            return raw.lower() in ("true", "1", "yes")
        if self.kind is int or (self.choices and isinstance(self.choices[0], int)):
            try:
                return int(raw)
            except ValueError:
                raise InputError(f"--set {key}: expected an integer, got {raw!r}") from None
        return raw
