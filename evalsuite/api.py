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
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import run_options as ro
from .data.jsonio import read_json
from .engine import RunConfig, run
from .engine.devices import default_device
from .engine.scoring import ids_sha256
from .errors import InputError, did_you_mean
from .identity import (
    Excluded,
    column_options,
    describe_difference,
    filter_names,
    identity_notes,
    pairing_problems,
    paper_comparability,
    select_cells,
)
from .metrics.ap import evaluate_images
from .metrics.ap_bootstrap import APResampler, match_table, paired_ap_bootstrap
from .models import CallableRunner, Runner, get_spec, model_names
from .protocols import adaptive_prompts, click_count
from .record import RunRecord, find_records
from .report.export import export_frame, render_export
from .report.render_compare import render_comparison
from .report.rules import paper_value
from .report.stats import SIZES, clicks_to_reach, pair_instances, pair_rows, paired_bootstrap
from .report.table_build import build_tables, tables_present
from .report.views import Comparison, GateOutcome, TableView, results_html, results_repr

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
    "note",
    "run_id",
)


_PY = ro.PYTHON_DEFAULTS  # evaluate()'s defaults, from the run options' declarations


def _options_text(options: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in sorted(options.items())
    )


class Results:
    """Run records with pandas views, tables and comparisons (what :func:`evaluate` and :func:`load` give).

    ``records`` are one per (run name, protocol), as every report takes them
    (:func:`evalsuite.identity.select_cells`); ``excluded`` lists what was left out, with the reason.
    """

    def __init__(self, records: Sequence[RunRecord], excluded: Sequence[Excluded] = ()) -> None:
        self.records = list(records)
        self.excluded = list(excluded)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return results_repr(self.records)

    def _repr_html_(self) -> str:
        return results_html(self.records, self.excluded)

    def __add__(self, other: Results) -> Results:
        sel = select_cells(self.records + other.records)
        return Results(sel.records, self.excluded + other.excluded + sel.excluded)

    # -- frames -------------------------------------------------------------------------------------
    @property
    def summary(self) -> pd.DataFrame:
        """One row per run × metric: name, model, weights, checkpoint SHA-256, protocol (id, options,
        overrides), dataset, device, value, direction, the paper's value and Δ (only where the comparison
        is fair), and a note saying in words what keeps the run from being the paper's measurement."""
        rows = []
        for r in self.records:
            note = "; ".join(identity_notes(r))
            for metric in r.metrics:
                value = r.metric(metric)
                quoted = paper_value(r.model.name, r.protocol.name, metric, column_options(r))
                fair = quoted is not None and paper_comparability(r, quoted).ok
                pv = quoted if fair else None
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
                        "delta": None if value is None or pv is None else value - pv.value,
                        "paper_source": "" if pv is None else pv.source,
                        "note": note,
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

    # -- tables, figures, gates --------------------------------------------------------------------
    def table(
        self,
        number: int | str = "all",
        format: str | None = None,
        standalone: bool = True,
        paper_rows: bool = False,
        labels: str = "paper",
        columns: str = "all",
    ) -> TableView | str | pd.DataFrame:
        """Table 4, 5 and/or the NoC table (``"noc"``; ``"all"``: every table the records belong to).

        Without ``format``: a :class:`~evalsuite.report.views.TableView`, which Jupyter shows as HTML and
        ``print()`` as Markdown (``.latex``, ``.csv``, ``.json``, ``.frame``). ``format="md" | "latex" |
        "csv" | "json" | "html"`` returns that text, ``"frame"`` the long-form DataFrame. ``columns="paper"``
        keeps the paper's columns only (default: also the rest of the AP summary: AP50, AP75, AR...).
        """
        numbers = tables_present(self.records) if str(number) == "all" else [str(number).lower()]
        if not numbers:
            raise InputError("none of the records belongs to Table 4, Table 5 or the NoC table")
        tables = [
            t
            for n in numbers
            for t in build_tables(self.records, n, paper_rows=paper_rows, labels=labels, columns=columns)
        ]
        view = TableView(tables)
        if format is None:
            return view
        return view.frame if format == "frame" else view.render(format, standalone=standalone)

    def export(self, kind: str, format: str = "frame") -> pd.DataFrame | str:
        """Per-category or per-size numbers in long form: a DataFrame (``format="csv"``: CSV text)."""
        return render_export(self.records, kind) if format == "csv" else export_frame(self.records, kind)

    def plot(self, kind: str, **options: Any) -> Any:
        """A figure of the records: ``"speed"``, ``"clicks"`` or ``"sizes"`` (as ``evalsuite plot``),
        returned as a matplotlib ``Figure`` (shown inline by Jupyter; ``fig.savefig(...)`` writes it).
        ``options`` go to the plot (``protocols=``, ``tables=``, ``params=``); notes become warnings."""
        from .report import plots

        kinds: dict[str, Callable[..., Any]] = {
            "speed": plots.plot_speed,
            "clicks": plots.plot_clicks,
            "sizes": plots.plot_sizes,
        }
        if kind not in kinds:
            raise InputError(f"unknown plot {kind!r} ({', '.join(kinds)}; qualitative: `evalsuite plot`)")
        drawn = kinds[kind](self.records, **options)
        for note in drawn.notes:
            warnings.warn(f"plot {kind}: {note}", stacklevel=2)
        return drawn.figure

    def gate(self, gates_file: str | Path) -> GateOutcome:
        """Check a gates file (``gates/sample.toml``) against these records, as ``evalsuite gate``."""
        from .report.gates import check_gates, load_gates

        return GateOutcome(check_gates(load_gates(Path(gates_file)), self.records))

    def compare(
        self,
        a: str,
        b: str,
        protocol: str | None = None,
        resamples: int | None = None,
        seed: int = 0,
        confidence: float = 0.95,
    ) -> Comparison:
        """Paired bootstrap of run ``a`` − run ``b`` (names) on one protocol, overall and by size
        (see :func:`compare_frame`; ``resamples`` default: 10,000 for mIoU and NoC, 1,000 for AP).
        A :class:`~evalsuite.report.views.Comparison`: HTML in Jupyter, ``.frame`` the DataFrame."""
        cells = select_cells(self.records).cells
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
        return Comparison(
            compare_frame(cells[(a, protocol)], cells[(b, protocol)], resamples, seed, confidence)
        )


