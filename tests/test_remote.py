"""Remote browsers on loopback: a real `playwright launch-server` and a real Chromium with
`--remote-debugging-port`, both behind a dead proxy with no loopback bypass (they cannot reach
this machine's server at all), measure a threaded-WASM TF.js cell with the harness, runtime and
model delivered through the Playwright connection. Everything talks to 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from edge.farm.runners.endpoints import client_version, connect, version_mismatch
from edge.farm.runners.remote import ISOLATION_HEADERS, routed_response

#: A closed loopback port as the proxy, and no implicit bypass for loopback addresses.
UNREACHABLE = ("--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>")

#: What a Playwright server answers a client of another major.minor (playwright-core's
#: playwrightServer.ts, `userAgentVersionMatchesErrorMessage`, in its ASCII box).
MISMATCH_BODY = """\
╔═══════════════════════════════════════════════════╗
║ Playwright version mismatch:                      ║
║   - server version: v1.99                         ║
║   - client version: v{client}                         ║
║                                                   ║
║ If you are connecting to a remote service,        ║
║ keep your local Playwright version in sync        ║
║ with the remote service version.                  ║
║                                                   ║
║ <3 Playwright Team                                ║
╚═══════════════════════════════════════════════════╝"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process this test started, and its children (it leads its own session)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# -- the version check and the routing, without a browser ---------------------------------------

def test_a_version_mismatch_is_one_line_with_both_versions():
    text = MISMATCH_BODY.format(client="1.65")
    line = version_mismatch(f"BrowserType.connect: {text}", "ws://u:secret@127.0.0.1:3000/x?k=v")
    assert line is not None and "\n" not in line
    assert "server 1.99" in line and f"client {client_version()}" in line
    assert "major.minor must match" in line and "playwright==1.99.*" in line
    assert "ws://127.0.0.1:3000/x" in line and "secret" not in line
    assert version_mismatch("connect ECONNREFUSED 127.0.0.1:3000", "ws://127.0.0.1:3000") \
        is None


