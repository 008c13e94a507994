"""Measure .tflite (and .onnx) artifacts on the host, one fresh worker subprocess per cell.

The parent never loads a model: each cell runs `edge/farm/runners/tflite_worker.py` (a
self-contained script) under the chosen Python, so a segfault, a hang or a runaway allocation
costs that cell only. LiteRT and ONNX Runtime run under this process's Python; the older
tflite-runtime (built against NumPy 1.x) runs under the Python of its own environment, which does
not have the `edge` package.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.stopping import DEFAULTS

WORKER = Path(__file__).with_name("tflite_worker.py")
THREAD_SWEEP = (1, 2, 4)
DEFAULT_PROTOCOL = dict(DEFAULTS)  # every protocol field, edge.stopping's defaults
TFLITE_RUNTIME_ENV_VAR = "EDGE_TFLITE_RUNTIME_PYTHON"
TFLITE_RUNTIME_HINT = ("tflite-runtime environment not found: run `nox -s device_matrix` or set "
                       f"{TFLITE_RUNTIME_ENV_VAR}")
STDERR_TAIL_CHARS = 4000
#: What LiteRT and tflite-runtime print on stderr when they apply the XNNPACK delegate.
XNNPACK_LOG_LINE = "Created TensorFlow Lite XNNPACK delegate"


@dataclass
class TFLiteRun:
    status: str  # ok | failed | timeout | unsupported
    error: str | None
    metrics: dict = field(default_factory=dict)  # the worker's record, less its outputs
    outputs: list[np.ndarray] = field(default_factory=list)  # float32, one per image
    stderr_tail: str = ""
    seconds: float = 0.0  # wall time of the whole cell, worker start-up included

    @property
    def p50_ms(self) -> float | None:
        samples = self.metrics.get("samples_ms")
        return float(np.median(samples)) if samples else None


def env_roots() -> list[Path]:
    """Where a `.nox/tflite-runtime` environment is looked for: the working directory, then the
    source checkout the package runs from (an editable install), if it is one."""
    roots = [Path.cwd()]
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file() and checkout not in roots:
        roots.append(checkout)
    return roots


def tflite_runtime_python() -> str | None:
    """Python of the tflite-runtime environment: $EDGE_TFLITE_RUNTIME_PYTHON (None when that
    file does not exist), else the first <root>/.nox/tflite-runtime/bin/python that exists
    (`env_roots`), else None."""
    configured = os.environ.get(TFLITE_RUNTIME_ENV_VAR)
    if configured:
        return configured if Path(configured).is_file() else None
    for root in env_roots():
        path = root / ".nox" / "tflite-runtime" / "bin" / "python"
        if path.is_file():
            return str(path)
    return None


#: Native runtime -> the Python its worker runs under (None: its environment is missing). The
#: worker's own table (`tflite_worker.RUNTIMES`) names each one's interpreter module.
PYTHONS = {"litert": lambda: sys.executable, "litert-compiled": lambda: sys.executable,
           "tflite-runtime": tflite_runtime_python, "onnxruntime": lambda: sys.executable}
RUNTIMES = tuple(PYTHONS)


def _tail(text: str) -> str:
    return text[-STDERR_TAIL_CHARS:]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def _decode(text: bytes) -> str:
    return text.decode("utf-8", errors="replace") if text else ""


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _run_worker(python: str, job: dict, timeout_s: float) -> tuple[str, bytes, bytes, int | None]:
    """("done" | "timeout", stdout, stderr, return code) of one worker run."""
    proc = subprocess.Popen([python, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(json.dumps(job).encode(), timeout=timeout_s)
        return "done", out, err, proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return "timeout", out, err, proc.returncode
    finally:
        if proc.poll() is None:  # interrupted (KeyboardInterrupt ...): leave nothing behind
            _kill_group(proc)
            proc.wait()


def _decode_outputs(records: list[dict]) -> list[np.ndarray]:
    return [np.frombuffer(base64.b64decode(r["b64"]), np.float32).reshape(r["shape"])
            for r in records]


def run_tflite_cell(model_path, *, runtime: str = "litert", threads: int = 2,
                    protocol: dict | None = None, python: str | None = None,
                    images: np.ndarray | None = None, mean=(127.5,) * 3, std=(127.5,) * 3,
                    return_outputs: int = 0, timeout_s: float = 120.0,
                    cgroup_procs: str | os.PathLike | None = None,
                    _fault: str | None = None) -> TFLiteRun:
    """Measure one .tflite model in a fresh worker process; never raises for what the model or
    the runtime does (a crash, a hang, a rejected op): those come back as the run's status.

    protocol: {"warmup", "min_runs", "min_seconds", "max_runs"}; missing keys take
    DEFAULT_PROTOCOL's. images: uint8 (N, H, W, 3) evaluation images, preprocessed in the worker
    as (x - mean) / std (then quantized for integer inputs) and cycled through; without them one
    fixed random input. return_outputs: how many images' outputs (float32) come back.
    cgroup_procs: a cgroup's ``cgroup.procs`` file: the worker moves itself into that group
    (CPU bandwidth control) before loading the model.
    _fault ("segfault" | "hang" | "exit"), for tests: the worker fails that way after loading.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; expected one of {RUNTIMES}")
    started = time.perf_counter()
    if python is None:
        python = PYTHONS[runtime]()
    if python is None:
        return TFLiteRun("unsupported", TFLITE_RUNTIME_HINT,
                         {"runtime": runtime, "threads": threads},
                         seconds=time.perf_counter() - started)
    job = {"runtime": runtime, "model_path": str(Path(model_path).resolve()),
           "threads": int(threads), "protocol": {**DEFAULT_PROTOCOL, **(protocol or {})},
           "mean": [float(v) for v in mean], "std": [float(v) for v in std],
           "return_outputs": int(return_outputs)}
    if cgroup_procs:
        job["cgroup_procs"] = str(cgroup_procs)
    if _fault:
        job["_fault"] = _fault

    with tempfile.TemporaryDirectory(prefix="edge-tflite-") as tmp:
        if images is not None:
            images = np.asarray(images)
            if images.ndim != 4:
                raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
            job["images_path"] = str(Path(tmp) / "images.npy")
            np.save(job["images_path"], images)
        try:
            outcome, out, err, code = _run_worker(python, job, timeout_s)
        except OSError as exc:  # e.g. a python path that is not there or not executable
            return TFLiteRun("failed", f"cannot start the worker with {python}: {exc}",
                             {"runtime": runtime, "threads": int(threads), "python": python},
                             seconds=time.perf_counter() - started)

    stderr_tail = _tail(_decode(err))
    seconds = time.perf_counter() - started
    base = {"runtime": runtime, "threads": int(threads), "python": python,
            "xnnpack_logged": XNNPACK_LOG_LINE in _decode(err)}
    if outcome == "timeout":
        return TFLiteRun("timeout", f"worker timed out after {timeout_s:g} s", base, [],
                         stderr_tail, seconds)
    try:
        record = json.loads(_decode(out).strip().splitlines()[-1])
        if not isinstance(record, dict) or "status" not in record:
            raise ValueError("not a worker record")
    except (IndexError, ValueError):
        record = None
    if record is None:
        if code is not None and code < 0:
            error = f"worker died: signal {-code} ({_signal_name(-code)})"
        else:
            error = f"worker exited with code {code} without a result"
            last = stderr_tail.strip().splitlines()[-1:]
            if last:  # e.g. the traceback of an import that failed before the worker's guard
                error += f"; stderr: {last[0]}"
        return TFLiteRun("failed", error, base, [], stderr_tail, seconds)

    outputs = _decode_outputs(record.pop("outputs", None) or [])
    metrics = {**base, **record}
    if code:
        metrics["worker_returncode"] = code
    return TFLiteRun(record["status"], record.get("error"), metrics, outputs, stderr_tail,
                     seconds)


