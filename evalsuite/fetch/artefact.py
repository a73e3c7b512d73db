"""One type for every published file evalsuite fetches, and the one routine that verifies it.

Dataset archives, checkpoints and detection files are all an :class:`Artefact`: a file name, an
https URL and, where one is published, a SHA-256 (and size). A file is accepted only when its
SHA-256 equals the published value; where none is published, the value seen at the first
*successful use* (an extraction, a load, a parse — not merely a download) is recorded in the
cache folder's ``sha256.json`` and every later use must match it ("trust on first use").
Recording only after a successful use keeps a truncated or hostile file from becoming the anchor.

A gated file (one behind a licence acceptance, e.g. SAM 3 on Hugging Face) names the environment
variables that may hold the user's access token (``token_env``) and what a user does to get access
(``access``); the token is sent as ``Authorization: Bearer`` to the official URL only, never to a
mirror, and without one the fetch stops with one line saying what to do. Nothing reads a token
anywhere else.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..data.jsonio import sha256_file
from ..errors import InputError
from .cache import cache_dir
from .http import check_url, download

TRUST_FILE = "sha256.json"
#: how a recorded SHA-256 came to be: fetched by `evalsuite download` from the official URL (the file
#: is the published one), or seen at the first use of a file that was found in place (it may be anything)
DOWNLOADED = "downloaded from the official URL"
FIRST_USE = "first use"


@dataclass(frozen=True)
class Artefact:
    """A published file: where it is fetched from and what it must be."""

    name: str  # catalogue key: a model, a dataset archive, a detector-box protocol
    filename: str  # the official file name (also the name in the cache)
    url: str  # the https URL evalsuite fetches
    kind: str = "checkpoints"  # cache folder: "checkpoints" | "datasets" | "boxes"
    sha256: str | None = None  # published value; None: trusted on first use
    size: int | None = None  # bytes, where published
    sha256_source: str = ""  # where the published SHA-256 comes from (documentation)
    #: environment variables (first set one wins) that may hold a bearer token for ``url``: a gated file
    token_env: tuple[str, ...] = ()
    #: a gated file: what a user does to get access, e.g. "accept the licence at <page> and create a token"
    access: str = ""

    def default_path(self) -> Path:
        """Where the file is looked for, and downloaded to, in the cache."""
        return cache_dir(self.kind) / self.filename

    def source_url(self, base_url: str | None = None) -> str:
        """The URL to fetch: the official one, or the same file name under a mirror ``base_url``."""
        if base_url is None:
            return self.url
        check_url(base_url)  # a mirror gets the same rules as the official hosts
        return base_url.rstrip("/") + "/" + self.filename


class TrustStore:
    """SHA-256 values recorded at first successful use, one JSON file per cache folder."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / TRUST_FILE

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise InputError(
                f"{self.path}: unreadable ({e}); delete it to record the checksums again"
            ) from None
        return data if isinstance(data, dict) else {}

    def _entry(self, filename: str) -> tuple[str | None, str]:
        value = self._read().get(filename)
        if isinstance(value, str):  # written before provenance was recorded: a first use
            return value, FIRST_USE
        if isinstance(value, dict) and isinstance(value.get("sha256"), str):
            return value["sha256"], str(value.get("how") or FIRST_USE)
        return None, ""

    def get(self, filename: str) -> str | None:
        return self._entry(filename)[0]

    def how(self, filename: str) -> str:
        """How the recorded value came to be: :data:`DOWNLOADED` or :data:`FIRST_USE` ("" if none)."""
        return self._entry(filename)[1]

    def set(self, filename: str, sha256: str, how: str = "first use") -> None:
        """Record a value (atomic rewrite: several runs may share the cache)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = self._read()
        except InputError:
            data = {}
        data[filename] = {"sha256": sha256, "how": how}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".sha256.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass(frozen=True)
class Expected:
    """The SHA-256 a file must have and where that value comes from (None: first use)."""

    sha256: str | None
    source: str


def expected_sha256(art: Artefact, folder: Path | None = None) -> Expected:
    """The published SHA-256, else the one recorded at first use in ``folder`` (default: the cache)."""
    if art.sha256:
        return Expected(art.sha256, "published")
    store = TrustStore(folder if folder is not None else cache_dir(art.kind))
    recorded = store.get(art.filename)
    return Expected(recorded, f"recorded at first use in {store.path}" if recorded else "none (first use)")


class ChecksumError(InputError):
    """A file on disk is not the published (or first-used) one. Exit status 2: the file must go."""


def verify(path: Path, art: Artefact, folder: Path | None = None) -> str:
    """The SHA-256 of ``path``, checked against :func:`expected_sha256`; a mismatch is one line."""
    path = Path(path)
    got = sha256_file(path)
    exp = expected_sha256(art, folder if folder is not None else path.parent)
    if exp.sha256 is not None and got != exp.sha256:
        raise ChecksumError(
            f"{path}: SHA-256 {got} differs from the expected {exp.sha256} ({exp.source}) of {art.filename}",
            hint="delete the file and fetch it again"
            + ("" if art.sha256 else f" (or delete its entry in {TrustStore(path.parent).path})"),
        )
    if art.size is not None and path.stat().st_size != art.size:
        raise ChecksumError(
            f"{path}: {path.stat().st_size} bytes, expected {art.size}",
            hint="delete the file and fetch it again",
        )
    return got


def remember(art: Artefact, sha256: str, folder: Path | None = None, how: str = FIRST_USE) -> None:
    """Trust on first use: record ``sha256`` for a file without a published value, after it proved usable.

    ``how`` says whether ``evalsuite download`` fetched it from the official URL (:data:`DOWNLOADED`:
    the file is the official one) or it was found in place (:data:`FIRST_USE`: only its later uses are
    checked against it). A first-use value is upgraded when the same file is later downloaded.
    """
    if art.sha256:
        return
    store = TrustStore(folder if folder is not None else cache_dir(art.kind))
    recorded, recorded_how = store.get(art.filename), store.how(art.filename)
    if recorded is None or (recorded == sha256 and how == DOWNLOADED and recorded_how != DOWNLOADED):
        store.set(art.filename, sha256, how)


def is_official(art: Artefact, sha256: str | None, folder: Path | None = None) -> bool:
    """``sha256`` is the official file's: the published value, or one recorded by a download from the
    official URL (not merely the first file found at the cache path)."""
    if sha256 is None:
        return False
    if art.sha256:
        return sha256 == art.sha256
    store = TrustStore(folder if folder is not None else cache_dir(art.kind))
    return store.get(art.filename) == sha256 and store.how(art.filename) == DOWNLOADED


class AccessTokenMissingError(InputError):
    """A gated file, and no access token in the environment (the message says how to get one)."""


def access_token(art: Artefact, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(variable, token) of the first of ``art.token_env`` set to a non-empty value, or None."""
    env = os.environ if environ is None else environ
    for var in art.token_env:
        if value := env.get(var, "").strip():
            return var, value
    return None


