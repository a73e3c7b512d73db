"""Run options, each declared once: what it is, its default, its help, and where it applies.

A run option is a setting of one ``evalsuite run`` (``--limit``, ``--precision``, ``--preset``...). Its
declaration here is the one place that says its type, default and help text, which commands offer it as a
flag (``run``, ``noc``, ``reproduce``), whether :func:`evalsuite.evaluate` takes it as a keyword, and how a
run record shows it (so ``evalsuite gate --write`` can print the command that made a record). The command
line (:mod:`evalsuite.cli.options`), :class:`~evalsuite.engine.RunConfig` (its defaults),
:func:`evalsuite.evaluate`, ``reproduce``'s copyable commands and the gates all read it from here: adding
an option is one :class:`RunOption` in :data:`RUN_OPTIONS`, plus the code that uses its value
(``cfg.option("name")`` reads any declared option from a RunConfig).

Protocol options (``--set key=value``) are declared elsewhere: by task kinds, prompt rules and metrics
(:mod:`evalsuite.protocols`); model options by each model's spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the commands that turn run options into a run
RUN, NOC, REPRODUCE = "run", "noc", "reproduce"
RUN_NOC = frozenset({RUN, NOC})
ALL_COMMANDS = frozenset({RUN, NOC, REPRODUCE})
PRECISIONS = ("fp32", "tf32", "bf16")
AP_BACKENDS = ("official", "faster")
_SAME = object()


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


@dataclass(frozen=True)
class RunOption:
    """One run option (see the module docstring)."""

    name: str  # the RunConfig field, and the evaluate() keyword unless ``python`` names another
    help: str
    default: Any = None
    kind: type = str  # str | int | bool | Path
    flag: str | None = None  # the command-line spelling; None: Python only
    commands: frozenset[str] = RUN_NOC  # the commands that offer the flag
    #: the evaluate() keyword ("": not offered); None: the same as ``name``
    python: str | None = None
    python_default: Any = _SAME  # evaluate()'s default where it differs (e.g. out=None: nothing written)
    #: the flag's default where it differs (None: to tell an absent flag from one given at the default)
    flag_default: Any = _SAME
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    metavar: str | None = None
    show_default: bool = False
    is_flag: bool = False
    multiple: bool = False
    hidden: bool = False
    short: str | None = None  # a one-letter alias ("-m")
    required: bool = False  # on the command line
    param: str | None = None  # the click parameter's name where it differs from ``name``
    #: per-command changes of the default or help (``reproduce`` writes under ``results/``)
    per_command: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the flag sets this protocol option (``--refine 1`` is ``--set refine=1``)
    protocol_option: str | None = None
    #: ``reproduce`` names it in every command it prints, even at its default
    always_shown: bool = False
    #: a command that remakes a run names it (False: it changes how the run shows, not what it is)
    shown: bool = True
    #: the values of this flag that remake a run record (``evalsuite gate --write``); None: not shown
    from_record: Callable[[Any], list[str]] | None = None

    @property
    def keyword(self) -> str:
        """The evaluate() keyword ("" when evaluate() does not take it)."""
        return self.name if self.python is None else self.python

    @property
    def flag_value(self) -> Any:
        """The command line's default."""
        return self.default if self.flag_default is _SAME else self.flag_default

    @property
    def python_value(self) -> Any:
        """evalsuite.evaluate()'s default."""
        return self.default if self.python_default is _SAME else self.python_default

    def for_command(self, command: str) -> RunOption:
        """This option as ``command`` offers it (its per-command default and help)."""
        changes = self.per_command.get(command)
        if not changes:
            return self
        from dataclasses import replace

        return replace(self, **changes)

    def command_words(self, value: Any) -> list[str]:
        """``value`` as words of an ``evalsuite run`` command (empty at the default, unless always shown)."""
        if self.flag is None or value is None or not self.shown:
            return []
        if self.is_flag:  # a switch says what differs from the default (--no-progress: progress off)
            return [self.flag] if bool(value) != bool(self.default) else []
        if not self.always_shown and value == self.default:
            return []
        return [self.flag, _fmt(value)]


def _record_model(r: Any) -> list[str]:
    return [r.model.name]


def _record_name(r: Any) -> list[str]:
    return [r.name] if r.name != r.model.name else []


def _record_data(r: Any) -> list[str]:
    return ["sample"] if r.dataset.name.startswith("sample-") else []


def _record_ann(r: Any) -> list[str]:
    if r.dataset.name.startswith("sample-") or not r.dataset.annotation_file:
        return []
    return [r.dataset.annotation_file]


def _record_weights(r: Any) -> list[str]:
    return [r.model.weights] if r.model.random_weights else []


def _record_checkpoint(r: Any) -> list[str]:
    if r.model.random_weights or not (r.model.weights == "file" and r.model.checkpoint):
        return []
    return [r.model.checkpoint]


