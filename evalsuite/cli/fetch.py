"""Commands that fetch or check files: ``download weights|boxes|DATASET``, ``doctor``, ``make-boxes``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EvalsuiteError, InputError
from .options import dataset_file_option

_ROOT_HELP = "Data root (default: $EVALSUITE_DATA, else the dataset's own default: where runs look)."
_BASE_HELP = "Fetch from this mirror instead (same file names; https only)."


class FetchFailedError(EvalsuiteError):
    """Some of several downloads failed (exit status 1; the summary says which and why)."""


class BrokenInstallError(EvalsuiteError):
    """``doctor`` found the install itself broken (exit status 1)."""


def _progress(no_progress: bool) -> bool:
    return not no_progress and sys.stderr.isatty()


class _DownloadGroup(click.Group):
    """``download weights``, ``download boxes``, and one command per registered dataset."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from ..data.registry import dataset_names

        return [*super().list_commands(ctx), *dataset_names()]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        from ..data.registry import find_dataset

        spec = find_dataset(cmd_name)
        return None if spec is None else _dataset_command(spec)


@click.group("download", cls=_DownloadGroup)
@dataset_file_option
def download_group() -> None:
    """Download official files: checkpoints and box files into the cache ($EVALSUITE_HOME, default
    ~/.cache/evalsuite), datasets into a data root (`evalsuite download DATASET`; `evalsuite ls
    datasets` lists them)."""


@download_group.command("weights")
@click.argument("models", nargs=-1, required=True)
@click.option("--dest", type=click.Path(path_type=Path), default=None, help="Folder (default: the cache).")
@click.option("--base-url", default=None, help=_BASE_HELP)
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def download_weights_cmd(models, dest, base_url, no_progress) -> None:
    """Official checkpoints of MODELS (resumable, SHA-256 checked); carries on after a failure and
    ends with a summary."""
    from ..models import get_spec
    from ..models.weights import download_weights

    failed: list[tuple[str, str]] = []
    for name in models:
        try:
            path = download_weights(
                get_spec(name), dest_dir=dest, progress=_progress(no_progress), base_url=base_url
            )
        except EvalsuiteError as e:
            failed.append((name, e.message))
            click.echo(f"{name}: FAILED: {e.message}")
            continue
        click.echo(f"{name}: {path}")
    if len(models) > 1:
        click.echo(
            f"{len(models) - len(failed)} of {len(models)} downloaded"
            + (f"; failed: {', '.join(n for n, _ in failed)}" if failed else "")
        )
    if failed:
        raise FetchFailedError(
            f"{len(failed)} of {len(models)} download(s) failed (first: {failed[0][0]}: {failed[0][1]})"
        )


@download_group.command("boxes")
@click.argument("names", nargs=-1, required=True)
@click.option("--dest", type=click.Path(path_type=Path), default=None, help="Folder (default: the cache).")
@click.option("--base-url", default=None, help=_BASE_HELP)
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def download_boxes_cmd(names, dest, base_url, no_progress) -> None:
    """Published ViTDet-H detections for coco-vitdet / lvis-vitdet (SHA-256 recorded at first use)."""
    from ..fetch.boxes import download_boxes

    for name in names:
        path = download_boxes(name, dest_dir=dest, progress=_progress(no_progress), base_url=base_url)
        click.echo(f"{name}: {path}")


def _echo_report(report, spec) -> None:
    for name in report.present:
        click.echo(f"{name}: already in place")
    for name in report.fetched:
        click.echo(f"{name}: downloaded, verified and extracted")
    if report.images_needed:
        click.echo(
            f"{spec.name.upper()} images: {report.images_needed:,} referenced, "
            f"{report.images_present:,} already present, {report.images_fetched:,} downloaded"
        )
    click.echo(f"data root: {report.root}")


def _dataset_help(spec) -> str:
    if not spec.files:
        return f"{spec.title}: not downloadable by evalsuite ({spec.obtain or 'no files declared'})."
    pinned = all(f.sha256 for f in spec.files)
    check = "SHA-256 pinned" if pinned else "SHA-256 recorded at the first download"
    return f"{spec.title}: {spec.summary or 'its declared archives'} ({check}, resumable)."


