"""The measuring matrix survives faults, each injected for real into a real run.

Each scenario runs `edge.farm.scheduling.run.run_matrix` (the loop `edge bench` runs) or the
`edge bench` command itself over tiny models, breaks one cell for real (a renderer killed, an
endless loop in the page, the WebGL context lost, a renderer out of heap memory, Chromium killed,
SIGINT or SIGTERM to the run or as a TFLite worker starts, a TFLite worker that segfaults, hangs or
exits, corrupted artifacts) and returns what the run recorded. The tests assert that the faulted
cell is a record with a status and the reason, that the cells after it are measured normally, and
that no cell is lost or recorded twice. `benchmarks/faults.py` runs the same scenarios and prints a
summary.

Cells are recognised by the runners that measure them (patched around, never replaced):
the fault is applied to the page of one cell (`open_page`), while its harness runs
(`run_harness`), before it starts (`BrowserRunner.run`) or to its TFLite worker
(`run_tflite_cell`'s `_fault`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import psutil
import pytest

from edge.farm.protocol.protocol import Protocol
from edge.farm.runners.browser import page_renderers
from edge.farm.scheduling.matrix import Cell

pytestmark = [pytest.mark.slow, pytest.mark.faults]

MODEL = "mobilenet_v2"
#: The variants the scenarios use (benchmarks/faults.py builds just these).
VARIANTS = ("tflite-fp32", "tflite-int8-full", "tfjs-fp32", "tfjs-fp16", "tfjs-uint8")
#: Long enough (>= 1.5 s of timed runs) for a fault to land while the harness runs.
BROWSER = Protocol(warmup=1, min_runs=3, min_seconds=1.5, max_runs=2000, timeout_s=45)
#: Short deadlines for the scenarios whose fault is a hang.
HANG_TIMEOUT_S = 10
HANGING = Protocol(warmup=1, max_warmup_seconds=1.0, min_runs=3, min_seconds=0.5, max_runs=500,
                   max_seconds=3.0, timeout_s=HANG_TIMEOUT_S)
#: Inference keeps running for >= 3 s, so a context lost 0.5 s after the backend is up is lost
#: while TF.js computes; a cell stuck on a lost context still ends within 20 s. Warm-up and
#: sampling are capped (1 s, 4 s) so that a healthy cell on a slow software-GL host ends well
#: inside that deadline: load + 1 s + 4 s.
LOSS = Protocol(warmup=1, max_warmup_seconds=1.0, min_runs=3, min_seconds=3.0, max_seconds=4.0,
                max_runs=5000, timeout_s=20)
NATIVE = Protocol(warmup=1, min_runs=5, min_seconds=0.3, max_runs=200, timeout_s=HANG_TIMEOUT_S)
#: Heap limit of the renderers in the out-of-memory scenario (MB); TF.js runs fine within it.
SMALL_HEAP_MB = 128
#: Where a page-side injection says that it fired (read from the page's console; the scripts
#: below spell it out).
MARK = "edge-fault:"
#: A CPU share (percent of one core) above which a renderer counts as still spinning.
SPINNING_PERCENT = 60.0


# -- the environment: built tiny artifacts --------------------------------------------------------

@dataclass
class Garden:
    """Built tiny artifacts of MODEL in at least VARIANTS."""

    build_dir: Path
    targets: list

    @property
    def slug(self) -> str:
        return next(t.slug for t in self.targets if t.source == MODEL)

    def cell(self, variant: str, runtime: str, threads: int | None = None) -> Cell:
        """A host cell as the run measures it: browser cells get the run's thread count."""
        from edge.farm.emulation.devices import load_catalog
        from edge.farm.emulation.methods import choose_emulation
        from edge.farm.scheduling.run import resolve_threads

        cell = Cell(self.slug, variant, runtime, "host", threads)
        emulation = choose_emulation()
        emulation.close()
        return resolve_threads([cell], load_catalog(), emulation)[0]


def cid(cell: Cell) -> str:
    from edge.results.store import cell_id

    return cell_id(**cell.as_dict())