def _stand_in_server(body: bytes) -> tuple[socket.socket, int]:
    """A loopback stand-in that answers every WebSocket upgrade as a Playwright server of
    another version does: 428 and the explanation."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 428 Precondition Required\r\n\r\n" + body)

    threading.Thread(target=serve, daemon=True).start()
    return sock, sock.getsockname()[1]


def test_connecting_to_a_server_of_another_version_says_so():
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    sock, port = _stand_in_server(MISMATCH_BODY.format(client="1.65").encode())
    try:
        with sync_playwright() as pw, pytest.raises(PlaywrightError) as exc:
            connect(pw, f"ws://127.0.0.1:{port}/pw")
    finally:
        sock.close()
    message = str(exc.value)
    assert message.startswith(f"Playwright version mismatch at ws://127.0.0.1:{port}/pw: "
                              "server 1.99, client ")
    assert "major.minor must match" in message


def test_routed_responses_come_from_the_local_server_with_isolation_headers(tmp_path):
    from edge.farm.runners.server import LoopbackServer

    (tmp_path / "page.html").write_text("<p>hi</p>")
    with LoopbackServer({"harness": tmp_path}) as server:
        ok = routed_response(f"{server.url}/harness/page.html", "GET")
        missing = routed_response(f"{server.url}/harness/nope.html", "GET")
        posted = routed_response(f"{server.url}/harness/page.html", "POST")
        url = server.url
    assert ok["status"] == 200 and ok["body"] == b"<p>hi</p>"
    assert ok["headers"]["content-type"].startswith("text/html")
    for response in (ok, missing, posted):
        assert ISOLATION_HEADERS.items() <= response["headers"].items()
    assert missing["status"] == 404 and posted["status"] == 405
    gone = routed_response(f"{url}/harness/page.html", "GET")  # the server has stopped
    assert gone["status"] == 502 and b"unreachable" in gone["body"]


# -- real remote browsers ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_tfjs(tmp_path_factory):
    """The tiny MobileNetV2 as a TF.js float32 model."""
    from edge import workflow

    build_dir = tmp_path_factory.mktemp("remote-build")
    targets = workflow.garden_targets(["mobilenet_v2"], tiny=True, variants=["tfjs-fp32"])
    summary = workflow.build(targets, build_dir)
    assert not summary.failures, summary.failures
    return build_dir, targets


@pytest.fixture(scope="module")
def browser_path():
    from edge.farm.runners.browser import resolve_browser

    return resolve_browser().path


@pytest.fixture(scope="module")
def playwright_server(browser_path, tmp_path_factory):
    """A real `playwright launch-server` on 127.0.0.1 whose Chromium cannot reach loopback."""
    from edge.farm.runners.browser import LAUNCH_ARGS

    config = tmp_path_factory.mktemp("pw-server") / "server.json"
    config.write_text(json.dumps({"executablePath": browser_path, "headless": True,
                                  "host": "127.0.0.1", "port": 0,
                                  "args": [*LAUNCH_ARGS, *UNREACHABLE]}))
    proc = subprocess.Popen([sys.executable, "-m", "playwright", "launch-server", "--browser",
                             "chromium", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline().strip()  # the server prints its endpoint when ready
        assert line.startswith("ws://127.0.0.1:"), line + proc.stdout.read(2000)
        yield line
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def cdp_chromium(browser_path, tmp_path_factory):
    """A real Chromium with --remote-debugging-port on 127.0.0.1 that cannot reach loopback."""
    from edge.farm.runners.browser import LAUNCH_ARGS

    port = _free_port()
    profile = tmp_path_factory.mktemp("cdp-profile")
    proc = subprocess.Popen([browser_path, "--headless=new", "--no-sandbox",
                             f"--remote-debugging-port={port}",
                             "--remote-debugging-address=127.0.0.1",
                             f"--user-data-dir={profile}", *LAUNCH_ARGS, *UNREACHABLE,
                             "about:blank"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with opener.open(f"{endpoint}/json/version", timeout=2) as resp:
                    json.load(resp)
                break
            except OSError:
                assert proc.poll() is None, "Chromium exited"
                assert time.monotonic() < deadline, "no DevTools endpoint within 60 s"
                time.sleep(0.2)
        yield endpoint
    finally:
        _stop(proc)


@pytest.mark.browser
@pytest.mark.slow
def test_the_remote_browsers_cannot_reach_the_local_server(playwright_server, cdp_chromium,
                                                           tmp_path):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from edge.farm.runners.server import LoopbackServer

    (tmp_path / "index.html").write_text("<title>reached</title>")
    with LoopbackServer({"harness": tmp_path}) as server, sync_playwright() as pw:
        for endpoint in (playwright_server, cdp_chromium):
            browser = connect(pw, endpoint)
            try:
                page = browser.new_context().new_page()
                with pytest.raises(PlaywrightError, match="ERR_PROXY_CONNECTION_FAILED"):
                    page.goto(f"{server.url}/harness/index.html", timeout=15000)
            finally:
                browser.close()
        assert server.requests == []  # not one request arrived


MATRIX = """
[build]
models = ["mobilenet_v2"]
variants = ["tfjs-fp32"]
build_dir = "{build_dir}"

[bench]
devices = ["remote_pw", "remote_cdp"]
protocol = {{warmup = 1, min_runs = 5, min_seconds = 0.1, max_runs = 20, timeout_s = 90}}
reports_dir = "{reports}"
fidelity_images = 1