#: default resamples: instances are cheap to resample; AP re-accumulates every category per resample
DEFAULT_RESAMPLES = {"miou": 10_000, "ap": 1_000, "noc": 10_000}


def compare_frame(
    ra: RunRecord,
    rb: RunRecord,
    resamples: int | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    ann: str | Path | None = None,
) -> pd.DataFrame:
    """Paired bootstrap CI of A − B, refused (naming every field that differs) when the runs did not
    measure the same thing.

    mIoU protocols: over the instances both runs scored (rows: all, S, M, L). NoC protocols: over the
    instances, of the clicks each needed to reach IoU 85 / 90 % (never reached: the click cap; rows per
    threshold: all, S, M, L). AP protocols: over the
    images — each resample draws the image ids with replacement (the same draw for A and B) and
    recomputes both APs on the drawn images from one official ``evaluate()`` per run (rows: AP, APS,
    APM, APL; LVIS also APr, APc, APf); ``ann`` is the annotation file when the recorded path is not
    there (its SHA-256 must be the recorded one). ``resamples``: default 10,000 (mIoU) / 1,000 (AP).
    """
    if problems := pairing_problems(ra, rb):
        raise InputError(
            f"A ({ra.path}) and B ({rb.path}) were not measured on the same things: {'; '.join(problems)}",
            hint="compare runs of one protocol on the same data (re-run one with the other's settings)",
        )
    task = ra.protocol.task
    if task not in DEFAULT_RESAMPLES:
        raise InputError(f"compare works on mIoU, NoC and AP records; {ra.protocol.id} is a {task} protocol")
    n = DEFAULT_RESAMPLES[task] if resamples is None else resamples
    if task == "ap":
        return _compare_ap(ra, rb, n, seed, confidence, ann)
    if task == "noc":
        return _compare_noc(ra, rb, n, seed, confidence)
    return _compare_miou(ra, rb, n, seed, confidence)


def _compare_miou(ra: RunRecord, rb: RunRecord, resamples: int, seed: int, confidence: float) -> pd.DataFrame:
    # a rule that answers the model's masks (SAM's clicker) gives each model its own prompts
    same_prompts = not adaptive_prompts(ra.protocol.task, ra.protocol.options)
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
    _compare_attrs(frame, ra, rb, resamples, seed, confidence, kind="miou", same_prompts=same_prompts)
    return frame


