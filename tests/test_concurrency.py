"""Concurrent lanes (`edge.farm.scheduling.lanes`): real devices measured at the same time as each
other, a per-endpoint cap on cells in flight, lost connections retried with backoff and then
recorded once, and each record saying how it was scheduled. The browser tests use real Playwright
servers and a real CDP Chromium on 127.0.0.1 (the fixtures of tests/test_remote.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime

import pytest

from edge.farm.emulation.devices import DEFAULT_CATALOG, CatalogError, load_catalog
from tests import test_remote as _remote
from tests.test_remote import PROFILE, UNREACHABLE, _stop

# test_remote's fixtures, instantiated for this module: the tiny TF.js model, the browser, a
# Playwright server and a CDP Chromium on 127.0.0.1 that cannot reach this machine's server
tiny_tfjs, browser_path = _remote.tiny_tfjs, _remote.browser_path
playwright_server, cdp_chromium = _remote.playwright_server, _remote.cdp_chromium

MATRIX = """
[build]
models = ["mobilenet_v2"]
variants = ["tfjs-fp32"]
build_dir = "{build_dir}"

[bench]
devices = {devices}
protocol = {{warmup = 1, min_runs = 5, min_seconds = 0.5, max_runs = 40, timeout_s = 90}}
reports_dir = "{reports}"
fidelity_images = 1