[[bench.cells]]
runtimes = ["tfjs-wasm"]
threads = [2]
"""

PROFILE = """
[profiles.{name}]
label = "Real browser ({name})"
tier = "mid"
cores = 8
network = "none"
memory_class = 8
endpoint = "{endpoint}"
"""


@pytest.mark.browser
@pytest.mark.slow
def test_remote_endpoints_measure_a_threaded_wasm_cell_through_the_connection(
        tiny_tfjs, playwright_server, cdp_chromium, tmp_path, capsys):
    """`edge bench --catalog` with two real browsers that cannot reach this machine: each
    measures the tiny MobileNetV2 on TF.js's threaded WASM backend with 2 threads."""
    from edge.cli import main
    from edge.farm.emulation.devices import DEFAULT_CATALOG
    from edge.results.store import ResultStore, list_runs

    build_dir, _ = tiny_tfjs
    endpoints = {"remote_pw": playwright_server, "remote_cdp": cdp_chromium}
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(DEFAULT_CATALOG.read_text(encoding="utf-8") + "".join(
        PROFILE.format(name=name, endpoint=endpoint) for name, endpoint in endpoints.items()))
    reports = tmp_path / "reports"
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(MATRIX.format(build_dir=build_dir, reports=reports))

    def edge(*argv):
        with pytest.raises(SystemExit) as exc:
            main(list(argv))
        out = capsys.readouterr()
        return exc.value.code, out.out + out.err

    code, out = edge("bench", "--matrix", str(matrix), "--tiny", "--catalog", str(catalog))
    assert code == 0, out
    (run,) = list_runs(reports)
    store = ResultStore(reports / run)
    assert store.read_meta()["catalog"] == str(catalog.resolve())
    records = {r["device"]: r for r in store.records()}
    assert set(records) == set(endpoints)
    for device, rec in records.items():
        assert rec["status"] == "ok", (rec["error"], rec.get("remote"))
        assert rec["emulated"] is False and rec["real"] is True
        remote = rec["remote"]
        assert remote["backend"] == "wasm"
        assert remote["threads"] == 2  # the threaded WASM build, with its worker threads
        if remote["hardware_concurrency_override"]:  # a 2-core host: TF.js uses half the cores
            assert remote["hardware_concurrency_override"] == 4
            assert remote["own_hardware_concurrency"] < 4
        assert remote["cross_origin_isolated"] is True  # COOP/COEP came through the routing
        assert "Chrome/" in remote["user_agent"] and remote["browser_version"]
        assert rec["metrics"]["latency"]["n"] >= 5
        assert rec["metrics"]["fidelity"]["status"] == "pass"
        assert rec["provenance"]["endpoint"] == endpoints[device]
        assert rec["provenance"]["shard"] is None

    # the report shows them as real devices, and the picker can target them
    code, out = edge("report", "--run", run, "--reports-dir", str(reports))
    assert code == 0, out
    page = (reports / run / "index.html").read_text()
    assert "remote_pw" in page and "remote_cdp" in page and ">real<" in page
    for device, endpoint in endpoints.items():
        assert endpoint in page  # the report's provenance names the endpoints
        code, out = edge("pick", "--run", run, "--reports-dir", str(reports), "--device",
                         device, "--json")
        assert code == 0, out
        assert json.loads(out)["best"]["device"] == device


def test_an_unreachable_endpoint_fails_without_showing_its_credentials():
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    port = _free_port()  # nothing listens there
    secret = "s3cret-token"
    with sync_playwright() as pw:
        for endpoint in (f"ws://user:{secret}@127.0.0.1:{port}/pw?token={secret}",
                         f"http://user:{secret}@127.0.0.1:{port}/?token={secret}"):
            with pytest.raises(PlaywrightError) as exc:
                connect(pw, endpoint)
            assert secret not in str(exc.value) and "user" not in str(exc.value)
            assert "ECONNREFUSED" in str(exc.value) and f"127.0.0.1:{port}" in str(exc.value)


@pytest.mark.parametrize("argv,message", [
    (["--catalog", "no/such.toml"], "--catalog no/such.toml: file not found"),
    (["--catalog", "{catalog}", "--resume", "20261129-102929-9e7c"],
     "a resumed run uses the catalog it recorded"),
])
def test_bench_catalog_mistakes_exit_2(capsys, tmp_path, argv, message):
    from edge.cli import main
    from edge.farm.emulation.devices import DEFAULT_CATALOG

    catalog = tmp_path / "catalog.toml"
    catalog.write_text(DEFAULT_CATALOG.read_text(encoding="utf-8"))
    with pytest.raises(SystemExit) as exc:
        main(["bench", *(a.format(catalog=catalog) for a in argv)])
    out = capsys.readouterr()
    assert exc.value.code == 2 and message in out.err, out