def _dataset_command(spec) -> click.Command:
    """``evalsuite download NAME``: a dataset's declared archives into a data root."""

    def callback(root, keep_archives, base_url, no_progress, images="needed", workers=8) -> None:
        from ..data.locate import default_root
        from ..fetch.datasets import download_dataset

        report = download_dataset(
            spec,
            root if root is not None else default_root(spec),
            images=images,
            progress=_progress(no_progress),
            base_url=base_url,
            keep_archives=keep_archives,
            workers=workers,
        )
        _echo_report(report, spec)

    params: list[click.Parameter] = [
        click.Option(["--root"], type=click.Path(path_type=Path), default=None, help=_ROOT_HELP),
        click.Option(
            ["--keep-archives"], is_flag=True, help="Keep the archives in the cache after extraction."
        ),
        click.Option(["--base-url"], default=None, help=_BASE_HELP),
        click.Option(["--no-progress"], is_flag=True, help="Hide progress bars."),
    ]
    if spec.image_base_url:
        params += [
            click.Option(
                ["--images"],
                type=click.Choice(["needed", "archives", "none"]),
                default="needed",
                show_default=True,
                help="needed: only the images the annotations reference, one by one; archives: the whole "
                "image archives; none: annotations only.",
            ),
            click.Option(
                ["--workers"],
                type=click.IntRange(1, 64),
                default=8,
                show_default=True,
                help="Parallel fetches.",
            ),
        ]
    return click.Command(spec.name, callback=callback, params=params, help=_dataset_help(spec))


def format_checks(checks) -> str:
    """A plain table (status, what, detail); under each missing part, the command that fetches it."""
    width = max(len(c.what) for c in checks)
    lines = []
    for c in checks:
        status = "ok" if c.ok else ("BROKEN" if c.required else "missing")
        lines.append(f"{status:<8} {c.what:<{width}}  {c.detail}")
        if c.fix:
            lines.append(f"{'':<8} {'':<{width}}  -> {c.fix}")
    return "\n".join(lines)


@click.command("doctor")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help=_ROOT_HELP)
@dataset_file_option
def doctor_cmd(data_root) -> None:
    """Check the install (exit 1 if broken) and list which datasets, checkpoints and box files are
    present, with the command that fetches each missing one (missing ones are optional)."""
    from ..api import doctor

    checks = doctor(data_root)
    click.echo(format_checks(checks))
    broken = [c for c in checks if c.required and not c.ok]
    if broken:
        raise BrokenInstallError(f"the install is broken: {', '.join(c.what for c in broken)}")
    missing = [c for c in checks if not c.ok]
    click.echo(
        "the install works (`--data sample` runs offline)"
        + (
            f"; {len(missing)} optional file set(s) missing, each with the command that fetches it"
            if missing
            else ""
        )
    )


@click.command("make-boxes")
@click.argument("dataset")
@click.option("--data", type=click.Choice(["real", "sample"]), default="sample", show_default=True)
@click.option("--data-root", type=click.Path(path_type=Path), default=None)
@click.option("--ann", type=click.Path(path_type=Path), default=None)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output JSON (default: pseudo_detections_DATASET.json).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--jitter",
    type=click.FloatRange(min=0),
    default=0.1,
    show_default=True,
    help="Box-edge noise, as a fraction of size.",
)
@click.option(
    "--false-positives",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Random boxes per image.",
)
@click.option("--exact", is_flag=True, help="Ground-truth boxes with score 1, no noise, no false positives.")
@dataset_file_option
def make_boxes_cmd(dataset, data, data_root, ann, out, seed, jitter, false_positives, exact) -> None:
    """Write PSEUDO-detections derived from the ground truth (not a detector) for the AP protocols of
    DATASET (one with detector-box protocols, e.g. coco or lvis)."""
    from ..data.jsonio import sha256_file
    from ..data.locate import locate
    from ..data.registry import datasets, get_dataset

    if get_dataset(dataset).ap_evaluator is None:
        with_ap = ", ".join(n for n, s in datasets().items() if s.ap_evaluator)
        raise InputError(
            f"dataset {dataset} has no detector-box (AP) protocols", hint=f"those that do: {with_ap}"
        )
    from ..data.pseudo import make_pseudo_detections, write_about
    from ..engine.runfolder import write_json_atomic

    reader = locate(dataset, data, data_root, ann).open()
    dets = make_pseudo_detections(
        reader, seed=seed, jitter=jitter, false_positives=false_positives, exact=exact
    )
    kind = "exact" if exact else f"jitter{jitter:g}_fp{false_positives}_seed{seed}"
    out = out or Path(f"pseudo_detections_{dataset}_{kind}.json")
    write_json_atomic(out, dets)
    settings = {"dataset": dataset, "annotation_sha256": reader.annotation_sha256, "method": kind}
    write_about(out, sha256_file(out), settings)  # so every run with these boxes says what they are
    click.echo(f"wrote {len(dets)} pseudo-detections (derived from ground truth, not a detector) to {out}")


def register(cli: click.Group) -> None:
    for cmd in (download_group, doctor_cmd, make_boxes_cmd):
        cli.add_command(cmd)