def _compare_noc(ra: RunRecord, rb: RunRecord, resamples: int, seed: int, confidence: float) -> pd.DataFrame:
    """Clicks to reach IoU 85 / 90 % per instance, paired; Δ in clicks (no × 100)."""
    try:
        keys, rows_a, rows_b = pair_rows(ra.items(), rb.items())
    except ValueError as e:
        raise InputError(f"cannot pair {ra.path} and {rb.path}: {e}") from None
    cap = click_count(ra.protocol.task, ra.protocol.options) or 20
    sizes = np.asarray([row.get("size") for row in rows_a])
    rows = []
    for pct in (85, 90):
        ca = clicks_to_reach(rows_a, pct / 100.0, cap)
        cb = clicks_to_reach(rows_b, pct / 100.0, cap)
        for group in ("all", *SIZES):
            idx = np.arange(len(keys)) if group == "all" else np.flatnonzero(sizes == group)
            if not len(idx):
                continue
            res = paired_bootstrap(ca[idx], cb[idx], resamples, seed, confidence, scale=1.0)
            rows.append(
                {
                    "metric": f"NoC@{pct}",
                    "instances": group,
                    "n": res.n,
                    "NoC_A": res.mean_a,
                    "NoC_B": res.mean_b,
                    "delta": res.delta,
                    "ci_low": res.ci_low,
                    "ci_high": res.ci_high,
                }
            )
    frame = pd.DataFrame(rows)
    _compare_attrs(frame, ra, rb, resamples, seed, confidence, kind="noc", max_clicks=cap, same_prompts=False)
    return frame


def _compare_attrs(frame: pd.DataFrame, ra: RunRecord, rb: RunRecord, resamples, seed, confidence, **more):
    frame.attrs.update(
        a=ra.name,
        b=rb.name,
        protocol=ra.protocol.id,
        dataset=ra.dataset.name,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        a_run=ra.run_id,
        b_run=rb.run_id,
        differs=_differs(ra, rb),
        **more,
    )


def _differs(ra: RunRecord, rb: RunRecord) -> str:
    return describe_difference(ra, rb)


def _segm_results(r: RunRecord) -> list[dict[str, Any]]:
    """The predicted masks an AP record was scored on (``segm_results.json`` beside it)."""
    if r.items_in_memory is not None:
        rows = sorted(r.items_in_memory, key=lambda d: (d["image_id"], d["det_id"]))
        return [{k: d[k] for k in ("image_id", "category_id", "segmentation", "score")} for d in rows]
    name = r.files.get("segm_results.json")
    path = None if r.folder is None or name is None else r.folder / name
    if path is None or not path.is_file():
        raise InputError(
            f"{r.path}: its predicted masks (segm_results.json) are not beside the record",
            hint="copy the whole run folder; the AP bootstrap re-scores the masks",
        )
    results, _ = read_json(path)
    if not isinstance(results, list) or len(results) != r.counts.detections_scored:
        raise InputError(
            f"{path}: {len(results) if isinstance(results, list) else 'no'} results, but the record "
            f"scored {r.counts.detections_scored}",
            hint="the file does not belong to this record",
        )
    return results


def _ground_truth(ra: RunRecord, ann: str | Path | None) -> dict[str, Any]:
    """The annotation file both records were scored against, checked by SHA-256."""
    path = Path(ann) if ann is not None else Path(ra.dataset.annotation_file)
    if not path.is_file():
        raise InputError(
            f"{ra.path}: annotation file {str(path) or '(not recorded)'} not found",
            hint="pass --ann FILE (the same file: its SHA-256 is checked against the record)",
        )
    gt, sha = read_json(path)
    if sha != ra.dataset.annotation_sha256:
        raise InputError(
            f"{path}: SHA-256 {sha[:12]}…, but the runs were scored against "
            f"{ra.dataset.annotation_sha256[:12]}…",
            hint="pass --ann with the annotation file the runs used",
        )
    return gt


def _image_ids(r: RunRecord, gt: dict[str, Any]) -> list[int]:
    """The evaluated image ids: the annotation file's, sorted, the first ``limit`` (checked by SHA-256)."""
    ids = sorted(int(img["id"]) for img in gt["images"])
    ids = ids[: r.dataset.limit] if r.dataset.limit else ids
    if ids_sha256(ids) != r.dataset.image_ids_sha256:
        raise InputError(
            f"{r.path}: cannot tell which images the run evaluated (the image-id fingerprint does not match "
            "the annotation file's first images)"
        )
    return ids