[[bench.cells]]
runtimes = ["tfjs-wasm"]
threads = [2]
"""


def _catalog(tmp_path, profiles: dict[str, str], extra: dict[str, str] | None = None):
    text = DEFAULT_CATALOG.read_text(encoding="utf-8") + "".join(
        PROFILE.format(name=name, endpoint=endpoint) + (extra or {}).get(name, "")
        for name, endpoint in profiles.items())
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return path


def _bench(tmp_path, build_dir, devices, catalog, capfd, *argv):
    """`edge bench` over `devices` with the catalog; (exit code, printed, the run's records)."""
    from edge.cli import main
    from edge.results.store import list_runs

    reports = tmp_path / "reports"
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(MATRIX.format(build_dir=build_dir, reports=reports,
                                    devices=json.dumps(list(devices))))
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--matrix", str(matrix), "--tiny", "--catalog", str(catalog), *argv])
    out = capfd.readouterr()
    (run,) = list_runs(reports)
    lines = (reports / run / "results.jsonl").read_text().splitlines()
    return exc.value.code, out.out + out.err, [json.loads(line) for line in lines]


def _interval(rec: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(rec["started"]), datetime.fromisoformat(rec["finished"])


def _overlap(a: dict, b: dict) -> bool:
    (a0, a1), (b0, b1) = _interval(a), _interval(b)
    return max(a0, b0) < min(a1, b1)


# -- the catalog's max_sessions ----------------------------------------------------------------

#: A catalog of the host alone, to add profiles to.
BASE = """
[networks.none]
download_kbps = 0
upload_kbps = 0
latency_ms = 0

[profiles.host]
label = "This machine"
tier = "host"
network = "none"
"""

REAL = """
[profiles.{name}]
label = "x"
tier = "mid"
cores = 8
network = "none"
memory_class = 8
{fields}
"""


@pytest.mark.parametrize("profiles,message", [
    ({"a": 'endpoint = "ws://127.0.0.1:3000/"\nmax_sessions = 0'},
     "profile 'a': field 'max_sessions' must be an integer >= 1, got 0"),
    ({"a": 'endpoint = "ws://127.0.0.1:3000/"\nmax_sessions = 1.5'},
     "profile 'a': field 'max_sessions' must be an integer >= 1, got 1.5"),
    ({"a": 'descriptor = "Pixel 5"\ncpu_slowdown = 2\nmax_sessions = 2'},
     "profile 'a': field 'max_sessions' needs an 'endpoint' or an 'adb' device"),
    ({"a": 'endpoint = "ws://127.0.0.1:3000/"\nmax_sessions = 2',
      "b": 'endpoint = "ws://u:p@127.0.0.1:3000/"\nmax_sessions = 3'},
     "profile 'b': field 'max_sessions' is 3, but profile 'a' on the same endpoint "
     "ws://127.0.0.1:3000/ says 2"),
])
def test_max_sessions_is_checked_naming_the_profile_and_field(tmp_path, profiles, message):
    path = tmp_path / "catalog.toml"
    path.write_text(BASE + "".join(REAL.format(name=n, fields=f) for n, f in profiles.items()))
    with pytest.raises(CatalogError) as exc:
        load_catalog(path, descriptors={"Pixel 5"})
    assert message in str(exc.value)
    assert "p@" not in str(exc.value)


def test_session_limits_default_to_one_per_endpoint_and_are_shared(tmp_path):
    from edge.farm.emulation.devices import session_limits

    path = tmp_path / "catalog.toml"
    path.write_text(BASE + "".join(REAL.format(name=n, fields=f) for n, f in {
            "a": 'endpoint = "ws://127.0.0.1:3000/"',
            "b": 'endpoint = "ws://127.0.0.1:3000/"\nmax_sessions = 2',
            "c": 'endpoint = "http://127.0.0.1:9222"',
            "d": 'adb = "R58M12345"'}.items()))
    limits = session_limits(load_catalog(path, descriptors=set()))
    assert limits == {"ws://127.0.0.1:3000/": 2, "http://127.0.0.1:9222": 1, "adb:R58M12345": 1}


# -- lanes without a browser: a stand-in runner ------------------------------------------------

class _Flaky:
    """A runner whose cells on device "gone" lose their connection every time, on "once" the
    first time only, and on "broken" fail for a reason of their own."""

    kind, native, gpu = "stand-in", True, False

    def __init__(self):
        self.tries: dict[str, int] = {}

    def run(self, bench, cell, artifact, where):
        from edge.farm.cells import now

        self.tries[cell.device] = self.tries.get(cell.device, 0) + 1
        started = now()
        if cell.device == "gone" or (cell.device == "once" and self.tries["once"] == 1):
            return bench.record(cell, "failed", None, started=started,
                                error="browser: WebSocket error: connect ECONNREFUSED "
                                      "127.0.0.1:9 (token s3cret-tok)")
        if cell.device == "broken":
            return bench.record(cell, "failed", None, started=started,
                                error="model failed to load: bad op")
        return bench.record(cell, "ok", None, started=started, extra={"load": {"busy": False}})

    def connection_lost(self, bench, cell, where, error):
        return "ECONNREFUSED" in (error or "")


def test_lost_connections_are_retried_with_backoff_then_recorded_once(tmp_path, monkeypatch):
    import types

    from rich.console import Console

    import edge.farm.scheduling.lanes as lanes
    from edge.farm.cells import Bench
    from edge.farm.scheduling.matrix import Cell
    from edge.results.store import ResultStore

    monkeypatch.setattr(lanes, "BACKOFF_S", 0.01)
    monkeypatch.setenv("EDGE_TEST_KEY", "s3cret-tok")
    flaky = _Flaky()
    monkeypatch.setattr(lanes, "runner_for", lambda runtime: flaky)

    def profile(name):
        return types.SimpleNamespace(
            name=name, endpoint=f"ws://user:s3cret-tok@127.0.0.1:9/{name}?k=s3cret-tok",
            adb=None, farm=None, user_env="EDGE_TEST_KEY", key_env="EDGE_TEST_KEY",
            sessions_key=f"ws://127.0.0.1:9/{name}", max_sessions=None, label=name,
            emulated=False, is_host=False)

    catalog = {name: profile(name) for name in ("gone", "once", "broken", "fine")}
    monkeypatch.setattr(lanes, "session_limits", lambda c: {p.sessions_key: 1
                                                            for p in c.values()})
    results = ResultStore(tmp_path / "run")
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the test
    bench = Bench(None, {}, None, results, "r", None, catalog, {}, console)
    bench.schedule = lanes.Schedule(catalog)
    cells = {d: [Cell("m", "v", "litert", d)] for d in catalog}
    finished = []
    with lanes.RemoteLanes(bench, cells, lambda c: object(), finished.append,
                           lambda b, c, a, w: flaky.run(b, c, a, w), None):
        pass
    console.file.close()
    records = {r["device"]: r for r in results.records()}
    assert len(results.path.read_text().splitlines()) == 4 and len(finished) == 4
    assert flaky.tries == {"gone": lanes.ATTEMPTS, "once": 2, "broken": 1, "fine": 1}
    gone = records["gone"]
    assert gone["status"] == "failed" and gone["schedule"]["attempts"] == lanes.ATTEMPTS
    assert gone["error"].startswith("connection to ws://127.0.0.1:9/gone lost: failed 3 times")
    assert records["once"]["status"] == "ok" and records["once"]["schedule"]["attempts"] == 2
    assert records["broken"]["error"] == "model failed to load: bad op"
    assert records["broken"]["schedule"]["attempts"] == 1
    assert "s3cret-tok" not in results.path.read_text()


# -- real remote browsers on loopback ----------------------------------------------------------

@pytest.fixture(scope="module")
def three_devices_run(tiny_tfjs, playwright_server, cdp_chromium, tmp_path_factory):
    """One run over this machine (`host`, the local lane), a Playwright server (`remote_pw`) and
    two profiles on one CDP endpoint (`cdp_a`, `cdp_b`, default max_sessions 1)."""
    tmp_path = tmp_path_factory.mktemp("three")
    endpoints = {"remote_pw": playwright_server, "cdp_a": cdp_chromium, "cdp_b": cdp_chromium}
    catalog = _catalog(tmp_path, endpoints)
    devices = ["host", *endpoints]
    from edge.cli import main
    from edge.results.store import list_runs

    reports = tmp_path / "reports"
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(MATRIX.format(build_dir=tiny_tfjs[0], reports=reports,
                                    devices=json.dumps(devices)))
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--matrix", str(matrix), "--tiny", "--catalog", str(catalog)])
    (run,) = list_runs(reports)
    lines = (reports / run / "results.jsonl").read_text().splitlines()
    return exc.value.code, endpoints, [json.loads(line) for line in lines]


@pytest.mark.browser
@pytest.mark.slow
def test_two_endpoints_are_measured_concurrently_with_provenance(three_devices_run):
    code, endpoints, records = three_devices_run
    assert code == 0
    ids = [r["cell_id"] for r in records]
    model = records[0]["model"]
    assert model.startswith("mobilenet_v2")
    assert sorted(ids) == sorted(f"{model}|tfjs-fp32|tfjs-wasm|{d}|t2"
                                 for d in ["host", *endpoints])  # every cell, once
    by_device = {r["device"]: r for r in records}
    host = by_device.pop("host")
    assert host["status"] == "ok" and host["schedule"]["lane"] == "local"
    assert host["provenance"]["endpoint"] == "local"
    # this machine's lane ran beside the devices' lanes, and its figure says so
    assert any(_overlap(host, r) for r in by_device.values())
    assert host["load"]["busy"] is True and host["load"]["concurrent_cells"] >= 1
    for device, rec in by_device.items():
        assert rec["status"] == "ok", rec["error"]
        assert rec["real"] is True and rec["provenance"]["endpoint"] == endpoints[device]
        assert rec["provenance"]["machine"]["hostname"] and rec["provenance"]["shard"] is None
        assert rec["schedule"]["lane"] == device and rec["schedule"]["attempts"] == 1
    pw = by_device["remote_pw"]
    cdp = [by_device["cdp_a"], by_device["cdp_b"]]
    # the Playwright server's cell ran while one of the CDP endpoint's cells ran
    assert any(_overlap(pw, other) for other in cdp), [_interval(r) for r in records]
    assert pw["schedule"]["concurrent_with"] >= 1
    assert set(pw["schedule"]["concurrent_lanes"]) & {"cdp_a", "cdp_b"}
    # loopback browsers share this machine's CPU: measured under competing load, and said so
    for rec in [pw, *[r for r in cdp if _overlap(pw, r)]]:
        assert rec["load"]["busy"] is True and rec["load"]["concurrent_cells"] >= 1


@pytest.mark.browser
@pytest.mark.slow
def test_profiles_sharing_an_endpoint_with_max_sessions_1_never_overlap(three_devices_run):
    code, _, records = three_devices_run
    assert code == 0
    by_device = {r["device"]: r for r in records}
    a, b = by_device["cdp_a"], by_device["cdp_b"]
    assert a["status"] == b["status"] == "ok"
    assert not _overlap(a, b), (_interval(a), _interval(b))
    for rec, other in ((a, "cdp_b"), (b, "cdp_a")):
        assert other not in rec["schedule"]["concurrent_lanes"]


@pytest.fixture
def doomed_server(browser_path, tmp_path):
    """A `playwright launch-server` of its own on 127.0.0.1, for a test to kill."""
    from edge.farm.runners.browser import LAUNCH_ARGS

    config = tmp_path / "server.json"
    config.write_text(json.dumps({"executablePath": browser_path, "headless": True,
                                  "host": "127.0.0.1", "port": 0,
                                  "args": [*LAUNCH_ARGS, *UNREACHABLE]}))
    proc = subprocess.Popen([sys.executable, "-m", "playwright", "launch-server", "--browser",
                             "chromium", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("ws://127.0.0.1:"), line + proc.stdout.read(2000)
        yield proc, line
    finally:
        _stop(proc)


@pytest.mark.browser
@pytest.mark.slow
def test_a_connection_dropped_mid_cell_is_retried_then_one_failed_record(
        tiny_tfjs, cdp_chromium, doomed_server, tmp_path, capfd, monkeypatch):
    """The Playwright server of device `doomed` is killed while its cell runs: the cell is tried
    again (the endpoint refuses now) and ends as one `failed` record naming the endpoint without
    the credentials in its URL; the other device's cell is measured."""
    import edge.farm.runners.browser as browser
    import edge.farm.scheduling.lanes as lanes

    proc, server = doomed_server
    secret = "s3cret-pw-77"
    doomed = server.replace("ws://", f"ws://edgeuser:{secret}@") + f"?token={secret}"
    public = server
    catalog = _catalog(tmp_path, {"doomed": doomed, "healthy": cdp_chromium})
    killed = threading.Event()
    device = threading.local()
    real_run, real_harness = browser.BrowserRunner.run, browser.run_harness

    def run(runner, bench, cell, *args, **kwargs):
        device.name = cell.device
        return real_run(runner, bench, cell, *args, **kwargs)

    def run_harness(page, config, timeout_s):
        if getattr(device, "name", None) == "doomed" and not killed.is_set():
            def kill():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                killed.set()
            threading.Timer(0.5, kill).start()
        return real_harness(page, config, timeout_s)

    monkeypatch.setattr(browser.BrowserRunner, "run", run)
    monkeypatch.setattr(browser, "run_harness", run_harness)
    code, out, records = _bench(tmp_path, tiny_tfjs[0], ["doomed", "healthy"], catalog, capfd)
    assert code == 0, out
    assert killed.is_set()
    assert sorted(r["device"] for r in records) == ["doomed", "healthy"]  # once each
    by_device = {r["device"]: r for r in records}
    assert by_device["healthy"]["status"] == "ok", by_device["healthy"]["error"]
    rec = by_device["doomed"]
    assert rec["status"] == "failed"
    assert rec["error"].startswith(f"connection to {public} lost: failed {lanes.ATTEMPTS} "
                                   "times"), rec["error"]
    assert "ECONNREFUSED" in rec["error"]
    assert rec["schedule"]["attempts"] == lanes.ATTEMPTS
    assert len(rec["schedule"]["lost_connections"]) == lanes.ATTEMPTS
    assert "closed" in rec["schedule"]["lost_connections"][0]  # the drop mid-cell
    assert rec["provenance"]["endpoint"] == public
    assert out.count("retry ") == lanes.ATTEMPTS - 1
    for text in (out, json.dumps(records)):
        assert secret not in text and "edgeuser" not in text


def test_an_interrupted_run_keeps_what_was_written_and_drops_cells_in_flight(tmp_path,
                                                                             monkeypatch):
    """Ctrl-C while a lane's cell is in flight: the cells already written stay, the one in
    flight is not written (even when it finishes afterwards), and a resume finds it missing."""
    import time
    import types

    from rich.console import Console

    import edge.farm.scheduling.lanes as lanes
    from edge.farm.cells import Bench, now
    from edge.farm.scheduling.matrix import Cell
    from edge.results.store import ResultStore, cell_id

    def run(bench, cell, artifact, where):
        started = now()
        if cell.device == "slow":
            time.sleep(1.0)
        return bench.record(cell, "ok", None, started=started)

    def profile(name):
        return types.SimpleNamespace(
            name=name, endpoint=f"ws://127.0.0.1:9/{name}", adb=None, farm=None,
            user_env=None, key_env=None, sessions_key=f"ws://127.0.0.1:9/{name}",
            max_sessions=None, label=name, emulated=False, is_host=False)

    catalog = {name: profile(name) for name in ("fast", "slow")}
    monkeypatch.setattr(lanes, "session_limits", lambda c: {})
    results = ResultStore(tmp_path / "run")
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the test
    bench = Bench(None, {}, None, results, "r", None, catalog, {}, console)
    bench.schedule = lanes.Schedule(catalog)
    cells = {d: [Cell("m", "v", "litert", d)] for d in catalog}
    with pytest.raises(KeyboardInterrupt), \
            lanes.RemoteLanes(bench, cells, lambda c: object(), lambda rec: None, run, None):
        while "fast" not in {r["device"] for r in results.records()}:
            time.sleep(0.05)
        raise KeyboardInterrupt
    time.sleep(1.5)  # the slow cell has finished meanwhile
    console.file.close()
    assert [r["device"] for r in results.records()] == ["fast"]
    done = results.done_cells()
    assert cell_id("m", "v", "litert", "slow") not in done
    assert cell_id("m", "v", "litert", "fast") in done
