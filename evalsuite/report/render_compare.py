"""A paired-bootstrap comparison (:func:`evalsuite.api.compare_frame`'s DataFrame) rendered as Markdown,
CSV, JSON and HTML, and its one-line headline.

The frame's ``attrs`` say what was compared (runs, protocol, data, resamples, seed, confidence) and its
``kind`` (``miou``: rows per instance size; ``ap``: rows per AP metric over images; ``noc``: rows per
NoC threshold and size, in clicks).
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np
import pandas as pd

from .render import to_csv
from .render_html import frame_html
from .render_json import document_head, dumps

#: per kind: the frame's row-label columns, its A / B columns, the unit of Δ
_KIND = {
    "miou": (("instances",), ("mIoU_A", "mIoU_B"), "mIoU points", "instances"),
    "ap": (("metric",), ("AP_A", "AP_B"), "AP points", "images"),
    "noc": (("metric", "instances"), ("NoC_A", "NoC_B"), "clicks", "instances"),
}


def _signed(v: float | None, digits: int = 2) -> str:
    return "–" if v is None or np.isnan(v) else f"{v:+.{digits}f}"


def _plain(v: float | None, digits: int = 2) -> str:
    return "–" if v is None or np.isnan(v) else f"{v:.{digits}f}"


def _n_column(frame: pd.DataFrame) -> str:
    return "images" if frame.attrs["kind"] == "ap" else "n"


def shown_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The comparison as people read it: labels, n, A, B, Δ and the interval as text."""
    a = frame.attrs
    labels, (col_a, col_b), _, _ = _KIND[a["kind"]]
    ci = f"{a['confidence'] * 100:g}% CI"
    shown = pd.DataFrame({label: frame[label] for label in labels})
    shown[_n_column(frame)] = frame[_n_column(frame)]
    what = {"miou": "mIoU ", "ap": "", "noc": "NoC "}[a["kind"]]
    shown[f"{what}A"] = frame[col_a].map(_plain)
    shown[f"{what}B"] = frame[col_b].map(_plain)
    shown["Δ (A − B)"] = frame["delta"].map(_signed)
    shown[ci] = [
        f"[{_signed(lo)}, {_signed(hi)}]" for lo, hi in zip(frame["ci_low"], frame["ci_high"], strict=True)
    ]
    return shown


def _footnote(frame: pd.DataFrame) -> str:
    a = frame.attrs
    where = f"{a['protocol']} on {a['dataset']}"
    if a["kind"] == "ap":
        undefined = {m: int(u) for m, u in zip(frame["metric"], frame["undefined"], strict=True) if u}
        text = (
            f"{where}; paired percentile bootstrap over images (each resample draws the image ids with "
            "replacement, the same draw for A and B, and re-accumulates both runs' official per-image "
            f"matches on it), {a['resamples']} resamples, seed {a['seed']}; Δ in AP points."
        )
        if undefined:
            text += " Resamples without ground truth of a range leave it out: "
            text += ", ".join(f"{m} {u}" for m, u in undefined.items()) + "."
        return text + f" (evaluate {a['evaluate_s']:.1f} s, bootstrap {a['bootstrap_s']:.1f} s)"
    if a["kind"] == "noc":
        return (
            f"{where}; paired percentile bootstrap over instances of the clicks each needed to reach the "
            f"IoU (never reached: the cap of {a['max_clicks']}), {a['resamples']} resamples, "
            f"seed {a['seed']}; Δ in clicks (negative: A needs fewer)."
        )
    return (
        f"{where}; paired percentile bootstrap over instances, {a['resamples']} resamples, seed {a['seed']}; "
        "Δ in mIoU points." + ("" if a["same_prompts"] else " The two runs prompted differently.")
    )


def compare_markdown(frame: pd.DataFrame) -> str:
    a = frame.attrs
    shown = shown_frame(frame)
    labels = len(_KIND[a["kind"]][0])
    head = f"A = {a['a']} ({a['a_run']})\nB = {a['b']} ({a['b_run']})\nA and B differ in: {a['differs']}\n\n"
    align = ("left",) * labels + ("right",) * (len(shown.columns) - labels)
    body = shown.to_markdown(index=False, disable_numparse=True, colalign=align)
    return head + body + "\n\n" + _footnote(frame) + "\n"


def compare_csv(frame: pd.DataFrame) -> str:
    return to_csv(frame.round(6))


def compare_document(frame: pd.DataFrame) -> dict[str, Any]:
    """The comparison as a JSON document (schema ``evalsuite-compare``, see ``docs/json.md``)."""
    a = frame.attrs
    _, (col_a, col_b), unit, over = _KIND[a["kind"]]
    rows = []
    for rec in frame.to_dict("records"):
        rows.append(
            {
                "metric": rec.get("metric", "mIoU"),
                "subset": rec.get("instances", "all"),
                "n": int(rec[_n_column(frame)]),
                "a": rec[col_a],
                "b": rec[col_b],
                "delta": rec["delta"],
                "ci_low": rec["ci_low"],
                "ci_high": rec["ci_high"],
                "undefined": int(rec["undefined"]) if "undefined" in rec else None,
            }
        )
    return {
        **document_head("evalsuite-compare"),
        "kind": a["kind"],
        "a": {"name": a["a"], "run_id": a["a_run"]},
        "b": {"name": a["b"], "run_id": a["b_run"]},
        "protocol": a["protocol"],
        "dataset": a["dataset"],
        "differs": a["differs"],
        "unit": unit,
        "resampled": over,
        "resamples": int(a["resamples"]),
        "seed": int(a["seed"]),
        "confidence": float(a["confidence"]),
        "rows": rows,
        "note": _footnote(frame),
    }


def headline(frame: pd.DataFrame) -> str:
    """One line: the first row's A − B with its interval."""
    a = frame.attrs
    if frame.empty:
        return f"Comparison {a['a']} − {a['b']} on {a['protocol']}: no rows"
    first = frame.iloc[0]
    what = {"miou": "mIoU", "ap": str(first.get("metric", "AP")), "noc": str(first.get("metric", "NoC"))}
    unit = {"miou": "", "ap": "", "noc": " clicks"}[a["kind"]]
    return (
        f"{a['a']} − {a['b']} on {a['protocol']}: {what[a['kind']]} Δ {_signed(first['delta'])}{unit} "
        f"[{a['confidence'] * 100:g}% CI {_signed(first['ci_low'])}, {_signed(first['ci_high'])}]"
    )


def compare_html(frame: pd.DataFrame) -> str:
    a = frame.attrs
    title = f"A = {a['a']}, B = {a['b']} — A and B differ in: {a['differs']}"
    return frame_html(shown_frame(frame), title, [_footnote(frame)]).replace(
        "<div>", f"<div><p>{escape(headline(frame))}</p>", 1
    )


def render_comparison(frame: pd.DataFrame, fmt: str) -> str:
    """The CLI's ``compare`` output in ``md``, ``csv`` or ``json``."""
    if fmt == "csv":
        return compare_csv(frame)
    if fmt == "json":
        return dumps(compare_document(frame))
    return compare_markdown(frame)
