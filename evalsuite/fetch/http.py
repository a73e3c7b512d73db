"""Resumable HTTP(S) download with size and SHA-256 checks.

Used for checkpoints, dataset archives and detection files alike, so it
knows nothing about what it fetches. Files are big (up to 2.5 GB) and links flaky, so a
transfer goes to ``<dest>.part``, is resumed with an HTTP ``Range`` request when
run again, is verified, and only then renamed onto ``dest`` (atomically): a
``dest`` that exists is always a complete, verified file.

Only ``https://`` URLs are fetched (redirects included); plain ``http://`` is
allowed to the loopback interface only, which is what the tests use.

Extra request headers (a gated file's ``Authorization: Bearer …``) go to the URL's own origin only:
a redirect to another host (Hugging Face sends downloads to a CDN with a signed URL) does not carry
them, so a token never leaves the site it was made for.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from ..errors import EvalsuiteError, InputError

CHUNK = 1 << 20
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(EvalsuiteError):
    """A transfer failed (network, server, or a checksum that does not match). Exit status 1."""


def check_url(url: str) -> None:
    """Refuse anything but https (and http to loopback, for tests): checkpoints are code-adjacent."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return
    raise InputError(
        f"refusing to download {url}: only https:// URLs (http:// only to localhost) are fetched"
    )


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects (GitHub release assets redirect) but never to a non-https URL.

    The caller's extra headers are "unredirected" ones: urllib drops them on a redirect, and they are
    put back only when the new URL has the same scheme, host and port.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) == _origin(req.full_url):
            for key, value in req.unredirected_hdrs.items():
                if key not in ("Host", "Range"):  # urllib sets Host itself; Range is re-sent as a header
                    new.add_unredirected_header(key, value)
        return new


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_CheckedRedirects()]
    if urllib.parse.urlsplit(url).hostname in _LOOPBACK:
        handlers.append(urllib.request.ProxyHandler({}))  # a proxy must never see loopback traffic
    return urllib.request.build_opener(*handlers)


def part_path(dest: Path) -> Path:
    """Where the unfinished transfer of ``dest`` lives."""
    return dest.with_name(dest.name + ".part")


def _hash_prefix(path: Path) -> hashlib._Hash:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _request(url: str, offset: int, extra: Mapping[str, str] | None = None) -> urllib.request.Request:
    from .._version import __version__

    req = urllib.request.Request(
        url, headers={"User-Agent": f"evalsuite/{__version__}", "Accept-Encoding": "identity"}
    )
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    for key, value in (extra or {}).items():
        req.add_unredirected_header(key, value)  # this origin only (see _CheckedRedirects)
    return req


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 60,
    headers: Mapping[str, str] | None = None,
    denied: str | None = None,
) -> str:
    """Fetch ``url`` into ``dest`` (resuming ``dest.part``) and return the file's SHA-256.

    ``size`` / ``sha256``, where given, are checked before ``dest`` appears; a
    mismatch deletes the ``.part`` (its bytes are wrong, resuming would keep
    them). An interrupted transfer keeps the ``.part`` so the next call resumes.
    Every error is a one-line :class:`DownloadError` naming the URL and ``dest``.
    ``headers`` are sent to ``url``'s origin only (never to a redirect elsewhere); ``denied`` replaces
    the advice of the error when the server answers 401 or 403 (what to do to get access).
    """
    check_url(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    expected = sha256.lower() if sha256 else None
    manual = f"download it by other means and put it at {dest}"

    digest: str | None = None
    for _attempt in range(3):  # a restart (stale or oversized .part, bad 206) gets another go
        offset = part.stat().st_size if part.exists() else 0
        if size is not None and offset > size:
            _unlink(part)
            offset = 0
        if size is not None and offset == size and offset:
            digest = _hash_prefix(part).hexdigest()  # a finished .part from an earlier run: verify only
            break
        try:
            resp = _opener(url).open(_request(url, offset, headers), timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # our .part is as long as (or longer than) the file
                m = re.search(r"/(\d+)", e.headers.get("Content-Range", "") or "")
                if m and int(m.group(1)) == offset:
                    digest = _hash_prefix(part).hexdigest()
                    break
                _unlink(part)
                continue
            advice = denied if denied is not None and e.code in (401, 403) else manual
            raise DownloadError(f"cannot download {url}: HTTP {e.code} {e.reason}; {advice}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            raise DownloadError(f"cannot download {url} ({reason}); {manual}") from None
        with resp:
            digest = _receive(resp, url, dest, part, offset, size, progress, manual)
        if digest is not None:
            break
    if digest is None:
        raise DownloadError(f"cannot download {url}: the server keeps answering inconsistently; {manual}")

    actual = part.stat().st_size
    if size is not None and actual != size:
        _unlink(part)
        raise DownloadError(f"{url}: got {actual} bytes, expected {size}; partial file deleted, run again")
    if expected is not None and digest != expected:
        _unlink(part)
        raise DownloadError(
            f"{url}: SHA-256 mismatch (got {digest}, expected {expected}); "
            f"the partial file was deleted, run again or {manual}"
        )
    os.replace(part, dest)
    return digest


def _receive(
    resp: http.client.HTTPResponse,
    url: str,
    dest: Path,
    part: Path,
    offset: int,
    size: int | None,
    progress: bool,
    manual: str,
) -> str | None:
    """Stream one response into ``part``; the SHA-256 of the whole file, or None to restart."""
    from tqdm import tqdm

    status = resp.status
    length = resp.headers.get("Content-Length")
    if offset and status == 206:
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "") or "")
        if not m or int(m.group(1)) != offset:
            _unlink(part)  # a range we did not ask for: start over rather than splice wrong bytes
            return None
        total = int(m.group(3)) if m.group(3) != "*" else None
        mode = "ab"
    elif status == 200:
        offset = 0  # the server ignored Range (or there was none): the body is the whole file
        total = int(length) if length is not None else None
        mode = "wb"
    else:
        raise DownloadError(f"cannot download {url}: unexpected HTTP {status}; {manual}")
    if size is not None and total is not None and total != size:
        _unlink(part)
        raise DownloadError(f"{url}: the server offers {total} bytes, expected {size}; {manual}")

    h = _hash_prefix(part) if mode == "ab" else hashlib.sha256()
    received = offset
    with (
        open(part, mode) as f,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        while True:
            try:
                block = resp.read(CHUNK)
            except (OSError, http.client.HTTPException) as e:
                f.flush()
                raise DownloadError(
                    f"download of {url} interrupted after {received} bytes ({e or type(e).__name__}); "
                    f"run the same command again to resume from {part}"
                ) from None
            if not block:
                break
            f.write(block)
            h.update(block)
            received += len(block)
            bar.update(len(block))
    if total is not None and received < total:  # http.client returns b"" on an early close, no error
        raise DownloadError(
            f"download of {url} interrupted after {received} of {total} bytes; "
            f"run the same command again to resume from {part}"
        )
    return h.hexdigest()
