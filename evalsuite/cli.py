"""Command-line interface (click). Parses options into a RunConfig and calls the evaluator; no logic."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import click

from . import __version__
from .errors import EvalsuiteError


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def results_table(outcomes) -> str:
    """Markdown tables of measured metrics: one row per protocol, one table per metric set."""
    groups: dict[tuple[str, ...], list] = {}
    for o in outcomes:
        groups.setdefault(tuple(o.record["metrics"]), []).append(o)
    tables = []
    for metrics, group in groups.items():
        head = ["protocol", "model", "scored", *metrics]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for o in group:
            rec = o.record
            counts = rec["counts"]
            scored = counts.get("instances", counts.get("detections_scored", 0))
            cells = [rec["protocol"]["id"], rec["model"]["name"], str(scored)]
            lines.append("| " + " | ".join(cells + [_fmt(rec["metrics"].get(m)) for m in metrics]) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evalsuite")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Zero-shot evaluation of promptable segmentation models (EfficientSAM Table 4 / 5 protocols)."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("protocols", nargs=-1, required=True)
@click.option("--model", "-m", required=True, help="Registered model name (see `evalsuite ls`).")
@click.option(
    "--data",
    type=click.Choice(["real", "sample"]),
    default="real",
    show_default=True,
    help="Real COCO/LVIS, or the small sample bundled with evalsuite.",
)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder holding annotations/ and the image folders (default: $EVALSUITE_DATA or ./datasets/coco).",
)
@click.option(
    "--ann", type=click.Path(path_type=Path), default=None, help="Annotation file (overrides the default)."
)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Model checkpoint file (default: the official file in the cache, see `evalsuite download`).",
)
@click.option(
    "--trust-checkpoint",
    is_flag=True,
    help="Allow unpickling a checkpoint whose SHA-256 evalsuite does not know (runs code from the file).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Output folder; each run goes to OUT/MODEL/PROTOCOL/.",
)
@click.option("--limit", type=int, default=None, help="Evaluate only the first N images (by id).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random click rule.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a protocol option, e.g. click_rule=sam, include_crowd=true, mask_choice=oracle.",
)
@click.option(
    "--boxes",
    type=click.Path(path_type=Path),
    default=None,
    help="Detections (COCO results JSON) for coco-vitdet / lvis-vitdet.",
)
@click.option(
    "--skip-bad", is_flag=True, help="Skip invalid detections (counted in the record) instead of failing."
)
@click.option(
    "--evaluator",
    type=click.Choice(["official", "faster"]),
    default="official",
    show_default=True,
    help="AP backend: pycocotools / lvis, or faster-coco-eval (same numbers).",
)
@click.option(
    "--refine",
    type=click.IntRange(0, 1),
    default=None,
    help="AP protocols: 1 = SAM's mask-refinement iteration (same as --set refine=1).",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "tf32", "bf16"]),
    default="fp32",
    show_default=True,
    help="fp32 reproduces the official arithmetic; tf32/bf16 are faster on GPUs (recorded).",
)
@click.option(
    "--workers", type=int, default=None, help="Image-decoding worker processes (default: by cores)."
)
@click.option(
    "--image-batch",
    type=click.IntRange(min=1),
    default=None,
    help="Images per encoder pass (default: 8 on CUDA, 1 otherwise).",
)
@click.option("--overwrite", is_flag=True, help="Discard an existing run with different settings in OUT.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.pass_context
def run(
    ctx,
    protocols,
    model,
    data,
    data_root,
    ann,
    checkpoint,
    trust_checkpoint,
    out,
    limit,
    seed,
    device,
    sets,
    boxes,
    skip_bad,
    evaluator,
    refine,
    precision,
    workers,
    image_batch,
    overwrite,
    no_progress,
):
    """Evaluate MODEL on one or more PROTOCOLS (e.g. coco-box coco-1click)."""
    from .evaluator import RunConfig
    from .evaluator import run as run_eval
    from .protocols import parse_override

    cfg = RunConfig(
        protocols=list(protocols),
        model=model,
        data=data,
        data_root=data_root,
        ann=ann,
        checkpoint=str(checkpoint) if checkpoint else None,
        trust_checkpoint=trust_checkpoint,
        out=out,
        limit=limit,
        seed=seed,
        device=device or _default_device(),
        overrides={**dict(parse_override(s) for s in sets), **({} if refine is None else {"refine": refine})},
        precision=precision,
        workers=workers,
        image_batch=image_batch,
        overwrite=overwrite,
        boxes=boxes,
        skip_bad=skip_bad,
        evaluator=evaluator,
        progress=not no_progress and sys.stderr.isatty(),
    )
    outcomes = run_eval(cfg)
    if not outcomes:  # a torchrun process other than 0: process 0 reports
        return
    click.echo(results_table(outcomes))
    for o in outcomes:
        click.echo(f"record: {o.record_path}")


@cli.command("ls")
def ls() -> None:
    """List protocols (with versions and options) and models."""
    from .models.registry import get_spec, model_names
    from .protocols import load_protocols

    click.echo("Protocols:")
    for p in load_protocols().values():
        opts = ", ".join(f"{k}={v}" for k, v in p.options.items())
        click.echo(f"  {p.id:<16} {p.summary}\n  {'':<16} options: {opts}")
    click.echo("\nModels:")
    for name in model_names():
        try:
            summary = get_spec(name).summary
        except Exception as e:  # a broken third-party plugin must not hide the others
            summary = f"(failed to load: {e})"
        click.echo(f"  {name:<16} {summary}")


@cli.group()
def download() -> None:
    """Download official files: checkpoints and box files into the cache ($EVALSUITE_HOME, default
    ~/.cache/evalsuite), datasets into a data root."""


@download.command("weights")
@click.argument("models", nargs=-1, required=True)
@click.option("--dest", type=click.Path(path_type=Path), default=None, help="Folder (default: the cache).")
def download_weights_cmd(models, dest) -> None:
    """Official checkpoints of MODELS (resumable, SHA-256 checked)."""
    from .models.checkpoints import download_weights
    from .models.registry import get_spec

    for name in models:
        get_spec(name)  # unknown names fail with a 'did you mean' before any transfer
        path = download_weights(name, dest_dir=dest, progress=sys.stderr.isatty())
        click.echo(f"{name}: {path}")


@download.command("boxes")
@click.argument("names", nargs=-1, required=True)
@click.option("--dest", type=click.Path(path_type=Path), default=None, help="Folder (default: the cache).")
def download_boxes_cmd(names, dest) -> None:
    """Published ViTDet-H detections for coco-vitdet / lvis-vitdet (SHA-256 recorded on first download)."""
    from .boxes import download_boxes

    for name in names:
        path = download_boxes(name, dest_dir=dest, progress=sys.stderr.isatty())
        click.echo(f"{name}: {path}")


@cli.command("make-boxes")
@click.argument("dataset", type=click.Choice(["coco", "lvis"]))
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
    "--jitter", type=float, default=0.1, show_default=True, help="Box-edge noise, as a fraction of size."
)
@click.option("--false-positives", type=int, default=1, show_default=True, help="Random boxes per image.")
@click.option("--exact", is_flag=True, help="Ground-truth boxes with score 1, no noise, no false positives.")
def make_boxes(dataset, data, data_root, ann, out, seed, jitter, false_positives, exact) -> None:
    """Write PSEUDO-detections derived from the ground truth (not a detector) for the AP protocols."""
    from .boxes import make_pseudo_detections
    from .data.locate import locate
    from .records import write_json_atomic

    if jitter < 0 or false_positives < 0:
        raise click.BadParameter("--jitter and --false-positives must be >= 0")
    reader = locate(dataset, data, data_root, ann).open()
    dets = make_pseudo_detections(
        reader, seed=seed, jitter=jitter, false_positives=false_positives, exact=exact
    )
    kind = "exact" if exact else f"jitter{jitter:g}_fp{false_positives}_seed{seed}"
    out = out or Path(f"pseudo_detections_{dataset}_{kind}.json")
    write_json_atomic(out, dets)
    click.echo(f"wrote {len(dets)} pseudo-detections (derived from ground truth, not a detector) to {out}")


class _GreedyOption(click.Option):
    """An option taking every following value up to the next option: ``--models a b c``."""

    def add_to_parser(self, parser, ctx):
        result = super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is None:
                continue
            original = option.process

            def process(value, state, original=original):
                values = [value]
                while state.rargs and not state.rargs[0].startswith("-"):
                    values.append(state.rargs.pop(0))
                original(tuple(values), state)

            option.process = process
        return result


@cli.command()
@click.argument("which", type=click.Choice(["table4", "table5", "all"]))
@click.option(
    "--models",
    cls=_GreedyOption,
    type=tuple,
    default=None,
    help="Models to run (space separated; default: the paper's rows).",
)
@click.option("--data", type=click.Choice(["real", "sample"]), default="real", show_default=True)
@click.option("--data-root", type=click.Path(path_type=Path), default=None)
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
@click.option("--device", default=None)
@click.option("--precision", type=click.Choice(["fp32", "tf32", "bf16"]), default="fp32", show_default=True)
@click.option("--limit", type=int, default=None, help="Only the first N images of each dataset.")
@click.option("--workers", type=int, default=None)
@click.option("--image-batch", type=click.IntRange(min=1), default=None, help="Images per encoder pass.")
@click.option("--dry-run", is_flag=True, help="Print the plan and an estimated time; run nothing.")
def reproduce(which, models, data, data_root, boxes_coco, boxes_lvis, out, device, precision, limit, workers,
              image_batch, dry_run) -> None:  # fmt: skip
    """Every run Table 4 / Table 5 need, then their tables and plots (resumable; a re-run does no work)."""
    from .boxes import default_boxes_path
    from .distributed import init_from_env, shutdown
    from .evaluator import RunConfig
    from .reproduce import PAPER_MODELS, estimate_seconds, execute, make_plan, render_outputs

    models = list(models) if models else list(PAPER_MODELS)
    boxes = {"coco": boxes_coco, "lvis": boxes_lvis}
    if which != "table4":
        for family in ("coco", "lvis"):
            if boxes[family] is None and data == "sample":
                boxes[family] = _sample_boxes(family, out / "boxes", write=not dry_run)
            elif boxes[family] is None and default_boxes_path(f"{family}-vitdet").is_file():
                boxes[family] = default_boxes_path(f"{family}-vitdet")
    plan = make_plan(which, models, boxes)
    if dry_run:
        for r in plan.runs:
            click.echo(r.describe())
        for s in plan.skipped:
            click.echo(f"skipped: {s}")
        seconds = estimate_seconds(plan, limit)
        click.echo(
            f"estimated time: {seconds / 3600:.1f} h on one H100 (from the official code's throughput)"
            if seconds is not None
            else "estimated time: unknown for these models (no throughput figures)"
        )
        return
    dist_ctx, device = init_from_env(device or _default_device())
    try:
        base = RunConfig(
            protocols=[],
            model="",
            data=data,
            data_root=data_root,
            out=out / "runs",
            limit=limit,
            device=device,
            precision=precision,
            workers=workers,
            image_batch=image_batch,
            progress=sys.stderr.isatty(),
        )
        outcomes = execute(plan, base)
        if dist_ctx.is_main:
            for path in render_outputs(outcomes, which, out):
                click.echo(f"wrote {path}")
    finally:
        shutdown(dist_ctx)


def _sample_boxes(family: str, folder: Path, write: bool = True) -> Path:
    """Pseudo-detections for the sample (derived from the ground truth, seed 0), written once."""
    from .boxes import make_pseudo_detections
    from .data.locate import locate
    from .records import write_json_atomic

    path = folder / f"pseudo_detections_{family}_seed0.json"
    if write and not path.is_file():
        write_json_atomic(path, make_pseudo_detections(locate(family, "sample").open(), seed=0))
    return path


def _register_extensions() -> None:
    """Command groups that live in their own modules."""
    from .cli_datasets import register as register_datasets
    from .cli_report import register as register_report

    register_datasets(download, cli)
    register_report(cli)


_register_extensions()


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line and exit status 2 (1 for runtime failures)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(
        os.environ.get("EVALSUITE_DEBUG")
    )
    try:
        cli.main(args=argv, prog_name="evalsuite", standalone_mode=False)
    except EvalsuiteError as e:
        if debug:
            raise
        click.echo(f"evalsuite: error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("evalsuite: aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return 2
    except KeyboardInterrupt:
        click.echo(
            "evalsuite: interrupted; finished images are kept, re-run the same command to resume", err=True
        )
        return 130
    except OSError as e:  # the file system said no: a full disk, a read-only or unwritable folder
        if debug:
            raise
        message, code = describe_os_error(e)
        click.echo(f"evalsuite: error: {message}", err=True)
        return code
    return 0


def describe_os_error(e: OSError) -> tuple[str, int]:
    """One line and an exit status for a file-system failure outside evalsuite's own checks."""
    where = e.filename or "a file"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the device while writing {where}; finished images are kept: "
            "free some space and re-run the same command to resume",
            1,
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where} ({e.strerror}); choose a writable --out folder", 2
    if e.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return f"{where}: {e.strerror}; --out must be a folder (or a path where one can be made)", 2
    return f"{where}: {e.strerror or e}", 1


if __name__ == "__main__":
    raise SystemExit(main())
