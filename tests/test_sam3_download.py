"""Gated checkpoints (SAM 3 on Hugging Face): the user's token goes with the request, and only there.

A loopback server plays the hub: it serves the file only to ``Authorization: Bearer <token>``, answers
401 / 403 otherwise, and can redirect to another origin (as the hub sends downloads to a CDN), which
must not see the token. Without a token nothing is requested and the error is one line saying what
to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from evalsuite.fetch.artefact import AccessTokenMissingError, Artefact, access_token, fetch
from evalsuite.fetch.http import DownloadError
from evalsuite.models.sam3 import SAM3
from evalsuite.models.weights import download_weights

TOKEN = "hf_test_token_123"
PAYLOAD = b"not really a checkpoint" * 100
TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@dataclass
class Hub:
    """What the server saw: (host header, path, Authorization header) per request."""

    port: int
    token: str = TOKEN
    deny_status: int = 401
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        hub: Hub = self.server.hub  # type: ignore[attr-defined]
        auth = self.headers.get("Authorization")
        hub.seen.append((self.headers.get("Host", ""), self.path, auth))
        if self.path.startswith("/elsewhere/"):  # the "CDN": no token needed, the URL is the grant
            self._send(200, PAYLOAD)
        elif self.path.startswith("/moved/"):  # same origin, another path
            self._send(302, b"", Location=self.path.replace("/moved/", "/gated/", 1))
        elif self.path.startswith("/to-cdn/"):  # another origin: localhost instead of 127.0.0.1
            target = f"http://localhost:{hub.port}/elsewhere/{self.path.rsplit('/', 1)[-1]}"
            self._send(302, b"", Location=target) if auth == f"Bearer {hub.token}" else self._send(401, b"")
        elif self.path.startswith("/gated/"):
            if auth == f"Bearer {hub.token}":
                self._send(200, PAYLOAD)
            else:
                self._send(hub.deny_status if auth else 401, b"")
        else:
            self._send(404, b"")

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def _hub() -> Iterator[Hub]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.hub = Hub(httpd.server_address[1])  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.hub  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in TOKEN_VARS:
        monkeypatch.delenv(var, raising=False)


def _gated(url: str) -> Artefact:
    assert SAM3.weights is not None
    return Artefact("sam3", "sam3.pt", url, token_env=SAM3.weights.token_env, access=SAM3.weights.access)


def test_the_token_is_sent_as_a_bearer_header(tmp_path: Path, no_token, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with _hub() as hub:
        path, sha = fetch(_gated(hub.url("/gated/sam3.pt")), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and sha == hashlib.sha256(PAYLOAD).hexdigest()
    assert [auth for _, _, auth in hub.seen] == [f"Bearer {TOKEN}"]


def test_the_second_variable_is_read_when_the_first_is_unset(no_token, monkeypatch) -> None:
    art = _gated("https://example.invalid/sam3.pt")
    assert access_token(art) is None
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", " tok ")
    assert access_token(art) == ("HUGGING_FACE_HUB_TOKEN", "tok")
    monkeypatch.setenv("HF_TOKEN", "first")
    assert access_token(art) == ("HF_TOKEN", "first")
    monkeypatch.setenv("HF_TOKEN", "")  # empty counts as unset
    assert access_token(art) == ("HUGGING_FACE_HUB_TOKEN", "tok")


def test_without_a_token_nothing_is_requested_and_one_line_says_what_to_do(tmp_path: Path, no_token) -> None:
    with _hub() as hub:
        with pytest.raises(AccessTokenMissingError) as err:
            fetch(_gated(hub.url("/gated/sam3.pt")), tmp_path, progress=False)
        assert hub.seen == []
    msg = err.value.message
    assert "\n" not in msg and err.value.exit_code == 2
    for needed in (
        "sam3.pt is gated",
        "request access on https://huggingface.co/facebook/sam3 (logged in: accept the SAM License)",
        "https://huggingface.co/settings/tokens",
        "set HF_TOKEN (or HUGGING_FACE_HUB_TOKEN)",
        f"put it at {tmp_path / 'sam3.pt'}",
    ):
        assert needed in msg, needed


def test_the_official_spec_refuses_before_any_download(tmp_path: Path, no_token) -> None:
    """``evalsuite download weights sam3`` without a token: the one line names the real URL and path."""
    with pytest.raises(AccessTokenMissingError, match=r"download https://huggingface\.co/facebook/sam3/"):
        download_weights(SAM3, dest_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_gets_the_same_guidance(tmp_path: Path, no_token, monkeypatch, status: int) -> None:
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_wrong")
    with _hub() as hub:
        hub.deny_status = status
        with pytest.raises(DownloadError) as err:
            fetch(_gated(hub.url("/gated/sam3.pt")), tmp_path, progress=False)
    msg = err.value.message
    assert f"HTTP {status}" in msg and "the token in HUGGING_FACE_HUB_TOKEN was refused" in msg
    assert "accept the SAM License" in msg and "set HF_TOKEN (or HUGGING_FACE_HUB_TOKEN)" in msg
    assert "hf_wrong" not in msg and "\n" not in msg
    assert not (tmp_path / "sam3.pt").exists()


def test_the_token_never_follows_a_redirect_to_another_origin(tmp_path: Path, no_token, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with _hub() as hub:
        fetch(_gated(hub.url("/to-cdn/sam3.pt")), tmp_path, progress=False)
        (tmp_path / "sam3.pt").unlink()
        fetch(_gated(hub.url("/moved/sam3.pt")), tmp_path, progress=False)  # same origin: kept
    (cdn_host, cdn_path, cdn_auth), (_, _, first_auth) = hub.seen[1], hub.seen[0]
    assert first_auth == f"Bearer {TOKEN}"
    assert cdn_host.startswith("localhost:") and cdn_path == "/elsewhere/sam3.pt" and cdn_auth is None
    assert [auth for _, _, auth in hub.seen[2:]] == [f"Bearer {TOKEN}"] * 2  # /moved/ then /gated/
    assert hub.seen[3][1] == "/gated/sam3.pt"


def test_a_mirror_gets_no_token_and_needs_none(tmp_path: Path, no_token, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with _hub() as hub:
        art = _gated("https://huggingface.co/facebook/sam3/resolve/main/sam3.pt")
        fetch(art, tmp_path, base_url=hub.url("/elsewhere"), progress=False)
    assert hub.seen == [(f"127.0.0.1:{hub.port}", "/elsewhere/sam3.pt", None)]


def test_an_ungated_file_sends_no_authorization(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with _hub() as hub:
        fetch(replace(_gated(hub.url("/elsewhere/x.pt")), token_env=()), tmp_path, progress=False)
    assert hub.seen[0][2] is None
