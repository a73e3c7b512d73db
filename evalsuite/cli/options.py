"""Options shared by several commands, declared once (one default, one help text each).

The run options (``run``, ``noc``, ``reproduce``) are made from their declarations in
:mod:`evalsuite.run_options`: :func:`run_option_flags` turns each into a click option, and
:func:`run_option_values` turns the parsed flags back into run-option values by name.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from .. import run_options as ro

F = Callable[..., Any]


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(fn: F) -> F:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return apply


def progress_enabled(no_progress: bool) -> bool:
    """Progress bars only for a person watching: off with --no-progress or when stdout is not a terminal."""
    return not no_progress and sys.stdout.isatty()


def _load_dataset_files(ctx: click.Context, param: click.Parameter, value: tuple[Path, ...]) -> None:
    """Register the datasets of each --dataset-file before anything looks a protocol or dataset up."""
    from ..data.registry import load_dataset_file

    for path in value:
        load_dataset_file(path)


#: users' datasets from TOML files (docs/datasets.md); read first, so their protocols exist
dataset_file_option = click.option(
    "--dataset-file",
    type=click.Path(path_type=Path),
    multiple=True,
    metavar="FILE.toml",
    is_eager=True,
    expose_value=False,
    callback=_load_dataset_files,
    help="Register your own datasets from a TOML file (repeatable; also $EVALSUITE_DATASETS; "
    "docs/datasets.md).",
)


def _click_type(o: ro.RunOption) -> Any:
    if o.choices is not None:
        return click.Choice(list(o.choices))
    if o.kind is Path:
        return click.Path(path_type=Path)
    if o.kind is int and (o.minimum is not None or o.maximum is not None):
        return click.IntRange(min=o.minimum, max=o.maximum)
    if o.kind is int:
        return int
    return None


def click_option(o: ro.RunOption) -> Callable[[F], F]:
    """One run option as a click option (its flag, type, default and help from the declaration)."""
    assert o.flag is not None
    names = [o.flag, *([o.short] if o.short else []), o.param or o.name]
    kwargs: dict[str, Any] = {"help": o.help, "hidden": o.hidden}
    if o.is_flag:
        kwargs["is_flag"] = True
    else:
        kwargs["default"] = o.flag_value
        if (t := _click_type(o)) is not None:
            kwargs["type"] = t
        if o.metavar:
            kwargs["metavar"] = o.metavar
        if o.show_default:
            kwargs["show_default"] = True
        if o.multiple:
            kwargs["multiple"] = True
        if o.required:
            kwargs["required"] = True
    return click.option(*names, **kwargs)


def run_option_flags(command: str, names: Iterable[str] | None = None) -> Callable[[F], F]:
    """The click options of the run options ``command`` offers (only ``names``, where given), in order."""
    wanted = None if names is None else set(names)
    opts = [o for o in ro.for_command(command) if wanted is None or o.name in wanted]
    return _stack(*(click_option(o) for o in opts))


def run_option_values(command: str, params: dict[str, Any]) -> dict[str, Any]:
    """Parsed flags of ``command`` as run-option values by name (``--set`` parsed into ``overrides``,
    ``--no-progress`` into ``progress``, a flag that sets a protocol option into ``overrides``)."""
    from ..engine.devices import default_device
    from ..protocols import parse_override

    values: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    for o in ro.for_command(command):
        key = o.param or o.name
        if key not in params:
            continue
        raw = params[key]
        if o.name == "overrides":
            overrides.update(dict(parse_override(s) for s in raw or ()))
        elif o.protocol_option is not None:
            if raw is not None:
                overrides[o.protocol_option] = raw
        elif o.name == "progress":
            values["progress"] = progress_enabled(bool(raw))
        elif o.name == "device":
            values["device"] = raw or default_device()
        elif o.name == "ap_backend":
            values["ap_backend"] = raw or o.default
        elif o.name == "checkpoint":
            values["checkpoint"] = None if raw is None else str(raw)
        else:
            values[o.name] = raw
    if "overrides" in {o.name for o in ro.for_command(command)}:
        values["overrides"] = overrides
    return values


#: the groups of run options commands share (kept for the commands that take a few of them)
data_options = _stack(run_option_flags(ro.RUN, ("data", "data_root", "ann")), dataset_file_option)
weights_options = run_option_flags(ro.RUN, ("checkpoint", "weights", "trust_checkpoint"))
device_option = click_option(ro.run_option("device"))
execution_options = run_option_flags(
    ro.RUN, ("device", "precision", "limit", "workers", "image_batch", "progress")
)
out_option = click_option(ro.run_option("out"))
name_option = click_option(ro.run_option("name"))

paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))

#: choose runs by name in commands that read records (report, export, plot, compare)
select_options = _stack(
    click.option(
        "--name",
        "names",
        multiple=True,
        metavar="GLOB",
        help="Only runs whose name matches GLOB (repeatable; e.g. 'efficientsam-*').",
    ),
    click.option(
        "--exclude", "excludes", multiple=True, metavar="GLOB", help="Leave out runs whose name matches GLOB."
    ),
)