def _record_out(r: Any) -> list[str]:
    if r.path is not None and len(r.path.parents) >= 3:
        return [str(r.path.parents[2])]  # OUT/NAME/PROTOCOL/record.json
    return []


#: every run option, in the order commands and records show them
RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption(
        "model",
        "Registered model name (see `evalsuite ls`).",
        default="",
        flag_default=None,
        flag="--model",
        short="-m",
        required=True,
        python="",  # evaluate()'s first argument
        from_record=_record_model,
    ),
    RunOption(
        "name",
        "Run name (rows, folders). Default: the model, +ck<sha> for another checkpoint, "
        "+random<seed>, +key=value for changed options, +limit<N>, +seed<N>, @<dataset> for another "
        "annotation file.",
        flag="--name",
        commands=ALL_COMMANDS,
        from_record=_record_name,
    ),
    RunOption(
        "checkpoint",
        "Checkpoint file (default: the official file in the cache, see `evalsuite download weights`).",
        kind=Path,
        flag="--checkpoint",
        commands=ALL_COMMANDS,
        from_record=_record_checkpoint,
    ),
    RunOption(
        "weights",
        "random[:SEED]: deterministic weights, no download (smoke runs; no paper value applies).",
        flag="--weights",
        commands=ALL_COMMANDS,
        metavar="official|random[:SEED]",
        from_record=_record_weights,
    ),
    RunOption(
        "trust_checkpoint",
        "Allow unpickling a checkpoint whose SHA-256 evalsuite does not know (runs code from the file).",
        default=False,
        kind=bool,
        flag="--trust-checkpoint",
        commands=ALL_COMMANDS,
        is_flag=True,
        python="",
    ),
    RunOption(
        "data",
        "The real dataset, or the small sample bundled with evalsuite (COCO and LVIS).",
        default="real",
        flag="--data",
        commands=ALL_COMMANDS,
        choices=("real", "sample"),
        show_default=True,
        always_shown=True,
        from_record=_record_data,
    ),
    RunOption(
        "data_root",
        "Folder the dataset's layout is under (default: $EVALSUITE_DATA, else its own default, e.g. "
        "./datasets/coco; `evalsuite ls datasets`).",
        kind=Path,
        flag="--data-root",
        commands=ALL_COMMANDS,
    ),
    RunOption(
        "ann",
        "Annotation file (or folder, for per-image formats) instead of the dataset's own: a custom file, "
        "named by its content in the records.",
        kind=Path,
        flag="--ann",
        commands=ALL_COMMANDS,
        from_record=_record_ann,
    ),
    RunOption(
        "limit",
        "Evaluate only the first N images (by id).",
        kind=int,
        flag="--limit",
        commands=ALL_COMMANDS,
        minimum=1,
        from_record=lambda r: [] if r.dataset.limit is None else [str(r.dataset.limit)],
    ),
    RunOption(
        "boxes",
        "Detections (COCO results JSON) for coco-vitdet / lvis-vitdet.",
        kind=Path,
        flag="--boxes",
        commands=frozenset({RUN}),
        from_record=lambda r: [] if r.boxes is None else [r.boxes.file or "FILE"],
    ),
    RunOption(
        "preset",
        "A peer's evaluation conventions as one option set: efficientvit-sam, edgesam or sam-hq "
        "(docs/presets.md; `evalsuite ls presets`). --set values win over the preset's.",
        flag="--preset",
        metavar="NAME",
    ),
    RunOption(
        "overrides",
        "Change a protocol option, e.g. click_rule=sam, include_crowd=true, mask_choice=single.",
        default={},
        kind=dict,
        flag="--set",
        flag_default=None,
        multiple=True,
        metavar="KEY=VALUE",
        python="options",
        python_default=None,
        param="sets",
        from_record=lambda r: [f"{k}={_fmt(v)}" for k, v in sorted(r.protocol.overrides.items())],
    ),
    RunOption(
        "seed",
        "Seed of the random click rule.",
        default=0,
        kind=int,
        flag="--seed",
        show_default=True,
        from_record=lambda r: [str(r.seed)] if r.seed != 0 else [],
    ),
    RunOption(
        "skip_bad",
        "Skip bad images, annotations and detections (counted in the record); default: stop.",
        default=False,
        kind=bool,
        flag="--skip-bad",
        is_flag=True,
    ),
    RunOption(
        "ap_backend",
        "AP protocols: pycocotools / lvis (default), or faster-coco-eval (same numbers).",
        default="official",
        flag="--ap-backend",
        commands=frozenset({RUN}),
        choices=AP_BACKENDS,
        flag_default=None,  # absent: official (and --evaluator, its deprecated spelling, may say otherwise)
        from_record=lambda r: (
            [r.scoring.backend] if r.scoring is not None and r.scoring.backend != "official" else []
        ),
    ),
    RunOption(
        "refine",
        "AP protocols: 1 = SAM's mask-refinement iteration (same as --set refine=1).",
        kind=int,
        flag="--refine",
        commands=frozenset({RUN}),
        minimum=0,
        maximum=1,
        python="",
        protocol_option="refine",
    ),
    RunOption(
        "device",
        "cpu, cuda, cuda:N or mps (default: cuda if available, else cpu).",
        flag="--device",
        commands=ALL_COMMANDS,
        always_shown=True,
    ),
    RunOption(
        "precision",
        "fp32 reproduces the official arithmetic; tf32/bf16 are faster on GPUs (recorded).",
        default="fp32",
        flag="--precision",
        commands=ALL_COMMANDS,
        choices=PRECISIONS,
        show_default=True,
        always_shown=True,
        from_record=lambda r: [r.model.precision] if r.model.precision != "fp32" else [],
    ),
    RunOption(
        "image_batch",
        "Images per encoder pass (default: 8 on CUDA, 1 otherwise).",
        kind=int,
        flag="--image-batch",
        commands=ALL_COMMANDS,
        minimum=1,
    ),
    RunOption(
        "workers",
        "Image-decoding worker processes (default: by cores).",
        kind=int,
        flag="--workers",
        commands=ALL_COMMANDS,
        minimum=0,
    ),
    RunOption(
        "progress",
        "Hide progress bars (they are off when stdout is not a terminal).",
        default=True,
        kind=bool,
        flag="--no-progress",
        commands=ALL_COMMANDS,
        is_flag=True,
        param="no_progress",
        python_default=None,  # evaluate(): a bar in Jupyter and on a terminal
        shown=False,
    ),
    RunOption(
        "overwrite",
        "Discard an existing run with different settings in OUT.",
        default=False,
        kind=bool,
        flag="--overwrite",
        is_flag=True,
        shown=False,
    ),
    RunOption(
        "out",
        "Output folder; each run goes to OUT/NAME/PROTOCOL/.",
        default=Path("runs"),
        kind=Path,
        flag="--out",
        commands=ALL_COMMANDS,
        show_default=True,
        python_default=None,  # evaluate(): nothing written, records in memory
        per_command={
            REPRODUCE: {"default": Path("results"), "help": "Tables and plots go here; runs under OUT/runs/."}
        },
        always_shown=True,
        from_record=_record_out,
    ),
    RunOption(
        "model_version",
        "A model passed from Python: its version, which identifies it (default: a hash of its outputs on a "
        "probe input).",
        python="version",
    ),
)