def _compare_ap(
    ra: RunRecord, rb: RunRecord, resamples: int, seed: int, confidence: float, ann: str | Path | None
) -> pd.DataFrame:
    started = time.perf_counter()
    gt = _ground_truth(ra, ann)
    ids = _image_ids(ra, gt)
    tables = []
    for r in (ra, rb):
        table = match_table(evaluate_images(r.dataset.family, gt, _segm_results(r), image_ids=ids))
        full = APResampler(table).ap(np.ones((1, len(ids)), dtype=np.int64))
        for metric, values in full.items():
            mine, recorded = float(values[0]) * 100.0, r.metric(metric)
            if metric in r.metrics and not (
                (recorded is None and np.isnan(mine))
                or (recorded is not None and abs(mine - recorded) <= 1e-6)
            ):
                raise InputError(
                    f"{r.path}: its segm_results.json gives {metric} {mine:.6f}, the record says {recorded}",
                    hint="the results file does not belong to this record",
                )
        tables.append(table)
    evaluated = time.perf_counter()
    diffs = paired_ap_bootstrap(tables[0], tables[1], resamples=resamples, seed=seed, confidence=confidence)
    frame = pd.DataFrame(
        [
            {
                "metric": d.metric,
                "images": d.images,
                "AP_A": d.ap_a,
                "AP_B": d.ap_b,
                "delta": d.delta,
                "ci_low": d.ci_low,
                "ci_high": d.ci_high,
                "undefined": d.undefined,
            }
            for d in diffs
        ]
    )
    _compare_attrs(
        frame,
        ra,
        rb,
        resamples,
        seed,
        confidence,
        kind="ap",
        evaluate_s=evaluated - started,
        bootstrap_s=time.perf_counter() - evaluated,
    )
    return frame


def compare_records(
    ra: RunRecord,
    rb: RunRecord,
    resamples: int | None,
    seed: int,
    confidence: float,
    fmt: str,
    ann: str | Path | None = None,
) -> str:
    """The CLI's ``compare``: the paired bootstrap as Markdown, CSV or JSON (rendered by the report room)."""
    return render_comparison(compare_frame(ra, rb, resamples, seed, confidence, ann=ann), fmt)


