"""``evalsuite doctor``: is the install sound, and which optional files are there?

Two kinds of lines. *Required* checks (the Python packages, torch, the bundled sample) decide the
exit status: a broken install is an error. *Optional* ones (COCO/LVIS, official checkpoints,
published detection files, the FastSAM extra) only report: a fresh install without the large
datasets is healthy, and each missing part comes with the exact command that fetches it.
Checks are cheap: files are counted and sized, not hashed (SHA-256 is checked at use).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.jsonio import read_json
from ..data.locate import locate
from ..errors import EvalsuiteError
from .artefact import Artefact
from .boxes import BOX_FILES, default_boxes_path
from .datasets import SPLITS, count_files, default_root, lvis_image_files
from .http import part_path

_EXPECTED_COCO_VAL_IMAGES = 5_000
_EXPECTED_LVIS_VAL_IMAGES = 19_809  # PROTOCOLS.md §4
#: packages evalsuite imports at run time (install problems show here, not mid-run)
_REQUIRED_PACKAGES = (
    "numpy",
    "scipy",
    "pycocotools",
    "lvis",
    "faster_coco_eval",
    "pandas",
    "matplotlib",
    "PIL",
)


@dataclass(frozen=True)
class Check:
    """One line of ``evalsuite doctor``: what, whether it is fine, and the command that fixes it."""

    what: str
    ok: bool
    detail: str
    fix: str | None = None  # exact command (None when ok)
    required: bool = False  # a failed required check is a broken install (non-zero exit)


@dataclass(frozen=True)
class WeightsCheck:
    """A model's official checkpoint file, as the caller (who knows the models) describes it."""

    model: str
    file: Artefact
    needs: str | None = None  # a missing optional extra, e.g. "pip install 'evalsuite[fastsam]'"


def _cmd(*args: str | Path) -> str:
    return "evalsuite " + " ".join(shlex.quote(str(a)) for a in args)


def _present_names(folder: Path) -> set[str]:
    try:
        return {e.name for e in os.scandir(folder) if e.is_file()}
    except OSError:
        return set()


def _partial_note(path: Path) -> str:
    part = part_path(path)
    if part.is_file():
        return f"; a partial download ({part.stat().st_size / 1e6:.1f} MB) is resumed by the command"
    return ""


# -- the install (required) ---------------------------------------------------------------------------
def _install_checks() -> list[Check]:
    from .._version import __version__

    checks = [Check("evalsuite", True, f"{__version__} on Python {platform.python_version()}", required=True)]
    for name in _REQUIRED_PACKAGES:
        try:
            mod = importlib.import_module(name)
        except Exception as e:  # a broken wheel raises anything
            checks.append(
                Check(f"package {name}", False, f"cannot import ({e})", "pip install -e .", required=True)
            )
            continue
        version = getattr(mod, "__version__", "")
        checks.append(Check(f"package {name}", True, version or "importable", required=True))
    checks.append(_torch_check())
    checks.append(_sample_check())
    return checks


