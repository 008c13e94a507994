"""Real browsers through Playwright: resolution, the harness page, one fresh context per cell.

Browser resolution order: an explicit path (argument or EDGE_BROWSER) → Playwright's own
Chromium → a system Chromium/Chrome → an error saying how to install one. A device profile with an
`endpoint` is a real browser elsewhere (CDP `http://…` or Playwright `ws://…`): it is connected
to, never launched, and never throttled.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil

from edge.errors import EdgeError

REPO = Path(__file__).resolve().parents[2]
WEB_DIR = REPO / "devices" / "web"
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


def ensure_web_runtime() -> None:
    """Install the pinned TF.js runtime (`npm ci`) into devices/web when it is missing."""
    if (WEB_DIR / "node_modules" / "@tensorflow" / "tfjs" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise EdgeError("npm not found: install Node.js and npm to fetch the TF.js runtime")
    import subprocess

    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB_DIR, check=True)


def require_web_runtime() -> None:
    """Fail fast when the pinned TF.js runtime is not installed. Installing it is a setup step
    (the nox sessions, .ci/run), never something a measuring run does halfway through."""
    if (WEB_DIR / "node_modules" / "@tensorflow" / "tfjs" / "package.json").exists():
        return
    raise EdgeError(f"the TF.js runtime is not installed in {WEB_DIR}: run `npm ci` in "
                    "devices/web (cd devices/web && npm ci), or `nox -s device_matrix`, which "
                    "installs it")


class RendererSampler:
    """Samples the page renderers' RSS every `interval_s` while a run is measured: the peak is
    a sampled maximum over the run, not a snapshot after it."""

    def __init__(self, interval_s: float = 0.1):
        self.interval_s = interval_s
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        procs: list[psutil.Process] = []
        while not self._stop.is_set():
            if self.samples % 10 == 0:  # the renderer list is looked up once a second
                procs = page_renderers()
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
        self._remote: dict[str, object] = {}
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
        if self._pw is not None:
            self._pw.stop()

    def browser(self, endpoint: str | None = None):
        if endpoint:
            remote = self._remote.get(endpoint)
            if remote is None or not remote.is_connected():
                remote = (self._pw.chromium.connect(endpoint) if endpoint.startswith("ws")
                          else self._pw.chromium.connect_over_cdp(endpoint))
                self._remote[endpoint] = remote
            return remote
        if self._browser is None or not self._browser.is_connected():
            self._browser = self._pw.chromium.launch(
                executable_path=self.info.path, headless=self.headless, args=list(LAUNCH_ARGS))
            self.launches += 1
            if self._root is not None:  # a relaunched browser goes where the old one was
                self._move(self._group)
        return self._browser

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
        from edge.farm.emulation import CpuGroup

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
    browser = session.browser(endpoint)
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
        context = session.browser(endpoint).new_context(**options)
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

    def watchdog() -> None:
        fired.set()
        for proc in page_renderers():
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


def host_benchmark_index(session: BrowserSession, server_url: str, repeats: int = 5) -> float:
    """The host's benchmark index (median of a few runs of the harness's fixed JS workload)."""
    from edge.farm.devices import HOST_BENCHMARK_JS

    context, page, _ = open_page(session, server_url)
    try:
        values = sorted(page.evaluate(HOST_BENCHMARK_JS, 300) for _ in range(repeats))
        return float(values[len(values) // 2])
    finally:
        context.close()


def cdp_metrics(cdp) -> dict:
    try:
        cdp.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        return {"js_heap_used": metrics.get("JSHeapUsedSize"),
                "js_heap_total": metrics.get("JSHeapTotalSize")}
    except Exception:  # noqa: BLE001 - informative only
        return {}

