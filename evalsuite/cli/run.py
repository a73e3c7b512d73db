"""``evalsuite run``, ``noc`` and ``reproduce``: options into a RunConfig, then the engine."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from .options import (
    data_options,
    execution_options,
    name_option,
    out_option,
    progress_enabled,
    weights_options,
)


def _ap_backend(ap_backend: str | None, evaluator: str | None) -> str:
    if evaluator is not None:
        warnings.warn("--evaluator is deprecated: use --ap-backend", FutureWarning, stacklevel=2)
        click.echo("evalsuite: --evaluator is deprecated; use --ap-backend", err=True)
        if ap_backend is not None and ap_backend != evaluator:
            raise click.UsageError("--evaluator and --ap-backend disagree")
    return ap_backend or evaluator or "official"


def _config(
    protocols,
    model,
    name,
    data,
    data_root,
    ann,
    checkpoint,
    weights,
    trust_checkpoint,
    out,
    limit,
    seed,
    device,
    sets,
    boxes,
    skip_bad,
    ap_backend,
    refine,
    precision,
    workers,
    image_batch,
    overwrite,
    no_progress,
):
    from ..engine import RunConfig
    from ..engine.devices import default_device
    from ..protocols import parse_override

    overrides = dict(parse_override(s) for s in sets)
    if refine is not None:
        overrides["refine"] = refine
    return RunConfig(
        protocols=list(protocols),
        model=model,
        name=name,
        data=data,
        data_root=data_root,
        ann=ann,
        checkpoint=str(checkpoint) if checkpoint else None,
        weights=weights,
        trust_checkpoint=trust_checkpoint,
        out=out,
        limit=limit,
        seed=seed,
        device=device or default_device(),
        overrides=overrides,
        precision=precision,
        workers=workers,
        image_batch=image_batch,
        overwrite=overwrite,
        boxes=boxes,
        skip_bad=skip_bad,
        ap_backend=ap_backend,
        progress=progress_enabled(no_progress),
    )


def _ap_options() -> tuple:
    """Options that only AP protocols read (not offered by `noc`)."""
    return (
        click.option(
            "--boxes",
            type=click.Path(path_type=Path),
            default=None,
            help="Detections (COCO results JSON) for coco-vitdet / lvis-vitdet.",
        ),
        click.option(
            "--ap-backend",
            type=click.Choice(["official", "faster"]),
            default=None,
            help="AP protocols: pycocotools / lvis (default), or faster-coco-eval (same numbers).",
        ),
        click.option("--evaluator", type=click.Choice(["official", "faster"]), default=None, hidden=True),
        click.option(
            "--refine",
            type=click.IntRange(0, 1),
            default=None,
            help="AP protocols: 1 = SAM's mask-refinement iteration (same as --set refine=1).",
        ),
    )


def _run_options(fn, ap: bool = True):
    for decorator in reversed(
        (
            click.option("--model", "-m", required=True, help="Registered model name (see `evalsuite ls`)."),
            name_option,
            data_options,
            weights_options,
            out_option,
            click.option(
                "--seed", type=int, default=0, show_default=True, help="Seed of the random click rule."
            ),
            click.option(
                "--set",
                "sets",
                multiple=True,
                metavar="KEY=VALUE",
                help="Change a protocol option, e.g. click_rule=sam, include_crowd=true, mask_choice=single.",
            ),
            click.option(
                "--skip-bad",
                is_flag=True,
                help="Skip bad images, annotations and detections (counted in the record); default: stop.",
            ),
            *(_ap_options() if ap else ()),
            execution_options,
            click.option(
                "--overwrite", is_flag=True, help="Discard an existing run with different settings in OUT."
            ),
            click.option(
                "--format",
                "fmt",
                type=click.Choice(["md", "json"]),
                default="md",
                show_default=True,
                help="The closing summary: Markdown tables, or JSON (schema evalsuite-run-summary; "
                "docs/json.md).",
            ),
        )
    ):
        fn = decorator(fn)
    return fn


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
@_run_options
def run_cmd(
    protocols,
    model,
    name,
    data,
    data_root,
    ann,
    checkpoint,
    weights,
    trust_checkpoint,
    out,
    seed,
    sets,
    boxes,
    skip_bad,
    ap_backend,
    evaluator,
    refine,
    device,
    precision,
    limit,
    workers,
    image_batch,
    no_progress,
    overwrite,
    fmt,
) -> None:
    """Evaluate MODEL on one or more PROTOCOLS (e.g. coco-box coco-1click)."""
    from ..engine import run

    cfg = _config(
        protocols,
        model,
        name,
        data,
        data_root,
        ann,
        checkpoint,
        weights,
        trust_checkpoint,
        out,
        limit,
        seed,
        device,
        sets,
        boxes,
        skip_bad,
        _ap_backend(ap_backend, evaluator),
        refine,
        precision,
        workers,
        image_batch,
        overwrite,
        no_progress,
    )
    outcomes = run(cfg)
    if not outcomes:  # a torchrun process other than 0: process 0 reports
        return
    _echo_summary(outcomes, fmt)


def _noc_options(fn):
    return _run_options(fn, ap=False)


@click.command("noc")
@click.option(
    "--dataset",
    default=None,
    help="A registered dataset with a DATASET-noc20 protocol (default: that of the first column of "
    "EfficientSAM's Table 4, COCO; `evalsuite ls datasets`).",
)
@_noc_options
def noc_cmd(
    dataset,
    model,
    name,
    data,
    data_root,
    ann,
    checkpoint,
    weights,
    trust_checkpoint,
    out,
    seed,
    sets,
    skip_bad,
    device,
    precision,
    limit,
    workers,
    image_batch,
    no_progress,
    overwrite,
    fmt,
) -> None:
    """NoC@85/90 with SAM's clicker: the same as `evalsuite run DATASET-noc20` (records saved under OUT)."""
    from ..engine import run
    from ..paper import paper_table
    from ..protocols import get_protocol

    dataset = dataset or get_protocol(paper_table("4").protocols[0]).dataset
    cfg = _config(
        [f"{dataset}-noc20"],
        model,
        name,
        data,
        data_root,
        ann,
        checkpoint,
        weights,
        trust_checkpoint,
        out,
        limit,
        seed,
        device,
        sets,
        None,
        skip_bad,
        "official",
        None,
        precision,
        workers,
        image_batch,
        overwrite,
        no_progress,
    )
    outcomes = run(cfg)
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
@name_option
@weights_options
@data_options
@click.option(
    "--boxes-coco", type=click.Path(path_type=Path), default=None, help="Detections for coco-vitdet."
)
@click.option(
    "--boxes-lvis", type=click.Path(path_type=Path), default=None, help="Detections for lvis-vitdet."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Tables and plots go here; runs under OUT/runs/.",
)
@execution_options
@click.option(
    "--dry-run", is_flag=True, help="Print the plan, what is missing and an estimated time; run nothing."
)
def reproduce_cmd(
    which,
    models,
    name,
    checkpoint,
    weights,
    trust_checkpoint,
    data,
    data_root,
    ann,
    out,
    device,
    precision,
    limit,
    workers,
    image_batch,
    no_progress,
    dry_run,
    **boxes_given,
) -> None:
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

    # a plan may name a device this machine lacks (a GPU job planned on a laptop); a run may not
    device = plan_device(device or default_device()) if dry_run else check_device(device or default_device())
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    given = {key.removeprefix("boxes_"): path for key, path in boxes_given.items()}  # --boxes-DATASET FILE
    boxes = default_boxes(which, data, given, out, write=not dry_run)
    made = frozenset(b for b in boxes.values() if b is not None and data == "sample")
    variant = name is not None or checkpoint is not None or weights not in (None, "official")
    plan = make_plan(which, chosen, boxes, variant=variant)
    base = RunConfig(
        protocols=[],
        model="",
        name=name,
        checkpoint=None if checkpoint is None else str(checkpoint),
        weights=weights,
        trust_checkpoint=trust_checkpoint,
        data=data,
        data_root=data_root,
        ann=ann,
        out=out / "runs",
        limit=limit,
        device=device,
        precision=precision,
        workers=workers,
        image_batch=image_batch,
        progress=progress_enabled(no_progress),
    )
    missing = preflight(plan, base, made)
    if dry_run:
        for i, r in enumerate(plan.runs, 1):
            click.echo(f"[{i}/{len(plan.runs)}] {r.command(base)}")
        for s in plan.skipped:
            click.echo(f"skipped: {s}")
        for m in missing:
            click.echo(f"missing: {m}")
        device_name = next((d for d in available_devices() if d.startswith(device)), device)
        click.echo(estimate(plan, base, device_name))
        return
    if missing:
        raise InputError(
            f"{len(missing)} thing(s) missing before any run starts: " + "; ".join(missing),
            hint="`evalsuite doctor` says how to fetch each; `reproduce ... --dry-run` shows the plan",
        )
    dist_ctx, base.device = init_from_env(device)
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
