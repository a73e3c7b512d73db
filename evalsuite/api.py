"""The Python entry points: :func:`evaluate` a model, :func:`load` records, compare and tabulate them.

Everything the command line does with results is here too, on pandas DataFrames, and the CLI's
``report`` / ``export`` / ``compare`` call these very functions::

    import evalsuite

    res = evalsuite.evaluate("efficientsam-s", ["coco-box", "coco-1click"], data="sample",
                             weights="random", limit=3)
    res.summary                      # one row per run × metric
    res.instances                    # one row per scored instance
    both = evalsuite.load(["runs/"])  # records written by `evalsuite run`
    print(both.table(4))
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .engine import RunConfig, run
from .engine.devices import default_device
from .errors import InputError
from .models import CallableRunner, Runner, get_spec, model_names
from .record import RunRecord, find_records
from .report.rules import column_options, difference, paper_comparability, paper_value, unique_cells
from .report.stats import SIZES, pair_instances, paired_bootstrap
from .report.tables import build_table, export_frame, render, render_export, table_frame, to_csv

SUMMARY_COLUMNS = (
    "name",
    "model",
    "label",
    "weights",
    "checkpoint_sha256",
    "protocol",
    "protocol_id",
    "options",
    "overrides",
    "dataset",
    "device",
    "metric",
    "value",
    "higher_is_better",
    "paper",
    "delta",
    "paper_source",
    "run_id",
)


def _options_text(options: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in sorted(options.items())
    )


class Results:
    """Run records with pandas views, tables and comparisons (what :func:`evaluate` and :func:`load` give)."""

    def __init__(self, records: Sequence[RunRecord]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        names = sorted({r.name for r in self.records})
        protos = sorted({r.protocol.label for r in self.records})
        return f"Results({len(self.records)} records: {', '.join(names)} on {', '.join(protos)})"

    def __add__(self, other: Results) -> Results:
        return Results(self.records + other.records)

    # -- frames -------------------------------------------------------------------------------------
    @property
    def summary(self) -> pd.DataFrame:
        """One row per run × metric: name, model, weights, checkpoint SHA-256, protocol (id, options,
        overrides), dataset, device, value, direction, the paper's value and Δ (where comparable)."""
        rows = []
        for r in self.records:
            for metric in r.metrics:
                value = r.metric(metric)
                pv = (
                    None
                    if r.model.random_weights
                    else paper_value(r.model.name, r.protocol.name, metric, column_options(r))
                )
                fair = pv is not None and paper_comparability(r, pv).ok
                rows.append(
                    {
                        "name": r.name,
                        "model": r.model.name,
                        "label": r.model.label or r.model.name,
                        "weights": r.model.weights,
                        "checkpoint_sha256": r.model.checkpoint_sha256,
                        "protocol": r.protocol.name,
                        "protocol_id": r.protocol.id,
                        "options": _options_text(r.protocol.options),
                        "overrides": _options_text(r.protocol.overrides),
                        "dataset": r.dataset.name,
                        "device": r.environment.device_name,
                        "metric": metric,
                        "value": value,
                        "higher_is_better": r.higher_is_better.get(metric, True),
                        "paper": None if pv is None else pv.value,
                        "delta": None if not fair or value is None or pv is None else value - pv.value,
                        "paper_source": "" if pv is None else pv.source,
                        "run_id": r.run_id,
                    }
                )
        return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))

    def _items(self, task_kinds: tuple[str, ...]) -> pd.DataFrame:
        frames = []
        for r in self.records:
            if r.protocol.task not in task_kinds:
                continue
            frame = pd.DataFrame(r.items())
            frame.insert(0, "protocol_id", r.protocol.id)
            frame.insert(0, "name", r.name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @property
    def instances(self) -> pd.DataFrame:
        """One row per scored instance (mIoU and NoC protocols): name, protocol_id, image_id, ann_id,
        category_id, area, size, iou (NoC: ious after each click), prompt, mask_index, score."""
        return self._items(("miou", "noc"))

    @property
    def detections(self) -> pd.DataFrame:
        """One row per predicted mask (AP protocols): name, protocol_id, image_id, det_id, category_id,
        score, box, segmentation (RLE), mask_index, mask_score."""
        return self._items(("ap",))

    # -- tables -------------------------------------------------------------------------------------
    def table(
        self,
        number: int | str = "all",
        format: str = "md",
        standalone: bool = True,
        paper_rows: bool = False,
        labels: str = "paper",
    ) -> str | pd.DataFrame:
        """Table 4 and/or 5 as text (``md``, ``latex``, ``csv``) or as a long-form DataFrame (``frame``)."""
        numbers = ["4", "5"] if str(number) == "all" else [str(number)]
        if str(number) == "all":
            present = {r.protocol.name for r in self.records}
            from .paper import paper_tables

            numbers = [n for n in numbers if present & set(paper_tables()[n].protocols)]
            if not numbers:
                raise InputError("none of the records belongs to Table 4 or Table 5 protocols")
        tables = [build_table(self.records, n, paper_rows=paper_rows, labels=labels) for n in numbers]
        if format == "frame":
            return pd.concat([table_frame(t) for t in tables], ignore_index=True)
        return render(tables, format, standalone=standalone)

    def export(self, kind: str, format: str = "csv") -> str | pd.DataFrame:
        """Per-category or per-size numbers in long form (``csv`` text or a ``frame``)."""
        return export_frame(self.records, kind) if format == "frame" else render_export(self.records, kind)

    def compare(
        self,
        a: str,
        b: str,
        protocol: str | None = None,
        resamples: int = 10_000,
        seed: int = 0,
        confidence: float = 0.95,
    ) -> pd.DataFrame:
        """Paired bootstrap of run ``a`` − run ``b`` (names) on one protocol, overall and by size."""
        cells = unique_cells(self.records)
        protocols = sorted({p for n, p in cells if n == a} & {p for n, p in cells if n == b})
        if protocol is None:
            if len(protocols) != 1:
                raise InputError(
                    f"runs {a!r} and {b!r} share {len(protocols)} protocols "
                    f"({', '.join(protocols) or 'none'})",
                    hint="pass protocol=...",
                )
            protocol = protocols[0]
        if (a, protocol) not in cells or (b, protocol) not in cells:
            raise InputError(f"no records of both {a!r} and {b!r} on {protocol}")
        return compare_frame(cells[(a, protocol)], cells[(b, protocol)], resamples, seed, confidence)


def compare_frame(
    ra: RunRecord, rb: RunRecord, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> pd.DataFrame:
    """Paired bootstrap CI of A − B over the instances both runs scored (refused, naming why, if unfit)."""
    if ra.protocol.task != "miou" or rb.protocol.task != "miou":
        raise InputError(
            "compare works on mIoU records (per-instance IoUs); AP records have no per-instance score"
        )
    same_data = (ra.dataset.annotation_sha256, ra.dataset.image_ids_sha256) == (
        rb.dataset.annotation_sha256,
        rb.dataset.image_ids_sha256,
    )
    if not same_data or ra.protocol.name != rb.protocol.name or ra.protocol.version != rb.protocol.version:
        raise InputError(
            f"A ({ra.path}) and B ({rb.path}) were not measured on the same things: {difference(ra, rb)}"
        )
    same_prompts = column_options(ra) == column_options(rb) and ra.prompt_seed == rb.prompt_seed
    same_prompts &= ra.protocol.options.get("click_rule", "random") != "sam"  # SAM clicks depend on the model
    try:
        keys, ia, ib = pair_instances(ra.items(), rb.items(), same_prompts=same_prompts)
    except ValueError as e:
        raise InputError(f"cannot pair {ra.path} and {rb.path}: {e}") from None
    size_of = {(int(r["image_id"]), int(r["ann_id"])): r["size"] for r in ra.items()}
    groups = [("all", np.arange(len(keys)))]
    groups += [(s, np.asarray([i for i, k in enumerate(keys) if size_of[k] == s], dtype=int)) for s in SIZES]
    rows = []
    for group, idx in groups:
        if not len(idx):
            continue
        res = paired_bootstrap(ia[idx], ib[idx], resamples=resamples, seed=seed, confidence=confidence)
        rows.append(
            {
                "instances": group,
                "n": res.n,
                "mIoU_A": res.mean_a,
                "mIoU_B": res.mean_b,
                "delta": res.delta,
                "ci_low": res.ci_low,
                "ci_high": res.ci_high,
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs.update(
        a=ra.name,
        b=rb.name,
        protocol=ra.protocol.id,
        dataset=ra.dataset.name,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        same_prompts=same_prompts,
        a_run=ra.run_id,
        b_run=rb.run_id,
        differs=difference(ra, rb),
    )
    return frame


def compare_records(
    ra: RunRecord, rb: RunRecord, resamples: int, seed: int, confidence: float, fmt: str
) -> str:
    """The CLI's ``compare``: the paired bootstrap as Markdown or CSV."""
    frame = compare_frame(ra, rb, resamples, seed, confidence)
    if fmt == "csv":
        return to_csv(frame.round(6))
    a = frame.attrs
    shown = pd.DataFrame(
        {
            "instances": frame["instances"],
            "n": frame["n"],
            "mIoU A": frame["mIoU_A"].map(lambda v: f"{v:.2f}"),
            "mIoU B": frame["mIoU_B"].map(lambda v: f"{v:.2f}"),
            "Δ (A − B)": frame["delta"].map(lambda v: f"{v:+.2f}"),
            f"{confidence * 100:g}% CI": [
                f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in zip(frame["ci_low"], frame["ci_high"], strict=True)
            ],
        }
    )
    head = f"A = {a['a']} ({a['a_run']})\nB = {a['b']} ({a['b_run']})\nA and B differ in: {a['differs']}\n\n"
    foot = (
        f"\n\n{a['protocol']} on {a['dataset']}; paired percentile bootstrap over instances, "
        f"{resamples} resamples, "
        f"seed {seed}; Δ in mIoU points."
        + ("" if a["same_prompts"] else " The two runs prompted differently.")
    )
    return (
        head
        + shown.to_markdown(index=False, disable_numparse=True, colalign=("left",) + ("right",) * 5)
        + foot
        + "\n"
    )


def load(paths: str | Path | Iterable[str | Path]) -> Results:
    """Records from ``record.json`` files or folders (searched recursively)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return Results(find_records(paths))


def _as_runner(model: str | Runner | Callable[..., Any], name: str | None) -> str | Runner:
    if isinstance(model, (str, Runner)):
        return model
    if callable(model):
        return CallableRunner(model, name=name or getattr(model, "__name__", "") or type(model).__name__)
    raise InputError(f"model must be a registered name, a Runner or a callable, not {type(model).__name__}")


def evaluate(
    model: str | Runner | Callable[..., Any],
    protocols: str | Sequence[str],
    data: str = "real",
    *,
    name: str | None = None,
    out: str | Path | None = None,
    checkpoint: str | Path | None = None,
    weights: str | None = None,
    limit: int | None = None,
    device: str | None = None,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    boxes: str | Path | None = None,
    data_root: str | Path | None = None,
    ann: str | Path | None = None,
    precision: str = "fp32",
    image_batch: int | None = None,
    workers: int | None = None,
    skip_bad: bool = False,
    ap_backend: str = "official",
    overwrite: bool = False,
    progress: bool | None = None,
) -> Results:
    """Evaluate ``model`` on ``protocols``; the same runs as ``evalsuite run``.

    ``model``: a registered name, a :class:`~evalsuite.models.Runner`, or a plain callable
    ``segment(image, boxes|points, labels) -> masks[, scores]`` (see :class:`CallableRunner`).
    ``protocols``: a name or a list. ``data``: ``"real"`` (COCO/LVIS under ``data_root``) or
    ``"sample"``. With ``out`` the run folders and records are written exactly as the CLI writes
    them (and resumed); without, nothing is written and the records stay in memory.
    ``options`` overrides protocol options (``--set``); ``weights="random[:SEED]"`` needs no
    download. Progress bars show when stdout is a terminal, unless ``progress`` says otherwise.
    """
    cfg = RunConfig(
        protocols=[protocols] if isinstance(protocols, str) else list(protocols),
        model=_as_runner(model, name),
        name=name,
        data=data,
        data_root=None if data_root is None else Path(data_root),
        ann=None if ann is None else Path(ann),
        checkpoint=None if checkpoint is None else str(checkpoint),
        weights=weights,
        out=None if out is None else Path(out),
        limit=limit,
        seed=seed,
        device=device or default_device(),
        overrides=dict(options or {}),
        boxes=None if boxes is None else Path(boxes),
        skip_bad=skip_bad,
        ap_backend=ap_backend,
        precision=precision,
        workers=workers,
        image_batch=image_batch,
        overwrite=overwrite,
        progress=sys.stdout.isatty() if progress is None else progress,
    )
    return Results([o.record for o in run(cfg)])


def list_models() -> list[tuple[str, str]]:
    """(name, summary) of every registered model; a plugin that fails to load says so in its line."""
    out = []
    for n in model_names():
        try:
            spec = get_spec(n)
            weights = spec.weights.filename if spec.weights is not None else "no weights"
            out.append((n, f"{spec.summary} [{weights}]"))
        except Exception as e:  # a broken third-party plugin must not hide the others
            out.append((n, f"(failed to load: {e})"))
    return out


def doctor(data_root: str | Path | None = None):
    """``evalsuite doctor``'s checks (the install, then datasets, checkpoints and box files)."""
    from .fetch.doctor import WeightsCheck
    from .fetch.doctor import doctor as run_doctor

    weights = []
    for n in model_names():
        try:
            spec = get_spec(n)
        except Exception:  # reported by `evalsuite ls`; doctor checks the rest
            continue
        if spec.weights is not None:
            needs = "pip install 'evalsuite[fastsam]'" if spec.weights.format == "ultralytics" else None
            weights.append(WeightsCheck(n, spec.weights, needs))
    return run_doctor(data_root, weights)
