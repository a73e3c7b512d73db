"""Dataset download, safe extraction and doctor, against a loopback HTTP server with tiny archives.

The server (127.0.0.1, stops itself after 60 s) supports Range, can cut a response half-way,
serve flipped bytes, and logs every request, so resume, checksum and refusal paths are exercised
without the network. Registry entries are pinned to the tiny test archives with monkeypatch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import json
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from loopback import ServerState, loopback_server
from PIL import Image

import evalsuite.cli as cli_mod
from evalsuite.data.locate import locate
from evalsuite.datasets.coco import COCO_HTTPS
from evalsuite.errors import InputError
from evalsuite.fetch import FIRST_USE, ChecksumError, TrustStore
from evalsuite.fetch import datasets as ds
from evalsuite.fetch.datasets import ARCHIVES as ARTEFACTS
from evalsuite.fetch.extract import ArchiveError, Extract, safe_extract
from evalsuite.fetch.http import DownloadError, part_path

VAL_NAMES = ("000000000139.jpg", "000000000285.jpg", "000000000632.jpg")
TRAIN_NAMES = ("000000000009.jpg", "000000000025.jpg")

# --- loopback server --------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path):
    with loopback_server(tmp_path / "srv") as state:
        yield state


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache and no default data root: nothing from the machine leaks in."""
    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EVALSUITE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


# --- tiny data ----------------------------------------------------------------------------------


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (shade, 255 - shade, 90)).save(buf, "JPEG")
    return buf.getvalue()


def _ann(i: int, image_id: int) -> dict:
    return {
        "id": i,
        "image_id": image_id,
        "category_id": 1,
        "segmentation": [[1.0, 1.0, 6.0, 1.0, 6.0, 5.0, 1.0, 5.0]],
        "area": 20.0,
        "bbox": [1.0, 1.0, 5.0, 4.0],
        "iscrowd": 0,
    }


def _coco_json() -> bytes:
    images = [{"id": i + 1, "file_name": n, "height": 6, "width": 8} for i, n in enumerate(VAL_NAMES)]
    anns = [_ann(i + 1, i + 1) for i in range(len(VAL_NAMES))]
    cats = [{"id": 1, "name": "thing", "supercategory": "thing"}]
    return json.dumps({"images": images, "annotations": anns, "categories": cats}).encode()


def _lvis_json(host: str = "http://images.cocodataset.org") -> bytes:
    urls = [f"{host}/train2017/{n}" for n in TRAIN_NAMES] + [f"{host}/val2017/{n}" for n in VAL_NAMES[:2]]
    images = [
        {
            "id": i + 1,
            "coco_url": u,
            "height": 6,
            "width": 8,
            "neg_category_ids": [],
            "not_exhaustive_category_ids": [],
        }
        for i, u in enumerate(urls)
    ]
    anns = [{k: v for k, v in _ann(i + 1, i + 1).items() if k != "iscrowd"} for i in range(len(urls))]
    cats = [
        {
            "id": 1,
            "name": "thing",
            "synset": "thing.n.01",
            "frequency": "f",
            "image_count": 4,
            "instance_count": 4,
            "synonyms": ["thing"],
            "def": "a thing",
        }
    ]
    return json.dumps({"images": images, "annotations": anns, "categories": cats}).encode()


def _zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


def _val_zip() -> bytes:
    return _zip({f"val2017/{n}": _jpeg(40 * i) for i, n in enumerate(VAL_NAMES)})


def _ann_zip() -> bytes:
    return _zip(
        {"annotations/instances_val2017.json": _coco_json(), "annotations/captions_val2017.json": b"{}"}
    )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pin(
    monkeypatch: pytest.MonkeyPatch, name: str, data: bytes, files: int | None = None, pinned: bool = True
) -> None:
    """Point a registry entry at a test archive: pinned (SHA-256 + size) or trust-on-first-use."""
    art = ARTEFACTS[name]
    new = dataclasses.replace(
        art, sha256=_sha(data) if pinned else None, size=len(data) if pinned else None, files=files
    )
    monkeypatch.setitem(ARTEFACTS, name, new)


def _serve_coco(
    server: ServerState, monkeypatch: pytest.MonkeyPatch, pinned: bool = True
) -> tuple[bytes, bytes]:
    val, ann = _val_zip(), _ann_zip()
    server.serve("val2017.zip", val)
    server.serve("annotations_trainval2017.zip", ann)
    _pin(monkeypatch, "coco-val2017-images", val, files=3 if pinned else None, pinned=pinned)
    _pin(monkeypatch, "coco-annotations-2017", ann, files=2, pinned=True)
    return val, ann


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".evalsuite-extract-")]


