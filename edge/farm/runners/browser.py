"""The browser runner: real browsers through Playwright, the harness page, one fresh context per
cell (TF.js on WASM, WebGL, WebGPU; .tflite through tfjs-tflite).

Browser resolution order: an explicit path (argument or EDGE_BROWSER) → Playwright's own
Chromium → a system Chromium/Chrome → an error saying how to install one. A device profile with an
`endpoint` is a real browser elsewhere (`edge.farm.runners.endpoints`): it is connected to,
never launched, and never throttled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from edge.errors import EdgeError
from edge.farm.cells import (
    PROBE_MS,
    decode_outputs,
    now,
    safe_fidelity,
    workload_name,
)
from edge.farm.runners.base import Runner, Where
from edge.farm.runners.endpoints import connect, connection_error, release
from edge.farm.runners.remote import prepare_remote_page, remote_fields
from edge.variants import GPU_NOT_EMULATED

SYSTEM_BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome",
                   "/usr/bin/google-chrome-stable")
# The network here is closed: background services only produce refused connections.
LAUNCH_ARGS = ("--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync", "--disable-default-apps",
               "--enable-unsafe-webgpu")
INSTALL_HINT = ("no Chromium found: install one (Debian/Ubuntu: `apt-get install chromium`), or "
                "set EDGE_BROWSER=/path/to/chrome")


@dataclass(frozen=True)
class BrowserInfo:
    path: str
    source: str  # "explicit" | "playwright" | "system"


def resolve_browser(explicit: str | None = None) -> BrowserInfo:
    origin = "the browser path given" if explicit else "EDGE_BROWSER"
    explicit = explicit or os.environ.get("EDGE_BROWSER")
    if explicit:
        if not Path(explicit).exists():
            raise EdgeError(f"browser not found at {explicit} (from {origin}): point "
                            "EDGE_BROWSER at a Chromium or Chrome executable, or unset it")
        return BrowserInfo(explicit, "explicit")
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            own = p.chromium.executable_path
        if own and Path(own).exists():
            return BrowserInfo(own, "playwright")
    except Exception:  # noqa: BLE001 - no driver or no browser download: try the system
        pass
    for candidate in SYSTEM_BROWSERS:
        if Path(candidate).exists():
            return BrowserInfo(candidate, "system")
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return BrowserInfo(found, "system")
    raise EdgeError(INSTALL_HINT)


class RendererSampler:
    """Samples the page renderers' RSS every `interval_s` while a run is measured: the peak is
    a sampled maximum over the run, not a snapshot after it."""

    def __init__(self, interval_s: float = 0.1, renderers=None):
        self.interval_s = interval_s
        self.renderers = renderers or page_renderers  # () -> the processes to sample
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        procs: list[psutil.Process] = []
        while not self._stop.is_set():
            if self.samples % 10 == 0:  # the renderer list is looked up once a second
                procs = self.renderers()
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                self.peak = max(self.peak, rss)
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RendererSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self) -> dict:
        if not self.samples or not self.peak:
            return {}
        return {"peak_rss_bytes": self.peak, "memory_metric": "renderer-peak-rss",
                "rss_samples": self.samples, "rss_interval_s": self.interval_s}


class HarnessError(EdgeError):
    """The harness page could not start (a script of the TF.js runtime failed to load)."""


class BrowserSession:
    """One Playwright driver and one browser, relaunched when it dies."""

    def __init__(self, info: BrowserInfo, headless: bool = True, root=None):
        self.info = info
        self.headless = headless
        self._pw = None
        self._browser = None
        self._remote: dict[tuple, object] = {}
        self.launches = 0
        self._root = root  # a CgroupController: where unthrottled browsers go back to
        self._group = None  # the CpuGroup the local browser runs in (None: the root)

    def __enter__(self) -> BrowserSession:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        return self

    def __exit__(self, *exc) -> None:
        for browser in [self._browser, *self._remote.values()]:
            try:
                if browser is not None:
                    browser.close()
            except Exception:  # noqa: BLE001 - closing a dead browser
                pass
        for remote in self._remote.values():
            release(remote)  # e.g. delete a Selenium Grid session
        if self._pw is not None:
            self._pw.stop()

    def browser(self, endpoint: str | None = None, profile=None):
        """This machine's browser, or the one at `endpoint` (`profile`: the device profile it
        belongs to, for a Grid's or cloud farm's capabilities and credentials)."""
        if endpoint:
            # one connection per profile: two profiles of one cloud farm or Grid differ in
            # their capabilities
            key = (endpoint, getattr(profile, "name", None))
            remote = self._remote.get(key)
            if remote is None or not remote.is_connected():
                if remote is not None:
                    release(remote)
                remote = connect(self._pw, endpoint, profile)
                self._remote[key] = remote
            return remote
        if self._browser is None or not self._browser.is_connected():
            self._browser = self._pw.chromium.launch(
                executable_path=self.info.path, headless=self.headless, args=list(LAUNCH_ARGS))
            self.launches += 1
            if self._root is not None:  # a relaunched browser goes where the old one was
                self._move(self._group)
        return self._browser

    def lost(self, endpoint: str, profile=None) -> bool:
        """Whether the connection to the browser at `endpoint` (for `profile`) was made and is
        gone (the server or browser went away, the network dropped)."""
        remote = self._remote.get((endpoint, getattr(profile, "name", None)))
        if remote is None:
            return False
        try:
            if not remote.is_connected():
                return True
            # The driver learns of a dropped connection a little after the call that failed
            # on it: ask the browser for something (a page that crashed on a live connection
            # leaves it answering).
            remote.new_context().close()
            return False
        except Exception:  # noqa: BLE001 - a browser that cannot answer is lost
            return True

    def disconnect(self, endpoint: str, profile=None) -> None:
        """Drop the connection to `endpoint` (for `profile`): the next `browser` connects
        afresh."""
        remote = self._remote.pop((endpoint, getattr(profile, "name", None)), None)
        if remote is not None:
            with contextlib.suppress(Exception):  # a dead connection
                remote.close()
            with contextlib.suppress(Exception):
                release(remote)

    def browser_pids(self) -> list[int]:
        """The local browser's processes (browser, zygotes, GPU, utility, renderers)."""
        pids = []
        for proc in psutil.Process().children(recursive=True):
            try:
                name = proc.name().lower()
            except psutil.Error:
                continue
            if "chrom" in name or "headless_shell" in name:
                pids.append(proc.pid)
        return pids

    def place(self, group) -> None:
        """Run the local browser's whole process tree in `group` (a CpuGroup: CPU bandwidth
        control of every thread, renderers forked later included), or back in the root group
        (None). No-op without cgroups."""
        self._group = group
        if self._root is not None and self._browser is not None:
            self._move(group)

    def _move(self, group) -> None:
        from edge.farm.emulation.cgroups import CpuGroup

        target = group if group is not None else CpuGroup(self._root.root, self._root.version)
        target.add_tree(self.browser_pids())

    def version(self) -> str:
        return self.browser().version

    def devices(self) -> dict:
        return self._pw.devices