@dataclass
class Outcome:
    """What one fault scenario did and what its run recorded."""

    fault: str
    cells: list[str]  # every cell id the run was given
    records: list[dict]  # every line of results.jsonl, in file order (duplicates included)
    faulted: list[str]  # the cells the fault hit
    injected: int  # faults that really happened (processes killed, page markers seen, ...)
    notes: dict = field(default_factory=dict)

    def rec(self, cell: Cell | str) -> dict:
        key = cell if isinstance(cell, str) else cid(cell)
        found = [r for r in self.records if r["cell_id"] == key]
        assert len(found) == 1, f"{key}: {len(found)} records"
        return found[0]

    @property
    def lost(self) -> list[str]:
        recorded = {r["cell_id"] for r in self.records}
        return [c for c in self.cells if c not in recorded]

    @property
    def duplicates(self) -> int:
        return len(self.records) - len({r["cell_id"] for r in self.records})

    @property
    def survived(self) -> int:
        recorded = {r["cell_id"] for r in self.records if r.get("status")}
        return sum(c in recorded for c in self.cells)


def raw_records(results: Path) -> list[dict]:
    """Every complete line of a results file, parsed (a damaged line fails the scenario)."""
    if not results.exists():
        return []
    return [json.loads(line) for line in results.read_text().splitlines() if line.strip()]


def describe(rec: dict) -> str:
    return f"{rec['cell_id']}: {rec['status']} ({rec.get('error')})"


# -- processes ------------------------------------------------------------------------------------

def _descendants() -> list[tuple[psutil.Process, list[str]]]:
    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            out.append((proc, proc.cmdline()))
        except psutil.Error:
            continue
    return out


def browser_mains() -> list[psutil.Process]:
    """Chromium main processes that Playwright launched (pipe transport, no --type)."""
    return [p for p, cmd in _descendants()
            if "--remote-debugging-pipe" in cmd and not any(a.startswith("--type=") for a in cmd)]


def kill(procs: list[psutil.Process]) -> list[int]:
    """SIGKILL and reap; the pids that were killed."""
    killed = []
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
            killed.append(proc.pid)
        except psutil.Error:
            continue
    psutil.wait_procs(procs, timeout=10)
    return killed


def spinning(procs: list[psutil.Process], interval: float = 1.0) -> list[int]:
    """The pids among `procs` that burn more than SPINNING_PERCENT of a core."""
    alive = []
    for proc in procs:
        try:
            proc.cpu_percent(None)
            alive.append(proc)
        except psutil.Error:
            continue
    time.sleep(interval)
    busy = []
    for proc in alive:
        try:
            if proc.cpu_percent(None) > SPINNING_PERCENT:
                busy.append(proc.pid)
        except psutil.Error:
            continue
    return busy


# -- injection ----------------------------------------------------------------------------------

Action = Callable[[threading.Event], None]


class Injector:
    """Faults keyed by cell, applied around the real runners' `run` while `installed()`.

    page_js[cell]: evaluated in the cell's page once the harness is ready (before the run).
    during[cell]: called in a thread as the cell's harness run starts, with a stop event set
        when the cell has been recorded.
    before[cell]: called just before the cell is measured.
    native_fault[cell]: the TFLite worker's `_fault` for that cell.
    A cell still running after `watchdog_s` has its browser and workers killed (and the
    scenario fails with a note), so a run that would hang forever ends instead.
    """

    watchdog_s = 150.0

    def __init__(self):
        self.page_js: dict[Cell, str] = {}
        self.during: dict[Cell, Action] = {}
        self.before: dict[Cell, Callable[[], None]] = {}
        self.native_fault: dict[Cell, str] = {}
        self.current: Cell | None = None
        self.marks: list[str] = []  # MARK lines from the pages' consoles
        self.seconds: dict[str, float] = {}  # wall time of each cell, recording included
        self.errors: list[str] = []  # exceptions in the injection threads
        self.sessions: list = []  # every BrowserSession the run opened
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _thread(self, action: Action) -> None:
        try:
            action(self._stop)
        except Exception as exc:  # noqa: BLE001 - reported by the scenario
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _measured(self, real, bench, cell, *args, **kwargs):
        self.current = cell
        self._stop.clear()
        if cell in self.before:
            self.before[cell]()
        started = time.monotonic()
        watchdog = threading.Timer(self.watchdog_s, self._watchdog, args=(cell,))
        watchdog.daemon = True
        watchdog.start()
        try:
            return real(bench, cell, *args, **kwargs)
        finally:
            watchdog.cancel()
            self.seconds[cid(cell)] = time.monotonic() - started
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=30)
            self._threads.clear()
            self.current = None

    def _watchdog(self, cell: Cell) -> None:
        self.errors.append(f"watchdog: {cid(cell)} still running after {self.watchdog_s:.0f} s;"
                           " killed its browser and workers")
        kill(browser_mains() + _workers(os.getpid()))

    @contextlib.contextmanager
    def installed(self, launch_args: tuple[str, ...] = ()) -> Iterator[Injector]:
        import edge.farm.runners.browser as browser
        import edge.farm.runners.tflite_runner as runner
        from edge.farm.runners.browser import BrowserRunner
        from edge.farm.runners.native import NativeRunner

        real_open, real_harness = browser.open_page, browser.run_harness
        real_tflite = runner.run_tflite_cell
        real_browser_cell, real_native_cell = BrowserRunner.run, NativeRunner.run
        injector = self

        def open_page(*args, **kwargs):
            context, page, cdp = real_open(*args, **kwargs)
            js = self.page_js.get(self.current)
            if js:
                page.on("console", lambda m: self.marks.append(m.text)
                        if m.text.startswith(MARK) else None)
                page.evaluate(js)
            return context, page, cdp

        def run_harness(page, config, timeout_s):
            action = self.during.get(self.current)
            if action is not None:
                thread = threading.Thread(target=self._thread, args=(action,), daemon=True)
                thread.start()
                self._threads.append(thread)
            return real_harness(page, config, timeout_s)

        def run_tflite_cell(*args, **kwargs):
            kind = self.native_fault.get(self.current)
            call = functools.partial(real_tflite, _fault=kind) if kind else real_tflite
            return call(*args, **kwargs)

        def run_browser(runner, bench, cell, *args, **kwargs):
            return self._measured(functools.partial(real_browser_cell, runner), bench, cell,
                                  *args, **kwargs)

        def run_native(runner, bench, cell, *args, **kwargs):
            return self._measured(functools.partial(real_native_cell, runner), bench, cell,
                                  *args, **kwargs)

        class Session(browser.BrowserSession):
            def __enter__(self):
                injector.sessions.append(self)
                return super().__enter__()

        with contextlib.ExitStack() as stack:
            for target, name, value in (
                    (browser, "open_page", open_page), (browser, "run_harness", run_harness),
                    (browser, "BrowserSession", Session), (runner, "run_tflite_cell",
                                                           run_tflite_cell),
                    (BrowserRunner, "run", run_browser), (NativeRunner, "run", run_native),
                    (browser, "LAUNCH_ARGS", browser.LAUNCH_ARGS + tuple(launch_args))):
                stack.enter_context(mock.patch.object(target, name, value))
            yield self


