"""The dataset registry: built-in and plugin datasets from entry points, users' from TOML or Python.

Three ways in, one :class:`~.spec.DatasetSpec` each:

* **entry points** of the group ``evalsuite.datasets`` (evalsuite declares its own datasets in its
  ``pyproject.toml`` exactly as a plugin would), each naming a ``DatasetSpec``;
* **TOML files** (:func:`load_dataset_file`; the CLI's ``--dataset-file FILE``; every file, or every
  ``*.toml`` of every folder, listed in ``$EVALSUITE_DATASETS``, separated by ``os.pathsep``);
* **Python**: :func:`register_dataset` (``evalsuite.register_dataset``).

A name (or official name) is one dataset: a second claim is refused, naming both, so a user's file
is never run under a published dataset's name. Protocols named after a dataset
(``<name>-box``, …) are made from its ``protocols`` templates by :mod:`evalsuite.protocols`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from functools import cache
from importlib import resources
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from ..errors import InputError, UnknownNameError, did_you_mean
from .formats import reader_class
from .spec import VALID_NAME, DataFile, DatasetSpec, Layout

ENTRY_POINT_GROUP = "evalsuite.datasets"
#: TOML files (or folders of them) with users' datasets, separated by os.pathsep
DATASETS_ENV = "EVALSUITE_DATASETS"
#: where protocol templates live (package data; `evalsuite.protocols` makes the protocols)
TEMPLATES = ("evalsuite._protocols", "templates")

_USER: dict[str, DatasetSpec] = {}  # registered from Python or --dataset-file, by name
_GENERATION = [0]  # bumped whenever _USER changes (the protocols are cached per registry state)
_BROKEN: dict[str, str] = {}  # entry points that failed to load: name -> why


def _dist(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"the package of {ep.value}" if dist is None else f"{dist.metadata['Name']} {dist.version}"


@cache
def template_names() -> tuple[str, ...]:
    """The protocol templates a dataset may list (``protocols/templates/*.toml``)."""
    folder = resources.files(TEMPLATES[0]).joinpath(TEMPLATES[1])
    return tuple(sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml")))


def read_template(name: str) -> dict[str, Any]:
    path = resources.files(TEMPLATES[0]).joinpath(TEMPLATES[1], f"{name}.toml")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def check_spec(spec: DatasetSpec) -> DatasetSpec:
    """Refuse a declaration evalsuite could not run, naming where it came from; the checked spec."""
    where = f"dataset {spec.name!r}" + (f" ({spec.origin})" if spec.origin else "")
    for label, value in (("name", spec.name), ("official_name", spec.recorded_name)):
        if not isinstance(value, str) or not VALID_NAME.fullmatch(value):
            raise InputError(
                f"{where}: {label} {value!r} is not a valid name",
                hint="lower-case letters, digits and . _ - (it names protocols, folders and records)",
            )
    cls = reader_class(spec.format, where)
    for key, value in spec.format_options.items():
        if key not in cls.OPTIONS:
            known = ", ".join(cls.OPTIONS) or "none"
            raise InputError(f"{where}: format {spec.format} has no option {key!r} (options: {known})")
        cls.OPTIONS[key].check(key, value, where)
    if not spec.layouts and spec.sample is None:
        raise InputError(f"{where}: no layout (where its annotations and images lie under a data root)")
    unknown = [t for t in spec.protocols if t not in template_names() and not _shipped_protocol(spec, t)]
    if unknown:
        raise InputError(
            f"{where}: unknown protocol template(s) {', '.join(unknown)}",
            hint="templates: " + ", ".join(template_names()),
        )
    if spec.ap_evaluator is not None and not cls.ap_ground_truth:
        raise InputError(f"{where}: format {spec.format} has no ground truth an AP evaluator can read")
    return spec


def _shipped_protocol(spec: DatasetSpec, template: str) -> bool:
    """A protocol file shipped under the generated name (the COCO / LVIS protocols predate templates)."""
    return resources.files("evalsuite._protocols").joinpath(f"{spec.name}-{template}.toml").is_file()


@cache
def _entry_point_specs() -> dict[str, DatasetSpec]:
    """Every dataset declared by an entry point (evalsuite's own and plugins'), checked, by name.

    A name (or official name) two packages claim is neither's: both are listed as broken, naming the
    packages, so a plugin never silently replaces a dataset (as for models)."""
    loaded: list[tuple[DatasetSpec, str]] = []
    _BROKEN.clear()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        who = _dist(ep)
        try:
            target = ep.load()
            if not isinstance(target, DatasetSpec):
                raise InputError(f"entry point {ep.value!r} is not a DatasetSpec")
            if target.name != ep.name:
                raise InputError(f"entry point {ep.name!r} points at the dataset {target.name!r}")
            origin = "builtin" if ep.value.startswith("evalsuite.") else who
            spec = check_spec(replace(target, origin=target.origin or origin))
        except Exception as e:  # a broken plugin must not hide the other datasets
            _BROKEN[ep.name] = f"{who}: {e}"
            continue
        if all(spec != other for other, _ in loaded):  # one package seen twice counts once
            loaded.append((spec, f"{who} ({ep.value})"))
    found: dict[str, DatasetSpec] = {}
    for spec, who in loaded:
        rivals = [w for other, w in loaded if other is not spec and _names(spec) & _names(other)]
        if rivals:
            _BROKEN[spec.name] = f"the name is claimed by several packages: {' and '.join([who, *rivals])}"
        else:
            found[spec.name] = spec
    return found


def entry_point_datasets() -> dict[str, DatasetSpec]:
    """The datasets installed packages declare (evalsuite's own and plugins'), without users' ones."""
    return dict(_entry_point_specs())


def _names(spec: DatasetSpec) -> set[str]:
    return {spec.name, spec.recorded_name}


@cache
def _env_specs(value: str) -> tuple[DatasetSpec, ...]:
    out: list[DatasetSpec] = []
    for part in filter(None, value.split(os.pathsep)):
        path = Path(part).expanduser()
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        for f in files:
            out.extend(read_dataset_file(f))
    return tuple(out)


def _env_value() -> str:
    return os.environ.get(DATASETS_ENV, "")


def datasets() -> dict[str, DatasetSpec]:
    """Every registered dataset by name: entry points, then $EVALSUITE_DATASETS, then registrations."""
    out = dict(_entry_point_specs())
    for spec in _env_specs(_env_value()):
        _check_free(out, spec)
        out[spec.name] = spec
    out.update(_USER)  # checked when registered
    return out


def _check_free(taken: Mapping[str, DatasetSpec], spec: DatasetSpec) -> None:
    """Refuse ``spec`` when another dataset holds its name or official name (both origins named)."""
    clash = next((s for s in taken.values() if s != spec and _names(spec) & _names(s)), None)
    if clash is not None:
        raise InputError(
            f"dataset name {spec.name!r} ({spec.origin}) is already taken by {clash.name!r} ({clash.origin})",
            hint="give your dataset a name of its own: a file is never run under another dataset's name",
        )


def state() -> tuple[int, str]:
    """Changes whenever the set of datasets may have: what caches of derived things key on."""
    return _GENERATION[0], _env_value()


def dataset_names() -> list[str]:
    return sorted(datasets())


def broken_datasets() -> dict[str, str]:
    """Entry points that failed to load (name -> why): listed by `evalsuite ls datasets`."""
    _entry_point_specs()
    return dict(_BROKEN)


def find_dataset(name: str) -> DatasetSpec | None:
    """The dataset called ``name`` (or whose official name it is), or None."""
    all_ = datasets()
    if name in all_:
        return all_[name]
    return next((s for s in all_.values() if s.recorded_name == name), None)


def get_dataset(name: str) -> DatasetSpec:
    """The dataset called ``name`` (or whose official name it is); a 'did you mean' otherwise."""
    spec = find_dataset(name)
    if spec is not None:
        return spec
    if name in broken_datasets():
        raise InputError(f"dataset {name!r} failed to load: {_BROKEN[name]}")
    raise UnknownNameError(
        f"unknown dataset {name!r}.{did_you_mean(name, dataset_names())}",
        hint="`evalsuite ls datasets` lists them; your own: --dataset-file FILE.toml or "
        f"${DATASETS_ENV} (docs/datasets.md)",
    )


def ap_evaluator(name: str) -> str | None:
    """The AP scorer a dataset declares (None: an unknown dataset, or one without AP protocols)."""
    spec = find_dataset(name)
    return None if spec is None else spec.ap_evaluator


def register_dataset(spec: DatasetSpec | None = None, /, **declared: Any) -> DatasetSpec:
    """Register a dataset from Python: a :class:`DatasetSpec`, or its fields as keywords (``layouts``
    may be given as ``annotations=`` / ``images=``). Re-registering the same name from Python
    replaces it; a name another dataset holds is refused. Returns the checked spec."""
    if spec is None:
        spec = spec_from_fields(declared, origin="python", base=Path.cwd())
    elif declared:
        raise InputError("register_dataset: pass a DatasetSpec or keyword fields, not both")
    spec = check_spec(replace(spec, origin=spec.origin or "python"))
    others = {n: s for n, s in datasets().items() if (n, s.origin) != (spec.name, spec.origin)}
    _check_free(others, spec)
    _USER[spec.name] = spec
    _GENERATION[0] += 1
    return spec


def unregister_dataset(name: str) -> None:
    """Forget a dataset registered from Python or --dataset-file (tests, notebooks)."""
    if _USER.pop(name, None) is not None:
        _GENERATION[0] += 1


def load_dataset_file(path: str | Path) -> list[DatasetSpec]:
    """Register every dataset of a TOML file (``[[dataset]]`` tables; docs/datasets.md)."""
    return [register_dataset(spec) for spec in read_dataset_file(Path(path))]


def read_dataset_file(path: Path) -> list[DatasetSpec]:
    """The datasets a TOML file declares, checked; relative paths are relative to the file's folder."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"dataset file {path} not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: not a readable TOML file ({e})") from None
    tables = data.get("dataset")
    if isinstance(tables, dict):
        tables = [tables]
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise InputError(f"{path}: no [[dataset]] table", hint="see docs/datasets.md for the format")
    base = Path(path).resolve().parent
    return [check_spec(spec_from_fields(t, origin=str(Path(path).resolve()), base=base)) for t in tables]


_LIST_FIELDS = ("protocols", "metrics")
_SIMPLE = {f.name for f in fields(DatasetSpec)} - {
    "layouts",
    "files",
    "image_archives",
    "detections",
    "sample",
}


def spec_from_fields(table: Mapping[str, Any], origin: str, base: Path) -> DatasetSpec:
    """A :class:`DatasetSpec` from plain fields (a TOML table, keyword arguments).

    Extra conveniences: ``annotations`` / ``images`` for a single layout, ``root`` (a path, relative
    to ``base``) for the default data root, ``options`` for ``format_options``; ``files`` as tables.
    Without ``protocols``, a user's dataset gets the box, 1-click, 3-click and NoC protocols.
    """
    t = dict(table)
    where = f"{origin}: dataset {t.get('name', '?')!r}"
    for key in ("name", "format"):
        if not isinstance(t.get(key), str):
            raise InputError(f'{where}: needs {key} = "..."')
    layouts = _layouts(t, where)
    if "root" in t:
        t["default_root"] = str((base / Path(str(t.pop("root"))).expanduser()).resolve())
    if "options" in t:
        t["format_options"] = t.pop("options")
    files = tuple(_data_file(f, where) for f in t.pop("files", ()))
    unknown = set(t) - _SIMPLE
    if unknown:
        raise InputError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}",
            hint="fields: "
            + ", ".join(sorted(_SIMPLE | {"annotations", "images", "root", "options", "files"})),
        )
    for key in _LIST_FIELDS:
        if key in t:
            t[key] = _strings(t[key], key, where)
    t.setdefault("title", t["name"])
    t.setdefault("protocols", ("box", "1click", "3click", "noc20"))
    if "ap_evaluator" not in t:
        t["ap_evaluator"] = reader_class(t["format"], where).ap_evaluator
    t["format_options"] = dict(t.get("format_options") or {})
    try:
        return DatasetSpec(**t, layouts=layouts, files=files, origin=origin)
    except TypeError as e:
        raise InputError(f"{where}: {e}") from None


def _strings(value: object, key: str, where: str) -> tuple[str, ...]:
    if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
        raise InputError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _layouts(t: dict[str, Any], where: str) -> tuple[Layout, ...]:
    out: list[Layout] = []
    if "annotations" in t:
        out.append(Layout(str(t.pop("annotations")), str(t.pop("images", ""))))
    elif "images" in t:
        raise InputError(f"{where}: images without annotations")
    for entry in t.pop("layouts", ()):
        if isinstance(entry, Layout):
            out.append(entry)
        elif isinstance(entry, Mapping) and isinstance(entry.get("annotations"), str):
            out.append(Layout(entry["annotations"], str(entry.get("images", ""))))
        else:
            raise InputError(f'{where}: a layout needs annotations = "..." (and images = "...")')
    return tuple(out)


def _data_file(entry: object, where: str) -> DataFile:
    if isinstance(entry, DataFile):
        return entry
    if not isinstance(entry, Mapping):
        raise InputError(f"{where}: each of files must be a table (name, filename, url, sha256, extracts)")
    f = dict(entry)
    f["extracts"] = tuple(tuple(x) for x in f.get("extracts", ()))
    if not all(len(x) == 2 and all(isinstance(s, str) for s in x) for x in f["extracts"]):
        raise InputError(f"{where}: extracts are [member, destination] pairs")
    try:
        return DataFile(**f)
    except TypeError as e:
        raise InputError(f"{where}: file {f.get('name', '?')!r}: {e}") from None
