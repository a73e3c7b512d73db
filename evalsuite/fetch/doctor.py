"""``evalsuite doctor``: is the install sound, and which optional files are there?

Two kinds of lines. *Required* checks (the Python packages, torch, the bundled sample) decide the
exit status: a broken install is an error. *Optional* ones (every registered dataset, official
checkpoints, published detection files, the FastSAM extra) only report: a fresh install without the
large datasets is healthy, and each missing part comes with the exact command that fetches it (or,
for a dataset behind a licence page, what to do).
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

from ..data.formats import reader_class
from ..data.locate import default_root, locate
from ..data.registry import broken_datasets, datasets
from ..data.spec import DatasetSpec
from ..errors import EvalsuiteError
from .artefact import Artefact
from .boxes import BOX_FILES, default_boxes_path
from .datasets import count_files
from .http import part_path

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
    names = [n for n, spec in datasets().items() if spec.sample is not None]
    try:
        for name in names:
            locate(name, "sample").open()
    except Exception as e:
        return Check(
            "bundled sample", False, f"unreadable ({e})", "pip install -e . (reinstall)", required=True
        )
    return Check("bundled sample", True, f"`--data sample` works ({', '.join(names)})", required=True)


def _extra_checks() -> list[Check]:
    ok = importlib.util.find_spec("ultralytics") is not None
    fix = None if ok else "pip install 'evalsuite[fastsam]'"
    return [Check("optional extra fastsam", ok, "ultralytics importable" if ok else "not installed", fix)]


# -- datasets, checkpoints, boxes (optional) ---------------------------------------------------------------
def _fix(spec: DatasetSpec, root: Path) -> str:
    """The command that fetches a dataset, or what to do where nothing can be fetched."""
    if not spec.files:
        return spec.obtain or f"put it under {root} (`evalsuite ls datasets` shows the layout)"
    more = ("--images", "needed") if spec.image_base_url else ()
    return _cmd("download", spec.name, "--root", root, *more)


def _doctor_dataset(spec: DatasetSpec, root: Path) -> list[Check]:
    """A dataset's annotations and images under ``root``: present, and how many of those referenced."""
    fix = _fix(spec, root)
    ann_what, img_what = f"{spec.title} annotations", f"{spec.title} images"
    try:
        source = locate(spec.name, data_root=root)
    except EvalsuiteError:
        first = spec.layouts[0]
        if first.images:
            n = count_files(root / first.images)
            ok = spec.images is not None and n >= spec.images
            detail = f"{n:,} of {spec.images:,}" if spec.images else f"{n:,} files in {root / first.images}"
        else:
            ok, detail = (
                False,
                "unknown until the annotations are there"
                + (f" ({spec.images:,} images)" if spec.images else ""),
            )
        looked = " or ".join(lay.annotations for lay in spec.layouts)
        return [
            Check(ann_what, False, f"missing under {root} (looked for {looked})", fix),
            Check(img_what, ok, detail, None if ok else fix),
        ]
    images = source.images or source.image_root
    try:
        rels = reader_class(spec.format).referenced_images(source.ann_file)
        if rels is None:  # a per-image format: pairing the files checks the images
            n = total = len(source.open().image_ids())
        else:
            present = {
                folder: _present_names(images.joinpath(*folder.parts)) for folder in {r.parent for r in rels}
            }
            n, total = sum(1 for r in rels if r.name in present[r.parent]), len(rels)
    except EvalsuiteError as e:
        return [Check(ann_what, False, f"{source.ann_file}: {str(e).splitlines()[0]}", fix)]
    ok = n == total
    return [
        Check(ann_what, True, str(source.ann_file)),
        Check(img_what, ok, f"{n:,} of {total:,} referenced", None if ok else fix),
    ]


def _doctor_datasets(data_root: Path | None) -> list[Check]:
    checks = []
    for spec in datasets().values():
        checks += _doctor_dataset(spec, data_root if data_root is not None else default_root(spec))
    for name, why in broken_datasets().items():
        checks.append(Check(f"dataset {name}", False, f"failed to load: {why}"))
    return checks


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
    else each dataset's default root, and the cache)."""
    root = Path(data_root).expanduser() if data_root is not None else None
    return (
        _install_checks()
        + _extra_checks()
        + _doctor_datasets(root)
        + _doctor_checkpoints(weights)
        + _doctor_boxes()
    )
