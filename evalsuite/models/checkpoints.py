"""The one registry of official checkpoints, and the one place they are read.

Why a registry: the suite records the SHA-256 of every checkpoint it runs, and
an official file must be recognisable as such (and refused when it is not what
was published). Why one loader: checkpoints are pickles, and a pickle can run
code. Every file is read with ``torch.load(..., weights_only=True)``; the
Ultralytics (FastSAM) checkpoints really are pickled Python objects and are
unpickled in full only when their SHA-256 equals the published value or the
user passed ``--trust-checkpoint``.

Hashes: SHA-256 values below are the ones published by third parties for the
official files (sources in the comments); none was invented. Where none was
found the value is ``None`` and the first download records what it saw in
``$EVALSUITE_HOME/checkpoints/sha256.json`` ("trust on first use"); later loads
from the cache are checked against that record.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..data.jsonio import sha256_file
from ..download import ShaRecord
from ..errors import DataNotFoundError, InputError, UnknownNameError, did_you_mean

if TYPE_CHECKING:
    import torch

FORMATS = ("state_dict", "model_key", "zip_model_key", "ultralytics")


@dataclass(frozen=True)
class CheckpointInfo:
    """An official checkpoint file: where it is published and how it is laid out."""

    model: str  # evalsuite model name
    filename: str  # official file name
    url: str  # official https URL
    format: str  # one of FORMATS
    size: int | None = None  # bytes; None where not known
    sha256: str | None = None  # None where not known: recorded on first download (trust on first use)
    member: str | None = None  # file inside a zip
    pickled: bool = False  # needs full unpickling: only with a known SHA-256 or trust=True


_SAM = "https://dl.fbaipublicfiles.com/segment_anything/"
_ULTRALYTICS = "https://github.com/ultralytics/assets/releases/download/v8.2.0/"

# Sources of sizes and hashes (public code found with the search tools; the values agree everywhere):
# * SAM: URLs from the segment-anything README. SHA-256 from micro-sam's pooch registry
#   (computational-cell-analytics/micro-sam, micro_sam/util.py) and several independent download
#   scripts; ViT-H and MobileSAM hashes also in open-edge-platform/model_api issues #350/#352.
#   Sizes from several model manifests (ViT-B's also from a wget log of the official URL,
#   "Length: 375042383"). The file-name suffixes are MD5 prefixes, not SHA-256.
# * MobileSAM: SHA-256 and size from projects pinning weights/mobile_sam.pt at ChaoningZhang/MobileSAM
#   commit f706ad9 (same hash as micro-sam's registry). The URL follows master.
# * EfficientSAM-Ti: SHA-256 and size (40,982,470) from several projects pinning yformer/EfficientSAM
#   at d525f62 (the commit the fidelity goldens used); one also gives MD5 7a804da5.... EfficientSAM-S
#   (the zip): nothing published was found -> None, recorded on first download.
# * FastSAM: URLs from the Ultralytics FastSAM docs (assets release v8.2.0; later docs link v8.4.0 with
#   the same FastSAM-s hash and size); SHA-256 and sizes from data-juicer's model lock and other
#   projects pinning these assets. The Google Drive files of the FastSAM README were not hashed
#   anywhere we found and may differ (they would then need --trust-checkpoint).
CHECKPOINTS: dict[str, CheckpointInfo] = {
    info.model: info
    for info in (
        CheckpointInfo(
            "sam-vit-b",
            "sam_vit_b_01ec64.pth",
            _SAM + "sam_vit_b_01ec64.pth",
            "state_dict",
            size=375_042_383,
            sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        ),
        CheckpointInfo(
            "sam-vit-l",
            "sam_vit_l_0b3195.pth",
            _SAM + "sam_vit_l_0b3195.pth",
            "state_dict",
            size=1_249_524_607,
            sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        ),
        CheckpointInfo(
            "sam-vit-h",
            "sam_vit_h_4b8939.pth",
            _SAM + "sam_vit_h_4b8939.pth",
            "state_dict",
            size=2_564_550_879,
            sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        ),
        CheckpointInfo(
            "mobilesam",
            "mobile_sam.pt",
            "https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/master/weights/mobile_sam.pt",
            "state_dict",
            size=40_728_226,
            sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        ),
        CheckpointInfo(
            "efficientsam-ti",
            "efficient_sam_vitt.pt",
            "https://raw.githubusercontent.com/yformer/EfficientSAM/main/weights/efficient_sam_vitt.pt",
            "model_key",
            size=40_982_470,
            sha256="dff858b19600a46461cbb7de98f796b23a7a888d9f5e34c0b033f7d6eb9e4e6a",
        ),
        CheckpointInfo(
            "efficientsam-s",
            "efficient_sam_vits.pt.zip",
            "https://raw.githubusercontent.com/yformer/EfficientSAM/main/weights/efficient_sam_vits.pt.zip",
            "zip_model_key",
            size=None,  # unknown: recorded on first download
            sha256=None,  # unknown: recorded on first download
            member="efficient_sam_vits.pt",
        ),
        CheckpointInfo(
            "fastsam-s",
            "FastSAM-s.pt",
            _ULTRALYTICS + "FastSAM-s.pt",
            "ultralytics",
            size=23_851_578,
            sha256="c9f78716a81c7aff0d608ccc73e1b82ab3aaad86005049f6a92106a0be6d0844",
            pickled=True,
        ),
        CheckpointInfo(
            "fastsam-x",
            "FastSAM-x.pt",
            _ULTRALYTICS + "FastSAM-x.pt",
            "ultralytics",
            size=144_972_346,
            sha256="752cadc2828edb1cd4bc4f9eb587100631af06ea2108f4c9ed56df4755701e76",
            pickled=True,
        ),
    )
}

TRUST_FLAG = "--trust-checkpoint"
_RECORD = "sha256.json"


class CheckpointMissingError(DataNotFoundError):
    """The checkpoint file is not there (exit status 2; the message says where to get it)."""


def _info(model: str) -> CheckpointInfo:
    try:
        return CHECKPOINTS[model]
    except KeyError:
        raise UnknownNameError(
            f"no official checkpoint is known for model {model!r}." + did_you_mean(model, list(CHECKPOINTS))
        ) from None


def home() -> Path:
    """The evalsuite cache: ``$EVALSUITE_HOME``, default ``~/.cache/evalsuite``."""
    env = os.environ.get("EVALSUITE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "evalsuite"


def default_path(model: str) -> Path:
    """Where the official checkpoint of ``model`` is looked for (and downloaded to)."""
    return home() / "checkpoints" / _info(model).filename


def _command(model: str) -> str:
    return f"`evalsuite download weights {model}`"


def find_checkpoint(model: str) -> Path:
    """The cached official checkpoint of ``model``, or a one-line error saying how to get it."""
    info = _info(model)
    path = default_path(model)
    if path.is_file():
        return path
    raise CheckpointMissingError(
        f"{model}: checkpoint {path} not found; run {_command(model)}, "
        f"or download {info.url} and put it at {path}"
    )


# --- trust-on-first-use record ---------------------------------------------------------------


def _record_path() -> Path:
    return home() / "checkpoints" / _RECORD


def recorded_sha256(filename: str) -> str | None:
    """SHA-256 observed when ``filename`` (official name, no published hash) was first fetched."""
    return ShaRecord(_record_path()).get(filename)


def record_sha256(filename: str, sha256: str) -> None:
    """Remember ``sha256`` for ``filename`` (trust on first use)."""
    ShaRecord(_record_path()).set(filename, sha256)


def expected_sha256(model: str) -> tuple[str | None, str]:
    """The SHA-256 the official file must have, and where that value comes from."""
    info = _info(model)
    if info.sha256:
        return info.sha256, "published"
    rec = recorded_sha256(info.filename)
    return rec, "recorded on first download"


# --- downloads ---------------------------------------------------------------------------------


def _check_base_url(base_url: str) -> None:
    """``base_url`` replaces the official host (tests' loopback server, or a mirror): same URL rules."""
    from ..download import check_url

    check_url(base_url)


def download_weights(
    model: str,
    dest_dir: Path | None = None,
    progress: bool = True,
    base_url: str | None = None,
) -> Path:
    """Download the official checkpoint of ``model`` (resumable, size and SHA-256 checked).

    Returns the path. A file already there is checked rather than fetched again.
    Without a published SHA-256 the observed one is recorded in the cache's
    ``sha256.json`` and later downloads and loads must match it.
    """
    from ..download import DownloadError, download

    info = _info(model)
    dest_dir = Path(dest_dir) if dest_dir is not None else home() / "checkpoints"
    dest = dest_dir / info.filename
    if base_url is not None:
        _check_base_url(base_url)
        url = base_url.rstrip("/") + "/" + info.filename
    else:
        url = info.url
    expected, source = expected_sha256(model)

    if dest.is_file():
        got = sha256_file(dest)
        if expected is not None and got != expected:
            raise InputError(
                f"{dest}: SHA-256 {got} differs from the expected {expected} ({source}); "
                f"delete the file and run {_command(model)} again"
            )
        if expected is None:
            record_sha256(info.filename, got)
        return dest

    try:
        got = download(url, dest, sha256=expected, size=info.size, progress=progress)
    except DownloadError as e:
        if expected is not None and source != "published" and "SHA-256 mismatch" in e.message:
            e.message += f" (expected value from {_record_path()}; delete that entry if the file changed)"
        raise
    if expected is None:
        record_sha256(info.filename, got)
    return dest


# --- loading -----------------------------------------------------------------------------------


@dataclass
class LoadedCheckpoint:
    """What a runner needs from a checkpoint file, plus its SHA-256 for the run record."""

    #: name -> tensor; for Ultralytics files the pickled module's ``state_dict()`` (dtype as saved, fp16).
    #: Never None for the official layouts (a file without weights is an error); typed so for plugins.
    state_dict: dict[str, torch.Tensor] | None
    obj: Any  # the whole unpickled object (e.g. the Ultralytics dict with its nn.Module)
    sha256: str
    path: Path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


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


def _torch_load(source: Any, path: Path, weights_only: bool) -> Any:
    """``torch.load`` on CPU with errors turned into one clear line naming ``path``."""
    import torch

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


class _PickledObjects(Exception):
    """``weights_only=True`` met a class it will not construct (the message names it)."""


def _first_line(e: BaseException) -> str:
    """The informative line of a torch error (its weights-only preamble is advice, not a reason)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0][:200] if lines else ""


def _global_name(message: str) -> str:
    m = re.search(r"GLOBAL ([\w.]+)", message)
    return m.group(1) if m else "Python objects"


def _is_tensor_dict(obj: Any) -> bool:
    import torch

    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _state_dict(obj: Any, info: CheckpointInfo, path: Path) -> dict[str, torch.Tensor]:
    """Pull the weights out of the official layouts (lenient: a fine-tuned file may use the other one)."""
    if info.format == "ultralytics":
        if _is_tensor_dict(obj):
            return dict(obj)  # weights exported from an Ultralytics model
        if isinstance(obj, Mapping):
            for key in ("model", "ema"):
                inner = obj.get(key)
                if hasattr(inner, "state_dict"):
                    return dict(inner.state_dict())
                if _is_tensor_dict(inner):
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


def load_checkpoint(model: str, path: str | Path, trust: bool = False) -> LoadedCheckpoint:
    """Read a checkpoint of ``model`` safely and return its weights and SHA-256.

    The SHA-256 is always computed (it goes into the run record). It is checked
    only for the file at :func:`default_path` (what ``download weights`` put
    there): a file passed by path may well be a fine-tune. Full unpickling
    (``weights_only=False``) happens only for a file whose SHA-256 equals the
    published one, or with ``trust=True``.
    """
    info = _info(model)
    path = Path(path).expanduser()
    if not path.is_file():
        hint = f"; run {_command(model)}" if _same_file(path, default_path(model)) else ""
        raise CheckpointMissingError(f"{path}: checkpoint file not found{hint}")
    sha = sha256_file(path)

    if _same_file(path, default_path(model)):
        expected, source = expected_sha256(model)
        if expected is None:
            record_sha256(info.filename, sha)  # placed by hand: the first use is the trust anchor
        elif sha != expected:
            raise InputError(
                f"{path}: SHA-256 {sha} differs from the expected {expected} ({source}) of the official "
                f"{info.filename}; delete it and run {_command(model)}, or pass a fine-tuned file by path"
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
    return LoadedCheckpoint(state_dict=_state_dict(obj, info, path), obj=obj, sha256=sha, path=path)


def save_official_format(model: str, state_dict: Mapping[str, torch.Tensor], folder: Path) -> Path:
    """Write ``state_dict`` as the official file of ``model`` would hold it (tests, benchmarks).

    Raw state dict, ``{"model": sd}``, or a zip holding that, under the official file name.
    """
    import torch

    info = _info(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / info.filename
    if info.format == "state_dict":
        torch.save(dict(state_dict), path)
    elif info.format == "model_key":
        torch.save({"model": dict(state_dict)}, path)
    elif info.format == "zip_model_key":
        buffer = io.BytesIO()
        torch.save({"model": dict(state_dict)}, buffer)
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(info.member or "", buffer.getvalue())
    else:
        raise InputError(f"{model}: its checkpoints are {info.format} files, which evalsuite does not write")
    return path


def load_strict(model: torch.nn.Module, ck: LoadedCheckpoint, name: str) -> None:
    """``model.load_state_dict(strict=True)`` with any mismatch reported as a user error naming the file.

    Official loaders are strict: a checkpoint that misses or adds keys is not the model's, and
    loading it partially would give numbers that mean nothing.
    """
    if ck.state_dict is None:
        raise InputError(f"{ck.path}: holds no state dict, so it is not a {name} checkpoint")
    expected, got = set(model.state_dict()), set(ck.state_dict)
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        raise InputError(
            f"{ck.path}: not a {name} checkpoint: {len(missing)} missing key(s) {missing[:3]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:3]}",
            hint=f"pass the official {name} file (`evalsuite download weights {name}`)",
        )
    try:
        model.load_state_dict(dict(ck.state_dict), strict=True)
    except RuntimeError as exc:  # same keys, wrong shapes: e.g. the -Ti file given for -S
        raise InputError(f"{ck.path}: does not fit {name}: {str(exc).splitlines()[-1].strip()}") from None
