"""A small HTTP server on 127.0.0.1 for download tests: Range requests, cut connections, corrupt
bytes and redirects on demand. It only ever serves files under its root and stops itself after 60 s."""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path


class ServerState:
    """What the tests control and observe."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.ignore_range = False  # answer 200 with the whole file even to a Range request
        self.cuts_left = 0  # responses that send half the body, then drop the connection
        self.corrupt: set[str] = set()  # request paths served with one byte flipped
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.lock = threading.Lock()

    def serve(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _ in self.requests]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        st: ServerState = self.server.state  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        with st.lock:
            st.requests.append((self.path, rng))
        if self.path.startswith("/redirect/"):  # /redirect/<target with / written as _>
            self._empty(302, Location=self.path[len("/redirect/") :].replace("_", "/"))
            return
        f = (st.root / self.path.lstrip("/")).resolve()
        if not f.is_relative_to(st.root.resolve()) or not f.is_file():
            self.send_error(404)
            return
        data = f.read_bytes()
        if self.path in st.corrupt and data:
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]
        start = 0
        if rng and not st.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self._empty(416, **{"Content-Range": f"bytes */{len(data)}"})
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with st.lock:
            cut = st.cuts_left > 0
            st.cuts_left -= cut
        if cut:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def _empty(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def loopback_server(root: Path) -> Iterator[ServerState]:
    """Serve ``root`` on a free loopback port for the duration of the block."""
    root.mkdir(parents=True, exist_ok=True)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = ServerState(root, f"http://127.0.0.1:{httpd.server_address[1]}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(60, httpd.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield httpd.state  # type: ignore[attr-defined]
    finally:
        watchdog.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