def test_a_matrix_device_missing_from_the_catalog_is_an_error(tmp_path):
    from edge.errors import EdgeError
    from edge.farm.emulation.devices import DEFAULT_CATALOG
    from edge.farm.scheduling.matrix import load_matrix
    from edge.workflow import measure

    matrix = tmp_path / "matrix.toml"
    matrix.write_text(MATRIX.format(build_dir=tmp_path / "build", reports=tmp_path / "r"))
    with pytest.raises(EdgeError, match="remote_pw, remote_cdp|remote_cdp, remote_pw"):
        measure(load_matrix(matrix), tiny=True, catalog=str(DEFAULT_CATALOG))


# -- Selenium Grid hubs and cloud farms --------------------------------------------------------

class _GridHub:
    """A stand-in for a Selenium Grid 4 hub on 127.0.0.1, under the path prefix ``/wd/hub``: it
    answers W3C new-session requests with the ``se:cdp`` URL it was given (a real Chromium's
    DevTools WebSocket) and deletes sessions, and records both. `answer`: ``"session"``,
    ``"refuse"`` (a W3C "session not created" error) or ``"no-cdp"`` (a session without
    ``se:cdp``)."""

    def __init__(self, cdp_url: str, answer: str = "session"):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.cdp_url, self.answer = cdp_url, answer
        self.created: list[dict] = []
        self.sessions: list[str] = []
        self.deleted: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, code: int, value) -> None:
                body = json.dumps({"value": value}).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                if self.path != "/wd/hub/session":
                    return self._send(404, {"error": "unknown command", "message": self.path})
                hub.created.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                if hub.answer == "refuse":
                    return self._send(500, {"error": "session not created", "message":
                                            "Could not start a new session. No nodes support "
                                            "the capabilities in the request\nHost info: x"})
                session = f"session-{len(hub.created)}"
                hub.sessions.append(session)
                caps = {"browserName": "chrome", "platformName": "linux"}
                if hub.answer != "no-cdp":
                    caps["se:cdp"] = hub.cdp_url
                return self._send(200, {"sessionId": session, "capabilities": caps})

            def do_DELETE(self) -> None:
                prefix = "/wd/hub/session/"
                if not self.path.startswith(prefix):
                    return self._send(404, {"error": "unknown command", "message": self.path})
                hub.deleted.append(self.path[len(prefix):])
                return self._send(200, None)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"grid+http://127.0.0.1:{self.server.server_address[1]}/wd/hub"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _RecordingProxy:
    """A loopback WebSocket proxy in front of a real Playwright server, as a cloud farm's
    gateway sits in front of its browsers: it records the request target of every upgrade
    (path and query, where a farm's capabilities travel), then forwards the connection to the
    server's own path and relays bytes both ways."""

    def __init__(self, upstream: str):
        from urllib.parse import urlsplit

        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.upstream_path = parts.path or "/"
        self.requests: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _handle(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                conn.close()
                return
            head += chunk
        first, rest = head.split(b"\r\n", 1)
        method, target, version = first.decode("latin-1").split(" ", 2)
        self.requests.append(target)
        upstream = socket.create_connection(self.upstream)
        upstream.sendall(f"{method} {self.upstream_path} {version}\r\n".encode() + rest)
        threading.Thread(target=self._pump, args=(upstream, conn), daemon=True).start()
        self._pump(conn, upstream)

    def close(self) -> None:
        self.sock.close()


def _grid_profile(**changes):
    import types

    return types.SimpleNamespace(**{"name": "grid_phone", "farm": None, "user_env": None,
                                    "key_env": None,
                                    "capabilities": {"platformName": "android"}, **changes})


def test_a_grid_hub_that_refuses_lacks_cdp_or_is_gone_says_so_and_leaves_no_session():
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    profile = _grid_profile()
    closed = f"ws://127.0.0.1:{_free_port()}/devtools/browser/gone"  # nothing listens there
    expected = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                                                 "platformName": "android"}}}
    with sync_playwright() as pw:
        for answer, message in (
                ("refuse", "refused a session: HTTP 500, session not created: Could not start "
                           "a new session. No nodes support the capabilities in the request"),
                ("no-cdp", "gave a chrome session without an 'se:cdp' WebSocket URL"),
                ("session", "ECONNREFUSED")):  # the session's CDP URL does not answer
            hub = _GridHub(closed, answer)
            try:
                with pytest.raises(PlaywrightError) as exc:
                    connect(pw, hub.url, profile)
            finally:
                hub.close()
            assert message in str(exc.value), (answer, str(exc.value))
            if answer != "session":
                assert str(exc.value).startswith(f"Selenium Grid at {hub.url} (profile "
                                                 "'grid_phone', field 'endpoint') ")
            assert hub.created == [expected]
            assert hub.deleted == hub.sessions  # a session it made was deleted again
            assert len(hub.sessions) == (0 if answer == "refuse" else 1)
        gone = f"grid+http://127.0.0.1:{_free_port()}"
        with pytest.raises(PlaywrightError, match=r"Selenium Grid at grid\+http://127\.0\.0\.1:"
                           r"\d+ \(profile 'grid_phone', field 'endpoint'\) is unreachable: "
                           r".*[Cc]onnection refused"):
            connect(pw, gone, profile)


