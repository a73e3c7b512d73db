"""``evalsuite reproduce``: every run a paper table needs, then its tables and plots.

The plan is data derived from the paper tables (``protocols/paper/*.toml``): their columns say
which protocols make each table, their rows which models (and, for SAM ViT-H in Table 5, which
protocol options: the refinement iteration). One :class:`PlannedRun` per model and dataset
family holds all the protocols that share that model's image embeddings. Running the plan calls
the ordinary engine, which resumes finished work and leaves complete runs untouched, so running
the command again does no work and rewrites no file.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data.locate import locate
from ..data.registry import get_dataset
from ..errors import EvalsuiteError, InputError
from ..fetch.boxes import default_boxes_path
from ..models import get_spec
from ..models.weights import find_checkpoint
from ..paper import paper_table
from ..protocols import get_protocol
from ..run_options import RUN_OPTIONS, command_words
from .config import RunConfig
from .loop import RunOutcome, run

TABLES = {"table4": ("4",), "table5": ("5",), "all": ("4", "5")}


@dataclass
class PlannedRun:
    """One engine call: a model, the protocols of one dataset, their boxes and options."""

    model: str
    family: str
    protocols: list[str]
    boxes: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # the paper row's options (e.g. refine=1)

    def config(self, base: RunConfig) -> RunConfig:
        """The run's settings: ``base`` with this run's protocols, model, name, boxes and options."""
        official = base.checkpoint is None and base.weights in (None, "official")
        return replace(
            base,
            protocols=list(self.protocols),
            model=self.model,
            # one row per model (its row options are in the table's notes); a variant (another
            # checkpoint, random weights) is named by the user or by its weights, never as the model
            name=base.name or (self.model if official else None),
            boxes=self.boxes,
            overrides=dict(self.overrides),
        )

    def command(self, base: RunConfig) -> str:
        """The ``evalsuite run`` command that does the same, copyable as is (its flags as declared in
        :mod:`evalsuite.run_options`)."""
        cfg = self.config(base)
        values = {o.name: cfg.option(o.name) for o in RUN_OPTIONS}
        values["model"] = self.model
        values["weights"] = None if cfg.weights == "official" else cfg.weights
        args = ["evalsuite", "run", *cfg.protocols, *command_words(values)]
        return " ".join(shlex.quote(a) for a in args)


@dataclass
class Plan:
    runs: list[PlannedRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # (model, protocol) pairs the model cannot serve


def make_plan(
    which: str, models: list[str] | None, boxes: dict[str, Path | None], variant: bool = False
) -> Plan:
    """The runs ``which`` ("table4", "table5", "all") needs: the paper's rows, or ``models``.

    ``variant``: the user names the run or brings weights (--name, --checkpoint, --weights), which
    belong to one model; refused unless ``models`` names exactly one.
    """
    if which not in TABLES:
        raise InputError(f"reproduce: expected one of {', '.join(TABLES)}, not {which!r}")
    if variant and (models is None or len(models) != 1):
        raise InputError(
            "reproduce: --name, --checkpoint and --weights describe one model's run",
            hint="name that model with --models, e.g. --models efficientsam-s",
        )
    tables = [paper_table(n) for n in TABLES[which]]
    chosen = list(models) if models else list(dict.fromkeys(m for t in tables for m in t.models))
    plan = Plan()
    for model in chosen:
        spec = get_spec(model)
        for family in table_datasets(tables):
            protocols: list[str] = []
            overrides: dict[str, Any] = {}
            for table in tables:
                row = next((r for r in table.rows if r.model == model), None)
                if models is None and row is None:
                    continue  # the paper's plan: only the tables that have this model's row
                for name in table.protocols:
                    p = get_protocol(name)
                    if p.dataset != family:
                        continue
                    if p.prompt_kind not in spec.prompt_kinds:
                        plan.skipped.append(f"{model} {name} (takes no {p.prompt_kind})")
                        continue
                    protocols.append(name)
                    if row is not None:
                        overrides.update({k: v for k, v in row.options.items() if k in p.options})
            if protocols:  # one run per model and dataset: one embedding per image serves all of them
                has_ap = any(get_protocol(p).task == "ap" for p in protocols)
                plan.runs.append(
                    PlannedRun(model, family, protocols, boxes.get(family) if has_ap else None, overrides)
                )
    return plan


def table_datasets(tables) -> list[str]:
    """The datasets of the tables' protocols, in column order."""
    return list(dict.fromkeys(get_protocol(name).dataset for t in tables for name in t.protocols))