def measure(garden: Garden, run_dir: Path, protocol: Protocol, cells: list[Cell],
            build_dir: Path | None = None) -> list[dict]:
    """Run `run_matrix` over `cells` into run_dir; every line of its results file."""
    from rich.console import Console

    from edge.convert.cache import Store
    from edge.convert.pipeline import artifacts_for
    from edge.farm.emulation.devices import load_catalog
    from edge.farm.scheduling.matrix import Matrix
    from edge.farm.scheduling.run import run_matrix
    from edge.results.store import ResultStore

    build_dir = build_dir or garden.build_dir
    store = Store(build_dir)
    artifacts = artifacts_for(garden.targets, store, {(c.model, c.variant) for c in cells})
    matrix = Matrix(path=run_dir / "matrix.toml", models=[], variants=[], build_dir=build_dir,
                    fidelity_images=1)
    results = ResultStore(run_dir)
    run_matrix(matrix, cells, artifacts, store, results, run_dir.name, protocol, load_catalog(),
               Console(quiet=True), noise_repeats=0)  # faults, not figures, are the subject
    return raw_records(results.path)


def _after(delay_s: float, what: Callable[[], list[int]], killed: list[int]) -> Action:
    """An action that waits `delay_s` into the harness run (unless the cell ends first)."""
    def action(stop: threading.Event) -> None:
        if not stop.wait(delay_s):
            killed.extend(what())
    return action


# -- browser scenarios ----------------------------------------------------------------------------

def scenario_renderer_crash(garden: Garden, workdir: Path) -> Outcome:
    """The page's renderer is SIGKILLed 0.8 s into the harness run of the first cell."""
    hit, after = garden.cell("tfjs-fp32", "tfjs-wasm"), garden.cell("tfjs-fp16", "tfjs-wasm")
    killed: list[int] = []
    injector = Injector()
    injector.during[hit] = _after(0.8, lambda: kill(page_renderers()), killed)
    with injector.installed():
        records = measure(garden, workdir / "renderer-crash", BROWSER, [hit, after])
    return Outcome("renderer killed mid-cell", [cid(hit), cid(after)], records, [cid(hit)],
                   int(bool(killed)), {"killed": killed, "seconds": injector.seconds,
                                       "errors": injector.errors})


