"""Checkpoint registry, safe loading and resumable downloads (loopback HTTP server, no internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random
import re
import socket
import zipfile
from pathlib import Path

import pytest
import torch
from loopback import ServerState, loopback_server

from evalsuite.data.jsonio import sha256_file
from evalsuite.errors import InputError, UnknownNameError
from evalsuite.fetch import DOWNLOADED, FIRST_USE, is_official
from evalsuite.fetch.cache import home
from evalsuite.fetch.http import DownloadError, check_url, download, part_path
from evalsuite.models import registry
from evalsuite.models.base import WEIGHT_FORMATS, ModelSpec, Prediction, Runner
from evalsuite.models.weights import (
    CheckpointMissingError,
    download_weights,
    find_checkpoint,
    load_weights,
    network_factory,
    official_weights,
)
from evalsuite.models.weights import read_checkpoint as load_checkpoint

WEIGHTED = (
    "sam-vit-b",
    "sam-vit-l",
    "sam-vit-h",
    "mobilesam",
    "efficientsam-ti",
    "efficientsam-s",
    "fastsam-s",
    "fastsam-x",
)
CHECKPOINTS = {n: official_weights(n) for n in WEIGHTED}


def default_path(model: str) -> Path:
    return official_weights(model).default_path()


# --- helpers ---------------------------------------------------------------------------------


def _touch(path: str) -> str:
    """Runs only if a pickle is fully unpickled: leaves a marker file behind."""
    Path(path).write_text("code ran")
    return path


class Evil:
    """Unpickling this calls _touch: proof that untrusted pickles are never unpickled in full."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


class FakeYolo(torch.nn.Module):
    """Stands in for the Ultralytics SegmentationModel pickled inside FastSAM checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)


def _sd() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"image_encoder.w": torch.randn(4, 3, generator=g), "mask_decoder.b": torch.arange(5.0)}


def _save(obj, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def _payload(n: int = 300_000) -> bytes:
    return random.Random(1234).randbytes(n)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("EVALSUITE_HOME", str(home))
    return home


def _set_registry(monkeypatch: pytest.MonkeyPatch, model: str, build=None, **changes) -> None:
    """Change a registered model's weights facts (and, optionally, its network) for one test."""
    real = registry.get_spec

    def get_spec(name: str) -> ModelSpec:
        spec = real(name)
        if name != model:
            return spec
        assert spec.weights is not None
        return dataclasses.replace(
            spec, weights=dataclasses.replace(spec.weights, **changes), build=build or spec.build
        )

    monkeypatch.setattr(registry, "get_spec", get_spec)


class TinyNet(torch.nn.Module):
    """A network whose state dict is ``_sd()``'s layout: a stand-in for a big official one."""

    def __init__(self) -> None:
        super().__init__()
        self.image_encoder = torch.nn.Module()
        self.image_encoder.w = torch.nn.Parameter(torch.zeros(4, 3))
        self.mask_decoder = torch.nn.Module()
        self.mask_decoder.b = torch.nn.Parameter(torch.zeros(5))


class TinyRunner(Runner):
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def set_image(self, image) -> None:
        pass

    def predict(
        self, boxes=None, points=None, point_labels=None, multimask=True, mask_input=None
    ) -> Prediction:
        raise AssertionError("not called in these tests")


def tiny_build(name: str):
    return network_factory(name, TinyNet, lambda net, device: TinyRunner(net))


@pytest.fixture
def server(tmp_path: Path):
    with loopback_server(tmp_path / "srv") as state:
        yield state


def _serve(server: ServerState, name: str, data: bytes) -> None:
    (server.root / name).write_bytes(data)


# --- registry --------------------------------------------------------------------------------


def test_registry_covers_the_official_models() -> None:
    assert set(CHECKPOINTS) == {
        "sam-vit-b",
        "sam-vit-l",
        "sam-vit-h",
        "mobilesam",
        "efficientsam-ti",
        "efficientsam-s",
        "fastsam-s",
        "fastsam-x",
    }
    for name, info in CHECKPOINTS.items():
        assert info.name == name and info.kind == "checkpoints"
        assert info.url.startswith("https://") and info.url.endswith("/" + info.filename)
        assert info.format in WEIGHT_FORMATS
        assert info.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", info.sha256)
        assert info.pickled == (info.format == "ultralytics")
        assert (info.member is not None) == (info.format == "zip_model_key")
    assert CHECKPOINTS["sam-vit-h"].filename == "sam_vit_h_4b8939.pth"
    assert CHECKPOINTS["efficientsam-s"].member == "efficient_sam_vits.pt"


