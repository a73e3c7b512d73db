"""Commands over run records: report, export, gate, compare (``plot`` is in :mod:`.plot`).

They parse options and call :mod:`evalsuite.api` / :mod:`evalsuite.report`; user errors are
:class:`evalsuite.errors.InputError` (exit 2), a missed gate is exit 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import paths_argument, select_options

_DEFAULT_RUNS = Path("runs")


def _load(paths: tuple[Path, ...], names: tuple[str, ...] = (), excludes: tuple[str, ...] = ()):
    """The records a command reads, by the report's rule; what is left out is named on stderr."""
    import warnings

    from ..api import load

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        results = load(paths or (_DEFAULT_RUNS,), names=list(names) or None, exclude=list(excludes) or None)
    for e in results.excluded:
        click.echo(f"note: left out {e.line()}", err=True)
    return results


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)


@click.command("report")
@paths_argument
@select_options
@click.option(
    "--table",
    type=click.Choice(["4", "5", "noc", "all"], case_sensitive=False),
    default="all",
    show_default=True,
    help="Which table: the paper's Table 4 / 5, evalsuite's NoC table, or every table the records have.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "latex", "csv", "json", "html"]),
    default="md",
    show_default=True,
    help="Output format (json: schema evalsuite-report, docs/json.md).",
)
@click.option(
    "--columns",
    type=click.Choice(["all", "paper"]),
    default="all",
    show_default=True,
    help="all: after the paper's columns, the rest of each AP record's summary (AP50, AP75, AR@k, ARS/M/L); "
    "paper: the paper's columns only.",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write to FILE instead of stdout.")
@click.option(
    "--fragment", is_flag=True, help="LaTeX: only the table environment (needs booktabs), no document."
)
@click.option(
    "--paper-rows", is_flag=True, help="Add the paper's rows for models that were not measured (quoted)."
)
@click.option(
    "--labels",
    type=click.Choice(["paper", "id"]),
    default="paper",
    show_default=True,
    help="Row labels: the paper's display names, or run names / model ids.",
)
def report_cmd(paths, names, excludes, table, fmt, columns, out, fragment, paper_rows, labels) -> None:
    """Table 4 / Table 5 (and the NoC table) from run records (PATHS: record.json files or folders,
    searched recursively; default ./runs), each measured value beside the paper's with Δ = measured −
    paper where the comparison is fair (the paper's data, weights, options and precision; a note says
    why elsewhere).

    Rows are runs by name (variants of one model are rows of their own). Runs that measured different
    things (another image set, seed, annotation file, detections) make tables of their own; records
    that cannot be shown (two disagreeing records of one name and protocol, a name used by two models)
    are left out and named. --name / --exclude choose runs by name.
    """
    results = _load(paths, names, excludes)
    view = results.table(table, paper_rows=paper_rows, labels=labels, columns=columns)
    _emit(view.render(fmt, standalone=not fragment), out)


@click.command("export")
@click.argument("kind", type=click.Choice(["per-category", "per-size"]))
@paths_argument
@select_options
@click.option("--out", type=click.Path(path_type=Path), default=None, help="CSV file (default: stdout).")
def export_cmd(kind, paths, names, excludes, out) -> None:
    """Per-category or per-size numbers of each record as long-form CSV (one value per row).

    per-category: mIoU per category (box / click protocols), AP / APS / APM / APL per category (AP
    protocols); a record that has none (NoC, or an AP record written before they were recorded) is
    named on stderr.
    """
    from ..report.render import to_csv

    frame = _load(paths, names, excludes).export(kind, format="frame")
    for note in frame.attrs.get("notes", []):
        click.echo(f"note: {note}", err=True)
    _emit(to_csv(frame), out)


@click.command("gate")
@click.argument("args", nargs=-1, type=click.Path(path_type=Path), metavar="GATES_FILE [PATHS]...")
@click.option(
    "--failures-only", is_flag=True, help="Print only the rows that missed (exit status unchanged)."
)
@click.option(
    "--write",
    "write",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE",
    help="Write a gates file from the run records in PATHS (all arguments are PATHS) instead of checking.",
)
@click.option(
    "--tolerance",
    "tolerances",
    multiple=True,
    metavar="VALUE|METRIC=VALUE",
    help="--write: tolerance of every metric, or of one (repeatable), e.g. --tolerance 1e-6 "
    "--tolerance mIoU=0.05.",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="--write: gate only this metric (repeatable; default: every metric of each record).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="Checking: a Markdown table, or JSON (schema evalsuite-gate, docs/json.md); exit status unchanged.",
)
def gate_cmd(args, failures_only, write, tolerances, metrics, fmt) -> None:
    """Check the expected values of GATES_FILE (TOML [[gate]] rows) against run records in PATHS
    (default ./runs); prints expected / actual / Δ per row, exits 1 on any miss.

    With --write FILE, write such a file instead, from the records in PATHS (every argument is a
    path): one row per metric of each record (or per --metric), the tolerances given with
    --tolerance, and a header that documents the commands that made the records. The file is
    checked against those records before it is written.
    """
    from ..report.gates import GateFailure, check_gates, load_gates, render_results
    from ..report.render_gates import gate_document
    from ..report.render_json import dumps

    if write is not None:
        if failures_only:
            raise click.UsageError("--failures-only is for checking, not with --write")
        if fmt != "md":
            raise click.UsageError("--format is for checking; --write writes TOML")
        _write_gates(write, args, tolerances, metrics)
        return
    if tolerances or metrics:
        raise click.UsageError("--tolerance and --metric go with --write FILE")
    if not args:
        raise click.UsageError("missing GATES_FILE (or --write FILE to write one)")
    gates_file, *paths = args
    gates = load_gates(gates_file)
    results = check_gates(gates, _load(tuple(paths)).records)
    if fmt == "json":
        doc = gate_document(results)
        if failures_only:
            doc["gates"] = [g for g in doc["gates"] if not g["passed"]]
        click.echo(dumps(doc), nl=False)
    else:
        click.echo(render_results(results, failures_only=failures_only), nl=False)
    failed = [r for r in results if not r.passed]
    if failed:
        first = failed[0]
        raise GateFailure(
            f"{len(failed)} of {len(results)} gates failed (first: {first.gate.model} {first.gate.protocol} "
            f"{first.gate.metric}: {first.status})"
        )


def _write_gates(out: Path, paths: tuple[Path, ...], tolerances, metrics) -> None:
    import shlex

    from ..errors import InputError
    from ..report.gates import Tolerances, check_gates, load_gates, write_gates

    records = _load(paths).records
    tol = Tolerances.parse(tolerances)
    words = ["evalsuite", "gate", "--write", str(out)]
    words += [w for t in tolerances for w in ("--tolerance", t)]
    words += [w for m in metrics for w in ("--metric", m)]
    words += [str(p) for p in paths]
    text, notes = write_gates(records, tol, metrics, written_by=shlex.join(words))
    for note in notes:
        click.echo(f"note: {note}", err=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    try:  # the file must hold for the records it was written from
        missed = [r for r in check_gates(load_gates(tmp), records) if not r.passed]
        if missed:
            raise InputError(f"the written gates do not hold for their own records ({missed[0].status})")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    rows = text.count("\n  { ")
    click.echo(f"wrote {out}: {rows} gates from {len(records)} records", err=True)


@click.command("compare")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option(
    "--resamples",
    type=click.IntRange(100),
    default=None,
    help="Bootstrap resamples (default: 10000 for mIoU, 1000 for AP; the output says how many).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "csv", "json"]),
    default="md",
    show_default=True,
    help="json: schema evalsuite-compare (docs/json.md).",
)
@click.option(
    "--ann",
    type=click.Path(path_type=Path),
    default=None,
    help="AP: the annotation file, where the recorded path is not on this machine (SHA-256 checked).",
)
@select_options
def compare_cmd(a, b, resamples, seed, confidence, fmt, ann, names, excludes) -> None:
    """Paired bootstrap CI of the difference A − B, overall and by size (mIoU, AP and NoC records).

    A and B are run folders or records of one protocol on the same data: two models, two
    checkpoints of one model, or one model with an option changed. Refused, naming each field that
    differs, when they did not measure the same thing (protocol version, options that change what
    is measured, annotation file, images / --limit, detections file, random-click seed).

    mIoU protocols: over instances, joined on (image_id, ann_id) (they must be the same set). NoC
    protocols: over instances, of the clicks each needed to reach IoU 85 / 90 % (the cap where never). AP
    protocols: over images — each resample draws the image ids with replacement (the same draw for A
    and B) and recomputes both APs (AP, APS, APM, APL; LVIS also APr, APc, APf) from the official
    evaluator's per-image matches of the masks in each run's segm_results.json, exactly as its
    accumulate step would on the drawn images.
    """
    from ..api import compare_records
    from ..report.rules import single_record

    ra, rb = (single_record(p, list(names) or None, list(excludes) or None) for p in (a, b))
    _emit(compare_records(ra, rb, resamples, seed, confidence, fmt, ann), None)


def register(cli: click.Group) -> None:
    for cmd in (report_cmd, export_cmd, gate_cmd, compare_cmd):
        cli.add_command(cmd)
