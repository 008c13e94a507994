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