def plan_device(text: str) -> str:
    """A device for a plan (``--dry-run``): checked for its form only (cpu, cuda, cuda:N, mps), not for
    being on this machine, so a GPU job can be planned on a laptop."""
    m = re.fullmatch(r"(cpu|cuda|mps)(?::\d+)?", text.strip().lower())
    if m is None:
        raise InputError(f"--device {text!r} is not a device name (cpu, cuda, cuda:N or mps)")
    return m.group(0)


def preflight(plan: Plan, base: RunConfig, made: frozenset[Path] = frozenset()) -> list[str]:
    """What is missing for the plan (data, checkpoints, detection files), before any run starts;
    ``made``: files the plan writes itself before its runs (the sample's pseudo-detections)."""
    missing: list[str] = []
    for family in sorted({r.family for r in plan.runs}):
        try:
            locate(family, base.data, base.data_root, base.ann)
        except EvalsuiteError as e:
            missing.append(f"{family.upper()} data: {e.message}")
    families = sorted({r.family for r in plan.runs})
    if base.ann is not None and len(families) > 1:
        raise InputError(
            "reproduce: --ann names one annotation file, but the plan runs on "
            + " and ".join(f.upper() for f in families),
            hint="use --data-root with both datasets, or `evalsuite run` per dataset with its --ann",
        )
    if base.checkpoint is not None and not Path(base.checkpoint).is_file():
        missing.append(f"checkpoint {base.checkpoint}: no such file")
    for model in dict.fromkeys(r.model for r in plan.runs):
        spec = get_spec(model)
        if spec.needs_weights and base.checkpoint is None and base.weights in (None, "official"):
            try:
                find_checkpoint(spec)
            except EvalsuiteError as e:
                missing.append(f"{model} weights: {e.message}")
    for r in plan.runs:
        ap = [p for p in r.protocols if get_protocol(p).task == "ap"]
        if not ap or (r.boxes is not None and (Path(r.boxes).is_file() or Path(r.boxes) in made)):
            continue
        if r.boxes is None or Path(r.boxes) == default_boxes_path(ap[0]):
            missing.append(
                f"{ap[0]} detections for {r.model}: `evalsuite download boxes {ap[0]}`, "
                f"or --boxes-{r.family} FILE"
            )
        else:
            missing.append(f"{ap[0]} detections: {r.boxes} not found")
    return list(dict.fromkeys(missing))


def estimate(plan: Plan, base: RunConfig, device_name: str) -> str:
    """A rough time for the plan, or why there is none (never an H100 figure for another device)."""
    if not base.device.startswith("cuda"):
        return f"estimated time: unknown on {device_name} (the only throughput figures are of an H100)"
    total = 0.0
    for r in plan.runs:
        rate = get_spec(r.model).throughput_hint
        if rate is None:
            return f"estimated time: unknown (no throughput figure for {r.model})"
        if base.data == "sample":
            n = len(locate(r.family, "sample").open().image_ids())
        elif (known := get_dataset(r.family).images) is not None:
            n = known
        else:
            return f"estimated time: unknown (the size of {r.family} is not declared)"
        total += min(base.limit or n, n) / rate
    return (
        f"estimated time: {total / 3600:.2f} h if {device_name} runs like one H100 "
        "(from the official code's throughput, ../shared/PERFORMANCE.md; a rough guide)"
    )


