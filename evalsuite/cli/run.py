"""``evalsuite run``, ``noc`` and ``reproduce``: options into a RunConfig, then the engine.

The run options are declared once in :mod:`evalsuite.run_options`; the flags below are made from those
declarations (:func:`.options.run_option_flags`) and read back by name (:func:`.options.run_option_values`),
so no command lists them one by one.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click

from .. import run_options as ro
from .options import dataset_file_option, run_option_flags, run_option_values


def _ap_backend(ap_backend: str | None, evaluator: str | None) -> str:
    if evaluator is not None:
        warnings.warn("--evaluator is deprecated: use --ap-backend", FutureWarning, stacklevel=2)
        click.echo("evalsuite: --evaluator is deprecated; use --ap-backend", err=True)
        if ap_backend is not None and ap_backend != evaluator:
            raise click.UsageError("--evaluator and --ap-backend disagree")
    return ap_backend or evaluator or "official"


def _config(command: str, protocols: list[str], params: dict[str, Any]):
    """The RunConfig of a ``run`` / ``noc`` command line."""
    from ..engine import RunConfig

    values = run_option_values(command, params)
    model = values.pop("model")
    return RunConfig.from_options(list(protocols), model, values)


_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="The closing summary: Markdown tables, or JSON (schema evalsuite-run-summary; docs/json.md).",
)
_evaluator_option = click.option(
    "--evaluator", type=click.Choice(["official", "faster"]), default=None, hidden=True
)


def _echo_summary(outcomes, fmt: str) -> None:
    """The closing summary: one table per metric set and the record paths, or one JSON document."""
    from ..report.render_json import dumps, summary_document
    from ..report.summary import summary_table

    records = [o.record for o in outcomes]
    if fmt == "json":
        click.echo(dumps(summary_document(records)), nl=False)
        return
    click.echo(summary_table(records))
    for o in outcomes:
        click.echo(f"record: {o.record_path}")


@click.command("run")
@click.argument("protocols", nargs=-1, required=True)
@run_option_flags(ro.RUN)
@dataset_file_option
@_evaluator_option
@_format_option
def run_cmd(protocols, fmt, evaluator, **params) -> None:
    """Evaluate MODEL on one or more PROTOCOLS (e.g. coco-box coco-1click)."""
    from ..engine import run

    params["ap_backend"] = _ap_backend(params.get("ap_backend"), evaluator)
    outcomes = run(_config(ro.RUN, protocols, params))
    if not outcomes:  # a torchrun process other than 0: process 0 reports
        return
    _echo_summary(outcomes, fmt)


@click.command("noc")
@click.option(
    "--dataset",
    default=None,
    help="A registered dataset with a DATASET-noc20 protocol (default: that of the first column of "
    "EfficientSAM's Table 4, COCO; `evalsuite ls datasets`).",
)
@run_option_flags(ro.NOC)
@dataset_file_option
@_format_option
def noc_cmd(dataset, fmt, **params) -> None:
    """NoC@85/90 with SAM's clicker: the same as `evalsuite run DATASET-noc20` (records saved under OUT)."""
    from ..engine import run
    from ..paper import paper_table
    from ..protocols import get_protocol

    dataset = dataset or get_protocol(paper_table("4").protocols[0]).dataset
    outcomes = run(_config(ro.NOC, [f"{dataset}-noc20"], params))
    if outcomes:
        _echo_summary(outcomes, fmt)


@click.command("reproduce")
@click.argument("which", type=click.Choice(["table4", "table5", "all"]))
@click.option(
    "--models",
    default=None,
    metavar="A,B,...",
    help="Models to run, comma separated (default: the paper's rows of each table).",
)
@click.option(
    "--boxes-coco", type=click.Path(path_type=Path), default=None, help="Detections for coco-vitdet."
)
@click.option(
    "--boxes-lvis", type=click.Path(path_type=Path), default=None, help="Detections for lvis-vitdet."
)
@run_option_flags(ro.REPRODUCE)
@dataset_file_option
@click.option(
    "--dry-run", is_flag=True, help="Print the plan, what is missing and an estimated time; run nothing."
)
def reproduce_cmd(which, models, dry_run, **params) -> None:
    """Every run Table 4 / Table 5 need, then their tables and plots (resumable; a re-run does no work)."""
    from ..engine import RunConfig
    from ..engine.devices import available_devices, check_device, default_device
    from ..engine.distributed import init_from_env, shutdown
    from ..engine.reproduce import (
        default_boxes,
        estimate,
        execute,
        make_plan,
        plan_device,
        preflight,
        render_outputs,
    )
    from ..errors import InputError
    from ..report.summary import steps_table

    # --boxes-DATASET FILE: detections for that dataset's detector-box protocol
    boxes_given = {k.removeprefix("boxes_"): params.pop(k) for k in list(params) if k.startswith("boxes_")}
    values = run_option_values(ro.REPRODUCE, params)
    given = params.get("device") or default_device()
    # a plan may name a device this machine lacks (a GPU job planned on a laptop); a run may not
    values["device"] = plan_device(given) if dry_run else check_device(given)
    out: Path = values.pop("out")
    data = values["data"]
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    given = {key.removeprefix("boxes_"): path for key, path in boxes_given.items()}  # --boxes-DATASET FILE
    boxes = default_boxes(which, data, given, out, write=not dry_run)
    made = frozenset(b for b in boxes.values() if b is not None and data == "sample")
    variant = (
        values.get("name") is not None
        or values.get("checkpoint") is not None
        or values.get("weights") not in (None, "official")
    )
    plan = make_plan(which, chosen, boxes, variant=variant)
    base = RunConfig.from_options([], "", {**values, "out": out / "runs"})
    missing = preflight(plan, base, made)
    if dry_run:
        for i, r in enumerate(plan.runs, 1):
            click.echo(f"[{i}/{len(plan.runs)}] {r.command(base)}")
        for s in plan.skipped:
            click.echo(f"skipped: {s}")
        for m in missing:
            click.echo(f"missing: {m}")
        device_name = next((d for d in available_devices() if d.startswith(base.device)), base.device)
        click.echo(estimate(plan, base, device_name))
        return
    if missing:
        raise InputError(
            f"{len(missing)} thing(s) missing before any run starts: " + "; ".join(missing),
            hint="`evalsuite doctor` says how to fetch each; `reproduce ... --dry-run` shows the plan",
        )
    dist_ctx, base.device = init_from_env(base.device)
    try:

        def header(i: int, n: int, r) -> None:
            if dist_ctx.is_main:
                click.echo(f"[{i}/{n}] {r.model} on {r.family.upper()}: {' '.join(r.protocols)}", err=True)

        steps = execute(plan, base, on_step=header)
        if dist_ctx.is_main:
            outcomes = [o for s in steps for o in s.outcomes]
            for path in render_outputs(outcomes, which, out):
                click.echo(f"wrote {path}")
            click.echo(steps_table([s.summary() for s in steps]))
    finally:
        shutdown(dist_ctx)


def register(cli: click.Group) -> None:
    for cmd in (run_cmd, noc_cmd, reproduce_cmd):
        cli.add_command(cmd)