def test_home_and_default_path(monkeypatch: pytest.MonkeyPatch, _home: Path) -> None:
    assert default_path("mobilesam") == _home / "checkpoints" / "mobile_sam.pt"
    monkeypatch.delenv("EVALSUITE_HOME")
    assert home() == Path.home() / ".cache" / "evalsuite"
    with pytest.raises(UnknownNameError, match="sam-vit-b"):
        default_path("sam-vit-bb")


def test_find_checkpoint_missing_is_one_line_with_url_path_and_command() -> None:
    with pytest.raises(CheckpointMissingError) as e:
        find_checkpoint("sam-vit-b")
    msg = str(e.value)
    assert "\n" not in msg
    assert CHECKPOINTS["sam-vit-b"].url in msg
    assert str(default_path("sam-vit-b")) in msg
    assert "evalsuite download weights sam-vit-b" in msg
    assert e.value.exit_code == 2


def test_find_checkpoint_present() -> None:
    p = _save(_sd(), default_path("sam-vit-b"))
    assert find_checkpoint("sam-vit-b") == p


# --- loading ---------------------------------------------------------------------------------


def test_load_raw_state_dict(tmp_path: Path) -> None:
    p = _save(_sd(), tmp_path / "finetuned.pth")
    got = load_checkpoint("sam-vit-b", p)
    assert set(got.state_dict) == set(_sd())
    assert torch.equal(got.state_dict["mask_decoder.b"], torch.arange(5.0))
    assert got.sha256 == sha256_file(p) and got.path == p


def test_load_model_key(tmp_path: Path) -> None:
    p = _save({"model": _sd(), "epoch": 3}, tmp_path / "esam_ti_finetune.pt")
    got = load_checkpoint("efficientsam-ti", p)
    assert set(got.state_dict) == set(_sd())


def test_load_zip_member_in_memory(tmp_path: Path) -> None:
    inner = io.BytesIO()
    torch.save({"model": _sd()}, inner)
    z = tmp_path / "efficient_sam_vits.pt.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("efficient_sam_vits.pt", inner.getvalue())
    got = load_checkpoint("efficientsam-s", z)
    assert set(got.state_dict) == set(_sd())
    assert got.sha256 == sha256_file(z)
    assert not [p for p in tmp_path.rglob("*") if p.name == "efficient_sam_vits.pt"]  # nothing extracted


def test_load_extracted_zip_member_directly(tmp_path: Path) -> None:
    p = _save({"model": _sd()}, tmp_path / "efficient_sam_vits.pt")
    assert set(load_checkpoint("efficientsam-s", p).state_dict) == set(_sd())


@pytest.mark.parametrize("evil", ["../evil", "/abs/evil", "a/../../evil"])
def test_zip_with_escaping_member_is_rejected(tmp_path: Path, evil: str) -> None:
    inner = io.BytesIO()
    torch.save({"model": _sd()}, inner)
    z = tmp_path / "efficient_sam_vits.pt.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("efficient_sam_vits.pt", inner.getvalue())
        zf.writestr(evil, b"x")
    with pytest.raises(InputError, match="unsafe member"):
        load_checkpoint("efficientsam-s", z)


def test_truncated_zip(tmp_path: Path) -> None:
    inner = io.BytesIO()
    torch.save({"model": _sd()}, inner)
    z = tmp_path / "efficient_sam_vits.pt.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("efficient_sam_vits.pt", inner.getvalue())
    z.write_bytes(z.read_bytes()[:-100])
    with pytest.raises(InputError, match="corrupt"):
        load_checkpoint("efficientsam-s", z)


def test_zip_without_member(tmp_path: Path) -> None:
    z = tmp_path / "efficient_sam_vits.pt.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", b"x")
    with pytest.raises(InputError, match=r"no 'efficient_sam_vits\.pt'"):
        load_checkpoint("efficientsam-s", z)


def test_ultralytics_standin_refused_without_trust_then_loaded_with_trust(tmp_path: Path) -> None:
    p = _save({"model": FakeYolo(), "train_args": {"imgsz": 1024}}, tmp_path / "fastsam_s_custom.pt")
    with pytest.raises(InputError) as e:
        load_checkpoint("fastsam-s", p)
    msg = str(e.value)
    assert "--trust-checkpoint" in msg and str(p) in msg and "FakeYolo" in msg and "\n" not in msg
    got = load_checkpoint("fastsam-s", p, trust=True)
    assert isinstance(got.obj["model"], FakeYolo)
    assert set(got.state_dict) == {"conv.weight", "conv.bias"}