@dataclass
class StepResult:
    step: int
    run: PlannedRun
    outcomes: list[RunOutcome]
    seconds: float
    started: float = 0.0  # time.time() when the step began

    def did_work(self, outcome: RunOutcome) -> bool:
        """Whether this step wrote the outcome's record (a finished run is left untouched: its record
        still tells the session that made it)."""
        path = outcome.record_path
        return path is None or not path.is_file() or path.stat().st_mtime >= self.started - 1.0

    def summary(self) -> dict[str, Any]:
        """One row of the closing table (a step that found its runs finished did no work: 0 images)."""
        done = sum(o.record.execution.images_this_session for o in self.outcomes[:1] if self.did_work(o))
        return {
            "step": self.step,
            "model": self.run.model,
            "dataset": self.run.family.upper(),
            "protocols": " ".join(self.run.protocols),
            "images this session": done,
            "seconds": round(self.seconds, 1),
            "records": len(self.outcomes),
        }


def sample_boxes(family: str, folder: Path, write: bool = True) -> Path:
    """Pseudo-detections for the sample (derived from the ground truth, seed 0), written once."""
    from ..data.pseudo import make_pseudo_detections
    from .runfolder import write_json_atomic

    path = folder / f"pseudo_detections_{family}_seed0.json"
    if write and not path.is_file():
        write_json_atomic(path, make_pseudo_detections(locate(family, "sample").open(), seed=0))
    return path


def default_boxes(
    which: str, data: str, given: dict[str, Path | None], out: Path, write: bool
) -> dict[str, Path | None]:
    """The detection files of a plan: given ones, the sample's pseudo-detections, or the cached ViTDet-H."""
    boxes = dict(given)
    ap = [get_protocol(p) for t in TABLES[which] for p in paper_table(t).protocols]
    for protocol in dict.fromkeys(p.name for p in ap if p.task == "ap"):
        family = get_protocol(protocol).dataset
        if boxes.get(family) is None and data == "sample":
            boxes[family] = sample_boxes(family, out / "boxes", write=write)
        elif boxes.get(family) is None:
            # where `evalsuite download boxes` puts the published file: a plan names it even before it is
            # there (preflight says how to fetch it), so every planned AP command carries its --boxes
            boxes[family] = default_boxes_path(protocol)
    return boxes


def execute(
    plan: Plan, base: RunConfig, on_step: Callable[[int, int, PlannedRun], None] | None = None
) -> list[StepResult]:
    """Run the plan with the shared settings of ``base``; ``on_step`` hears each step as it starts."""
    results = []
    for i, planned in enumerate(plan.runs, 1):
        if on_step is not None:
            on_step(i, len(plan.runs), planned)
        start, wall = time.perf_counter(), time.time()
        outcomes = run(planned.config(base))
        results.append(StepResult(i, planned, outcomes, time.perf_counter() - start, wall))
    return results


def render_outputs(outcomes: list[RunOutcome], which: str, out: Path) -> list[Path]:
    """Tables (md, LaTeX, CSV, with the paper's reference rows) and plots of ``which``, into ``out``."""
    from ..report.plots import plot_clicks, plot_sizes, plot_speed
    from ..report.render import render
    from ..report.table_build import build_tables

    records = [o.record for o in outcomes]
    numbers = TABLES[which]
    written: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        tables = build_tables(records, number, paper_rows=True)
        for fmt, suffix in (("md", "md"), ("latex", "tex"), ("csv", "csv")):
            path = out / f"table{number}.{suffix}"
            _write_text(path, render(tables, fmt))
            written.append(path)
    plots = out / "plots"
    kinds: list[tuple[str, Callable[..., Any]]] = [("sizes", plot_sizes), ("speed", plot_speed)]
    if "4" in numbers:
        kinds.insert(0, ("clicks", plot_clicks))
    for name, plot in kinds:
        paths = [plots / f"{name}.png", plots / f"{name}.pdf"]
        plot(records, paths)
        written += paths
    return written


def _write_text(path: Path, text: str) -> None:
    """Write only when the content changes, atomically (re-running leaves files untouched)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