# --- registry -----------------------------------------------------------------------------------


def test_registry_is_https_with_pinned_coco_checksums() -> None:
    from evalsuite.fetch.http import check_url

    for art in ARTEFACTS.values():
        check_url(art.url)  # https only, never the plain-http official COCO host
        assert art.url.startswith("https://")
    for name in ("coco-val2017-images", "coco-annotations-2017", "coco-train2017-images"):
        art = ARTEFACTS[name]
        assert art.url.startswith(COCO_HTTPS) and art.official_url.startswith(
            "http://images.cocodataset.org/"
        )
        assert re.fullmatch(r"[0-9a-f]{64}", art.sha256 or "") and art.size and art.files
    assert ARTEFACTS["lvis-v1-val-annotations"].sha256 is None  # none published: recorded on first download


# --- COCO ---------------------------------------------------------------------------------------


def test_download_coco_extracts_and_loads(
    server: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _serve_coco(server, monkeypatch)
    root = tmp_path / "data"
    report = ds.download_dataset("coco", root, progress=False, base_url=server.url)
    assert sorted(report.fetched) == ["coco-annotations-2017", "coco-val2017-images"]
    assert sorted(p.name for p in (root / "val2017").iterdir()) == sorted(VAL_NAMES)
    assert sorted(p.name for p in (root / "annotations").iterdir()) == ["instances_val2017.json"]
    reader = locate("coco", data_root=root).open()
    assert len(reader) == 3 and all(s.path.is_file() for s in reader)
    assert not _leftovers(root) and not list(ds.datasets_dir().glob("*.zip*"))  # archives deleted

    before = len(server.requests)
    again = ds.download_dataset("coco", root, progress=False, base_url=server.url)
    assert sorted(again.present) == sorted(report.fetched) and len(server.requests) == before


def test_interrupted_transfer_resumes_with_range(
    server: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _serve_coco(server, monkeypatch)
    server.cuts_left = 1  # the annotations zip comes first and is cut half-way
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="interrupted") as e:
        ds.download_dataset("coco", root, progress=False, base_url=server.url)
    assert "resume" in str(e.value) and "\n" not in str(e.value)
    part = part_path(ds.datasets_dir() / "annotations_trainval2017.zip")
    have = part.stat().st_size
    assert have > 0 and not (root / "annotations").exists()

    ds.download_dataset("coco", root, progress=False, base_url=server.url)
    assert ("/annotations_trainval2017.zip", f"bytes={have}-") in server.requests
    assert locate("coco", data_root=root).open().image_ids() == [1, 2, 3]


def test_pinned_checksum_mismatch_extracts_nothing(
    server: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _serve_coco(server, monkeypatch)
    server.corrupt.add("/val2017.zip")
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        ds.download_dataset("coco", root, progress=False, base_url=server.url)
    assert not (root / "val2017").exists() and not _leftovers(root)
    assert not list(ds.datasets_dir().glob("val2017.zip*"))  # the wrong bytes are not kept


@pytest.mark.parametrize("kind", ["not-a-zip", "bad-crc", "wrong-count"])
def test_corrupt_archive_is_a_clear_error_and_nothing_half_extracted(
    server: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    _serve_coco(server, monkeypatch, pinned=False)  # trust-on-first-use: only extraction can tell
    if kind == "not-a-zip":
        server.serve("val2017.zip", b"<html>not found</html>" * 50)
    elif kind == "bad-crc":
        data = bytearray(
            _zip({f"val2017/{n}": _jpeg(40 * i) for i, n in enumerate(VAL_NAMES)}, zipfile.ZIP_STORED)
        )
        last = _jpeg(80)
        at = bytes(data).rindex(last) + len(last) // 2  # inside the third member: two are written first
        data[at] ^= 0xFF
        server.serve("val2017.zip", bytes(data))
    else:
        monkeypatch.setitem(
            ARTEFACTS, "coco-val2017-images", dataclasses.replace(ARTEFACTS["coco-val2017-images"], files=5)
        )
    root = tmp_path / "data"
    with pytest.raises(ArchiveError) as e:
        ds.download_dataset("coco", root, progress=False, base_url=server.url)
    msg = str(e.value)
    assert "\n" not in msg and "val2017.zip" in msg and "deleted" in msg
    assert {"not-a-zip": "not a valid archive", "bad-crc": "corrupt", "wrong-count": "holds 3 files"}[
        kind
    ] in msg
    assert not (root / "val2017").exists() and not _leftovers(root)
    assert not (ds.datasets_dir() / "val2017.zip").exists()
    assert TrustStore(ds.datasets_dir()).get("val2017.zip") is None  # a bad archive never becomes the anchor


def _zip_with(member: str, data: bytes = b"pwned", symlink: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("val2017/000000000139.jpg", _jpeg(1))
        info = zipfile.ZipInfo(member)
        if symlink:
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    "archive",
    [
        pytest.param(lambda: _zip_with("../evil.jpg"), id="dotdot"),
        pytest.param(lambda: _zip_with("val2017/../../evil.jpg"), id="nested-dotdot"),
        pytest.param(lambda: _zip_with("/tmp/evalsuite-abs-evil.jpg"), id="absolute"),
        pytest.param(lambda: _zip_with("val2017/link.jpg", b"../../evil.jpg", symlink=True), id="symlink"),
    ],
)
def test_unsafe_members_are_refused(
    server: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, archive
) -> None:
    _serve_coco(server, monkeypatch, pinned=False)
    server.serve("val2017.zip", archive())
    root = tmp_path / "data" / "coco"
    with pytest.raises(ArchiveError, match="refusing") as e:
        ds.download_dataset("coco", root, progress=False, base_url=server.url)
    assert "\n" not in str(e.value)
    assert not (root / "val2017").exists() and not _leftovers(root)
    assert not list(tmp_path.rglob("evil.jpg")) and not Path("/tmp/evalsuite-abs-evil.jpg").exists()


@pytest.mark.parametrize("link", ["sym", "hard"])
def test_tar_links_are_refused(tmp_path: Path, link: str) -> None:
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w") as t:
        good = tarfile.TarInfo("val2017/a.jpg")
        good.size = 3
        t.addfile(good, io.BytesIO(b"abc"))
        bad = tarfile.TarInfo("val2017/b.jpg")
        bad.type = tarfile.SYMTYPE if link == "sym" else tarfile.LNKTYPE
        bad.linkname = "/etc/passwd"
        t.addfile(bad)
    root = tmp_path / "root"
    with pytest.raises(ArchiveError, match="is a link"):
        safe_extract(path, root, [Extract("val2017/", "val2017")])
    assert list(root.iterdir()) == []


def test_safe_extract_merges_into_an_existing_folder(tmp_path: Path) -> None:
    path = tmp_path / "v.zip"
    path.write_bytes(_val_zip())
    root = tmp_path / "root"
    (root / "val2017").mkdir(parents=True)
    (root / "val2017" / "mine.txt").write_text("kept")
    out = safe_extract(path, root, [Extract("val2017/", "val2017")], files=3)
    assert out == [root / "val2017"]
    assert sorted(p.name for p in out[0].iterdir()) == sorted([*VAL_NAMES, "mine.txt"])


# --- trust on first use ---------------------------------------------------------------------------


def test_sha256_recorded_on_first_download_and_tampering_detected(
    server: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lvis_zip = _zip({"lvis_v1_val.json": _lvis_json()})
    server.serve("lvis_v1_val.json.zip", lvis_zip)
    root = tmp_path / "data"
    ds.download_dataset("lvis", root, images="none", progress=False, base_url=server.url, keep_archives=True)
    record = json.loads((ds.datasets_dir() / "sha256.json").read_text())
    # from a mirror (base_url) and without a published value: a first use, not the official file
    assert record == {"lvis_v1_val.json.zip": {"sha256": _sha(lvis_zip), "how": FIRST_USE}}
    ann = root / "annotations" / "lvis_v1_val.json"
    assert ann.read_bytes() == _lvis_json()

    # the kept archive is altered on disk: checked against the record before it is used again
    kept = ds.datasets_dir() / "lvis_v1_val.json.zip"
    kept.write_bytes(_zip({"lvis_v1_val.json": b"{}"}))
    ann.unlink()
    with pytest.raises(ChecksumError, match="recorded at first use"):
        ds.download_dataset("lvis", root, images="none", progress=False, base_url=server.url)
    assert not ann.exists()

    # the server now hands out other bytes: the fresh download is refused, nothing is extracted
    kept.unlink()
    server.serve("lvis_v1_val.json.zip", _zip({"lvis_v1_val.json": b'{"images": []}'}))
    with pytest.raises(DownloadError, match="SHA-256 mismatch") as e:
        ds.download_dataset("lvis", root, images="none", progress=False, base_url=server.url)
    assert "recorded at first use" in str(e.value) and "\n" not in str(e.value)
    assert not ann.exists() and not part_path(kept).exists()


# --- LVIS images ---------------------------------------------------------------------------------


def _serve_lvis(server: ServerState, lvis: bytes | None = None) -> None:
    server.serve("lvis_v1_val.json.zip", _zip({"lvis_v1_val.json": lvis or _lvis_json()}))
    for i, n in enumerate(TRAIN_NAMES):
        server.serve(f"train2017/{n}", _jpeg(100 + i))
    for i, n in enumerate(VAL_NAMES[:2]):
        server.serve(f"val2017/{n}", _jpeg(200 + i))


def test_lvis_needed_fetches_only_missing_images_and_reports_failures(
    server: ServerState, tmp_path: Path
) -> None:
    _serve_lvis(server)
    (server.root / "train2017" / TRAIN_NAMES[1]).unlink()  # one image the server does not have
    root = tmp_path / "data"
    (root / "val2017").mkdir(parents=True)
    (root / "val2017" / VAL_NAMES[0]).write_bytes(_jpeg(7))  # already present: not requested

    with pytest.raises(DownloadError, match=r"1 of 3 LVIS images could not be fetched") as e:
        ds.download_dataset("lvis", root, images="needed", progress=False, base_url=server.url, workers=3)
    assert f"train2017/{TRAIN_NAMES[1]}" in str(e.value) and "\n" not in str(e.value)
    report = e.value.report
    assert (report.images_needed, report.images_present, report.images_fetched) == (4, 1, 2)
    assert f"/val2017/{VAL_NAMES[0]}" not in server.paths()
    assert (
        (ds.datasets_dir() / "lvis_v1_val_failed.txt").read_text().startswith(f"train2017/{TRAIN_NAMES[1]}\t")
    )
    assert not list(root.rglob(".*.dl")) and not list(root.rglob("*.part"))

    server.serve(f"train2017/{TRAIN_NAMES[1]}", _jpeg(9))
    n = len(server.requests)
    report = ds.download_dataset("lvis", root, images="needed", progress=False, base_url=server.url)
    assert (report.images_present, report.images_fetched, report.images_failed) == (3, 1, [])
    assert server.paths()[n:] == [f"/train2017/{TRAIN_NAMES[1]}"]  # annotations were in place already
    reader = locate("lvis", data_root=root).open()
    assert len(reader) == 4 and all(s.path.is_file() for s in reader)
    assert not (ds.datasets_dir() / "lvis_v1_val_failed.txt").exists()


def test_lvis_image_urls_are_built_by_evalsuite_not_taken_from_the_file(
    server: ServerState, tmp_path: Path
) -> None:
    _serve_lvis(server, _lvis_json(host="http://attacker.example"))
    root = tmp_path / "data"
    ds.download_dataset("lvis", root, images="needed", progress=False, base_url=server.url)
    assert sorted(p for p in server.paths() if p.endswith(".jpg")) == sorted(
        [f"/train2017/{n}" for n in TRAIN_NAMES] + [f"/val2017/{n}" for n in VAL_NAMES[:2]]
    )

    bad = json.loads(_lvis_json())
    bad["images"][0]["coco_url"] = "http://images.cocodataset.org/val2017/..%2F..%2Fetc"
    (root / "annotations" / "lvis_v1_val.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="does not name a train2017/val2017 image"):
        ds.download_dataset("lvis", root, images="needed", progress=False, base_url=server.url)


def test_lvis_non_image_response_is_a_failure_not_a_file(server: ServerState, tmp_path: Path) -> None:
    _serve_lvis(server)
    server.serve(f"val2017/{VAL_NAMES[1]}", b"<html>AccessDenied</html>")
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="1 of 4") as e:
        ds.download_dataset("lvis", root, images="needed", progress=False, base_url=server.url)
    assert "not a JPEG/PNG image" in str(e.value)
    assert not (root / "val2017" / VAL_NAMES[1]).exists()


def test_lvis_archives_mode(server: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _serve_lvis(server)
    train = _zip({f"train2017/{n}": _jpeg(i) for i, n in enumerate(TRAIN_NAMES)})
    server.serve("train2017.zip", train)
    _pin(monkeypatch, "coco-train2017-images", train, files=2)
    _serve_coco(server, monkeypatch)
    root = tmp_path / "data"
    report = ds.download_dataset("lvis", root, images="archives", progress=False, base_url=server.url)
    assert report.fetched == ["lvis-v1-val-annotations", "coco-train2017-images", "coco-val2017-images"]
    assert all(s.path.is_file() for s in locate("lvis", data_root=root).open())
    assert not any("/train2017/" in p for p in server.paths())  # no per-image requests


def test_bad_options_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--images"):
        ds.download_dataset("lvis", tmp_path, images="some")
    with pytest.raises(InputError, match="only https"):
        ds.download_dataset("coco", tmp_path, base_url="http://mirror.example.com")


# --- doctor and CLI ------------------------------------------------------------------------------


@pytest.fixture
def registered() -> None:
    """The commands are registered when evalsuite.cli is imported."""


def test_doctor_on_empty_home_and_root_names_every_command(
    registered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalsuite.fetch.boxes import BOX_FILES
    from evalsuite.models import get_spec, model_names

    root = tmp_path / "empty root"
    assert cli_mod.main(["doctor", "--data-root", str(root)]) == 0  # only optional files are missing
    out, err = capsys.readouterr()
    q = f"'{root}'"  # the command is copy-pasteable: the path is shell-quoted
    assert f"evalsuite download coco --root {q}" in out
    assert f"evalsuite download lvis --root {q} --images needed" in out
    for model in (m for m in model_names() if get_spec(m).weights is not None):
        assert f"evalsuite download weights {model}\n" in out + "\n"
    for name in BOX_FILES:
        assert f"evalsuite download boxes {name}" in out
    assert "evalsuite[fastsam]" in out or importlib.util.find_spec("ultralytics") is not None
    lines = out.splitlines()
    assert [ln.split()[1] for ln in lines if ln.startswith("ok")][:2] == ["evalsuite", "package"]
    assert not any(ln.startswith("BROKEN") for ln in lines) and "`--data sample` works" in out
    assert not any(ln.startswith("ok") and ln.split()[1] in ("COCO", "LVIS", "checkpoint") for ln in lines)
    assert err == ""


def test_doctor_reports_fakes_present(
    registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalsuite.api import doctor
    from evalsuite.fetch.boxes import BOX_FILES, default_boxes_path
    from evalsuite.models import get_spec, model_names

    CHECKPOINTS = {m: get_spec(m).weights for m in model_names() if get_spec(m).weights is not None}

    def default_path(model: str) -> Path:
        return CHECKPOINTS[model].default_path()

    root = tmp_path / "data"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2017.json").write_bytes(_coco_json())
    (root / "annotations" / "lvis_v1_val.json").write_bytes(_lvis_json())
    for split, names in (("val2017", VAL_NAMES), ("train2017", TRAIN_NAMES)):
        (root / split).mkdir()
        for n in names:
            (root / split / n).write_bytes(b"x")
    for model, info in CHECKPOINTS.items():
        path = default_path(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(info.size or 10)  # sparse: the right size costs no disk
    for name in BOX_FILES:
        default_boxes_path(name).parent.mkdir(parents=True, exist_ok=True)
        default_boxes_path(name).write_text("[]")

    # the other registered datasets are not under this root (tests/test_dataset_formats.py has theirs)
    from evalsuite.data.registry import datasets

    others = tuple(f"{s.title} " for n, s in datasets().items() if n not in ("coco", "lvis"))
    checks = [c for c in doctor(root) if c.what != "optional extra fastsam" and not c.what.startswith(others)]
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert {c.what: c.detail for c in checks}["LVIS v1 val images"] == "4 of 4 referenced"
    monkeypatch.setenv("EVALSUITE_DATA", str(root))
    assert cli_mod.main(["doctor"]) == 0  # root from $EVALSUITE_DATA, like a run
    assert "the install works" in capsys.readouterr().out

    (root / "val2017" / VAL_NAMES[2]).unlink()
    with open(default_path("sam-vit-b"), "r+b") as f:
        f.truncate(100)  # a truncated checkpoint is flagged by its size
    bad = {c.what: c for c in doctor(root) if not c.ok}
    assert bad["COCO val2017 images"].detail == "2 of 3 referenced"
    assert "LVIS v1 val images" not in bad  # LVIS val does not reference that image
    assert "expected" in bad["checkpoint sam-vit-b"].detail
    assert bad["checkpoint sam-vit-b"].fix == "evalsuite download weights sam-vit-b"


def test_cli_download_commands(
    registered,
    server: ServerState,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _serve_coco(server, monkeypatch)
    _serve_lvis(server)
    root = tmp_path / "data"
    assert (
        cli_mod.main(["download", "coco", "--root", str(root), "--base-url", server.url, "--no-progress"])
        == 0
    )
    argv = [
        "download",
        "lvis",
        "--root",
        str(root),
        "--images",
        "needed",
        "--base-url",
        server.url,
        "--no-progress",
    ]
    assert cli_mod.main(argv) == 0
    out = capsys.readouterr().out
    assert "coco-val2017-images: downloaded" in out and "4 referenced, 2 already present, 2 downloaded" in out

    assert (
        cli_mod.main(["download", "coco", "--root", str(root), "--base-url", "http://mirror.example.com"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("evalsuite: error: refusing to download") and err.count("\n") == 1