HANG_JS = """() => {
  const run = window.edgeHarness.run;
  window.edgeHarness.run = (cfg) => {
    setTimeout(() => { console.log('edge-fault: endless loop'); for (;;) {} }, 50);
    return run(cfg);
  };
}"""


def scenario_page_hang(garden: Garden, workdir: Path) -> Outcome:
    """An endless loop starts in the page 50 ms into the first cell's run."""
    hit, after = garden.cell("tfjs-fp32", "tfjs-wasm"), garden.cell("tfjs-fp16", "tfjs-wasm")
    hung: list[psutil.Process] = []
    busy_after: list[int] = []
    injector = Injector()
    injector.page_js[hit] = HANG_JS

    def note_renderers(stop: threading.Event) -> None:
        stop.wait(2.0)
        hung.extend(page_renderers())

    injector.during[hit] = note_renderers
    # Before the next cell: the hung renderer must not still burn a core of the host.
    injector.before[after] = lambda: busy_after.extend(spinning(hung))
    with injector.installed():
        records = measure(garden, workdir / "page-hang", HANGING, [hit, after])
    return Outcome("endless loop in the page", [cid(hit), cid(after)], records, [cid(hit)],
                   sum(m.endswith("endless loop") for m in injector.marks),
                   {"seconds": injector.seconds, "spinning_after": busy_after,
                    "errors": injector.errors})


LOSE_CONTEXT_JS = """() => {
  const run = window.edgeHarness.run;
  window.edgeHarness.run = (cfg) => {
    const started = run(cfg);
    const t0 = performance.now();
    const poll = () => {
      let gl = null;
      try {
        if (tf.engine().backendName === 'webgl') gl = tf.backend().gpgpu.gl;
      } catch (err) { gl = null; }
      if (gl) {
        setTimeout(() => {
          const ext = gl.getExtension('WEBGL_lose_context');
          console.log('edge-fault: webgl context lost: ' + (ext ? 'yes' : 'no extension'));
          if (ext) ext.loseContext();
        }, 500);
      } else if (performance.now() - t0 < 20000) {
        setTimeout(poll, 10);
      }
    };
    poll();
    return started;
  };
}"""


def scenario_webgl_context_lost(garden: Garden, workdir: Path) -> Outcome:
    """WEBGL_lose_context.loseContext() on TF.js's own context 0.5 s after the backend is up."""
    hit, after = garden.cell("tfjs-fp32", "tfjs-webgl"), garden.cell("tfjs-fp16", "tfjs-webgl")
    injector = Injector()
    injector.page_js[hit] = LOSE_CONTEXT_JS
    with injector.installed():
        records = measure(garden, workdir / "webgl-lost", LOSS, [hit, after])
    return Outcome("WebGL context lost", [cid(hit), cid(after)], records, [cid(hit)],
                   sum(m.endswith("lost: yes") for m in injector.marks),
                   {"seconds": injector.seconds, "marks": injector.marks,
                    "errors": injector.errors})


OOM_JS = """() => {
  // The model's weight shards, once fetched, are decoded into ever more JS arrays: a model far
  // too large for the page's heap. Synchronous, so it cannot be starved by the harness's loop.
  const realFetch = window.fetch;
  window.fetch = async (input, init) => {
    const response = await realFetch(input, init);
    const url = String(input && input.url ? input.url : input);
    if (url.includes('/artifacts/') && url.endsWith('.bin')) {
      console.log('edge-fault: decoding weights past the heap limit');
      const copies = [];
      window.__edgeWeights = copies;
      for (;;) copies.push(new Array(1 << 16).fill(copies.length + 0.5));
    }
    return response;
  };
}"""


def scenario_out_of_memory(garden: Garden, workdir: Path) -> Outcome:
    """Renderers limited to SMALL_HEAP_MB of JS heap; loading the first cell's model expands
    its weights into live JS arrays until V8 cannot grow its heap."""
    hit, after = garden.cell("tfjs-fp32", "tfjs-wasm"), garden.cell("tfjs-fp16", "tfjs-wasm")
    flags: list[str] = []
    injector = Injector()
    injector.page_js[hit] = OOM_JS

    def note_flags(stop: threading.Event) -> None:
        for proc in page_renderers():
            with contextlib.suppress(psutil.Error):
                flags.extend(a for a in proc.cmdline() if "max-old-space-size" in a)

    injector.during[hit] = note_flags
    launch = (f"--js-flags=--max-old-space-size={SMALL_HEAP_MB}",)
    with injector.installed(launch_args=launch):
        records = measure(garden, workdir / "out-of-memory", BROWSER, [hit, after])
    return Outcome("page out of memory", [cid(hit), cid(after)], records, [cid(hit)],
                   sum(m.endswith("heap limit") for m in injector.marks),
                   {"seconds": injector.seconds, "renderer_flags": sorted(set(flags)),
                    "errors": injector.errors})


