"""The dataset registry: the catalogue, users' datasets by TOML or Python, and what a dataset's name means.

Issue 19's identity rules hold for every dataset: a file is called by a published dataset's name only
when its SHA-256 is the published one or was recorded by ``evalsuite download`` from the official
archive; a user's TOML dataset runs under its own name and never receives a paper value.
"""

from __future__ import annotations

import io
import json
import tomllib
import zipfile
from pathlib import Path

import pytest
from dataset_fixtures import write_mask_folder
from loopback import loopback_server

from evalsuite.cli import main
from evalsuite.data import registry
from evalsuite.data.catalog import DEFAULT_FOR_FAMILY, OFFICIAL
from evalsuite.data.locate import locate, sample_root
from evalsuite.data.spec import DataFile, DatasetSpec, Layout
from evalsuite.engine import RunConfig, run
from evalsuite.engine.datasets import identify
from evalsuite.errors import InputError
from evalsuite.fetch import DOWNLOADED, FIRST_USE, TrustStore
from evalsuite.fetch.datasets import datasets_dir, download_dataset
from evalsuite.fetch.http import check_url
from evalsuite.identity import identity_notes, paper_comparability
from evalsuite.metrics.ap import EVALUATORS
from evalsuite.paper import paper_table, quoted_values
from evalsuite.protocols import get_protocol, load_protocols
from evalsuite.record import RunRecord

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = {"coco", "lvis", "sa1b-1k", "dis5k-vd", "coift", "hrsod", "thinobject5k-te"}
CATALOGUE |= {"grabcut", "berkeley", "davis"}


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EVALSUITE_DATA", raising=False)
    monkeypatch.delenv(registry.DATASETS_ENV, raising=False)
    yield
    for name in list(registry._USER):
        registry.unregister_dataset(name)


# -- the catalogue ----------------------------------------------------------------------------------------
def test_catalogue_entries_come_from_entry_points_with_their_protocols() -> None:
    found = registry.entry_point_datasets()
    assert set(found) == CATALOGUE and not registry.broken_datasets()
    protocols = load_protocols()
    for name, spec in found.items():
        assert spec.origin == "builtin" and spec.licence and spec.layouts
        assert spec.files or spec.obtain  # how to get it
        for f in spec.all_files + spec.detections:
            check_url(f.url)  # https only
        for template in spec.protocols:
            assert protocols[f"{name}-{template}"].dataset == name
        assert spec.ap_evaluator in (None, *EVALUATORS)
    for name in ("dis5k-vd", "coift", "hrsod", "thinobject5k-te"):
        assert get_protocol(f"{name}-box").metrics == ("mIoU", "mBIoU")
        assert get_protocol(f"{name}-noc20").metrics[:2] == ("NoC@85", "NoC@90")
    assert found["sa1b-1k"].sha256 is None and "sa_000130" in found["sa1b-1k"].obtain
    assert {DEFAULT_FOR_FAMILY[n].name for n in ("coco", "lvis")} == {"coco-val2017", "lvis-v1-val"}
    assert OFFICIAL["coco-val2017"].sha256 == found["coco"].sha256


def test_shipped_protocols_keep_their_ids_and_options_hashes() -> None:
    """The COCO / LVIS protocols are still the shipped files: names, versions, options_hash as gated."""
    gates = tomllib.loads((REPO / "gates" / "sample.toml").read_text())["gate"]
    for row in gates:
        p = get_protocol(row["protocol"].split("@")[0])
        assert (p.id, p.options_hash) == (row["protocol"], row["options_hash"])
    names = [p for p in load_protocols() if p.startswith(("coco-", "lvis-"))]
    assert sorted(names) == sorted(path.stem for path in (REPO / "protocols").glob("*.toml"))


def test_a_sample_run_keeps_its_gated_run_id(tmp_path) -> None:
    """The run id hashes the run's settings (dataset name included): the same as gates/sample.toml's."""
    gates = tomllib.loads((REPO / "gates" / "sample.toml").read_text())["gate"]
    want = next(r["run_id"] for r in gates if (r["model"], r["protocol"]) == ("oracle", "coco-box@1"))
    (o,) = run(RunConfig(["coco-box"], "oracle", data="sample", out=tmp_path, progress=False))
    assert o.record.run_id == want and o.record.dataset.name == "sample-coco"


