"""Click commands over run records: report, export, plot, gate, compare, noc.

``register(cli)`` adds them to the main ``evalsuite`` group. The commands parse options and
call :mod:`evalsuite.report`; user errors are :class:`evalsuite.errors.InputError` (exit 2),
a missed gate is exit 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .errors import InputError

_PATHS = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
_DEFAULT_RUNS = Path("runs")


def _records(paths: tuple[Path, ...]):
    from .report.records import find_records

    return find_records(paths or (_DEFAULT_RUNS,))


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)


@click.command("report")
@_PATHS
@click.option(
    "--table",
    "table",
    type=click.Choice(["4", "5", "all"]),
    default="all",
    show_default=True,
    help="Which table.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "latex", "csv"]),
    default="md",
    show_default=True,
    help="Output format.",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write to FILE instead of stdout.")
@click.option(
    "--fragment", is_flag=True, help="LaTeX: only the table environment (needs booktabs), no document."
)
def report_cmd(paths, table, fmt, out, fragment) -> None:
    """Table 4 / Table 5 from run records (PATHS: record.json files or folders, searched recursively;
    default ./runs), each measured value beside the paper's with Δ = measured − paper.

    Refuses (exit 2) a column that would mix protocol versions, options, datasets or detection
    files, and two records of one model and protocol that disagree.
    """
    from .report.tables import build_table, render, table_protocols

    records = _records(paths)
    numbers = ["4", "5"] if table == "all" else [table]
    if table == "all":
        numbers = [n for n in numbers if any(r.protocol in table_protocols(n) for r in records)]
        if not numbers:
            raise InputError("none of the records belongs to Table 4 or Table 5 protocols")
    tables = [build_table(records, n) for n in numbers]
    _emit(render(tables, fmt, standalone=not fragment), out)


@click.command("export")
@click.argument("kind", type=click.Choice(["per-category", "per-size"]))
@_PATHS
@click.option("--out", type=click.Path(path_type=Path), default=None, help="CSV file (default: stdout).")
def export_cmd(kind, paths, out) -> None:
    """Per-category or per-size numbers of each record as long-form CSV (one value per row)."""
    from .report.tables import render_export

    _emit(render_export(_records(paths), kind), out)


def _parse_params(items: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise InputError(f"--params expects MODEL=MILLIONS, got {item!r}")
    return out


def _parse_instance(text: str) -> tuple[int, int]:
    try:
        image_id, ann_id = (int(x) for x in text.split(":"))
    except ValueError:
        raise InputError(f"--instance expects IMAGE_ID:ANN_ID, got {text!r}") from None
    return image_id, ann_id


@click.command("plot")
@click.argument("kind", type=click.Choice(["speed", "clicks", "sizes", "qualitative"]))
@_PATHS
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
    "--params", "params", multiple=True, metavar="MODEL=MILLIONS", help="speed: parameter count override."
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
@click.option("--device", default="cpu", show_default=True, help="qualitative: device for re-prediction.")
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
) -> None:
    """Figures from run records: speed (accuracy vs throughput), clicks (mIoU vs clicks),
    sizes (S/M/L bars), qualitative (image + prompt, ground truth, re-predicted mask).

    qualitative takes ONE mIoU run folder or record: per-instance logs hold prompts and IoUs
    but no masks, so the record's model is built again (same checkpoint SHA-256) and run on
    the logged prompt of each chosen instance.
    """
    from .report import plots

    if kind == "qualitative":
        from .report.live import choose_rows, repredict
        from .report.records import single_record

        if len(paths) != 1:
            raise InputError("plot qualitative takes exactly one run folder or record.json")
        if sum((worst is not None, best is not None, bool(instances))) > 1:
            raise InputError("choose instances with one of --worst, --best, --instance")
        record = single_record(paths[0])
        rows = choose_rows(
            record.instances(), worst=worst, best=best, keys=[_parse_instance(t) for t in instances]
        )
        items = repredict(record, rows, data_root, ann, checkpoint, device, trust_checkpoint)
        how = "chosen" if instances else ("best" if best else "worst")
        title = (
            f"{record.model} on {record.protocol_id} ({record.dataset}): "
            f"{len(items)} {how} instances, re-predicted"
        )
        notes = plots.plot_qualitative(items, title, outs, dpi)
    elif kind == "speed":
        notes = plots.plot_speed(_records(paths), outs, protocols, _parse_params(params), dpi)
    elif kind == "clicks":
        notes = plots.plot_clicks(_records(paths), outs, dpi)
    else:
        notes = plots.plot_sizes(_records(paths), outs, protocols, dpi)
    for n in notes:
        click.echo(f"note: {n}", err=True)
    for o in outs:
        click.echo(f"wrote {o}", err=True)


@click.command("gate")
@click.argument("gates_file", type=click.Path(path_type=Path))
@_PATHS
def gate_cmd(gates_file, paths) -> None:
    """Check the expected values of GATES_FILE (TOML [[gate]] rows) against run records
    (default ./runs); prints expected / actual / Δ per row, exits 1 on any miss."""
    from .report.gates import GateFailure, check_gates, load_gates, render_results

    gates = load_gates(gates_file)
    results = check_gates(gates, _records(paths))
    click.echo(render_results(results), nl=False)
    failed = [r for r in results if not r.passed]
    if failed:
        first = failed[0]
        raise GateFailure(
            f"{len(failed)} of {len(results)} gates failed (first: {first.gate.model} {first.gate.protocol} "
            f"{first.gate.metric}: {first.status})"
        )


@click.command("compare")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--resamples", type=click.IntRange(100), default=10_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md", show_default=True)
def compare_cmd(a, b, resamples, seed, confidence, fmt) -> None:
    """Paired bootstrap CI of mIoU(A) − mIoU(B) over the same instances, overall and by size.

    A and B are run folders or records of the same protocol, version and options on the same
    data; their instances are joined on (image_id, ann_id) and must be the same set.
    """
    from .report.records import single_record
    from .report.stats import SIZES, pair_instances, paired_bootstrap
    from .report.tables import write_csv

    ra, rb = single_record(a), single_record(b)
    if ra.comparable_key() != rb.comparable_key():
        raise InputError(
            f"A ({ra.protocol_id}, options_hash {ra.options_hash}, {ra.dataset}) and B ({rb.protocol_id}, "
            f"options_hash {rb.options_hash}, {rb.dataset}) are not the same protocol, options and data"
        )
    try:
        same_prompts = ra.options.get("click_rule", "random") != "sam"
        keys, ia, ib = pair_instances(ra.instances(), rb.instances(), same_prompts=same_prompts)
    except ValueError as e:
        raise InputError(f"cannot pair {ra.path} and {rb.path}: {e}") from None
    size_of = {(int(r["image_id"]), int(r["ann_id"])): r["size"] for r in ra.instances()}
    groups = [("all", list(range(len(keys))))]
    groups += [(s, [i for i, k in enumerate(keys) if size_of[k] == s]) for s in SIZES]
    rows = []
    for name, idx in groups:
        if not idx:
            continue
        res = paired_bootstrap(ia[idx], ib[idx], resamples=resamples, seed=seed, confidence=confidence)
        rows.append(
            {
                "instances": name,
                "n": str(res.n),
                "mIoU_A": f"{res.mean_a:.2f}",
                "mIoU_B": f"{res.mean_b:.2f}",
                "delta": f"{res.delta:+.2f}",
                "ci_low": f"{res.ci_low:+.2f}",
                "ci_high": f"{res.ci_high:+.2f}",
            }
        )
    if fmt == "csv":
        click.echo(write_csv(rows, list(rows[0])), nl=False)
        return
    pct = f"{confidence * 100:g}%"
    click.echo(f"A = {ra.model} ({ra.run_id})\nB = {rb.model} ({rb.run_id})\n")
    click.echo(f"| instances | n | mIoU A | mIoU B | Δ (A − B) | {pct} CI |\n|---|---:|---:|---:|---:|---|")
    for r in rows:
        click.echo(
            f"| {r['instances']} | {r['n']} | {r['mIoU_A']} | {r['mIoU_B']} | {r['delta']} | "
            f"[{r['ci_low']}, {r['ci_high']}] |"
        )
    click.echo(
        f"\n{ra.protocol_id} (options_hash {ra.options_hash}) on {ra.dataset}; paired percentile "
        f"bootstrap over instances, {resamples} resamples, seed {seed}; Δ in mIoU points."
    )


@click.command("noc")
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--dataset", type=click.Choice(["coco", "lvis"]), default="coco", show_default=True)
@click.option("--data", type=click.Choice(["real", "sample"]), default="real", show_default=True)
@click.option("--data-root", type=click.Path(path_type=Path), default=None)
@click.option("--ann", type=click.Path(path_type=Path), default=None)
@click.option("--checkpoint", default=None, help="Checkpoint (default: the official file in the cache).")
@click.option("--trust-checkpoint", is_flag=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--limit", type=int, default=None, help="Only the first N images (by id).")
@click.option("--max-clicks", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option(
    "--mask-choice", type=click.Choice(["score", "single", "oracle"]), default="score", show_default=True
)
@click.option("--include-crowd", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder for noc.json + noc.jsonl.")
def noc_cmd(
    model,
    dataset,
    data,
    data_root,
    ann,
    checkpoint,
    trust_checkpoint,
    device,
    limit,
    max_clicks,
    mask_choice,
    include_crowd,
    out,
) -> None:
    """NoC@85 / NoC@90 with SAM's click rule: clicks needed to reach 85 / 90 % IoU, capped at
    --max-clicks (an instance that never gets there counts as the cap and as a failure)."""
    from .records import write_json_atomic
    from .report.live import NocConfig, run_noc

    cfg = NocConfig(
        model=model,
        dataset=dataset,
        data=data,
        data_root=data_root,
        ann=ann,
        checkpoint=checkpoint,
        trust_checkpoint=trust_checkpoint,
        device=device,
        limit=limit,
        max_clicks=max_clicks,
        mask_choice=mask_choice,
        include_crowd=include_crowd,
    )
    summary, rows = run_noc(cfg)
    m = summary["metrics"]
    curve = summary["miou_at_click"]
    picks = sorted({1, 3, 5, max_clicks} & set(range(1, max_clicks + 1)))
    click.echo(
        "| model | dataset | instances | NoC@85 | NoC@90 | ≥cap@85 | ≥cap@90 | "
        + " | ".join(f"mIoU@{k}" for k in picks)
        + " |\n|---|---|---:|---:|---:|---:|---:|"
        + "---:|" * len(picks)
    )
    click.echo(
        f"| {model} | {summary['dataset']['name']} | {summary['counts']['instances']} | {m['NoC@85']:.2f} | "
        f"{m['NoC@90']:.2f} | {m['failures@85']} | {m['failures@90']} | "
        + " | ".join(f"{curve[k - 1]:.1f}" for k in picks)
        + " |"
    )
    if out is not None:
        write_json_atomic(out / "noc.json", summary)
        with open(out / "noc.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
        click.echo(f"wrote {out / 'noc.json'} and {out / 'noc.jsonl'}", err=True)


COMMANDS = (report_cmd, export_cmd, plot_cmd, gate_cmd, compare_cmd, noc_cmd)


def register(cli: click.Group) -> None:
    """Add the report commands to the ``evalsuite`` group."""
    for cmd in COMMANDS:
        cli.add_command(cmd)