def bare_loop_p50(model_path, threads: int, runs: int) -> float:
    """Median ms of a bare LiteRT loop in this process (set_tensor, invoke, get_tensor, timed
    with perf_counter, after 3 untimed runs): the floor against which the worker's figures
    and their overhead are judged."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path), num_threads=threads)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = np.zeros(tuple(inp["shape"]), dtype=inp["dtype"])
    for _ in range(3):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        interp.get_tensor(out["index"])
    samples = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        interp.get_tensor(out["index"])
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples))


class TimingWorker:
    """A worker that keeps one model loaded and times N invokes on request (the emulation's
    calibration workload): ``with TimingWorker(path, threads=2, cgroup_procs=...) as w:
    w.time(10)``. The caller changes the group's quota between requests."""

    def __init__(self, model_path, *, runtime: str = "litert", threads: int = 2,
                 cgroup_procs=None, python: str | None = None, timeout_s: float = 120.0,
                 protocol: dict | None = None):
        self.timeout_s = timeout_s
        python = python or PYTHONS[runtime]()
        if python is None:
            raise RuntimeError(TFLITE_RUNTIME_HINT)
        job = {"runtime": runtime, "model_path": str(Path(model_path).resolve()),
               "threads": int(threads), "serve_timing": True,
               "protocol": {**DEFAULT_PROTOCOL, **(protocol or {})}}
        if cgroup_procs:
            job["cgroup_procs"] = str(cgroup_procs)
        self.proc = subprocess.Popen([python, str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, start_new_session=True)
        try:
            self._send(json.dumps(job))
            if not self._receive().get("ready"):
                raise RuntimeError("the timing worker did not load the model")
        except BaseException:
            self.kill()
            raise

    def _send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _receive(self) -> dict:
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout_s)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the timing worker gave no answer within {self.timeout_s:g} s "
                               f"(exit code {self.proc.poll()})")
        return json.loads(line)

    def time(self, n: int) -> list[float]:
        self._send(str(int(n)))
        return list(self._receive()["samples_ms"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send("0")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                _kill_group(self.proc)
                self.proc.wait()

    def kill(self) -> None:
        """Stop the worker now (an interrupted run: nothing of it is worth waiting for)."""
        if self.proc.poll() is None:
            _kill_group(self.proc)
        self.proc.wait()

    def __enter__(self) -> TimingWorker:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()