BY_NAME: dict[str, RunOption] = {o.name: o for o in RUN_OPTIONS}


def run_option(name: str) -> RunOption:
    return BY_NAME[name]


def default(name: str) -> Any:
    """A run option's declared default (what RunConfig starts from)."""
    value = BY_NAME[name].default
    return dict(value) if isinstance(value, dict) else value


def python_default(name: str) -> Any:
    """evaluate()'s default of a run option."""
    return BY_NAME[name].python_value


def for_command(command: str) -> list[RunOption]:
    """The run options ``command`` offers as flags, in order, as that command offers them."""
    return [o.for_command(command) for o in RUN_OPTIONS if o.flag is not None and command in o.commands]


#: the declared defaults by name (what RunConfig's fields start from) and evaluate()'s
DEFAULTS: Mapping[str, Any] = {o.name: o.default for o in RUN_OPTIONS}
PYTHON_DEFAULTS: Mapping[str, Any] = {o.name: o.python_value for o in RUN_OPTIONS}


def python_keywords() -> dict[str, RunOption]:
    """The run options evaluate() takes, by keyword."""
    return {o.keyword: o for o in RUN_OPTIONS if o.keyword}


def record_flags(record: Any) -> list[tuple[str, str]]:
    """The ``evalsuite run`` flags (beyond the protocols) that remake a record, as (flag, value) pairs."""
    out: list[tuple[str, str]] = []
    for o in RUN_OPTIONS:
        if o.flag is not None and o.from_record is not None:
            out += [(o.flag, v) for v in o.from_record(record)]
    return out


def command_words(values: Mapping[str, Any]) -> list[str]:
    """Flags of an ``evalsuite run`` command with these option values (RunConfig field → value); protocol
    overrides that have a flag of their own use it (``--refine 1``), the others ``--set k=v``."""
    own = {o.protocol_option: o for o in RUN_OPTIONS if o.protocol_option}
    words: list[str] = []
    for o in RUN_OPTIONS:
        if o.flag is None or RUN not in o.commands or o.protocol_option:
            continue
        value = values.get(o.name)
        if o.name == "overrides":
            for k, v in sorted((value or {}).items()):
                words += [own[k].flag or "", _fmt(v)] if k in own else ["--set", f"{k}={_fmt(v)}"]
        else:
            words += o.command_words(value)
    return words
