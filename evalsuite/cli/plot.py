"""``evalsuite plot``: figures from run records (and, for the qualitative grid, re-predicted masks)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from .options import device_option, paths_argument, progress_enabled
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


@click.command("plot")
@click.argument("kind", type=click.Choice(["speed", "clicks", "sizes", "qualitative"]))
@paths_argument
@click.option(
    "--out",
    "outs",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="FILE.png / FILE.pdf (repeat).",
)
@click.option("--dpi", type=click.IntRange(30, 600), default=100, show_default=True)
@click.option("--protocol", "protocols", multiple=True, help="speed / sizes: only these protocols (repeat).")
@click.option(
    "--params", "params", multiple=True, metavar="NAME=MILLIONS", help="speed: parameter count override."
)
@click.option(
    "--worst",
    type=click.IntRange(1),
    default=None,
    help="qualitative: the N lowest-IoU instances (default 6).",
)
@click.option(
    "--best", type=click.IntRange(1), default=None, help="qualitative: the N highest-IoU instances."
)
@click.option("--instance", "instances", multiple=True, metavar="IMAGE_ID:ANN_ID", help="qualitative: these.")
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
    outs,
    dpi,
    protocols,
    params,
    worst,
    best,
    instances,
    data_root,
    ann,
    checkpoint,
    trust_checkpoint,
    device,
    no_progress,
) -> None:
    """Figures from run records: speed (accuracy vs model throughput), clicks (mIoU vs clicks),
    sizes (S/M/L bars), qualitative (image + prompt, ground truth, re-predicted mask).

    qualitative takes ONE mIoU run folder or record: per-instance logs hold prompts and IoUs but no
    masks, so the record's model is built again (same checkpoint SHA-256) and run on the logged
    prompt of each chosen instance.
    """
    from ..report import plots

    if kind == "qualitative":
        from ..engine.devices import check_device
        from ..engine.replay import choose_rows, repredict
        from ..report.rules import single_record

        if len(paths) != 1:
            raise InputError("plot qualitative takes exactly one run folder or record.json")
        if sum((worst is not None, best is not None, bool(instances))) > 1:
            raise InputError("choose instances with one of --worst, --best, --instance")
        record = single_record(paths[0])
        rows = choose_rows(record, worst=worst, best=best, keys=[_parse_instance(t) for t in instances])
        from tqdm import tqdm

        with tqdm(
            total=len(rows), desc="re-predicting", unit="inst", disable=not progress_enabled(no_progress)
        ) as bar:
            items = repredict(
                record, rows, data_root, ann, checkpoint, check_device(device or "cpu"), trust_checkpoint, bar
            )
        how = "chosen" if instances else ("best" if best else "worst")
        title = (
            f"{record.name} on {record.protocol.label} ({record.dataset.name}): "
            f"{len(items)} {how} instances, re-predicted"
        )
        notes = plots.plot_qualitative(items, title, outs, dpi)
    else:
        records = _load(paths).records
        if kind == "speed":
            notes = plots.plot_speed(records, outs, protocols, _parse_params(params), dpi)
        elif kind == "clicks":
            notes = plots.plot_clicks(records, outs, dpi)
        else:
            notes = plots.plot_sizes(records, outs, protocols, dpi)
    for n in notes:
        click.echo(f"note: {n}", err=True)
    for o in outs:
        click.echo(f"wrote {o}", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(plot_cmd)
