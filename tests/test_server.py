"""The loopback server that feeds the browsers: mapping, refusals, headers, lifecycle. No browser.

Requests go out as raw bytes on a socket so that the server sees exactly the request line under
test (urllib and http.client normalise or reject some of the paths tested here)."""

from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest

from edge.farm.runners.server import LoopbackServer, content_type

SECRET = b"TOP-SECRET-do-not-serve"
INDEX = b"<!doctype html><title>harness</title>"
BIG_SIZE = 3 * 1024 * 1024 + 12345  # several chunks, not a multiple of the chunk size

SECURITY_HEADERS = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}

MIME_CASES = {
    "page.html": "text/html; charset=utf-8",
    "tf.min.js": "text/javascript; charset=utf-8",
    "bundle.mjs": "text/javascript; charset=utf-8",
    "model.json": "application/json; charset=utf-8",
    "tfjs-backend-wasm.wasm": "application/wasm",
    "group1-shard1of1.bin": "application/octet-stream",
    "model.tflite": "application/octet-stream",
    "style.css": "text/css; charset=utf-8",
    "icon.png": "image/png",
    "UPPER.JSON": "application/json; charset=utf-8",
    "mystery.xyz": "application/octet-stream",
    "no_extension": "application/octet-stream",
}


# --- helpers --------------------------------------------------------------------------------