def test_ultralytics_with_published_sha_loads_without_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _save({"model": FakeYolo()}, tmp_path / "FastSAM-x.pt")
    _set_registry(monkeypatch, "fastsam-x", sha256=sha256_file(p), size=p.stat().st_size)
    got = load_checkpoint("fastsam-x", p)
    assert isinstance(got.obj["model"], FakeYolo)


@pytest.mark.parametrize("model", ["fastsam-s", "sam-vit-b", "efficientsam-ti"])
def test_arbitrary_pickle_runs_no_code_without_trust(tmp_path: Path, model: str) -> None:
    marker = tmp_path / "pwned"
    p = _save({"model": Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="--trust-checkpoint"):
        load_checkpoint(model, p)
    assert not marker.exists()
    # trust=True is a real opt-in: the same file is then unpickled in full (and the code runs)
    with pytest.raises(InputError):  # no tensors in it, but only after unpickling
        load_checkpoint(model, p, trust=True)
    assert marker.exists()


def test_truncated_file_is_a_clean_input_error(tmp_path: Path) -> None:
    good = _save(_sd(), tmp_path / "good.pth")
    bad = tmp_path / "sam_vit_b_trunc.pth"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError) as e:
        load_checkpoint("sam-vit-b", bad)
    assert not isinstance(e.value, CheckpointMissingError)
    assert str(bad) in str(e.value) and "corrupt" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("data", [b"", b"not a checkpoint at all"])
def test_junk_file(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "junk.pth"
    p.write_bytes(data)
    with pytest.raises(InputError, match="corrupt") as e:
        load_checkpoint("sam-vit-b", p)
    assert "\n" not in str(e.value) and "\x1b" not in str(e.value) and "trust" not in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointMissingError, match=r"nope\.pth"):
        load_checkpoint("sam-vit-b", tmp_path / "nope.pth")


