"""Options shared by several commands, declared once (one default, one help text each)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

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

data_options = _stack(
    click.option(
        "--data",
        type=click.Choice(["real", "sample"]),
        default="real",
        show_default=True,
        help="The real dataset, or the small sample bundled with evalsuite (COCO and LVIS).",
    ),
    click.option(
        "--data-root",
        type=click.Path(path_type=Path),
        default=None,
        help="Folder the dataset's layout is under (default: $EVALSUITE_DATA, else its own default, e.g. "
        "./datasets/coco; `evalsuite ls datasets`).",
    ),
    click.option(
        "--ann",
        type=click.Path(path_type=Path),
        default=None,
        help="Annotation file (or folder, for per-image formats) instead of the dataset's own: a custom "
        "file, named by its content in the records.",
    ),
    dataset_file_option,
)

weights_options = _stack(
    click.option(
        "--checkpoint",
        type=click.Path(path_type=Path),
        default=None,
        help="Checkpoint file (default: the official file in the cache, see `evalsuite download weights`).",
    ),
    click.option(
        "--weights",
        default=None,
        metavar="official|random[:SEED]",
        help="random[:SEED]: deterministic weights, no download (smoke runs; no paper value applies).",
    ),
    click.option(
        "--trust-checkpoint",
        is_flag=True,
        help="Allow unpickling a checkpoint whose SHA-256 evalsuite does not know (runs code from the file).",
    ),
)

device_option = click.option(
    "--device", default=None, help="cpu, cuda, cuda:N or mps (default: cuda if available, else cpu)."
)

execution_options = _stack(
    device_option,
    click.option(
        "--precision",
        type=click.Choice(["fp32", "tf32", "bf16"]),
        default="fp32",
        show_default=True,
        help="fp32 reproduces the official arithmetic; tf32/bf16 are faster on GPUs (recorded).",
    ),
    click.option(
        "--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N images (by id)."
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=0),
        default=None,
        help="Image-decoding worker processes (default: by cores).",
    ),
    click.option(
        "--image-batch",
        type=click.IntRange(min=1),
        default=None,
        help="Images per encoder pass (default: 8 on CUDA, 1 otherwise).",
    ),
    click.option(
        "--no-progress", is_flag=True, help="Hide progress bars (they are off when stdout is not a terminal)."
    ),
)

out_option = click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Output folder; each run goes to OUT/NAME/PROTOCOL/.",
)

name_option = click.option(
    "--name",
    default=None,
    help="Run name (rows, folders). Default: the model, +ck<sha> for another checkpoint, "
    "+random<seed>, +key=value for changed options.",
)

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