FARM_CAPS = {"os": "Windows", "os_version": "11", "browser": "chrome",
             "browser_version": "latest", "name": "edge tiny MobileNetV2"}
USER, SECRET = "edge-user-77c1", "fake-secret-9f3a"


def _farm_profile(farm="browserstack", **changes):
    import types

    envs = {"browserstack": ("BROWSERSTACK_USERNAME", "BROWSERSTACK_ACCESS_KEY"),
            "lambdatest": ("LT_USERNAME", "LT_ACCESS_KEY")}[farm]
    return types.SimpleNamespace(**{"name": "farm_phone", "farm": farm, "user_env": envs[0],
                                    "key_env": envs[1], "capabilities": FARM_CAPS, **changes})


def _query_caps(target: str) -> tuple[str, dict]:
    """(path, capabilities) of a request target whose query holds one URL-encoded JSON value."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(target)
    query = parse_qs(parts.query)
    assert len(query) == 1, target
    ((param, (value,)),) = query.items()
    return parts.path, {param: json.loads(value)}


def test_a_cloud_farm_url_takes_the_vendors_form_with_credentials_from_the_environment(
        monkeypatch):
    from playwright.sync_api import Error as PlaywrightError

    from edge.farm.runners.endpoints import farm_url

    monkeypatch.setenv("BROWSERSTACK_USERNAME", USER)
    monkeypatch.setenv("BROWSERSTACK_ACCESS_KEY", SECRET)
    monkeypatch.setenv("LT_USERNAME", USER)
    monkeypatch.setenv("LT_ACCESS_KEY", SECRET)
    url = farm_url("wss://cdp.browserstack.com/playwright", _farm_profile())
    assert url.startswith("wss://cdp.browserstack.com/playwright?caps=%7B%22")
    path, caps = _query_caps(url[len("wss://cdp.browserstack.com"):])
    assert path == "/playwright"
    assert caps == {"caps": {**FARM_CAPS, "browserstack.username": USER,
                             "browserstack.accessKey": SECRET}}
    lt_caps = {"browserName": "Chrome", "LT:Options": {"platform": "Windows 10"}}
    url = farm_url("wss://cdp.lambdatest.com/playwright",
                   _farm_profile("lambdatest", capabilities=lt_caps))
    _, caps = _query_caps(url.split("cdp.lambdatest.com", 1)[1])
    assert caps == {"capabilities": {"browserName": "Chrome", "LT:Options": {
        "platform": "Windows 10", "user": USER, "accessKey": SECRET}}}
    assert lt_caps == {"browserName": "Chrome", "LT:Options": {"platform": "Windows 10"}}

    monkeypatch.delenv("BROWSERSTACK_ACCESS_KEY")
    with pytest.raises(PlaywrightError, match=r"profile 'farm_phone': the credentials' "
                       r"environment variable BROWSERSTACK_ACCESS_KEY \(field 'key_env'\) is "
                       r"not set"):
        farm_url("wss://cdp.browserstack.com/playwright", _farm_profile())


def test_an_unreachable_cloud_farm_fails_without_showing_its_credentials(monkeypatch):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("BROWSERSTACK_USERNAME", USER)
    monkeypatch.setenv("BROWSERSTACK_ACCESS_KEY", SECRET)
    port = _free_port()  # nothing listens there
    with sync_playwright() as pw, pytest.raises(PlaywrightError) as exc:
        connect(pw, f"ws://127.0.0.1:{port}/playwright", _farm_profile())
    message = str(exc.value)
    assert "ECONNREFUSED" in message and f"ws://127.0.0.1:{port}/playwright" in message
    for secret in (SECRET, USER, "caps=", "browserstack.accessKey"):
        assert secret not in message, message


FARM_MATRIX = MATRIX.replace('["remote_pw", "remote_cdp"]', '["grid_chrome", "farm_bs"]')

FARM_PROFILES = """
[profiles.grid_chrome]
label = "Chrome on a Selenium Grid"
tier = "mid"
cores = 8
network = "none"
memory_class = 8
endpoint = "{hub}"

