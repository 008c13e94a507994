"""Loopback HTTP server that hands the harness page, the TF.js runtime and the build artifacts to
Playwright-driven browsers.

It binds 127.0.0.1 only, answers GET and HEAD only, maps `/<root>/<relative path>` into one of a
fixed set of directories and refuses anything that could leave them: `..` and `.` segments (raw or
percent-encoded), encoded slashes and backslashes, double encoding, empty segments, NUL bytes and
symlinks whose real path lies outside the root. Every response carries the cross-origin isolation
headers (so `SharedArrayBuffer`, WASM threads and precise timers work), `Cache-Control: no-store`
and `X-Content-Type-Options: nosniff`.

Each response closes its connection (HTTP/1.0 semantics): no idle keep-alive connection can hold
a handler thread past `stop()`.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from socketserver import TCPServer
from urllib.parse import quote, unquote_to_bytes

__all__ = ["ALLOWED_METHODS", "LoopbackServer", "content_type"]

HOST = "127.0.0.1"
ALLOWED_METHODS = ("GET", "HEAD")
#: Bytes read from disk and written to the socket at a time.
CHUNK_SIZE = 256 * 1024
#: How many (method, path, status) entries `LoopbackServer.requests` keeps.
REQUEST_LOG_SIZE = 1000
#: A request body up to this size is read and dropped before a 405, so that closing the socket
#: does not reset the connection under the client before it has read the response.
_MAX_DRAIN = 64 * 1024
#: Seconds a connection may sit idle (reading the request, or a blocked write) before it is closed.
_SOCKET_TIMEOUT = 30.0

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)

_SECURITY_HEADERS = (
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
)

# Explicit rather than `mimetypes`: the system tables differ between hosts (.js has been
# application/javascript, .wasm was missing) and browsers are strict about module and WASM types.
_MIME_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".bin": "application/octet-stream",
    ".tflite": "application/octet-stream",
    ".onnx": "application/octet-stream",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
_TEXT_TYPES = frozenset({"application/json", "image/svg+xml"})
_DEFAULT_TYPE = "application/octet-stream"

#: Characters never allowed in a decoded path segment. `%` after decoding means the client
#: encoded twice (`%252e` -> `%2e`); no artifact, harness or runtime file has one in its name.
_FORBIDDEN_CHARS = frozenset("/\\\x00%")


def content_type(name: str) -> str:
    """The Content-Type for a file name; text types carry `charset=utf-8`."""
    mime = _MIME_TYPES.get(PurePosixPath(name).suffix.lower(), _DEFAULT_TYPE)
    if mime.startswith("text/") or mime in _TEXT_TYPES:
        return f"{mime}; charset=utf-8"
    return mime


def _bad_segment(segment: str) -> bool:
    return segment in ("", ".", "..") or any(c in _FORBIDDEN_CHARS for c in segment)


class _Refused(Exception):
    """A request that maps to no servable file; carries the status to answer with."""

    def __init__(self, status: HTTPStatus):
        super().__init__(status.phrase)
        self.status = status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, roots: dict[str, str], record):
        self.roots = roots
        self.record = record
        super().__init__((HOST, 0), _Handler)

    def server_bind(self):
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall for
        # seconds on hosts without a resolver. The name is only used for CGI variables.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # A browser that navigates away mid-download is normal; stay quiet about it.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "edge-farm"
    sys_version = ""
    protocol_version = "HTTP/1.0"
    timeout = _SOCKET_TIMEOUT

    # --- dispatch ---------------------------------------------------------------------------

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not supported")
            return False
        return True

    def __getattr__(self, name: str):
        # BaseHTTPRequestHandler looks up `do_<METHOD>` and answers 501 when it is missing; every
        # method other than GET and HEAD gets a 405 instead, whatever its name.
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _method_not_allowed(self) -> None:
        self._drain_body()
        allow = {"Allow": ", ".join(ALLOWED_METHODS)}
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, headers=allow)

    # --- responses --------------------------------------------------------------------------

    def end_headers(self) -> None:
        for name, value in _SECURITY_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    def send_error(self, code, message=None, explain=None, *, headers=None) -> None:
        """Every error (ours and http.server's own, e.g. a malformed request line) goes out as a
        short plain-text body with the full header set; HEAD gets the headers only."""
        status = HTTPStatus(code)
        if self.request_version == "HTTP/0.9":
            # An HTTP/0.9 response has no headers at all, so none of ours would reach the client.
            self.request_version = "HTTP/1.0"
        body = f"{status.value} {message or status.phrase}\n".encode()
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, body: bool) -> None:
        try:
            real, name = self._resolve(self.path)
        except _Refused as refused:
            self.send_error(refused.status)
            return
        try:
            fd = os.open(real, _OPEN_FLAGS)
        except PermissionError:
            self.send_error(HTTPStatus.FORBIDDEN)
            return
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        with open(fd, "rb", buffering=0) as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):  # replaced between the check and the open
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            size = info.st_size
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(name))
            self.send_header("Content-Length", str(size))
            self.send_header("Connection", "close")
            self.end_headers()
            if not body:
                return
            remaining = size
            while remaining > 0:
                chunk = f.read(min(CHUNK_SIZE, remaining))
                if not chunk:  # the file shrank under us: the short body tells the client
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)

    # --- mapping ----------------------------------------------------------------------------

    def _resolve(self, target: str) -> tuple[str, str]:
        """Map a raw request target to the real path of a regular file inside one root, and the
        requested file name (which gives the type: the real file may be a content-addressed blob
        that a symlink points to)."""
        path = target.split("?", 1)[0].split("#", 1)[0]
        if not path.startswith("/"):  # absolute-form or `*`: not an origin-form path
            raise _Refused(HTTPStatus.BAD_REQUEST)
        raw_segments = path[1:].split("/")
        try:
            segments = [unquote_to_bytes(s).decode("utf-8") for s in raw_segments]
        except UnicodeDecodeError:
            raise _Refused(HTTPStatus.BAD_REQUEST) from None
        root_name, relative = segments[0], segments[1:]
        root = self.server.roots.get(root_name)
        if root is None:
            raise _Refused(HTTPStatus.NOT_FOUND)
        if not relative:
            raise _Refused(HTTPStatus.NOT_FOUND)  # the root itself
        if any(_bad_segment(s) for s in relative[:-1]):
            raise _Refused(HTTPStatus.FORBIDDEN)
        if relative[-1] == "":
            raise _Refused(HTTPStatus.NOT_FOUND)  # a directory-style URL: no listings
        if _bad_segment(relative[-1]):
            raise _Refused(HTTPStatus.FORBIDDEN)
        real = os.path.realpath(os.path.join(root, *relative))
        if os.path.commonpath([root, real]) != root:
            raise _Refused(HTTPStatus.FORBIDDEN)  # a symlink out of the root
        if not os.path.isfile(real):
            raise _Refused(HTTPStatus.NOT_FOUND)  # missing, a directory, a socket, a FIFO, ...
        return real, relative[-1]

    # --- logging ----------------------------------------------------------------------------

    def log_request(self, code="-", size="-") -> None:
        status = int(code) if isinstance(code, int) else 0
        self.server.record(self.command or "", getattr(self, "path", ""), status)

    def log_message(self, format, *args) -> None:
        pass

    def _drain_body(self) -> None:
        """Read and drop a small request body so the close does not reset the connection."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return
        if 0 < length <= _MAX_DRAIN:
            try:
                self.rfile.read(length)
            except OSError:
                pass


class LoopbackServer:
    """Serves `/<root>/<relative path>` from `roots[root]` on 127.0.0.1, on an ephemeral port.

    >>> with LoopbackServer({"harness": Path("harness")}) as server:  # doctest: +SKIP
    ...     page.goto(server.url_for("harness", "index.html"))
    """

    def __init__(self, roots: dict[str, Path]):
        self.roots: dict[str, str] = {}
        for name, directory in roots.items():
            if not isinstance(name, str) or _bad_segment(name):
                raise ValueError(f"invalid root name {name!r}: it must be one plain URL segment")
            real = os.path.realpath(directory)
            if not os.path.isdir(real):
                raise ValueError(f"root {name!r}: {directory} is not a directory")
            self.roots[name] = real
        self._log: deque[tuple[str, str, int]] = deque(maxlen=REQUEST_LOG_SIZE)
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> LoopbackServer:
        if self._server is not None:
            raise RuntimeError("server already started")
        server = _Server(dict(self.roots), self._record)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"edge-farm-http-{server.server_port}", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- addresses --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the listening socket is bound to."""
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.socket.getsockname()[:2]
        return host, port

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def url_for(self, root: str, relative: str | os.PathLike[str] = "") -> str:
        """The URL of `relative` (a POSIX-style path, or a relative Path) inside `root`."""
        if root not in self.roots:
            raise KeyError(f"unknown root {root!r}; known: {sorted(self.roots)}")
        rel = PurePosixPath(relative if isinstance(relative, str) else Path(relative).as_posix())
        parts = [] if str(rel) in ("", ".") else list(rel.parts)
        if rel.is_absolute() or any(_bad_segment(p) for p in parts):
            raise ValueError(f"{relative!r} is not a plain relative path the server would serve")
        return "/".join([self.url, quote(root, safe=""), *(quote(p, safe="") for p in parts)])

    # --- request log ------------------------------------------------------------------------

    def _record(self, method: str, path: str, status: int) -> None:
        with self._log_lock:
            self._log.append((method, path, status))

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """(method, raw path, status) of the most recent requests, oldest first."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