# -- a user's COCO file by TOML -----------------------------------------------------------------------------
def _coco_toml(tmp_path: Path, name: str = "mycoco", extra: str = "") -> Path:
    """A COCO-format file of the sample's first two images, declared by a TOML file beside it."""
    data = json.loads((sample_root() / "annotations" / "instances_val2017.json").read_text())
    keep = {img["id"] for img in data["images"][:2]}
    data["images"] = [img for img in data["images"] if img["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    (tmp_path / "mine").mkdir(exist_ok=True)
    (tmp_path / "mine" / "objects.json").write_text(json.dumps(data))
    toml = tmp_path / f"{name}.toml"
    toml.write_text(
        f"""
[[dataset]]
name = "{name}"
title = "My objects"
format = "coco"
root = "mine"
annotations = "objects.json"
images = "{sample_root() / "val2017"}"
licence = "mine"
protocols = ["box", "1click"]
{extra}
"""
    )
    return toml


def test_custom_coco_file_runs_under_its_own_name_with_no_paper_value(tmp_path, capsys) -> None:
    toml = _coco_toml(tmp_path)
    out = tmp_path / "runs"
    argv = ["run", "mycoco-box", "mycoco-1click", "--model", "oracle", "--dataset-file", str(toml)]
    assert main([*argv, "--out", str(out)]) == 0
    assert "| mycoco-box@1" in capsys.readouterr().out
    rec = json.loads((out / "oracle" / "mycoco-box" / "record.json").read_text())
    assert rec["dataset"]["name"] == rec["dataset"]["family"] == "mycoco"
    assert rec["dataset"]["official"] is False and rec["metrics"]["mIoU"] == 100.0
    assert rec["paper"] == {}
    record = RunRecord.from_json(rec)
    assert "custom annotation file" in identity_notes(record)
    quoted = next(q for m in paper_table("4").models for q in quoted_values(m, "coco-box", "mIoU"))
    verdict = paper_comparability(record, quoted)  # even set beside a COCO value, it is not comparable
    assert not verdict.ok and "custom annotation file" in verdict.reason
    for number in ("4", "5"):  # no paper model has a value under the user's protocol names
        for model in paper_table(number).models:
            assert not quoted_values(model, "mycoco-box", "mIoU")


def test_ls_and_doctor_list_a_toml_dataset_with_what_is_present(tmp_path, capsys) -> None:
    toml = _coco_toml(tmp_path)
    assert main(["ls", "datasets", "--dataset-file", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "mycoco" in out and f"present: yes, {tmp_path / 'mine' / 'objects.json'}" in out
    assert "mycoco-box, mycoco-1click" in out and "DIS5K validation" in out
    assert main(["doctor", "--dataset-file", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "ok       My objects images" in out and "2 of 2 referenced" in out
    assert "missing  SA-1B 1k" in out and "sa_000130.tar" in out  # gated: what to do, not a command


def test_env_variable_names_dataset_files(tmp_path, monkeypatch) -> None:
    _coco_toml(tmp_path, "envcoco")
    monkeypatch.setenv(registry.DATASETS_ENV, str(tmp_path))  # a folder: every *.toml in it
    assert "envcoco-box" in load_protocols() and locate("envcoco").name == "envcoco"


def test_register_dataset_from_python(tmp_path) -> None:
    write_mask_folder(tmp_path, "gt", "im")
    spec = registry.register_dataset(
        name="pymasks", format="mask-png", root=str(tmp_path), annotations="gt", images="im", metrics=["mIoU"]
    )
    assert spec.origin == "python" and spec.protocols == ("box", "1click", "3click", "noc20")
    (o,) = run(RunConfig(["pymasks-box"], "box-fill", out=None, progress=False))
    assert o.record.dataset.name == "pymasks" and o.record.counts.instances == 3
    registry.register_dataset(
        name="pymasks", format="mask-png", root=str(tmp_path), annotations="gt", images="im"
    )
    assert get_protocol("pymasks-box").metrics[0] == "mIoU"  # re-registered from Python: replaced
    registry.unregister_dataset("pymasks")
    assert "pymasks-box" not in load_protocols()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "coco"}, "dataset name 'coco' .* is already taken by 'coco' \\(builtin\\)"),
        ({"name": "x", "official_name": "lvis-v1-val"}, "already taken by 'lvis'"),
        ({"name": "Bad Name"}, "not a valid name"),
        ({"name": "x", "format": "voc"}, "unknown format 'voc'"),
        ({"name": "x", "options": {"threshold": 9}}, "format coco has no option 'threshold'"),
        ({"name": "x", "protocols": ["box", "7click"]}, "unknown protocol template\\(s\\) 7click"),
        ({"name": "x", "colour": "red"}, "unknown field\\(s\\) colour"),
    ],
)
def test_bad_declarations_are_refused_in_one_line(fields, message) -> None:
    declared = {"format": "coco", "annotations": "a.json", **fields}
    with pytest.raises(InputError, match=message) as e:
        registry.register_dataset(**declared)
    assert "\n" not in e.value.message


def test_bad_toml_file_is_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[dataset]]\nname = 'x'\n")
    assert main(["ls", "datasets", "--dataset-file", str(bad)]) == 2
    assert "bad.toml: dataset 'x': needs format" in capsys.readouterr().err


# -- official: published hash, or recorded by `evalsuite download` ---------------------------------------
def _zip_of(folder: Path, prefix: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return buf.getvalue()


def test_download_records_the_official_masks_and_only_those(tmp_path) -> None:
    """A mask-folder dataset with a download: extracted from its own URL, its manifest is recorded as
    official; the same masks found in place (or altered) are a custom file."""
    write_mask_folder(tmp_path / "made", "masks", "images")
    with loopback_server(tmp_path / "srv") as server:
        server.serve("masks.zip", _zip_of(tmp_path / "made", "set"))
        spec = registry.register_dataset(
            DatasetSpec(
                name="dl-masks",
                title="Downloadable masks",
                format="mask-png",
                layouts=(Layout("set/masks", "set/images"),),
                files=(
                    DataFile(
                        "dl-masks-zip", "masks.zip", f"{server.url}/masks.zip", extracts=(("set/", "set"),)
                    ),
                ),
                protocols=("box",),
            )
        )
        root = tmp_path / "root"
        download_dataset(spec, root, progress=False)
    store = TrustStore(datasets_dir())
    assert store.how(spec.annotation_key) == DOWNLOADED and store.how("masks.zip") == DOWNLOADED
    source = locate("dl-masks", data_root=root)
    reader = source.open()
    assert identify(source, reader.annotation_sha256).name == "dl-masks"
    assert identify(source, reader.annotation_sha256).official is True

    copy = tmp_path / "copy"
    write_mask_folder(copy, "set/masks", "set/images")
    (copy / "set" / "masks" / "img_00.png").write_bytes(b"")  # one mask changed
    moved = locate("dl-masks", data_root=copy)
    with pytest.raises(InputError, match=r"img_00\.png: cannot read the mask"):
        moved.open().sample(1)
    other = identify(moved, moved.open().annotation_sha256)
    assert other.official is False and other.name.startswith("dl-masks-file-")

    store.set(spec.annotation_key, reader.annotation_sha256, FIRST_USE)  # seen, not downloaded: no
    assert identify(source, reader.annotation_sha256).official is False


def test_a_plugin_claiming_a_taken_name_makes_both_unusable(monkeypatch) -> None:
    """As for models: a plugin never silently replaces a dataset; both claims are named."""
    import sys
    import types
    from importlib.metadata import EntryPoint

    from evalsuite.data.registry import ENTRY_POINT_GROUP

    module = types.ModuleType("fake_dataset_plugin")
    module.SPEC = DatasetSpec(name="coco", title="Not COCO", format="coco", layouts=(Layout("a.json"),))
    monkeypatch.setitem(sys.modules, "fake_dataset_plugin", module)
    real = registry.entry_points
    fake = EntryPoint("coco", "fake_dataset_plugin:SPEC", ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [*real(group=group), fake])
    registry._entry_point_specs.cache_clear()
    try:
        assert "coco" not in registry.entry_point_datasets() and "lvis" in registry.entry_point_datasets()
        with pytest.raises(InputError, match=r"several packages: .*evalsuite\.datasets\.coco:COCO"):
            registry.get_dataset("coco")
    finally:
        monkeypatch.undo()
        registry._entry_point_specs.cache_clear()
    assert registry.get_dataset("coco").title == "COCO val2017"
