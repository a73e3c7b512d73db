"""``evalsuite plot``: figures from run records (and, for the qualitative figures, the masks behind them)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..paper import paper_tables
from .options import device_option, paths_argument, progress_enabled, select_options
from .report import _load


def _parse_params(items: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise InputError(f"--params expects NAME=MILLIONS, got {item!r}")
    return out


def _parse_instance(text: str) -> tuple[int, int]:
    try:
        image_id, ann_id = (int(x) for x in text.split(":"))
    except ValueError:
        raise InputError(f"--instance expects IMAGE_ID:ANN_ID, got {text!r}") from None
    return image_id, ann_id


def _only_for(kind: str, **given: object) -> None:
    """Refuse options that the chosen kind would silently ignore."""
    for option, value in given.items():
        if value not in (None, (), False):
            raise InputError(f"--{option.replace('_', '-')} does not apply to plot {kind}")


@click.command("plot")
@click.argument("kind", type=click.Choice(["speed", "clicks", "sizes", "qualitative"]))
@paths_argument
@select_options
@click.option(
    "--out",
    "outs",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="FILE.png / FILE.pdf (repeat).",
)
@click.option("--dpi", type=click.IntRange(30, 600), default=100, show_default=True)
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Choice(sorted(paper_tables())),
    help="speed: only this paper table's row of panels (repeat; default: every table the records cover).",
)
@click.option(
    "--protocol",
    "protocols",
    multiple=True,
    help="sizes: only these protocols; speed: a panel for each of these (default: each dataset's first "
    "column of every table) (repeat).",
)
@click.option(
    "--params", "params", multiple=True, metavar="NAME=MILLIONS", help="speed: parameter count override."
)
@click.option(
    "--worst",
    type=click.IntRange(1),
    default=None,
    help="qualitative: the N lowest-IoU instances (default 6), or the N images with the most errors "
    "(AP records, default 4).",
)
@click.option(
    "--best",
    type=click.IntRange(1),
    default=None,
    help="qualitative: the N highest-IoU instances, or the N images with the fewest errors (AP records).",
)
@click.option(
    "--instance",
    "instances",
    multiple=True,
    metavar="IMAGE_ID:ANN_ID",
    help="qualitative (mIoU): these instances.",
)
@click.option(
    "--image", "images", multiple=True, type=int, metavar="IMAGE_ID", help="qualitative (AP): these images."
)
@click.option(
    "--score-min",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="qualitative (AP): draw detections scoring at least this (default 0.5).",
)
@click.option(
    "--data-root", type=click.Path(path_type=Path), default=None, help="qualitative: real data root."
)
@click.option("--ann", type=click.Path(path_type=Path), default=None, help="qualitative: annotation file.")
@click.option(
    "--checkpoint", default=None, help="qualitative: checkpoint path (SHA-256 must match the record)."
)
@click.option("--trust-checkpoint", is_flag=True, help="qualitative: allow unpickling an unknown checkpoint.")
@device_option
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def plot_cmd(
    kind,
    paths,
    names,
    excludes,
    outs,
    dpi,
    tables,
    protocols,
    params,
    worst,
    best,
    instances,
    images,
    score_min,
    data_root,
    ann,
    checkpoint,
    trust_checkpoint,
    device,
    no_progress,
) -> None:
    """Figures from run records, sized for a slide: speed (accuracy vs model throughput, a panel per
    table column, one point per run), clicks (mIoU vs clicks, with NoC records' mIoU after each click),
    sizes (S/M/L bars), qualitative (masks over images).

    qualitative takes ONE run folder or record. For an mIoU record, per-instance logs hold prompts
    and IoUs but no masks, so the record's model is built again (same checkpoint SHA-256) and run on
    the logged prompt of each chosen instance. For an AP record the logged masks are drawn over a few
    images, coloured by whether they match a ground-truth mask of their category (mask IoU ≥ 0.5).
    """
    from ..report import plots

    if kind != "qualitative":
        _only_for(kind, worst=worst, best=best, instance=instances, image=images, score_min=score_min)
        _only_for(
            kind, data_root=data_root, ann=ann, checkpoint=checkpoint, trust_checkpoint=trust_checkpoint
        )
    if kind != "speed":
        _only_for(kind, table=tables, params=params)
    if kind not in ("sizes", "speed"):
        _only_for(kind, protocol=protocols)
    if kind == "qualitative":
        notes = _qualitative(
            paths,
            outs,
            dpi,
            worst,
            best,
            instances,
            images,
            score_min,
            data_root,
            ann,
            checkpoint,
            trust_checkpoint,
            device,
            no_progress,
        )
    else:
        records = _load(paths, names, excludes).records
        if kind == "speed":
            notes = plots.plot_speed(records, outs, tables, _parse_params(params), dpi, protocols).notes
        elif kind == "clicks":
            notes = plots.plot_clicks(records, outs, dpi).notes
        else:
            notes = plots.plot_sizes(records, outs, protocols, dpi).notes
    for n in notes:
        click.echo(f"note: {n}", err=True)
    for o in outs:
        click.echo(f"wrote {o}", err=True)


def _qualitative(
    paths,
    outs,
    dpi,
    worst,
    best,
    instances,
    images,
    score_min,
    data_root,
    ann,
    checkpoint,
    trust_checkpoint,
    device,
    no_progress,
) -> list[str]:
    """Re-predicted instances of an mIoU record, or the logged detections of an AP record."""
    from tqdm import tqdm

    from ..engine.devices import check_device
    from ..engine.replay import choose_rows, detection_images, repredict
    from ..report import plots
    from ..report.rules import single_record

    if len(paths) != 1:
        raise InputError("plot qualitative takes exactly one run folder or record.json")
    if sum((worst is not None, best is not None, bool(instances) or bool(images))) > 1:
        raise InputError("choose with one of --worst, --best, --instance / --image")
    record = single_record(paths[0])
    show = progress_enabled(no_progress)
    where = f"{record.name} on {record.protocol.label} ({record.dataset.name})"
    if record.protocol.task == "ap":
        if instances:
            raise InputError("--instance picks instances of mIoU records; pick AP images with --image")
        threshold = 0.5 if score_min is None else score_min

        def track(ids: list[int]):
            return tqdm(ids, desc="matching detections", unit="img", disable=not show)

        shown = detection_images(
            record, list(images), worst, best, threshold, data_root=data_root, ann=ann, track=track
        )
        how = "chosen" if images else ("best" if best else "worst")
        title = (
            f"{where}: {len(shown)} {how} images; detections scoring ≥ {threshold:g}, "
            f"matched at mask IoU ≥ 0.5"
        )
        return plots.plot_detections(shown, title, outs, dpi).notes
    if images or score_min is not None:
        raise InputError("--image / --score-min apply to AP records; pick mIoU instances with --instance")
    rows = choose_rows(record, worst=worst, best=best, keys=[_parse_instance(t) for t in instances])
    with tqdm(total=len(rows), desc="re-predicting", unit="inst", disable=not show) as bar:
        items = repredict(
            record, rows, data_root, ann, checkpoint, check_device(device or "cpu"), trust_checkpoint, bar
        )
    how = "chosen" if instances else ("best" if best else "worst")
    title = f"{where}: {len(items)} {how} instances, re-predicted"
    return plots.plot_qualitative(items, title, outs, dpi).notes


def register(cli: click.Group) -> None:
    cli.add_command(plot_cmd)
