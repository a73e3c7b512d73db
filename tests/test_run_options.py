"""Run options are declared once (evalsuite.run_options): the commands, RunConfig, evaluate(), reproduce's
commands and the gates' headers read them from there, and every flag and keyword of before still stands."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import evalsuite
from evalsuite import run_options as ro
from evalsuite.cli import cli
from evalsuite.cli.options import run_option_flags, run_option_values
from evalsuite.engine import RunConfig
from evalsuite.errors import InputError

#: the flags of `evalsuite run` before the declarations moved here: (flag, default, help)
BEFORE = {
    "--model": (None, "Registered model name (see `evalsuite ls`)."),
    "--name": (
        None,
        "Run name (rows, folders). Default: the model, +ck<sha> for another checkpoint, +random<seed>, "
        "+key=value for changed options, +limit<N>, +seed<N>, @<dataset> for another annotation file.",
    ),
    # the three data flags were reworded when datasets became a registry (issue 21): same flags and defaults
    "--data": ("real", "The real dataset, or the small sample bundled with evalsuite (COCO and LVIS)."),
    "--data-root": (
        None,
        "Folder the dataset's layout is under (default: $EVALSUITE_DATA, else its own default, e.g. "
        "./datasets/coco; `evalsuite ls datasets`).",
    ),
    "--ann": (
        None,
        "Annotation file (or folder, for per-image formats) instead of the dataset's own: a custom file, "
        "named by its content in the records.",
    ),
    "--checkpoint": (
        None,
        "Checkpoint file (default: the official file in the cache, see `evalsuite download weights`).",
    ),
    "--weights": (
        None,
        "random[:SEED]: deterministic weights, no download (smoke runs; no paper value applies).",
    ),
    "--trust-checkpoint": (
        False,
        "Allow unpickling a checkpoint whose SHA-256 evalsuite does not know (runs code from the file).",
    ),
    "--out": (Path("runs"), "Output folder; each run goes to OUT/NAME/PROTOCOL/."),
    "--seed": (0, "Seed of the random click rule."),
    "--set": (None, "Change a protocol option, e.g. click_rule=sam, include_crowd=true, mask_choice=single."),
    "--skip-bad": (
        False,
        "Skip bad images, annotations and detections (counted in the record); default: stop.",
    ),
    "--boxes": (None, "Detections (COCO results JSON) for coco-vitdet / lvis-vitdet."),
    "--ap-backend": (None, "AP protocols: pycocotools / lvis (default), or faster-coco-eval (same numbers)."),
    "--refine": (None, "AP protocols: 1 = SAM's mask-refinement iteration (same as --set refine=1)."),
    "--device": (None, "cpu, cuda, cuda:N or mps (default: cuda if available, else cpu)."),
    "--precision": (
        "fp32",
        "fp32 reproduces the official arithmetic; tf32/bf16 are faster on GPUs (recorded).",
    ),
    "--limit": (None, "Evaluate only the first N images (by id)."),
    "--workers": (None, "Image-decoding worker processes (default: by cores)."),
    "--image-batch": (None, "Images per encoder pass (default: 8 on CUDA, 1 otherwise)."),
    "--no-progress": (False, "Hide progress bars (they are off when stdout is not a terminal)."),
    "--overwrite": (False, "Discard an existing run with different settings in OUT."),
}
#: evaluate()'s keywords before, with their defaults
BEFORE_KEYWORDS = {
    "data": "real",
    "name": None,
    "out": None,
    "checkpoint": None,
    "weights": None,
    "limit": None,
    "device": None,
    "options": None,
    "seed": 0,
    "boxes": None,
    "data_root": None,
    "ann": None,
    "precision": "fp32",
    "image_batch": None,
    "workers": None,
    "skip_bad": False,
    "ap_backend": "official",
    "overwrite": False,
    "progress": None,
    "version": None,
    "threshold": None,
}


def _params(command: click.Command) -> dict[str, click.Parameter]:
    return {p.opts[0]: p for p in command.params if isinstance(p, click.Option)}


def test_every_flag_of_before_stands_with_its_default_and_help():
    params = _params(cli.commands["run"])
    for flag, (default, text) in BEFORE.items():
        assert flag in params, flag
        assert params[flag].help == text, flag
        if params[flag].is_flag:  # a switch: off unless given (click keeps its default unset)
            assert default is False
            continue
        assert params[flag].default == default, flag
    noc = _params(cli.commands["noc"])
    assert set(BEFORE) - set(noc) == {"--boxes", "--ap-backend", "--refine"}  # AP-only flags
    reproduce = _params(cli.commands["reproduce"])
    assert reproduce["--out"].default == Path("results")
    assert reproduce["--out"].help == "Tables and plots go here; runs under OUT/runs/."


def test_every_declared_option_reaches_its_commands_runconfig_and_evaluate():
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    signature = inspect.signature(evalsuite.evaluate).parameters
    for o in ro.RUN_OPTIONS:
        for command in ("run", "noc", "reproduce"):
            flags = _params(cli.commands[command])
            assert (o.flag in flags) == (o.flag is not None and command in o.commands), (o.name, command)
            if o.flag in flags:
                assert flags[o.flag].help == o.for_command(command).help
        if o.name in fields and o.name not in ("model", "device"):
            f = fields[o.name]
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            assert default == o.default, o.name  # RunConfig starts from the declared default
        if o.keyword and o.keyword in signature:
            assert signature[o.keyword].default == o.python_value, o.keyword
    for keyword, default in BEFORE_KEYWORDS.items():
        assert signature[keyword].default == default, keyword
    assert signature["preset"].default is None
    with pytest.raises(InputError, match="unknown keyword 'limt'"):
        evalsuite.evaluate("oracle", "coco-box", data="sample", limt=1)


def test_a_new_option_is_one_declaration(monkeypatch):
    """A declared option becomes a flag, a RunConfig value, an evaluate() keyword, a word of reproduce's
    commands and of the gates' headers — with no edit anywhere else."""
    new = ro.RunOption(
        "max_instances",
        "Prompt at most N instances per image.",
        kind=int,
        flag="--max-instances",
        minimum=1,
        from_record=lambda r: ["7"],
    )
    monkeypatch.setattr(ro, "RUN_OPTIONS", (*ro.RUN_OPTIONS, new))
    monkeypatch.setattr(ro, "BY_NAME", {**ro.BY_NAME, new.name: new})

    @click.command()
    @run_option_flags(ro.RUN)
    def probe(**params):
        values = run_option_values(ro.RUN, params)
        cfg = RunConfig.from_options(["coco-box"], values.pop("model"), values)
        click.echo(f"{cfg.option('max_instances')}")

    result = CliRunner().invoke(probe, ["--model", "oracle", "--max-instances", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "3"
    assert "Prompt at most N instances per image." in CliRunner().invoke(probe, ["--help"]).output
    assert ro.command_words({"model": "oracle", "max_instances": 3})[-2:] == ["--max-instances", "3"]
    assert ("--max-instances", "7") in ro.record_flags(_FakeRecord())
    cfg = RunConfig.from_options(["coco-box"], "oracle", {"max_instances": 5})
    assert cfg.option("max_instances") == 5 and cfg.extra == {"max_instances": 5}
    with pytest.raises(InputError, match="unknown run option 'max_instance'"):
        RunConfig.from_options(["coco-box"], "oracle", {"max_instance": 5})


class _FakeRecord:
    """Just enough of a RunRecord for record_flags (the sample, default settings)."""

    class model:
        name = "oracle"
        weights = "none"
        random_weights = False
        checkpoint = None
        precision = "fp32"

    class dataset:
        name = "sample-coco"
        annotation_file = ""
        limit = None

    class protocol:
        overrides: dict = {}  # noqa: RUF012

    name = "oracle"
    boxes = None
    seed = 0
    scoring = None
    path = None
