"""``evalsuite reproduce``: every run a paper table needs, then its tables and plots.

The plan is data (one :class:`PlannedRun` per model and dataset family, holding all the
protocols that share that model's image embeddings); running it calls the ordinary evaluator,
which resumes finished work and leaves complete runs untouched, so re-running the command
does no work and rewrites no file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .evaluator import RunConfig, run
from .models import get_spec
from .models.base import PROMPT_POINTS
from .protocols import get_protocol

TABLE_PROTOCOLS = {
    "table4": (
        "coco-box",
        "coco-1click",
        "coco-3click",
        "coco-5click",
        "lvis-box",
        "lvis-1click",
        "lvis-3click",
        "lvis-5click",
    ),
    "table5": ("coco-vitdet", "lvis-vitdet"),
}
PAPER_MODELS = ("sam-vit-h", "mobilesam", "efficientsam-ti", "efficientsam-s", "fastsam-x")

# Images per second for a rough time estimate only (never reported as a measurement): the official code
# on one H100, prompts batched, bf16 (../shared/PERFORMANCE.md); evalsuite's own figures belong in
# benchmarks/README.md once measured. Unknown models/devices get no estimate.
_OFFICIAL_H100_IMG_PER_S = {
    "efficientsam-ti": 54.0,
    "efficientsam-s": 37.3,
    "mobilesam": 37.1,
    "sam-vit-b": 26.0,
    "sam-vit-h": 14.0,
}
_IMAGES = {"coco": 5000, "lvis": 19809}


@dataclass
class PlannedRun:
    """One evaluator call: a model, the protocols of one dataset family, and their boxes file."""

    model: str
    family: str
    protocols: list[str]
    boxes: Path | None = None

    def describe(self) -> str:
        extra = f" --boxes {self.boxes}" if self.boxes else ""
        return f"evalsuite run {' '.join(self.protocols)} --model {self.model}{extra}"


@dataclass
class Plan:
    runs: list[PlannedRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # (model, protocol) pairs the model cannot serve


def make_plan(which: str, models: list[str], boxes: dict[str, Path | None]) -> Plan:
    """The runs ``which`` ("table4", "table5", "all") needs for ``models``."""
    names = (
        TABLE_PROTOCOLS["table4"] + TABLE_PROTOCOLS["table5"] if which == "all" else TABLE_PROTOCOLS[which]
    )
    plan = Plan()
    for model in models:
        spec = get_spec(model)
        for family in ("coco", "lvis"):
            miou, ap = [], []
            for name in names:
                p = get_protocol(name)
                if p.dataset != family:
                    continue
                if p.options["prompt"] == "clicks" and PROMPT_POINTS not in spec.prompt_kinds:
                    plan.skipped.append(f"{model} {name} (takes no clicks)")
                    continue
                (ap if p.task == "ap" else miou).append(name)
            if miou or ap:  # one run per model and dataset: one embedding per image serves all of them
                plan.runs.append(PlannedRun(model, family, miou + ap, boxes.get(family) if ap else None))
    return plan


def estimate_seconds(plan: Plan, limit: int | None) -> float | None:
    """A rough GPU time from the official code's H100 throughput (None where unknown)."""
    total = 0.0
    for r in plan.runs:
        rate = _OFFICIAL_H100_IMG_PER_S.get(r.model)
        if rate is None:
            return None
        total += min(limit or _IMAGES[r.family], _IMAGES[r.family]) / rate
    return total


def execute(plan: Plan, base: RunConfig) -> list:
    """Run the plan with the shared settings of ``base``; returns every outcome."""
    outcomes = []
    for planned in plan.runs:
        ap = [p for p in planned.protocols if get_protocol(p).task == "ap"]
        if ap and planned.boxes is None:
            raise InputError(
                f"{ap[0]} needs detections",
                hint=f"`evalsuite download boxes {ap[0]}`, or --boxes-{planned.family} FILE",
            )
        cfg = RunConfig(
            **{
                **base.__dict__,
                "protocols": planned.protocols,
                "model": planned.model,
                "boxes": planned.boxes,
                "overrides": dict(base.overrides),
            }
        )
        outcomes += run(cfg)
    return outcomes


def render_outputs(outcomes: list, which: str, out: Path) -> list[Path]:
    """Tables (md, LaTeX, CSV) and plots of the tables in ``which``, written into ``out``."""
    from .report.plots import plot_clicks, plot_sizes, plot_speed
    from .report.records import read_record
    from .report.tables import build_table, render

    records = [read_record(o.record_path) for o in outcomes]
    numbers = {"table4": ["4"], "table5": ["5"], "all": ["4", "5"]}[which]
    written: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        table = build_table(records, number)
        for fmt, suffix in (("md", "md"), ("latex", "tex"), ("csv", "csv")):
            path = out / f"table{number}.{suffix}"
            _write_text(path, render([table], fmt))
            written.append(path)
    plots = out / "plots"
    kinds = [("sizes", plot_sizes), ("speed", plot_speed)]
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
