"""CLI for datasets: ``download coco``, ``download lvis`` (in the ``download`` group) and ``doctor``.

Kept out of ``cli.py`` so the dataset code loads only when these commands run; ``cli.py`` calls
:func:`register` with its groups (this module never imports ``cli``, so there is no import cycle).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .errors import EvalsuiteError

if TYPE_CHECKING:
    from .datasets import Check, DownloadReport

_ROOT_HELP = "Data root (default: $EVALSUITE_DATA or ./datasets/coco, where runs look)."
_BASE_HELP = "Fetch from this mirror instead (same file names; https only)."


class MissingArtefactsError(EvalsuiteError):
    """``doctor`` found something missing (exit status 1; the table says how to fetch each)."""


def _progress(no_progress: bool) -> bool:
    return not no_progress and sys.stderr.isatty()


def _root(root: Path | None) -> Path:
    from .datasets import default_root

    return root if root is not None else default_root()


def _echo_report(report: DownloadReport) -> None:
    for name in report.present:
        click.echo(f"{name}: already in place")
    for name in report.fetched:
        click.echo(f"{name}: downloaded, verified and extracted")
    if report.images_needed:
        click.echo(
            f"LVIS images: {report.images_needed:,} referenced, {report.images_present:,} already present, "
            f"{report.images_fetched:,} downloaded"
        )
    click.echo(f"data root: {report.root}")


@click.command("coco")
@click.option("--root", type=click.Path(path_type=Path), default=None, help=_ROOT_HELP)
@click.option("--keep-archives", is_flag=True, help="Keep the zips in the cache after extraction.")
@click.option("--base-url", default=None, help=_BASE_HELP)
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def download_coco_cmd(root, keep_archives, base_url, no_progress) -> None:
    """COCO val2017 images + instance annotations (SHA-256 pinned, resumable; ~1.1 GB)."""
    from .datasets import download_coco

    report = download_coco(
        _root(root), progress=_progress(no_progress), base_url=base_url, keep_archives=keep_archives
    )
    _echo_report(report)


@click.command("lvis")
@click.option("--root", type=click.Path(path_type=Path), default=None, help=_ROOT_HELP)
@click.option(
    "--images",
    type=click.Choice(["needed", "archives", "none"]),
    default="needed",
    show_default=True,
    help="needed: only the images LVIS val uses, one by one; archives: all of train2017 + val2017 (~20 GB).",
)
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True, help="Parallel fetches.")
@click.option("--keep-archives", is_flag=True, help="Keep the zips in the cache after extraction.")
@click.option("--base-url", default=None, help=_BASE_HELP)
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def download_lvis_cmd(root, images, workers, keep_archives, base_url, no_progress) -> None:
    """LVIS v1 val annotations and the COCO train2017/val2017 images it references."""
    from .datasets import download_lvis

    report = download_lvis(
        _root(root),
        images=images,
        progress=_progress(no_progress),
        base_url=base_url,
        keep_archives=keep_archives,
        workers=workers,
    )
    _echo_report(report)


def format_checks(checks: list[Check]) -> str:
    """A plain table (status, what, detail); under each missing part, the command that fetches it."""
    width = max(len(c.what) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{'ok' if c.ok else 'MISSING':<8} {c.what:<{width}}  {c.detail}")
        if c.fix:
            lines.append(f"{'':<8} {'':<{width}}  -> {c.fix}")
    return "\n".join(lines)


@click.command("doctor")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help=_ROOT_HELP)
def doctor_cmd(data_root) -> None:
    """Report which datasets, checkpoints and box files are present, and how to fetch the rest."""
    from .datasets import doctor

    checks = doctor(data_root)
    click.echo(format_checks(checks))
    missing = [c for c in checks if not c.ok]
    if missing:
        raise MissingArtefactsError(
            f"{len(missing)} of {len(checks)} checks failed; run the command shown for each to fetch it"
        )
    click.echo("everything is in place")


def register(download_group: click.Group, cli_group: click.Group) -> None:
    """Add ``coco`` and ``lvis`` to the ``download`` group and ``doctor`` to the top-level group."""
    download_group.add_command(download_coco_cmd)
    download_group.add_command(download_lvis_cmd)
    cli_group.add_command(doctor_cmd)