def open_page(session: BrowserSession, server_url: str, profile=None, factor: float = 1.0,
              timeout_s: float = 60.0, cores: int | None = None):
    """A fresh context and page on the harness, emulating `profile` (descriptor; CPU rate
    `factor` through DevTools, which slows the main thread only; `cores` as
    navigator.hardwareConcurrency, default the profile's for an emulated phone)."""
    from playwright.sync_api import Error as PlaywrightError

    endpoint = getattr(profile, "endpoint", None)
    browser = session.browser(endpoint, profile)
    options = {}
    if profile is not None and profile.descriptor:
        options.update(session.devices()[profile.descriptor])
        options.pop("default_browser_type", None)
    try:
        context = browser.new_context(**options)
    except PlaywrightError:
        # A browser that died between cells still looks connected until the driver is next
        # asked for something: now that it has said so, relaunch (or reconnect) once.
        if browser.is_connected():
            raise
        context = session.browser(endpoint, profile).new_context(**options)
    try:
        page = context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        cdp = context.new_cdp_session(page)
        local = profile is not None and not getattr(profile, "endpoint", None)
        if local and factor > 1.0:
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": factor})
        if cores is None and local and profile.emulated and not profile.is_host:
            cores = int(profile.cores)
        if local and cores:
            cdp.send("Emulation.setHardwareConcurrencyOverride",
                     {"hardwareConcurrency": int(cores)})
        if endpoint:  # a remote browser gets the harness through the connection
            prepare_remote_page(context, page, cdp, server_url, cores)
            # its renderers run elsewhere: none of this machine's is the page's to sample or
            # kill (another lane's page may be running here meanwhile)
            page._edge_renderers = _no_renderers
        page.goto(f"{server_url}/harness/index.html")
        page.wait_for_function(
            "() => document.title === 'ready' || document.title.startsWith('error')")
        if page.title() != "ready":
            raise HarnessError(f"harness page failed to load: {page.title()}")
    except BaseException:
        try:
            context.close()
        except Exception:  # noqa: BLE001 - the browser may be gone
            pass
        raise
    return context, page, cdp