def scenario_browser_killed(garden: Garden, workdir: Path) -> Outcome:
    """Chromium's main process is SIGKILLed during cell 2 and again between cells 3 and 4."""
    cells = [garden.cell("tfjs-fp32", "tfjs-wasm"), garden.cell("tfjs-fp16", "tfjs-wasm"),
             garden.cell("tfjs-uint8", "tfjs-wasm"), garden.cell("tfjs-fp32", "tfjs-webgl"),
             garden.cell("tfjs-fp16", "tfjs-webgl")]
    during_kill: list[int] = []
    between_kill: list[int] = []
    injector = Injector()
    injector.during[cells[1]] = _after(0.8, lambda: kill(browser_mains()), during_kill)

    def kill_between() -> None:
        between_kill.extend(kill(browser_mains()))
        time.sleep(0.5)  # the driver sees the pipe close; the client has not been told yet

    injector.before[cells[3]] = kill_between
    with injector.installed():
        records = measure(garden, workdir / "browser-killed", BROWSER, cells)
    launches = sum(s.launches for s in injector.sessions)
    return Outcome("browser killed (during and between cells)", [cid(c) for c in cells],
                   records, [cid(cells[1]), cid(cells[3])],
                   int(bool(during_kill)) + int(bool(between_kill)),
                   {"during": during_kill, "between": between_kill, "launches": launches,
                    "seconds": injector.seconds, "errors": injector.errors})


# -- native scenarios -----------------------------------------------------------------------------

def scenario_worker_faults(garden: Garden, workdir: Path) -> Outcome:
    """TFLite workers that segfault, hang and exit after loading the model, between good cells."""
    cells = [garden.cell("tflite-fp32", "litert", t) for t in (1, 2, 3, 4)] + [
        garden.cell("tflite-int8-full", "litert", 2)]
    injector = Injector()
    injector.native_fault.update({cells[0]: "segfault", cells[2]: "hang", cells[3]: "exit"})
    with injector.installed():
        records = measure(garden, workdir / "worker-faults", NATIVE, cells)
    faulted = [cid(c) for c in injector.native_fault]
    injected = sum(1 for r in records if r["cell_id"] in faulted and r["status"] != "ok")
    return Outcome("TFLite worker segfault / hang / exit", [cid(c) for c in cells], records,
                   faulted, injected, {"seconds": injector.seconds})


def corrupt(build_dir: Path, artifacts: dict, garden: Garden) -> dict[str, str]:
    """Damage three artifacts in `build_dir` (a copy); what was done to which variant."""
    def files(variant):
        artifact = artifacts[(garden.slug, variant)]
        return artifact, [artifact.dir / f["path"] for f in artifact.manifest["files"]]

    done = {}
    _, paths = files("tfjs-fp32")  # a weight shard loses its last 100 bytes
    shard = next(p for p in paths if p.suffix == ".bin")
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    done["tfjs-fp32"] = f"truncated {shard.name}"
    _, paths = files("tflite-fp32")  # one flipped byte, same size
    model = paths[0]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    done["tflite-fp32"] = f"flipped a byte of {model.name}"
    _, paths = files("tfjs-uint8")  # a file removed
    paths[-1].unlink()
    done["tfjs-uint8"] = f"deleted {paths[-1].name}"
    return done


def scenario_corrupt_artifacts(garden: Garden, workdir: Path) -> Outcome:
    """A copy of the build with a truncated shard, a flipped byte and a deleted file."""
    from edge.convert.cache import Store
    from edge.convert.pipeline import artifacts_for

    build = workdir / "corrupt-build"
    shutil.copytree(garden.build_dir, build)
    cells = [garden.cell("tflite-fp32", "litert", 2), garden.cell("tflite-int8-full", "litert", 2),
             garden.cell("tfjs-fp32", "tfjs-wasm"), garden.cell("tfjs-uint8", "tfjs-wasm"),
             garden.cell("tfjs-fp16", "tfjs-wasm")]
    artifacts = artifacts_for(garden.targets, Store(build), {(c.model, c.variant) for c in cells})
    damage = corrupt(build, artifacts, garden)
    injector = Injector()
    with injector.installed():
        records = measure(garden, workdir / "corrupt", BROWSER, cells, build_dir=build)
    faulted = [cid(c) for c in cells if c.variant in damage]
    return Outcome("corrupted artifacts", [cid(c) for c in cells], records, faulted,
                   len(damage), {"damage": damage, "measured": sorted(injector.seconds),
                                 "seconds": injector.seconds})


