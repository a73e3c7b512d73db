"""Reading checkpoints safely, loading them strictly, fetching the official ones.

Why one loader: checkpoints are pickles, and a pickle can run code. Every file is read with
``torch.load(..., weights_only=True)``; the Ultralytics (FastSAM) checkpoints really are pickled
Python objects and are unpickled in full only when their SHA-256 equals the published value or
the user passed ``--trust-checkpoint``. Why strict: official loaders are strict, and a
checkpoint that misses or adds keys is not the model's — loading it partially would give
numbers that mean nothing.

Which file is official, and its SHA-256, is the :class:`~evalsuite.models.base.WeightsFile` of
the model's :class:`~evalsuite.models.base.ModelSpec` (third-party models declare theirs the same
way). The file in the cache is checked against the published SHA-256, or, where none is
published, against the value recorded at its first successful load (trust on first use, see
:mod:`evalsuite.fetch.artefact`).
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import nn

from ..data.jsonio import sha256_file
from ..errors import DataNotFoundError, InputError
from ..fetch import DOWNLOADED, FIRST_USE, expected_sha256, fetch, remember
from .base import ModelSpec, WeightsFile

TRUST_FLAG = "--trust-checkpoint"
#: a state-dict adapter: the official file's state dict → the in-house network's (e.g. SAM 2's video
#: keys checked and dropped); it raises InputError for a file that does not fit
Adapter = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


class CheckpointMissingError(DataNotFoundError):
    """The checkpoint file is not there (exit status 2; the message says where to get it)."""


def _spec(spec: ModelSpec | str) -> ModelSpec:
    if isinstance(spec, str):
        from .registry import get_spec

        return get_spec(spec)
    return spec


def official_weights(spec: ModelSpec | str) -> WeightsFile:
    """The spec's official file, or a one-line error for a model without weights."""
    spec = _spec(spec)
    if spec.weights is None:
        raise InputError(f"model {spec.name!r} has no weights to load or fetch")
    return spec.weights


def _command(name: str) -> str:
    return f"`evalsuite download weights {name}`"


def find_checkpoint(spec: ModelSpec | str) -> Path:
    """The cached official checkpoint of ``spec``, or a one-line error saying how to get it."""
    spec = _spec(spec)
    info = official_weights(spec)
    path = info.default_path()
    if path.is_file():
        return path
    raise CheckpointMissingError(
        f"{spec.name}: checkpoint {path} not found; run {_command(spec.name)}, "
        f"or download {info.url} and put it at {path}"
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


# -- reading ------------------------------------------------------------------------------------------------
@dataclass
class LoadedCheckpoint:
    """What a runner needs from a checkpoint file, plus its SHA-256 for the run record."""

    #: name -> tensor; for Ultralytics files the pickled module's ``state_dict()`` (dtype as saved, fp16)
    state_dict: dict[str, torch.Tensor]
    obj: Any  # the whole unpickled object (e.g. the Ultralytics dict with its nn.Module)
    sha256: str
    path: Path
    spec: ModelSpec
    #: the file is the cached official one (its SHA-256 was checked, or is recorded once it loads)
    at_default_path: bool = False
    #: what loading changed in the file's keys (recorded in the run's execution notes)
    notes: dict[str, str] = field(default_factory=dict)

    def confirm(self) -> None:
        """The file loaded: trust it on first use if it is the cached official file (no published hash)."""
        if self.at_default_path and self.spec.weights is not None:
            remember(self.spec.weights, self.sha256, self.path.parent)


def _zip_member(path: Path, member: str) -> bytes | None:
    """The bytes of ``member`` in the zip ``path``; None when ``path`` is a bare torch file instead."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            for name in names:
                pure = PurePosixPath(name.replace("\\", "/"))
                if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name):
                    raise InputError(f"{path}: unsafe member name {name!r} in the zip; refusing the archive")
            hits = [n for n in names if PurePosixPath(n.replace("\\", "/")).name == member]
            if not hits:
                if any(n.endswith("data.pkl") for n in names):
                    return None  # torch's own zip format: the user passed the extracted .pt
                raise InputError(f"{path}: the zip holds no {member!r} (members: {', '.join(names[:5])})")
            if len(hits) > 1:
                raise InputError(f"{path}: the zip holds {member!r} more than once ({', '.join(hits)})")
            return zf.read(hits[0])
    except zipfile.BadZipFile:
        return None  # not a zip: maybe an extracted (legacy-format) .pt; torch.load will judge
    except (zipfile.LargeZipFile, EOFError, OSError) as e:
        raise InputError(f"{path}: cannot read the zip archive ({e}); download it again") from None


_UNSAFE = re.compile(r"Unsupported (?:global|class)|not an allowed global", re.IGNORECASE)


class _PickledObjects(Exception):
    """``weights_only=True`` met a class it will not construct (the message names it)."""


def _first_line(e: BaseException) -> str:
    """The informative line of a torch error (its weights-only preamble is advice, not a reason)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0][:200] if lines else ""