def _torch_check() -> Check:
    try:
        import torch
    except Exception as e:
        return Check("torch", False, f"cannot import ({e})", "pip install torch", required=True)
    devices = ["cpu"]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        devices += [f"cuda:{i} ({n})" for i, n in enumerate(names)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    return Check("torch", True, f"{torch.__version__} ({cuda}); devices: {', '.join(devices)}", required=True)


def _sample_check() -> Check:
    try:
        for family in ("coco", "lvis"):
            locate(family, "sample").open()
    except Exception as e:
        return Check(
            "bundled sample", False, f"unreadable ({e})", "pip install -e . (reinstall)", required=True
        )
    return Check("bundled sample", True, "`--data sample` works (COCO and LVIS)", required=True)


def _extra_checks() -> list[Check]:
    ok = importlib.util.find_spec("ultralytics") is not None
    fix = None if ok else "pip install 'evalsuite[fastsam]'"
    return [Check("optional extra fastsam", ok, "ultralytics importable" if ok else "not installed", fix)]


# -- datasets, checkpoints, boxes (optional) ---------------------------------------------------------------
def _doctor_coco(root: Path) -> list[Check]:
    fix = _cmd("download", "coco", "--root", root)
    try:
        ann = locate("coco", data_root=root).ann_file
    except EvalsuiteError:
        n = count_files(root / "val2017")
        return [
            Check("COCO val2017 annotations", False, f"missing under {root}/annotations/", fix),
            Check(
                "COCO val2017 images",
                n >= _EXPECTED_COCO_VAL_IMAGES,
                f"{n:,} of {_EXPECTED_COCO_VAL_IMAGES:,}",
                None if n >= _EXPECTED_COCO_VAL_IMAGES else fix,
            ),
        ]
    checks = [Check("COCO val2017 annotations", True, str(ann))]
    try:
        data, _ = read_json(ann)
        names = {img["file_name"] for img in data["images"]}
    except (EvalsuiteError, KeyError, TypeError) as e:
        return [Check("COCO val2017 annotations", False, f"{ann}: unreadable ({e})", fix)]
    n = len(names & _present_names(root / "val2017"))
    ok = n == len(names)
    checks.append(
        Check("COCO val2017 images", ok, f"{n:,} of {len(names):,} referenced", None if ok else fix)
    )
    return checks


def _doctor_lvis(root: Path) -> list[Check]:
    fix = _cmd("download", "lvis", "--root", root, "--images", "needed")
    try:
        ann = locate("lvis", data_root=root).ann_file
    except EvalsuiteError:
        return [
            Check("LVIS v1 val annotations", False, f"missing under {root}/annotations/", fix),
            Check(
                "LVIS v1 val images",
                False,
                f"unknown until the annotations are there "
                f"({_EXPECTED_LVIS_VAL_IMAGES:,} from train2017 + val2017)",
                fix,
            ),
        ]
    try:
        rels = lvis_image_files(ann)
    except EvalsuiteError as e:
        return [Check("LVIS v1 val annotations", False, str(e).splitlines()[0], fix)]
    present = {s: _present_names(root / s) for s in SPLITS}
    n = sum(1 for r in rels if r.parts[1] in present[r.parts[0]])
    ok = n == len(rels)
    return [
        Check("LVIS v1 val annotations", True, str(ann)),
        Check("LVIS v1 val images", ok, f"{n:,} of {len(rels):,} referenced", None if ok else fix),
    ]


def _doctor_checkpoints(weights: Sequence[WeightsCheck]) -> list[Check]:
    checks = []
    for w in weights:
        path = w.file.default_path()
        extra = f"; also needs the optional extra: {w.needs}" if w.needs else ""
        fix = _cmd("download", "weights", w.model)
        what = f"checkpoint {w.model}"
        if not path.is_file():
            checks.append(Check(what, False, f"missing: {path}{_partial_note(path)}{extra}", fix))
        elif w.file.size is not None and path.stat().st_size != w.file.size:
            size = path.stat().st_size
            checks.append(
                Check(what, False, f"{path}: {size:,} bytes, expected {w.file.size:,}; delete it{extra}", fix)
            )
        else:
            checks.append(Check(what, True, f"{path} (size checked, SHA-256 at load){extra}"))
    return checks


def _doctor_boxes() -> list[Check]:
    checks = []
    for name in BOX_FILES:
        path = default_boxes_path(name)
        ok = path.is_file()
        detail = str(path) if ok else f"missing: {path}{_partial_note(path)}"
        checks.append(Check(f"boxes {name}", ok, detail, None if ok else _cmd("download", "boxes", name)))
    return checks


def doctor(data_root: Path | str | None = None, weights: Sequence[WeightsCheck] = ()) -> list[Check]:
    """Every check, install first; looks where a run would look (``data_root``, else $EVALSUITE_DATA,
    else ./datasets/coco, and the cache)."""
    root = Path(data_root).expanduser() if data_root is not None else default_root()
    return (
        _install_checks()
        + _extra_checks()
        + _doctor_coco(root)
        + _doctor_lvis(root)
        + _doctor_checkpoints(weights)
        + _doctor_boxes()
    )