# -- the run itself is signalled ------------------------------------------------------------------

SIGNAL_MATRIX = """
[build]
models = ["{model}"]
variants = ["tflite-fp32", "tflite-int8-full"]
build_dir = "{build_dir}"

[bench]
devices = ["host"]
protocol = {{warmup = 1, min_runs = 5, min_seconds = 0.5, max_runs = 200, timeout_s = 60}}
reports_dir = "{reports}"

[[bench.cells]]
runtimes = ["litert"]
threads = [1, 2, 3, 4]
"""
SIGNAL_CELLS = 2 * 4


def _bench_command(matrix: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "bench", "--matrix", str(matrix), "--tiny", *extra]


def _workers(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for proc in children:
        with contextlib.suppress(psutil.Error):
            if any(a.endswith("tflite_worker.py") for a in proc.cmdline()):
                out.append(proc)
    return out


def _alive(procs: list[psutil.Process]) -> list[int]:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
    return out


def scenario_signal(garden: Garden, workdir: Path, sig: signal.Signals) -> Outcome:
    """`edge bench` gets `sig` while a TFLite worker measures (after >= 3 records), then
    `--resume RUN_ID` finishes the run."""
    root = workdir / f"signal-{sig.name}"
    reports = root / "reports"
    matrix = root / "matrix.toml"
    root.mkdir(parents=True)
    matrix.write_text(SIGNAL_MATRIX.format(model=MODEL, build_dir=garden.build_dir,
                                           reports=reports))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(_bench_command(matrix), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    workers: list[psutil.Process] = []
    results = None
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            runs = list(reports.glob("*/results.jsonl"))
            if runs and len(runs[0].read_text().splitlines()) >= 3:
                workers = _workers(proc.pid)
                if workers:
                    results = runs[0]
                    break
            time.sleep(0.02)
        if results is not None:
            proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left_running = _alive(workers)
    kill(workers)
    if results is None:
        return Outcome(f"{sig.name} to the run", [], [], [], 0,
                       {"error": "no record and no worker before the run ended", "out": out})
    before = results.read_text().splitlines()
    run_id = results.parent.name
    done = subprocess.run(_bench_command(matrix, "--resume", run_id), env=env,
                          capture_output=True, text=True, timeout=400)
    after = results.read_text().splitlines()
    records = raw_records(results)
    expected = [cid(garden.cell(v, "litert", t)) for v in ("tflite-fp32", "tflite-int8-full")
                for t in (1, 2, 3, 4)]
    return Outcome(f"{sig.name} to the run, then --resume", expected, records, [], 1, {
        "returncode": proc.returncode, "output": out, "workers_left_running": left_running,
        "records_before": len(before), "earlier_lines_kept": after[:len(before)] == before,
        "resume_returncode": done.returncode, "resume_output": done.stdout + done.stderr})


def scenario_sigint(garden: Garden, workdir: Path) -> Outcome:
    return scenario_signal(garden, workdir, signal.SIGINT)


def scenario_sigterm(garden: Garden, workdir: Path) -> Outcome:
    return scenario_signal(garden, workdir, signal.SIGTERM)


def scenario_signal_at_worker_start(garden: Garden, workdir: Path) -> Outcome:
    """SIGINT to this process the moment the second cell's TFLite worker has been forked, before
    `Popen` returns it to the runner (the narrowest window of a real Ctrl-C or SIGTERM);
    then the run is resumed."""
    import edge.farm.runners.tflite_runner as runner

    cells = [garden.cell("tflite-fp32", "litert", t) for t in (1, 2, 3)]
    run_dir = workdir / "signal-at-worker-start"
    real_popen = subprocess.Popen
    started: list[psutil.Process] = []
    injector = Injector()

    def popen(args, *rest, **kwargs):
        proc = real_popen(args, *rest, **kwargs)
        if injector.current == cells[1] and not started and str(runner.WORKER) in args:
            started.append(psutil.Process(proc.pid))
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the KeyboardInterrupt is raised here, inside Popen's caller
        return proc

    interrupted = False
    with injector.installed(), mock.patch.object(runner.subprocess, "Popen", popen):
        try:
            measure(garden, run_dir, NATIVE, cells)
        except KeyboardInterrupt:
            interrupted = True
    left_running = _alive(started)
    kill(started)
    before = raw_records(run_dir / "results.jsonl")
    records = measure(garden, run_dir, NATIVE, cells)  # the resume
    return Outcome("SIGINT as a TFLite worker starts, then resume", [cid(c) for c in cells],
                   records, [cid(cells[1])], int(interrupted and bool(started)),
                   {"interrupted": interrupted, "workers_left_running": left_running,
                    "records_before": len(before)})


#: Every scenario, in the order benchmarks/faults.py runs them: (name, needs a browser, run).
SCENARIOS: list[tuple[str, bool, Callable[[Garden, Path], Outcome]]] = [
    ("renderer crash", True, scenario_renderer_crash),
    ("page hang", True, scenario_page_hang),
    ("webgl context lost", True, scenario_webgl_context_lost),
    ("out of memory", True, scenario_out_of_memory),
    ("browser killed", True, scenario_browser_killed),
    ("SIGINT", False, scenario_sigint),
    ("SIGTERM", False, scenario_sigterm),
    ("SIGINT at worker start", False, scenario_signal_at_worker_start),
    ("tflite worker faults", False, scenario_worker_faults),
    ("corrupt artifacts", True, scenario_corrupt_artifacts),
]


# -- the tests ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def garden(tiny_garden) -> Garden:
    return Garden(tiny_garden["build_dir"], tiny_garden["targets"])


def assert_whole(outcome: Outcome) -> None:
    """Every cell recorded exactly once, with a known status; no injection thread failed."""
    from edge.results.store import STATUSES

    assert outcome.lost == [], f"cells without a record: {outcome.lost}"
    assert outcome.duplicates == 0, [r["cell_id"] for r in outcome.records]
    assert all(r["status"] in STATUSES for r in outcome.records)
    assert not outcome.notes.get("errors"), outcome.notes["errors"]


def assert_ok(rec: dict) -> None:
    assert rec["status"] == "ok", describe(rec)
    assert rec["error"] is None
    assert rec["metrics"]["latency"]["n"] >= 3


def assert_crash_recorded(rec: dict) -> None:
    assert rec["status"] == "failed", describe(rec)
    assert rec["error"].startswith("browser: "), describe(rec)
    assert "crash" in rec["error"].lower(), describe(rec)  # "Target crashed" / "Page crashed"
    assert "latency" not in rec["metrics"]


@pytest.mark.browser
def test_renderer_crash_is_recorded_and_next_cell_runs(garden, tmp_path):
    out = scenario_renderer_crash(garden, tmp_path)
    assert_whole(out)
    assert out.injected == 1 and out.notes["killed"], "no renderer was killed"
    hit = out.rec(out.faulted[0])
    assert_crash_recorded(hit)
    # recorded when the page died, not at the cell's deadline
    assert out.notes["seconds"][hit["cell_id"]] < BROWSER.timeout_s / 2
    assert_ok(out.records[-1])
    assert out.records[-1]["cell_id"] != hit["cell_id"]


@pytest.mark.browser
def test_page_hang_times_out_at_its_deadline_and_next_cell_runs(garden, tmp_path):
    out = scenario_page_hang(garden, tmp_path)
    assert_whole(out)
    hit = out.rec(out.faulted[0])
    assert hit["status"] == "timeout", describe(hit)
    assert hit["error"] == f"no result within {HANG_TIMEOUT_S} s"
    assert "latency" not in hit["metrics"]
    # recorded at its deadline (Playwright alone would wait on the stuck page until its
    # renderer died), and closing the hung page did not hang the run
    seconds = out.notes["seconds"][hit["cell_id"]]
    assert HANG_TIMEOUT_S <= seconds < HANG_TIMEOUT_S + 6, seconds
    # the endless loop is not left burning a core under the next cell's measurement
    assert out.notes["spinning_after"] == []
    assert_ok(out.records[-1])


@pytest.mark.browser
def test_webgl_context_loss_is_recorded_and_next_cell_runs(garden, tmp_path):
    out = scenario_webgl_context_lost(garden, tmp_path)
    assert_whole(out)
    assert out.injected == 1, out.notes["marks"]
    hit = out.rec(out.faulted[0])
    assert hit["status"] in ("failed", "timeout"), describe(hit)
    assert hit["error"], describe(hit)
    assert "latency" not in hit["metrics"]
    after = out.records[-1]
    assert_ok(after)
    assert after["metrics"]["backend"]["name"] == "webgl"


@pytest.mark.browser
def test_out_of_memory_page_is_recorded_and_next_cell_runs(garden, tmp_path):
    out = scenario_out_of_memory(garden, tmp_path)
    assert_whole(out)
    # the renderer really ran under the small heap limit, and the allocation started
    assert out.notes["renderer_flags"] == [f"--js-flags=--max-old-space-size={SMALL_HEAP_MB}"]
    assert out.injected == 1
    hit = out.rec(out.faulted[0])
    assert_crash_recorded(hit)
    assert_ok(out.records[-1])  # same small-heap browser, fresh context


@pytest.mark.browser
def test_browser_death_relaunches_and_following_cells_run(garden, tmp_path):
    out = scenario_browser_killed(garden, tmp_path)
    assert_whole(out)
    assert out.notes["during"] and out.notes["between"], out.notes
    assert out.injected == 2
    during, between = out.faulted
    interrupted = out.rec(during)
    assert interrupted["status"] == "failed", describe(interrupted)
    assert interrupted["error"].startswith("browser: ")
    assert "latency" not in interrupted["metrics"]
    # killed before it started, the next cell runs in a relaunched browser
    assert_ok(out.rec(between))
    for rec in out.records:
        if rec["cell_id"] != during:
            assert_ok(rec)
    assert out.notes["launches"] == 3  # the first launch and one after each kill


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signalled_run_resumes_without_loss_or_duplicates(garden, tmp_path, sig):
    out = scenario_signal(garden, tmp_path, sig)
    notes = out.notes
    assert "error" not in notes, notes
    assert notes["returncode"] != 0, notes["output"]
    assert "interrupted" in notes["output"], notes["output"]
    assert 3 <= notes["records_before"] < SIGNAL_CELLS, "not interrupted mid-run"
    # the measuring worker went down with the run instead of running on as an orphan
    assert notes["workers_left_running"] == []
    assert notes["resume_returncode"] == 0, notes["resume_output"]
    assert notes["earlier_lines_kept"]
    assert_whole(out)
    assert len(out.records) == SIGNAL_CELLS
    assert {r["status"] for r in out.records} == {"ok"}


def test_signal_as_a_worker_starts_leaves_no_orphan(garden, tmp_path):
    out = scenario_signal_at_worker_start(garden, tmp_path)
    assert out.notes["interrupted"] and out.injected == 1
    # the worker forked before the interrupt was killed, not left measuring on its own
    assert out.notes["workers_left_running"] == []
    assert out.notes["records_before"] == 1  # the first cell; the interrupted one is not
    assert_whole(out)
    assert [r["status"] for r in out.records] == ["ok"] * 3


def test_tflite_worker_faults_are_recorded_and_next_cells_run(garden, tmp_path):
    out = scenario_worker_faults(garden, tmp_path)
    assert_whole(out)
    segfault, hang, exit_ = (out.rec(c) for c in out.faulted)
    assert segfault["status"] == "failed", describe(segfault)
    assert segfault["error"] == "worker died: signal 11 (SIGSEGV)"
    assert hang["status"] == "timeout", describe(hang)
    assert hang["error"] == f"worker timed out after {HANG_TIMEOUT_S} s"
    assert out.notes["seconds"][hang["cell_id"]] < HANG_TIMEOUT_S + 10
    assert exit_["status"] == "failed", describe(exit_)
    assert exit_["error"].startswith("worker exited with code 3")
    for rec in (segfault, hang, exit_):
        assert "latency" not in rec["metrics"]
    good = [r for r in out.records if r["cell_id"] not in out.faulted]
    assert len(good) == 2
    for rec in good:
        assert_ok(rec)


@pytest.mark.browser
def test_corrupt_artifacts_are_failed_without_measuring(garden, tmp_path):
    out = scenario_corrupt_artifacts(garden, tmp_path)
    assert_whole(out)
    assert len(out.faulted) == 3
    for key in out.faulted:
        rec = out.rec(key)
        assert rec["status"] == "failed", describe(rec)
        assert rec["error"].startswith("artifact corrupt: "), describe(rec)
        assert rec["metrics"] == {} and "latency" not in rec["metrics"]
        assert rec["artifact_sha256"]
        assert key not in out.notes["measured"], f"{key} was measured"
    assert "missing file" in out.rec(out.faulted[2])["error"]  # tfjs-uint8: deleted
    for rec in out.records:
        if rec["cell_id"] not in out.faulted:
            assert_ok(rec)
    # the build the other tests use was copied, not damaged
    from edge.convert.cache import Store
    from edge.convert.pipeline import artifacts_for
    from edge.farm.cells import verify_artifact

    for artifact in artifacts_for(garden.targets, Store(garden.build_dir),
                                  {(garden.slug, v) for v in VARIANTS}).values():
        assert verify_artifact(artifact) is None