def load(
    paths: str | Path | Iterable[str | Path],
    names: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> Results:
    """Records from ``record.json`` files or folders (searched recursively), by the rule every report
    uses: ``names`` / ``exclude`` select run names by glob, then one record per (run name, protocol)
    (:func:`evalsuite.identity.select_cells`); what cannot count — two disagreeing records of one run
    name and protocol, a name used by two models — is left out, warned about and kept in
    ``Results.excluded`` with the reason.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    keep = [names] if isinstance(names, str) else names
    drop = [exclude] if isinstance(exclude, str) else exclude
    found = filter_names(find_records(paths), keep, drop)
    if not found:
        raise InputError(
            f"no record under {', '.join(map(str, paths))} has a run name matching the selection"
        )
    sel = select_cells(found)
    for e in sel.excluded:
        warnings.warn(f"evalsuite.load: left out {e.line()}", stacklevel=2)
    return Results(sel.records, sel.excluded)


def _in_notebook() -> bool:
    """Running in a Jupyter kernel (not a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _notebook_bar() -> Callable[..., Any] | None:
    """tqdm's notebook widget where ipywidgets is installed (else the text bar, which Jupyter shows too)."""
    try:
        import ipywidgets  # type: ignore[import-untyped]  # noqa: F401
        from tqdm.notebook import tqdm as notebook_tqdm
    except ImportError:
        return None
    return notebook_tqdm


def _as_runner(
    model: str | Runner | Callable[..., Any], name: str | None, threshold: float | None
) -> str | Runner:
    if isinstance(model, Runner | str) and threshold is not None:
        raise InputError("threshold= is for a plain callable that returns logits or probabilities")
    if isinstance(model, (str, Runner)):
        return model
    if callable(model):
        return CallableRunner(
            model, name=name or getattr(model, "__name__", "") or type(model).__name__, threshold=threshold
        )
    raise InputError(f"model must be a registered name, a Runner or a callable, not {type(model).__name__}")


def evaluate(
    model: str | Runner | Callable[..., Any],
    protocols: str | Sequence[str],
    data: str = _PY["data"],
    *,
    name: str | None = _PY["name"],
    out: str | Path | None = _PY["out"],
    checkpoint: str | Path | None = _PY["checkpoint"],
    weights: str | None = _PY["weights"],
    limit: int | None = _PY["limit"],
    device: str | None = _PY["device"],
    options: dict[str, Any] | None = _PY["overrides"],
    preset: str | None = _PY["preset"],
    seed: int = _PY["seed"],
    boxes: str | Path | None = _PY["boxes"],
    data_root: str | Path | None = _PY["data_root"],
    ann: str | Path | None = _PY["ann"],
    precision: str = _PY["precision"],
    image_batch: int | None = _PY["image_batch"],
    workers: int | None = _PY["workers"],
    skip_bad: bool = _PY["skip_bad"],
    ap_backend: str = _PY["ap_backend"],
    overwrite: bool = _PY["overwrite"],
    progress: bool | None = _PY["progress"],
    version: str | None = _PY["model_version"],
    threshold: float | None = None,
    **more: Any,
) -> Results:
    """Evaluate ``model`` on ``protocols``; the same runs as ``evalsuite run``.

    ``model``: a registered name, a :class:`~evalsuite.models.Runner`, or a plain callable
    ``segment(image, boxes|points, labels) -> masks[, scores]`` (see :class:`CallableRunner`).
    ``protocols``: a name or a list. ``data``: ``"real"`` (COCO/LVIS under ``data_root``) or
    ``"sample"``. With ``out`` the run folders and records are written exactly as the CLI writes
    them (and resumed); without, nothing is written and the records stay in memory.
    ``options`` overrides protocol options and the model's own options (``--set``);
    ``preset`` applies a peer's conventions (``"efficientvit-sam"``, ``"edgesam"``, ``"sam-hq"``;
    ``options`` win over it); ``weights="random[:SEED]"`` needs no download. A progress bar shows in
    Jupyter (tqdm's notebook widget) and when stdout is a terminal, unless ``progress`` says otherwise.
    Every run option declared in :mod:`evalsuite.run_options` is a keyword (``more`` takes those
    without a parameter of their own); the defaults above are read from there.

    A model passed from Python needs a name of its own (never a registered model's) and is
    identified by ``version`` — or, without one, by a hash of its answers on a small probe input —
    so that another model under the same name cannot resume or join its runs. ``threshold`` cuts a
    callable's logits or probabilities into masks (foreground = value > threshold); without it, masks
    must be boolean or 0/1.
    """
    if not isinstance(protocols, str) and not (
        isinstance(protocols, Sequence) and protocols and all(isinstance(p, str) for p in protocols)
    ):
        raise InputError(f"protocols must be a protocol name or a list of names, got {protocols!r}")
    for key, value, kinds in (
        ("limit", limit, (int, type(None))),
        ("seed", seed, (int,)),
        ("options", options, (dict, type(None))),
        ("data", data, (str,)),
        ("name", name, (str, type(None))),
        ("preset", preset, (str, type(None))),
    ):
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise InputError(f"evaluate(): {key}={value!r} has the wrong type")
    keywords = ro.python_keywords()
    for key in more:
        if key not in keywords:
            raise InputError(f"evaluate(): unknown keyword {key!r}.{did_you_mean(key, list(keywords))}")
    given = {
        "name": name,
        "data": data,
        "data_root": None if data_root is None else Path(data_root),
        "ann": None if ann is None else Path(ann),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "weights": weights,
        "out": None if out is None else Path(out),
        "limit": limit,
        "seed": seed,
        "device": device or default_device(),
        "overrides": dict(options or {}),
        "preset": preset,
        "boxes": None if boxes is None else Path(boxes),
        "skip_bad": skip_bad,
        "ap_backend": ap_backend,
        "precision": precision,
        "workers": workers,
        "image_batch": image_batch,
        "overwrite": overwrite,
        "progress": (_in_notebook() or sys.stdout.isatty()) if progress is None else progress,
        "model_version": version,
        **{keywords[k].name: v for k, v in more.items()},
    }
    cfg = RunConfig.from_options(
        [protocols] if isinstance(protocols, str) else list(protocols),
        _as_runner(model, name, threshold),
        given,
    )
    cfg.progress_bar = _notebook_bar() if _in_notebook() else None
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