class HarnessTimeout(EdgeError):
    """A harness run missed its deadline (the page may have been stuck in a busy loop)."""


def _no_renderers() -> list[psutil.Process]:
    return []


def page_renderers(root_pid: int | None = None) -> list[psutil.Process]:
    """The page renderer processes among this process's descendants."""
    found = []
    try:
        procs = psutil.Process(root_pid or os.getpid()).children(recursive=True)
    except psutil.Error:
        return found
    for proc in procs:
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "--type=renderer" in cmd and "--top-chrome-webui" not in cmd \
                and "--extension-process" not in cmd:
            found.append(proc)
    return found


def run_harness(page, config: dict, timeout_s: float) -> dict:
    """Start one harness run and wait for its result, at most `timeout_s`.

    The run starts from a timer so `evaluate` returns at once. A page whose main thread is
    stuck (a busy loop, a long synchronous WASM call) cannot answer Playwright at all, so a
    watchdog kills the page's renderer a little after the deadline; either way the caller gets
    `HarnessTimeout`."""
    from playwright.sync_api import Error as PlaywrightError

    fired = threading.Event()
    renderers = getattr(page, "_edge_renderers", page_renderers)

    def watchdog() -> None:
        fired.set()
        for proc in renderers():
            try:
                proc.kill()
            except psutil.Error:
                pass

    # Playwright's own timeout does not fire while the page's main thread is stuck (it answers
    # only once the renderer is gone), so the watchdog is what holds the deadline: the grace
    # only lets a responsive page's timeout win; the cell is a timeout either way.
    timer = threading.Timer(timeout_s + 2.0, watchdog)
    timer.daemon = True
    timer.start()
    try:
        page.evaluate("cfg => { window.__edgeResult = undefined; setTimeout(() => "
                      "window.edgeHarness.run(cfg).then(r => { window.__edgeResult = r; }, "
                      "e => { window.__edgeResult = {error: String(e)}; }), 0); }", config)
        page.wait_for_function("() => window.__edgeResult !== undefined",
                               timeout=timeout_s * 1000, polling=100)
        return page.evaluate("() => window.__edgeResult")
    except PlaywrightError as exc:
        if fired.is_set() or "Timeout" in type(exc).__name__:
            if not fired.is_set():
                watchdog()  # a page still busy past its deadline would stall closing it
            raise HarnessTimeout(f"no result within {timeout_s:.0f} s") from None
        raise
    finally:
        timer.cancel()