def _access_advice(art: Artefact, dest: Path) -> str:
    first, *others = art.token_env
    variables = first + (f" (or {', '.join(others)})" if others else "")
    return (
        f"{art.access}, set {variables} to the token and run the command again; "
        f"or download {art.url} by hand and put it at {dest}"
    )


def fetch(
    art: Artefact, dest_dir: Path | None = None, base_url: str | None = None, progress: bool = True
) -> tuple[Path, str]:
    """The verified file in ``dest_dir`` (default: its cache folder) and its SHA-256.

    A file already there is verified, not fetched again; otherwise it is downloaded (resumable)
    and checked against the expected SHA-256 and size before it appears. Nothing is recorded
    here: the caller calls :func:`remember` once the file proved usable. A gated file is fetched
    from its official URL with the token of :func:`access_token` (a refusal, HTTP 401/403, says
    what to do); a mirror (``base_url``) gets no token.
    """
    folder = Path(dest_dir) if dest_dir is not None else cache_dir(art.kind)
    dest = folder / art.filename
    if dest.is_file():
        return dest, verify(dest, art, folder)
    exp = expected_sha256(art, folder)
    headers: dict[str, str] = {}
    denied = None
    if art.token_env and base_url is None:
        found = access_token(art)
        if found is None:
            raise AccessTokenMissingError(f"{art.filename} is gated: {_access_advice(art, dest)}")
        variable, token = found
        headers["Authorization"] = f"Bearer {token}"
        denied = f"the token in {variable} was refused: {_access_advice(art, dest)}"
    return dest, download(
        art.source_url(base_url),
        dest,
        sha256=exp.sha256,
        size=art.size,
        progress=progress,
        headers=headers,
        denied=denied,
    )