def _torch_load(source: Any, path: Path, weights_only: bool) -> Any:
    """``torch.load`` on CPU with errors turned into one clear line naming ``path``."""
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        return torch.load(source, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as e:
        if weights_only and _UNSAFE.search(str(e)):
            raise _PickledObjects(str(e)) from None
        raise InputError(
            f"{path}: not a readable PyTorch checkpoint ({_first_line(e)}); "
            "the file is truncated or corrupt, download it again"
        ) from None
    except (ModuleNotFoundError, AttributeError) as e:
        # full unpickling needs the classes the file refers to (Ultralytics checkpoints: `ultralytics`)
        raise InputError(
            f"{path}: unpickling needs code that is not installed ({e}); for FastSAM install `ultralytics`"
        ) from None
    except (RuntimeError, EOFError, KeyError, IndexError, ValueError, OSError, zipfile.BadZipFile) as e:
        raise InputError(
            f"{path}: not a readable PyTorch checkpoint ({_first_line(e) or type(e).__name__}); "
            "the file is truncated or corrupt, download it again"
        ) from None


def _global_name(message: str) -> str:
    m = re.search(r"GLOBAL ([\w.]+)", message)
    return m.group(1) if m else "Python objects"


def _is_tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _state_dict(obj: Any, info: WeightsFile, path: Path) -> dict[str, torch.Tensor]:
    """Pull the weights out of the official layouts (lenient: a fine-tuned file may use another one)."""
    if info.format == "ultralytics":
        if _is_tensor_dict(obj):
            return dict(obj)  # weights exported from an Ultralytics model
        if isinstance(obj, Mapping):
            for key in ("model", "ema"):
                inner = obj.get(key)
                if inner is not None and hasattr(inner, "state_dict"):
                    return dict(inner.state_dict())
                if inner is not None and _is_tensor_dict(inner):
                    return dict(inner)
        raise InputError(f"{path}: not an Ultralytics checkpoint (no 'model' entry holding the network)")
    if _is_tensor_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if _is_tensor_dict(obj.get(key)):
                return dict(obj[key])
        keys = ", ".join(map(repr, list(obj)[:6])) or "none"
        if info.format in ("model_key", "zip_model_key") and "model" not in obj:
            raise InputError(f"{path}: no 'model' key holding the weights (top-level keys: {keys})")
        raise InputError(f"{path}: holds no state dict of tensors (top-level keys: {keys})")
    raise InputError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")


def read_checkpoint(spec: ModelSpec | str, path: str | Path, trust: bool = False) -> LoadedCheckpoint:
    """Read a checkpoint of ``spec`` safely and return its weights and SHA-256.

    The SHA-256 is always computed (it goes into the run record). It is checked only for the file
    at the cache path (what ``download weights`` put there): a file passed by path may well be a
    fine-tune. Full unpickling (``weights_only=False``) happens only for a file whose SHA-256 equals
    the published one, or with ``trust=True``. Nothing is recorded here: the caller confirms the file
    (:meth:`LoadedCheckpoint.confirm`) once it loaded.
    """
    spec = _spec(spec)
    info = official_weights(spec)
    path = Path(path).expanduser()
    at_default = _same_file(path, info.default_path())
    if not path.is_file():
        hint = f"; run {_command(spec.name)}" if at_default else ""
        raise CheckpointMissingError(f"{path}: checkpoint file not found{hint}")
    sha = sha256_file(path)
    if at_default:
        exp = expected_sha256(info, path.parent)
        if exp.sha256 is not None and sha != exp.sha256:
            raise InputError(
                f"{path}: SHA-256 {sha} differs from the expected {exp.sha256} ({exp.source}) "
                "of the official "
                f"{info.filename}; delete it and run {_command(spec.name)}, or pass a fine-tuned file by path"
            )
    elif path.name == info.filename and info.sha256 and sha != info.sha256:
        warnings.warn(
            f"{path} has the official name but not the official SHA-256; it is recorded as a different file",
            stacklevel=2,
        )

    verified = info.sha256 is not None and sha == info.sha256
    source: Any = path
    if info.format == "zip_model_key":
        member = _zip_member(path, info.member or "")
        if member is not None:
            source = io.BytesIO(member)

    if info.pickled and (verified or trust):
        obj = _torch_load(source, path, weights_only=False)
    else:
        try:
            obj = _torch_load(source, path, weights_only=True)
        except _PickledObjects as e:
            if not (trust or verified):
                what = _global_name(str(e))
                raise InputError(
                    f"{path}: the file contains pickled objects ({what}) that could run code when loaded, "
                    f"and its SHA-256 {sha} is not a published one; pass {TRUST_FLAG} only if you trust it"
                ) from None
            obj = _torch_load(source, path, weights_only=False)
    return LoadedCheckpoint(_state_dict(obj, info, path), obj, sha, path, spec, at_default)


def load_strict(model: nn.Module, ck: LoadedCheckpoint, adapt: Adapter | None = None) -> None:
    """``model.load_state_dict(strict=True)`` with any mismatch reported as a user error naming the file."""
    name = ck.spec.name
    state = _strip_ddp_prefix(ck, dict(ck.state_dict), set(model.state_dict()))
    if adapt is not None:
        try:
            state = adapt(state)
        except InputError as e:
            raise InputError(f"{ck.path}: not a {name} checkpoint: {e.message}", hint=e.hint) from None
        except ValueError as e:  # a network module's own mismatch error
            raise InputError(f"{ck.path}: {e}", hint=f"pass the official {name} file") from None
    expected, got = set(model.state_dict()), set(state)
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        raise InputError(
            f"{ck.path}: not a {name} checkpoint: {len(missing)} missing key(s) {missing[:3]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:3]}",
            hint=f"pass the official {name} file ({_command(name)})",
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # same keys, wrong shapes: e.g. the -Ti file given for -S
        raise InputError(f"{ck.path}: does not fit {name}: {str(exc).splitlines()[-1].strip()}") from None


DDP_PREFIX = "module."


def _strip_ddp_prefix(ck: LoadedCheckpoint, state: dict[str, Any], expected: set[str]) -> dict[str, Any]:
    """A state dict saved from a DistributedDataParallel wrapper has every key under ``module.``: strip
    it (only when every key has it and the network has no such keys), and note it for the record."""
    if not state or not all(k.startswith(DDP_PREFIX) for k in state) or expected & set(state):
        return state
    ck.notes["checkpoint_keys"] = f"stripped '{DDP_PREFIX}' from every key (a DDP-wrapped state dict)"
    return {k[len(DDP_PREFIX) :]: v for k, v in state.items()}


def load_weights(
    model: nn.Module,
    spec: ModelSpec | str,
    path: str | Path,
    trust: bool = False,
    adapt: Adapter | None = None,
) -> str:
    """Read, strictly load and confirm a checkpoint into ``model``; returns its SHA-256."""
    return load_checkpoint(model, spec, path, trust, adapt).sha256


def load_checkpoint(
    model: nn.Module,
    spec: ModelSpec | str,
    path: str | Path,
    trust: bool = False,
    adapt: Adapter | None = None,
) -> LoadedCheckpoint:
    """:func:`load_weights`, returning what was read (its SHA-256, and ``notes`` on what loading changed)."""
    ck = read_checkpoint(spec, path, trust)
    load_strict(model, ck, adapt)
    ck.confirm()
    return ck


def network_factory(
    spec_name: str,
    make_network: Callable[[], nn.Module],
    make_runner: Callable[..., Any],
    adapt: Adapter | None = None,
) -> Callable[..., Any]:
    """The ``build`` of a model whose runner wraps one ``nn.Module``: build, load strictly, ``eval()``.

    ``eval()`` comes after loading: MobileSAM's TinyViT caches its attention biases there.
    """

    def build(
        checkpoint: str | Path | None = None,
        device: str = "cpu",
        trust_checkpoint: bool = False,
        **options: object,
    ) -> Any:
        from .registry import (
            get_spec,
        )  # the spec of this very entry (lazy: registry imports the model modules)

        network = make_network()
        ck = None
        if checkpoint is not None:
            ck = load_checkpoint(network, get_spec(spec_name), checkpoint, trust_checkpoint, adapt)
        network.eval()
        dev = torch.device(device)
        # the model's declared options (ModelSpec.options), resolved by the registry; none for most models
        runner = make_runner(network.to(dev), dev, **options)
        runner.checkpoint_sha256 = None if ck is None else ck.sha256
        if ck is not None and ck.notes:  # recorded with the run (its execution notes)
            own = runner.execution_notes
            runner.execution_notes = lambda: {**own(), **ck.notes}
        return runner

    build.__doc__ = f"Build the {spec_name} runner (untrained weights without a checkpoint)."
    return build


# -- fetching -----------------------------------------------------------------------------------------------
def download_weights(
    spec: ModelSpec | str, dest_dir: Path | None = None, progress: bool = True, base_url: str | None = None
) -> Path:
    """Download the official checkpoint of ``spec`` (resumable, size and SHA-256 checked); returns the path.

    A file already there is checked rather than fetched again. Without a published SHA-256, the file
    must first load into the network (built on the meta device: no memory, no weights initialised)
    before its SHA-256 is recorded; a file that does not load is deleted, so running the command
    again fetches it afresh.
    """
    spec = _spec(spec)
    info = official_weights(spec)
    folder = Path(dest_dir) if dest_dir is not None else info.default_path().parent
    # fetched now from the official URL: the file is the official one (a file found in place, or one
    # from a mirror, is only trusted on first use; see fetch.is_official)
    how = DOWNLOADED if base_url is None and not (folder / info.filename).is_file() else FIRST_USE
    path, sha = fetch(info, folder, base_url, progress)
    if info.sha256:
        return path
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", UserWarning
            )  # "copying into a meta parameter is a no-op": intended
            spec.build(checkpoint=path, device="meta")
    except InputError as e:
        path.unlink(missing_ok=True)
        raise InputError(
            f"{path}: the downloaded file does not load as {spec.name} ({e.message}); it was deleted",
            hint=f"run {_command(spec.name)} again; if it fails again the published file changed",
        ) from None
    remember(info, sha, path.parent, how)
    return path


def save_official_format(spec: ModelSpec | str, state_dict: Mapping[str, torch.Tensor], folder: Path) -> Path:
    """Write ``state_dict`` as the official file of ``spec`` would hold it (tests, benchmarks).

    Raw state dict, ``{"model": sd}``, ``{"state_dict": sd}`` or a zip holding ``{"model": sd}``,
    under the official file name.
    """
    spec = _spec(spec)
    info = official_weights(spec)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / info.filename
    if info.format == "state_dict":
        torch.save(dict(state_dict), path)
    elif info.format == "model_key":
        torch.save({"model": dict(state_dict)}, path)
    elif info.format == "state_dict_key_or_plain":
        torch.save({"state_dict": dict(state_dict)}, path)
    elif info.format == "zip_model_key":
        buffer = io.BytesIO()
        torch.save({"model": dict(state_dict)}, buffer)
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(info.member or "", buffer.getvalue())
    else:
        raise InputError(
            f"{spec.name}: its checkpoints are {info.format} files, which evalsuite does not write"
        )
    return path