def host_benchmark_index(session: BrowserSession, server_url: str, repeats: int = 5,
                         pages: int = 3) -> tuple[float, list[float]]:
    """The host's benchmark index and what it was taken from: the harness's fixed JS workload
    run `repeats` times in each of `pages` fresh pages; the index is the median of the pages'
    medians (one page's speed moves by tens of percent, e.g. while the browser starts up)."""
    from edge.farm.emulation.devices import HOST_BENCHMARK_JS

    medians = []
    for _ in range(pages):
        context, page, _ = open_page(session, server_url)
        try:
            values = sorted(page.evaluate(HOST_BENCHMARK_JS, 300) for _ in range(repeats))
            medians.append(float(values[len(values) // 2]))
        finally:
            context.close()
    return float(sorted(medians)[len(medians) // 2]), medians


def cdp_metrics(cdp) -> dict:
    try:
        cdp.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        return {"js_heap_used": metrics.get("JSHeapUsedSize"),
                "js_heap_total": metrics.get("JSHeapTotalSize")}
    except Exception:  # noqa: BLE001 - informative only
        return {}


class BrowserRunner(Runner):
    """TF.js and tfjs-tflite cells in a fresh context of the local browser (emulated phones:
    its whole process tree in the device's cgroup, calibrated first; or DevTools' main-thread
    throttle) or of a remote endpoint's browser."""

    kind = "browser"
    native = False
    noise_runtime = "tfjs-wasm"
    noise_between = "browser pages"
    interleaves = True

    @contextlib.contextmanager
    def timing(self, bench, cell, artifact, where: Where, group):
        session = where.session
        session.place(group)
        profile = bench.catalog["host"] if "host" in bench.catalog else None
        cores = max(bench.host_cores, 2 * int(cell.threads or 1))
        context, page, _ = open_page(session, where.server_url, profile, 1.0,
                                     timeout_s=bench.protocol.timeout_s, cores=cores)
        try:
            page.evaluate("cfg => edgeHarness.prepare(cfg)",
                          {**harness_config(bench, cell, artifact, profile), "returnOutputs": 0})
            yield lambda n: page.evaluate("n => edgeHarness.timeRuns(n)", int(n))
        finally:
            with contextlib.suppress(Exception):  # the page or the browser may be gone
                page.evaluate("() => edgeHarness.release()")
            with contextlib.suppress(Exception):
                context.close()

    def run(self, bench, cell, artifact, where: Where) -> dict:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        from edge.farm.protocol.load import LoadMeter
        from edge.farm.protocol.protocol import summarize

        session, server_url = where.session, where.server_url

        profile = bench.catalog[cell.device]
        started = now()
        extra = {**bench.artifact_extra(artifact),
                 "download_s_estimated": round(
                     profile.network.download_seconds(artifact.manifest["gzip_bytes"]), 3),
                 "network": profile.network.name}
        emulated = profile.emulated and not profile.is_host
        if emulated and self.gpu:
            return bench.record(cell, "unsupported", artifact, started=started, extra=extra,
                                error=GPU_NOT_EMULATED)
        if getattr(profile, "adb", None) and not profile.endpoint:
            return bench.record(cell, "failed", artifact, started=started, extra=extra,
                                error=f"profile {cell.device!r} names an adb phone but no "
                                      f"browser 'endpoint': browser cells need the phone's "
                                      f"Chrome (e.g. adb forward tcp:9222 "
                                      f"localabstract:chrome_devtools_remote, endpoint = "
                                      f"\"http://127.0.0.1:9222\")")
        options = _page_options(bench, cell, profile)
        group = bench.group(cell.device, "browser") if emulated else None
        session.place(group)
        context = None
        meter = None
        try:
            if group is not None and not bench.calibrated(cell, group):
                cal_art = bench.calibration_artifact(cell)
                context, page, _ = open_page(session, server_url, profile, options["factor"],
                                             timeout_s=bench.protocol.timeout_s,
                                             cores=options["cores"])
                page.evaluate("cfg => edgeHarness.prepare(cfg)",
                              harness_config(bench, cell, cal_art, profile))
                bench.calibrate(cell, lambda: page.evaluate(
                    "n => edgeHarness.timeRuns(n)", _probe_runs_page(page)),
                    workload_name(cal_art), group)
                page.evaluate("() => edgeHarness.release()")
                context.close()
                context = None
            meter = LoadMeter.start()
            context, page, cdp = open_page(session, server_url, profile, options["factor"],
                                           timeout_s=bench.protocol.timeout_s,
                                           cores=options["cores"])
            with RendererSampler(renderers=getattr(page, "_edge_renderers", None)) as sampler:
                result = run_harness(page, harness_config(bench, cell, artifact, profile),
                                     bench.protocol.timeout_s)
            extra["load"] = meter.stop()
            memory = {**_browser_memory(result.get("memory") or {}), **cdp_metrics(cdp),
                      **sampler.summary()}
            if emulated and not result.get("error") and bench.held is None:
                _paired_in_page(bench, cell, page, cdp, group, options["factor"],
                                harness_config(bench, cell, artifact, profile))
        except (PlaywrightTimeout, HarnessTimeout):
            if meter is not None:
                extra["load"] = meter.stop()
            return bench.record(cell, "timeout", artifact, started=started, extra=extra,
                                error=f"no result within {bench.protocol.timeout_s:.0f} s")
        except (PlaywrightError, HarnessError) as exc:
            if meter is not None:
                extra["load"] = meter.stop()
            return bench.record(cell, "failed", artifact, started=started, extra=extra,
                                error=f"browser: {str(exc).strip().splitlines()[0]}")
        finally:
            if context is not None:
                try:
                    context.close()
                except Exception:  # noqa: BLE001 - the page or browser may be gone
                    pass
        facts = result.get("facts") or {}
        extra.update(remote_fields(session, profile, page, facts, cell.runtime))
        metrics = {"load_ms": result.get("loadMs"),
                   "first_inference_ms": result.get("firstInferenceMs"),
                   "warmup_ms": result.get("warmupMs"), "memory": memory,
                   "backend": {"name": result.get("backend"), **facts},
                   "tfjs_version": result.get("tfjsVersion"), "pse": result.get("pse"),
                   "stop_reason": result.get("stopReason"),
                   "page": {"cpu_throttling_rate": options["factor"],
                            "hardware_concurrency": options["cores"]}}
        if self.gpu:
            extra["gpu"] = gpu_field(cell.runtime, facts)
        if result.get("error"):
            return bench.record(cell, "failed", artifact, metrics=metrics,
                                error=result["error"], started=started, extra=extra)
        samples = result.get("samplesMs") or []
        if not samples:
            return bench.record(cell, "failed", artifact, metrics=metrics, started=started,
                                extra=extra, error="harness returned no timed runs")
        metrics["latency"] = summarize(samples, warmup_samples=result.get("warmupMs"),
                                       steady=result.get("steady"))
        metrics["fidelity"] = safe_fidelity(decode_outputs(result.get("outputs")), artifact,
                                            bench.store)
        return bench.record(cell, "ok", artifact, metrics=metrics, started=started, extra=extra)

    def connection_lost(self, bench, cell, where: Where, error: str | None) -> bool:
        """A remote cell whose browser connection was made and is gone, or could not be made
        for a network reason (refused, reset, unreachable); never a local cell, nor a page or
        model that failed on a live connection."""
        profile = bench.catalog.get(cell.device)
        endpoint = getattr(profile, "endpoint", None)
        if not endpoint or where.session is None:
            return False
        if where.session.lost(endpoint, profile):
            return True
        return connection_error(error)

    def noise_medians(self, bench, cell, cells, where: Where, repeats: int):
        import dataclasses

        session, server_url = where.session, where.server_url
        if session is None:
            return None
        art = bench.calibration_artifact(cell)
        profile = bench.catalog["host"] if "host" in bench.catalog else None
        threads = max(c.threads or 1 for c in cells if c.runtime == cell.runtime
                      and c.device == "host") if any(
            c.runtime == cell.runtime and c.device == "host" for c in cells) else 1
        medians = []
        for _ in range(repeats):
            context, page, _ = open_page(session, server_url, profile, 1.0,
                                         timeout_s=bench.protocol.timeout_s,
                                         cores=max(bench.host_cores, 2 * threads))
            try:
                probe = dataclasses.replace(cell, variant=art.manifest["variant"]["name"],
                                            runtime=cell.runtime, device="host",
                                            threads=threads)
                config = harness_config(bench, probe, art, profile)
                page.evaluate("cfg => edgeHarness.prepare(cfg)",
                              {**config, "returnOutputs": 0})
                medians.append(float(np.median(
                    page.evaluate("n => edgeHarness.timeRuns(n)", 20))))
                page.evaluate("() => edgeHarness.release()")
            finally:
                context.close()
        return medians, art


def harness_config(bench, cell, artifact, profile) -> dict:
    m = artifact.manifest
    url_dir = f"/artifacts/artifacts/{artifact.dir.name}"
    io = (m.get("io") or {}).get("inputs", [{}])[0] if m["format"] == "tflite" else {}
    out_io = (m.get("io") or {}).get("outputs", [{}])[0] if m["format"] == "tflite" else {}
    config = {
        "runtime": cell.runtime,
        "modelUrl": f"{url_dir}/{m['files'][0]['path']}",
        "input": {"shape": m["model"]["input_shape"], "dtype": io.get("dtype", "float32"),
                  "mean": m["model"]["mean"], "std": m["model"]["std"],
                  "scale": io.get("scale"), "zeroPoint": io.get("zero_point")},
        "output": {"scale": out_io.get("scale"), "zeroPoint": out_io.get("zero_point")}
        if out_io.get("dtype") in ("int8", "uint8") else None,
        "returnOutputs": bench.return_outputs(artifact),
        "loadTimeoutMs": bench.protocol.timeout_s * 1000,
        "protocol": bench.cell_protocol.to_js(),
        # The cell's thread count: min(phone cores, host cores) (or 1 under the DevTools
        # fallback), the same on the host and the phones it is compared with.
        "wasmThreads": cell.threads,
    }
    images = bench.eval_images(artifact)
    if images is not None:
        ref_key = m["reference"]["key"]
        path = bench.data_dir / f"{ref_key[:20]}.bin"
        if not path.exists():
            bench.data_dir.mkdir(parents=True, exist_ok=True)
            # a name of its own: lanes in other threads may write the same file meanwhile
            tmp = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
            tmp.write_bytes(np.ascontiguousarray(images, np.uint8).tobytes())
            tmp.replace(path)
        config["imagesUrl"] = f"/data/{path.name}"
    if m["model"]["task"] == "text_detection" and m.get("reference"):
        out_shape = bench.store.read("references", m["reference"]["key"])["output_shape"]
        config["pse"] = {"kernels": int(out_shape[-1]), "threshold": 0.5, "minArea": 10}
    return config


def _page_options(bench, cell, profile) -> dict:
    """How open_page emulates the profile for this cell: DevTools CPU rate (fallback only),
    the hardwareConcurrency override (TF.js WASM uses min(threads, cores / 2) threads)."""
    if getattr(profile, "endpoint", None):  # a real device: its own cores, unless the cell
        # asks for more threads than TF.js would use on them (`remote.match_threads`)
        return {"factor": 1.0, "cores": 2 * int(cell.threads) if cell.threads else None}
    emulated = profile.emulated and not profile.is_host
    rate = 1.0
    if emulated and not bench.emulation.all_threads:
        rate = bench.targets.get(cell.device, 1.0)
    cores = int(profile.cores) if emulated else bench.host_cores
    if cell.threads:
        cores = max(cores, 2 * int(cell.threads))
    return {"factor": rate, "cores": cores}


def _paired_in_page(bench, cell, page, cdp, group, rate: float,
                    config: dict) -> None:
    """An emulated browser cell's own slowdown: its model again in the same page, timed in
    alternating unthrottled and throttled blocks (the group's quota, or DevTools' rate)."""
    from edge.farm.emulation.calibration import quota_setter

    try:
        page.evaluate("cfg => edgeHarness.prepare(cfg)", {**config, "returnOutputs": 0})
    except Exception as exc:  # noqa: BLE001 - a note on the record
        bench.paired[cell] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        return
    if group is not None:
        set_throttle = quota_setter(group, group.quota_us)
    else:
        def set_throttle(on: bool) -> None:
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": rate if on else 1.0})
    try:
        bench.measure_paired(cell, set_throttle,
                             lambda n: page.evaluate("n => edgeHarness.timeRuns(n)", n),
                             _probe_runs_page(page))
    finally:
        set_throttle(True)
        try:
            page.evaluate("() => edgeHarness.release()")
        except Exception:  # noqa: BLE001 - the page is closed next anyway
            pass


def _browser_memory(page_memory: dict) -> dict:
    """The page's memory figures under names that say what they are."""
    out = dict(page_memory)
    for old in ("tfPeakBytes", "wasmHeapBytes"):  # superseded names
        out.pop(old, None)
    if "wasmHeapCapacityBytes" in out:
        out["wasm_heap_capacity_bytes"] = out.pop("wasmHeapCapacityBytes")
    return out


def gpu_field(runtime: str, facts: dict) -> dict:
    """The renderer a GPU cell ran on, and whether it is software (the host's rasterizer)."""
    if runtime.endswith("-webgpu"):
        adapter = facts.get("webgpu") or {}
        renderer = " ".join(str(adapter.get(k)) for k in ("vendor", "architecture",
                                                          "description") if adapter.get(k))
        software = bool(adapter.get("isFallbackAdapter")) or "swiftshader" in renderer.lower()
        return {"renderer": renderer or None, "software": software}
    gl = facts.get("webgl") or {}
    renderer = gl.get("renderer")
    text = f"{renderer or ''} {gl.get('vendor') or ''}".lower()
    software = any(s in text for s in ("swiftshader", "llvmpipe", "software"))
    return {"renderer": renderer, "software": software}


def _probe_runs_page(page) -> int:
    n = getattr(page, "_edge_probe_n", None)
    if n is None:
        first = page.evaluate("n => edgeHarness.timeRuns(n)", 3)
        n = max(5, min(30, round(PROBE_MS / max(0.5, float(np.median(first))))))
        page._edge_probe_n = n
    return n