def test_wrong_formats(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no 'model' key"):
        load_checkpoint("efficientsam-ti", _save({"weights": [1, 2]}, tmp_path / "a.pt"))
    with pytest.raises(InputError, match="no state dict"):
        load_checkpoint("sam-vit-b", _save({"step": 1}, tmp_path / "b.pt"))
    with pytest.raises(InputError, match="list"):
        load_checkpoint("sam-vit-b", _save([torch.zeros(1)], tmp_path / "c.pt"))


def test_default_path_is_verified_but_a_finetune_elsewhere_is_not(tmp_path: Path) -> None:
    p = _save(_sd(), default_path("sam-vit-b"))
    with pytest.raises(InputError, match="SHA-256"):
        load_checkpoint("sam-vit-b", p)
    other = _save(_sd(), tmp_path / "my_finetune.pth")
    assert load_checkpoint("sam-vit-b", other).sha256 == sha256_file(other)


def test_official_name_with_another_sha_elsewhere_warns_but_loads(tmp_path: Path) -> None:
    p = _save(_sd(), tmp_path / "sam_vit_b_01ec64.pth")
    with pytest.warns(UserWarning, match="official name"):
        assert load_checkpoint("sam-vit-b", p).sha256 == sha256_file(p)


def test_default_path_with_matching_published_sha(monkeypatch: pytest.MonkeyPatch) -> None:
    p = _save(_sd(), default_path("mobilesam"))
    _set_registry(monkeypatch, "mobilesam", sha256=sha256_file(p))
    assert load_checkpoint("mobilesam", p).sha256 == sha256_file(p)


# --- downloads -------------------------------------------------------------------------------


def test_download_good_file(server: ServerState, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _payload()
    _serve(server, "sam_vit_b_01ec64.pth", data)
    _set_registry(monkeypatch, "sam-vit-b", sha256=_sha(data), size=len(data))
    path = download_weights("sam-vit-b", progress=True, base_url=server.url)
    assert path == default_path("sam-vit-b")
    assert path.read_bytes() == data
    assert not part_path(path).exists()
    # a second call checks the file that is there and transfers nothing
    n = len(server.requests)
    assert download_weights("sam-vit-b", progress=False, base_url=server.url) == path
    assert len(server.requests) == n


def test_checksum_mismatch_leaves_no_file(server: ServerState, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _payload()
    _serve(server, "sam_vit_b_01ec64.pth", data)
    _set_registry(monkeypatch, "sam-vit-b", sha256="0" * 64, size=len(data))
    with pytest.raises(DownloadError, match="SHA-256 mismatch") as e:
        download_weights("sam-vit-b", progress=False, base_url=server.url)
    assert "\n" not in str(e.value) and e.value.exit_code == 1
    dest = default_path("sam-vit-b")
    assert not dest.exists() and not part_path(dest).exists()


def test_size_mismatch_is_refused(server: ServerState, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _payload()
    _serve(server, "sam_vit_b_01ec64.pth", data)
    _set_registry(monkeypatch, "sam-vit-b", sha256=_sha(data), size=len(data) + 1)
    with pytest.raises(DownloadError, match="bytes"):
        download_weights("sam-vit-b", progress=False, base_url=server.url)
    assert not default_path("sam-vit-b").exists()


def test_interrupted_transfer_resumes_with_range(
    server: ServerState, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _payload()
    _serve(server, "mobile_sam.pt", data)
    _set_registry(monkeypatch, "mobilesam", sha256=_sha(data), size=len(data))
    server.cuts_left = 1
    dest = default_path("mobilesam")
    with pytest.raises(DownloadError, match="interrupted") as e:
        download_weights("mobilesam", progress=False, base_url=server.url)
    assert "resume" in str(e.value) and "\n" not in str(e.value)
    assert not dest.exists()
    have = part_path(dest).stat().st_size
    assert 0 < have < len(data)
    assert download_weights("mobilesam", progress=False, base_url=server.url) == dest
    assert dest.read_bytes() == data
    assert server.requests[-1][1] == f"bytes={have}-"  # the server saw the Range header


def test_server_ignoring_range_restarts(server: ServerState, tmp_path: Path) -> None:
    data = _payload()
    _serve(server, "f.bin", data)
    server.ignore_range = True
    dest = tmp_path / "out" / "f.bin"
    dest.parent.mkdir()
    part_path(dest).write_bytes(b"WRONG BYTES" * 100)  # appended to, these would spoil the file
    got = download(f"{server.url}/f.bin", dest, sha256=_sha(data), progress=False, timeout=5)
    assert got == _sha(data) and dest.read_bytes() == data
    assert server.requests[-1][1] == "bytes=1100-"  # asked to resume, was answered 200, restarted


def test_complete_part_is_verified_without_a_request(server: ServerState, tmp_path: Path) -> None:
    data = _payload(1000)
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(data)
    got = download(f"{server.url}/f.bin", dest, sha256=_sha(data), size=len(data), progress=False)
    assert got == _sha(data)
    assert server.requests == [] and dest.read_bytes() == data


def test_complete_part_of_unknown_size_gets_416_and_finishes(server: ServerState, tmp_path: Path) -> None:
    data = _payload(1000)
    _serve(server, "f.bin", data)
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(data)
    assert download(f"{server.url}/f.bin", dest, progress=False, timeout=5) == _sha(data)
    assert dest.read_bytes() == data


def test_http_404(server: ServerState, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/absent.bin", tmp_path / "absent.bin", progress=False, timeout=5)


def test_offline_is_one_line_with_url_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with pytest.raises(DownloadError) as e:
        download_weights("efficientsam-ti", progress=False, base_url=base)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{base}/efficient_sam_vitt.pt" in msg
    assert str(default_path("efficientsam-ti")) in msg


def test_redirects_are_followed_but_never_to_plain_http(server: ServerState, tmp_path: Path) -> None:
    data = _payload(1000)
    _serve(server, "f.bin", data)
    target = f"{server.url}/f.bin".replace("/", "_")
    assert download(f"{server.url}/redirect/{target}", tmp_path / "f.bin", progress=False) == _sha(data)
    with pytest.raises(InputError, match="refusing"):
        download(f"{server.url}/redirect/http:__example.com_f.bin", tmp_path / "g.bin", progress=False)
    assert not (tmp_path / "g.bin").exists()


def test_only_https_or_loopback_http() -> None:
    check_url("https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth")
    check_url("http://127.0.0.1:8000/x")
    check_url("http://localhost/x")
    for bad in ("http://example.com/x", "ftp://example.com/x", "file:///etc/passwd", "https:///x"):
        with pytest.raises(InputError):
            check_url(bad)
    with pytest.raises(InputError):
        download_weights("sam-vit-b", progress=False, base_url="http://example.com")


def _esam_s_zip(state: dict) -> bytes:
    inner = io.BytesIO()
    torch.save({"model": state}, inner)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("efficient_sam_vits.pt", inner.getvalue())
    return buf.getvalue()


def test_trust_on_first_use_without_published_sha(
    server: ServerState, _home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CHECKPOINTS["efficientsam-s"].sha256 is None
    _set_registry(monkeypatch, "efficientsam-s", build=tiny_build("efficientsam-s"))
    data = _esam_s_zip(_sd())
    _serve(server, "efficient_sam_vits.pt.zip", data)

    path = download_weights("efficientsam-s", progress=False, base_url=server.url)
    record = json.loads((_home / "checkpoints" / "sha256.json").read_text())
    # recorded once it loaded into the network; from a mirror, as a first use (not the official file)
    assert record == {"efficient_sam_vits.pt.zip": {"sha256": _sha(data), "how": FIRST_USE}}
    assert load_checkpoint("efficientsam-s", path).sha256 == _sha(data)
    assert not is_official(registry.get_spec("efficientsam-s").weights, _sha(data))

    path.write_bytes(data + b"tampered")  # the cached file changes behind our back
    with pytest.raises(InputError, match="recorded at first use"):
        load_checkpoint("efficientsam-s", path)
    # and a fresh download that does not match the record is refused too
    path.unlink()
    (server.root / "efficient_sam_vits.pt.zip").write_bytes(data + b"changed")
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download_weights("efficientsam-s", progress=False, base_url=server.url)
    assert not path.exists()


def test_a_file_that_does_not_load_is_never_trusted(
    server: ServerState, _home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Refused at the cache path (hostile pickle, truncated file, wrong network): no SHA-256 is recorded,
    and `download weights` neither succeeds offline nor keeps the file."""
    _set_registry(monkeypatch, "efficientsam-s", build=tiny_build("efficientsam-s"))
    trust = _home / "checkpoints" / "sha256.json"
    marker = tmp_path / "pwned"
    good = _esam_s_zip(_sd())
    for bad in (_esam_s_zip({"x": torch.zeros(1)}), good[: len(good) // 2]):
        path = default_path("efficientsam-s")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bad)
        with pytest.raises(InputError):
            load_weights(TinyNet(), "efficientsam-s", path)
        assert not trust.exists()
        # the same file met by `download weights` (offline: nothing served) is refused and removed
        with pytest.raises(InputError, match="does not load"):
            download_weights("efficientsam-s", progress=False, base_url=server.url)
        assert not path.exists() and not trust.exists()
    path = default_path("efficientsam-s")
    _save({"model": Evil(marker)}, path)
    with pytest.raises(InputError, match="--trust-checkpoint"):
        load_weights(TinyNet(), "efficientsam-s", path)
    assert not marker.exists() and not trust.exists()


def test_only_a_download_from_the_official_url_makes_a_file_official(
    server: ServerState, _home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file found at the cache path is trusted on first use but stays "unverified"; the same bytes
    fetched by `download weights` from the official URL become the official file (issue 19)."""
    data = _esam_s_zip(_sd())
    _serve(server, "efficient_sam_vits.pt.zip", data)
    url = f"{server.url}/efficient_sam_vits.pt.zip"
    _set_registry(monkeypatch, "efficientsam-s", build=tiny_build("efficientsam-s"), url=url)
    spec = registry.get_spec("efficientsam-s")
    found = default_path("efficientsam-s")
    found.parent.mkdir(parents=True, exist_ok=True)
    found.write_bytes(data)
    spec.build(checkpoint=found)  # it loads: its SHA-256 is recorded, as a first use
    store = json.loads((_home / "checkpoints" / "sha256.json").read_text())
    assert store["efficient_sam_vits.pt.zip"] == {"sha256": _sha(data), "how": FIRST_USE}
    assert not is_official(spec.weights, _sha(data))
    found.unlink()
    download_weights("efficientsam-s", progress=False)  # the official URL (here: the loopback server)
    store = json.loads((_home / "checkpoints" / "sha256.json").read_text())
    assert store["efficient_sam_vits.pt.zip"] == {"sha256": _sha(data), "how": DOWNLOADED}
    assert is_official(spec.weights, _sha(data))