[profiles.grid_chrome.capabilities]
platformName = "linux"
"goog:chromeOptions" = {{args = ["--headless=new"]}}

[profiles.farm_bs]
label = "Chrome on a cloud farm"
tier = "mid"
cores = 8
network = "none"
memory_class = 8
endpoint = "ws://127.0.0.1:{proxy}/playwright"
farm = "browserstack"
user_env = "BROWSERSTACK_USERNAME"
key_env = "BROWSERSTACK_ACCESS_KEY"

[profiles.farm_bs.capabilities]
os = "Windows"
os_version = "11"
browser = "chrome"
browser_version = "latest"
name = "edge tiny MobileNetV2"
"""


def _cdp_websocket(endpoint: str) -> str:
    """The browser-level DevTools WebSocket URL of a CDP endpoint."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{endpoint}/json/version", timeout=10) as resp:
        return json.load(resp)["webSocketDebuggerUrl"]


@pytest.mark.browser
@pytest.mark.slow
def test_a_grid_hub_and_a_cloud_farm_measure_a_cell_and_keep_the_credentials_out(
        tiny_tfjs, playwright_server, cdp_chromium, tmp_path, capfd, monkeypatch):
    """`edge bench --catalog` with a Selenium Grid profile (a hub stand-in that hands out the
    DevTools WebSocket of a real Chromium as `se:cdp`) and a BrowserStack-form cloud farm profile
    (a real Playwright server behind a recording proxy), the farm's credentials in the
    environment: both measure the tiny MobileNetV2 (concurrently, each in its lane), the hub's
    session is created and deleted, the capabilities and credentials reach the farm's endpoint;
    the same matrix again as `--shard 1/2` and `2/2`, merged with `edge merge` and reported; no
    file any of them wrote and nothing they printed holds a credential."""
    from edge.cli import main
    from edge.farm.emulation.devices import DEFAULT_CATALOG
    from edge.results.store import ResultStore, list_runs

    monkeypatch.setenv("BROWSERSTACK_USERNAME", USER)
    monkeypatch.setenv("BROWSERSTACK_ACCESS_KEY", SECRET)
    build_dir, _ = tiny_tfjs
    hub = _GridHub(_cdp_websocket(cdp_chromium))
    proxy = _RecordingProxy(playwright_server)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(DEFAULT_CATALOG.read_text(encoding="utf-8")
                       + FARM_PROFILES.format(hub=hub.url, proxy=proxy.port))
    reports = tmp_path / "reports"
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(FARM_MATRIX.format(build_dir=build_dir, reports=reports))
    printed = []

    def edge(*argv):
        with pytest.raises(SystemExit) as exc:
            main(list(argv))
        out = capfd.readouterr()
        printed.append(out.out + out.err)
        return exc.value.code, out.out, out.out + out.err

    try:
        code, _, out = edge("bench", "--matrix", str(matrix), "--tiny", "--catalog",
                            str(catalog))
        assert code == 0, out
        one_run = list(hub.created), list(hub.sessions), list(hub.deleted)
        # the same matrix in two shards on their own reports directory, merged: the two
        # devices' cells are dealt one to each shard
        shard_reports = tmp_path / "shards"
        shard_matrix = tmp_path / "shard-matrix.toml"
        shard_matrix.write_text(FARM_MATRIX.format(build_dir=build_dir, reports=shard_reports))
        for shard in ("1/2", "2/2"):
            code, _, out = edge("bench", "--matrix", str(shard_matrix), "--tiny", "--catalog",
                                str(catalog), "--shard", shard)
            assert code == 0, out
    finally:
        hub.close()
        proxy.close()

    # the hub made one session with the profile's capabilities, and it was deleted at the end
    wanted = {"capabilities": {"alwaysMatch": {
        "browserName": "chrome", "platformName": "linux",
        "goog:chromeOptions": {"args": ["--headless=new"]}}}}
    assert one_run == ([wanted], ["session-1"], ["session-1"])
    assert hub.created == [wanted] * 2  # and once more by the shard that took its cell
    assert hub.deleted == hub.sessions  # the shard's session was deleted too
    # the farm's endpoint got the vendor's form: capabilities and credentials in `caps`
    assert proxy.requests
    for target in proxy.requests:
        assert _query_caps(target) == ("/playwright", {"caps": {
            **FARM_CAPS, "browserstack.username": USER, "browserstack.accessKey": SECRET}})

    (run,) = list_runs(reports)
    records = {r["device"]: r for r in ResultStore(reports / run).records()}
    assert set(records) == {"grid_chrome", "farm_bs"}
    endpoints = {"grid_chrome": hub.url, "farm_bs": f"ws://127.0.0.1:{proxy.port}/playwright"}
    kinds = {"grid_chrome": "Selenium Grid", "farm_bs": "cloud farm (browserstack)"}
    for device, rec in records.items():
        assert rec["status"] == "ok", (rec["error"], rec.get("remote"))
        assert rec["emulated"] is False and rec["real"] is True
        assert rec["remote"]["endpoint_kind"] == kinds[device]
        assert rec["remote"]["backend"] == "wasm" and rec["remote"]["threads"] == 2
        assert rec["metrics"]["latency"]["n"] >= 5
        assert rec["provenance"]["endpoint"] == endpoints[device]

    code, _, out = edge("report", "--run", run, "--reports-dir", str(reports))
    assert code == 0, out
    page = (reports / run / "index.html").read_text()
    assert ">real<" in page and all(e in page for e in endpoints.values())
    code, listing, out = edge("devices", "--catalog", str(catalog), "--json")
    assert code in (0, None), out
    listed = json.loads(listing)
    assert {n: listed[n]["endpoint_kind"] for n in kinds} == kinds

    shards = list_runs(shard_reports)
    assert len(shards) == 2
    code, _, out = edge("merge", *shards, "--into", "merged", "--reports-dir",
                        str(shard_reports))
    assert code in (0, None), out
    merged = ResultStore(shard_reports / "merged").records()
    assert sorted(r["device"] for r in merged) == ["farm_bs", "grid_chrome"]  # once each
    assert {r["provenance"]["shard"] for r in merged} == {"1/2", "2/2"}
    for rec in merged:
        assert rec["status"] == "ok", rec["error"]
        assert rec["provenance"]["endpoint"] == endpoints[rec["device"]]
    code, _, out = edge("report", "--run", "merged", "--reports-dir", str(shard_reports))
    assert code == 0, out

    # no credential anywhere: every file under the test's directory (catalog, matrix, results
    # of the run, the shards and the merged run, run.json, checks.json, report pages, logs) and
    # everything printed, driver output included
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"results.jsonl", "run.json", "index.html", "checks.json"} <= names, names
    assert len([p for p in written if p.name == "results.jsonl"]) == 4  # run, shards, merged
    for path in written:
        data = path.read_bytes()
        for secret in (SECRET, USER):
            assert secret.encode() not in data, f"{secret} in {path}"
    for text in printed:
        assert SECRET not in text and USER not in text