class Response:
    def __init__(self, raw: bytes):
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        assert sep, f"no end of headers in {raw[:200]!r}"
        lines = head.decode("iso-8859-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split()[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> Response:
    """Send `data` as is and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        for _ in range(100_000):  # bounded; the server closes after every response
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            raise AssertionError("server did not close the connection")
    return Response(b"".join(chunks))


def request(port: int, target: str | bytes, method: str = "GET", body: bytes = b"") -> Response:
    if isinstance(target, str):
        target = target.encode("latin-1")
    head = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n".encode()
    return raw_request(port, head + b"\r\n" + body)


def assert_common_headers(resp: Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers.get(name) == value, (name, resp.headers)
    assert "content-length" in resp.headers


def assert_refused(resp: Response) -> None:
    assert resp.status in (403, 404), resp.status_line
    assert SECRET not in resp.body
    assert_common_headers(resp)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)

    harness = tmp_path / "roots" / "harness"
    (harness / "sub").mkdir(parents=True)
    (harness / "index.html").write_bytes(INDEX)
    (harness / "sub" / "app.js").write_bytes(b"console.log('hi');")
    (harness / "empty.txt").write_bytes(b"")
    (harness / "name with space.json").write_bytes(b"{}")
    for name in MIME_CASES:
        (harness / name).write_bytes(name.encode())
    # Symlinks: one out of the root (a file and a directory), one that stays inside.
    (harness / "escape.txt").symlink_to(outside / "secret.txt")
    (harness / "escape_dir").symlink_to(outside, target_is_directory=True)
    (harness / "alias.html").symlink_to(harness / "index.html")

    modules = tmp_path / "roots" / "node_modules"
    (modules / "@tensorflow" / "tfjs").mkdir(parents=True)
    (modules / "@tensorflow" / "tfjs" / "tf.min.js").write_bytes(b"// tfjs")

    artifacts = tmp_path / "roots" / "artifacts"
    artifacts.mkdir()
    (artifacts / "weights.bin").write_bytes(os.urandom(BIG_SIZE))
    # A content-addressed blob behind a symlink: the type comes from the requested name.
    (artifacts / "blob-0123").write_bytes(b'{"format": "graph-model"}')
    (artifacts / "model.json").symlink_to(artifacts / "blob-0123")
    return {"harness": harness, "node_modules": modules, "artifacts": artifacts,
            "outside": outside}


@pytest.fixture
def server(tree):
    roots = {k: v for k, v in tree.items() if k != "outside"}
    with LoopbackServer(roots) as srv:
        yield srv


# --- binding and lifecycle ------------------------------------------------------------------


def test_binds_loopback_only_on_an_ephemeral_port(server):
    host, port = server.address
    assert host == "127.0.0.1"
    assert port > 0
    assert server._server.socket.getsockname()[0] == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{port}"
    assert server.port == port


def test_stop_closes_the_port_and_is_idempotent(tree):
    srv = LoopbackServer({"harness": tree["harness"]}).start()
    port = srv.port
    assert request(port, "/harness/index.html").status == 200
    thread = srv._thread
    srv.stop()
    assert not thread.is_alive()
    assert not srv.running
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", port)) != 0
    srv.stop()  # a second stop is a no-op
    with pytest.raises(RuntimeError):
        _ = srv.url


def test_context_manager_and_restart(tree):
    srv = LoopbackServer({"harness": tree["harness"]})
    with srv as entered:
        assert entered is srv and srv.running
        with pytest.raises(RuntimeError, match="already started"):
            srv.start()
    assert not srv.running
    with srv:  # a stopped server starts again, on a fresh port
        assert request(srv.port, "/harness/index.html").body == INDEX


def test_rejects_bad_roots(tree, tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        LoopbackServer({"harness": tmp_path / "missing"})
    with pytest.raises(ValueError, match="not a directory"):
        LoopbackServer({"harness": tree["harness"] / "index.html"})
    for name in ("", "a/b", "..", ".", "a\\b", "a%2e"):
        with pytest.raises(ValueError, match="invalid root name"):
            LoopbackServer({name: tree["harness"]})


def test_quiet(server, capfd):
    request(server.port, "/harness/index.html")
    request(server.port, "/harness/missing.html")
    request(server.port, "/harness/index.html", method="POST", body=b"x")
    raw_request(server.port, b"garbage\r\n\r\n")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# --- serving --------------------------------------------------------------------------------


def test_serves_files_from_each_root(server, tree):
    resp = request(server.port, "/harness/index.html")
    assert resp.status == 200 and resp.body == INDEX
    assert resp.headers["content-length"] == str(len(INDEX))
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert_common_headers(resp)

    assert request(server.port, "/harness/sub/app.js").body == b"console.log('hi');"
    assert request(server.port, "/node_modules/@tensorflow/tfjs/tf.min.js").body == b"// tfjs"
    assert request(server.port, "/harness/name%20with%20space.json").body == b"{}"

    big = request(server.port, "/artifacts/weights.bin")
    assert big.status == 200
    assert big.headers["content-length"] == str(BIG_SIZE)
    assert big.body == (tree["artifacts"] / "weights.bin").read_bytes()


def test_empty_file(server):
    resp = request(server.port, "/harness/empty.txt")
    assert resp.status == 200 and resp.body == b""
    assert resp.headers["content-length"] == "0"


def test_symlinks_inside_the_root_are_served_with_the_requested_names_type(server):
    assert request(server.port, "/harness/alias.html").body == INDEX
    resp = request(server.port, "/artifacts/model.json")
    assert resp.status == 200 and resp.body == b'{"format": "graph-model"}'
    assert resp.headers["content-type"] == "application/json; charset=utf-8"


def test_query_strings_and_fragments_are_ignored(server):
    for target in ("/harness/index.html?x=1", "/harness/index.html?x=../../outside/secret.txt",
                   "/harness/index.html?", "/harness/index.html#top"):
        resp = request(server.port, target)
        assert resp.status == 200 and resp.body == INDEX, target


@pytest.mark.parametrize(("name", "expected"), sorted(MIME_CASES.items()))
def test_mime_types(server, name, expected):
    assert content_type(name) == expected
    resp = request(server.port, "/harness/" + quote(name))
    assert resp.status == 200
    assert resp.headers["content-type"] == expected
    assert resp.body == name.encode()


def test_head_has_headers_and_no_body(server):
    resp = request(server.port, "/artifacts/weights.bin", method="HEAD")
    assert resp.status == 200
    assert resp.body == b""
    assert resp.headers["content-length"] == str(BIG_SIZE)
    assert resp.headers["content-type"] == "application/octet-stream"
    assert_common_headers(resp)

    missing = request(server.port, "/harness/missing.html", method="HEAD")
    assert missing.status == 404 and missing.body == b""
    assert_common_headers(missing)


def test_concurrent_requests(server, tree):
    weights = (tree["artifacts"] / "weights.bin").read_bytes()
    targets = ["/artifacts/weights.bin", "/harness/index.html"] * 10

    def fetch(target):
        return target, request(server.port, target)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(fetch, targets, timeout=60))
    assert len(results) == 20
    for target, resp in results:
        assert resp.status == 200, target
        assert resp.body == (weights if target.endswith(".bin") else INDEX)


def test_request_log(server):
    server.clear_requests()
    request(server.port, "/harness/index.html?v=2")
    request(server.port, "/harness/missing.js", method="HEAD")
    request(server.port, "/harness/index.html", method="DELETE")
    assert server.requests == [
        ("GET", "/harness/index.html?v=2", 200),
        ("HEAD", "/harness/missing.js", 404),
        ("DELETE", "/harness/index.html", 405),
    ]


def test_request_log_is_bounded_and_thread_safe(tree):
    srv = LoopbackServer({"harness": tree["harness"]})
    barrier = threading.Barrier(4)

    def record(i):
        barrier.wait(timeout=10)
        for j in range(500):
            srv._record("GET", f"/{i}/{j}", 200)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(srv.requests) == 1000


def test_url_for(server):
    base = server.url
    assert server.url_for("harness", "index.html") == f"{base}/harness/index.html"
    assert server.url_for("artifacts", Path("a") / "b c.json") == f"{base}/artifacts/a/b%20c.json"
    assert server.url_for("harness") == f"{base}/harness"
    with pytest.raises(KeyError):
        server.url_for("nope", "index.html")
    for bad in ("../secret.txt", "/etc/passwd", "a/../../b", "a\\b", "100%.json"):
        with pytest.raises(ValueError):
            server.url_for("harness", bad)
    resp = request(server.port, server.url_for("harness", "name with space.json")[len(base):])
    assert resp.status == 200


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "FOO"])
def test_other_methods_get_405(server, method):
    resp = request(server.port, "/harness/index.html", method=method, body=b"payload")
    assert resp.status == 405
    assert resp.headers["allow"] == "GET, HEAD"
    assert resp.headers["content-length"] == str(len(resp.body))
    assert INDEX not in resp.body
    assert_common_headers(resp)


@pytest.mark.parametrize("target", [
    "/", "/harness", "/harness/", "/harness/sub", "/harness/sub/", "/nope/index.html",
    "/harness/missing.html", "/etc/passwd",
])
def test_unknown_roots_directories_and_missing_files_get_404(server, target):
    resp = request(server.port, target)
    assert resp.status == 404, target
    assert b"<a href" not in resp.body  # no listings
    assert resp.headers["content-length"] == str(len(resp.body))
    assert_common_headers(resp)


TRAVERSALS = [
    # plain dot-dot, to outside and to a sibling root
    "/harness/../../outside/secret.txt",
    "/harness/sub/../../../outside/secret.txt",
    "/harness/../artifacts/weights.bin",
    "/harness/./index.html",
    # percent-encoded dots and slashes, any case
    "/harness/%2e%2e/%2e%2e/outside/secret.txt",
    "/harness/%2E%2E/%2E%2E/outside/secret.txt",
    "/harness/.%2e/.%2e/outside/secret.txt",
    "/harness/..%2f..%2foutside%2fsecret.txt",
    "/harness/..%2F..%2Foutside%2Fsecret.txt",
    "/harness/%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
    # double encoding
    "/harness/%252e%252e/%252e%252e/outside/secret.txt",
    "/harness/..%252f..%252foutside%252fsecret.txt",
    # absolute paths
    "/harness//etc/passwd",
    "/harness/%2fetc%2fpasswd",
    "/harness/%2Fetc/passwd",
    # backslashes, raw and encoded
    "/harness/..\\..\\outside\\secret.txt",
    "/harness/sub\\..\\..\\..\\outside\\secret.txt",
    "/harness/..%5c..%5coutside%5csecret.txt",
    "/harness/..%5C..%5Coutside%5Csecret.txt",
    # NUL bytes, encoded
    "/harness/index.html%00.png",
    "/harness/%00/../../outside/secret.txt",
    # symlinks out of the root
    "/harness/escape.txt",
    "/harness/escape_dir/secret.txt",
    "/harness/escape_dir/../outside/secret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_is_refused(server, target):
    for method in ("GET", "HEAD"):
        assert_refused(request(server.port, target, method=method))


def test_absolute_secret_path_is_refused(server, tree):
    secret = str(tree["outside"] / "secret.txt")
    for target in ("/harness/" + quote(secret, safe=""), "/harness" + secret,
                   "/harness/" + quote(quote(secret, safe=""), safe=""), secret):
        assert_refused(request(server.port, target))


def test_raw_nul_byte_in_the_request_line_is_refused(server):
    resp = raw_request(server.port, b"GET /harness/escape.txt\x00index.html HTTP/1.1\r\n\r\n")
    assert_refused(resp)
    resp = raw_request(server.port, b"GET /harness/../../outside/secret.txt\x00 HTTP/1.1\r\n\r\n")
    assert_refused(resp)


def test_malformed_requests_still_get_the_headers(server):
    for data in (b"garbage\r\n\r\n", b"GET /harness/index.html\r\n\r\n",
                 b"GET /harness/index.html HTTP/9.9\r\n\r\n",
                 b"GET http://127.0.0.1/../outside/secret.txt HTTP/1.1\r\n\r\n"):
        resp = raw_request(server.port, data)
        assert 400 <= resp.status < 600, data
        assert SECRET not in resp.body and INDEX not in resp.body
        assert_common_headers(resp)
