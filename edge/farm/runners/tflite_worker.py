"""Measure one .tflite (or .onnx) model in this process and print one JSON record on stdout.

Self-contained on purpose: it runs under interpreters that do not have the `edge` package (the
tflite-runtime environment, built against NumPy 1.x), so it imports only the standard library,
NumPy and the interpreter module the job names; the protocol's rules come from edge/stopping.py
(two folders up), loaded by path (standard library only). The runner
(edge.farm.runners.tflite_runner) starts it as `python path/to/tflite_worker.py`, writes the job
as JSON on stdin and reads the record from stdout; everything else, including native runtime
logs, goes to stderr.

Job: {"runtime": "litert" | "litert-compiled" | "tflite-runtime" | "onnxruntime",
      "model_path": str,
      "threads": int,
      "protocol": {field: value} with the fields of stopping.DEFAULTS (missing ones default),
      "images_path": optional .npy of uint8 (N, H, W, 3), "mean": [3], "std": [3],
      "return_outputs": int, "_fault": optional "segfault" | "hang" | "exit" (tests only)}
"""

import os
import sys

# Run as a script, Python puts this file's folder first on sys.path, where a sibling module
# (edge/farm/runners/*.py) could shadow a standard-library one. Only edge/stopping.py is loaded,
# by path.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import base64
import faulthandler
import importlib.util
import json
import resource
import signal
import time
from importlib import metadata

import numpy as np

RUNTIMES = {
    # job "runtime" -> (module holding the API's class, distribution whose version is reported)
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "litert-compiled": ("ai_edge_litert.compiled_model", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "onnxruntime": ("onnxruntime", "onnxruntime"),
}
#: job "runtime" -> the API it is measured through (recorded as the record's "api").
APIS = {"litert": "interpreter", "litert-compiled": "compiled_model",
        "tflite-runtime": "interpreter", "onnxruntime": "inference_session"}


class InterpreterModel:
    """A model behind the Interpreter API (XNNPack on the CPU, as the interpreter chooses)."""

    api = "interpreter"
    accelerator = "cpu"

    def __init__(self, module, path, threads, io=None):
        self.interp = module.Interpreter(model_path=path, num_threads=threads)
        self.interp.allocate_tensors()
        self.inputs = self.interp.get_input_details()
        self.outputs = self.interp.get_output_details()

    def set_input(self, position, value):
        self.interp.set_tensor(self.inputs[position]["index"], value)

    def run(self, x):
        self.set_input(0, x)
        self.interp.invoke()
        return self.interp.get_tensor(self.outputs[0]["index"])

    def facts(self):
        return {"api": self.api, "accelerator": self.accelerator}


def io_details(path):
    """Input and output details with their quantization, by tensor name (LiteRT's Interpreter
    reads them; the CompiledModel API does not report quantization)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path)
    return ({d["name"]: d for d in interp.get_input_details()},
            {d["name"]: d for d in interp.get_output_details()})


class CompiledModelRunner:
    """A model behind LiteRT's CompiledModel API on its CPU accelerator: host-memory tensor
    buffers made once, written and read around each run (signature 0). `io` is io_details()."""

    api = "compiled_model"
    accelerator = "cpu"

    def __init__(self, module, path, threads, io):
        from ai_edge_litert.cpu_options import CpuOptions
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import Options

        options = Options(HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=threads))
        self.model = module.CompiledModel.from_file(path, options=options)
        key = list(self.model.get_signature_list())[0]
        ins, outs = io
        self.inputs = [ins[d["name"]] for d in self.model.get_input_tensor_details(key).values()]
        self.outputs = [outs[d["name"]] for d in
                        self.model.get_output_tensor_details(key).values()]
        self.in_buffers = self.model.create_input_buffers(0)
        self.out_buffers = self.model.create_output_buffers(0)
        self.size = int(np.prod(self.outputs[0]["shape"]))

    def set_input(self, position, value):
        self.in_buffers[position].write(np.ascontiguousarray(value))

    def run(self, x):
        self.set_input(0, x)
        self.model.run_by_index(0, self.in_buffers, self.out_buffers)
        out = self.outputs[0]
        return self.out_buffers[0].read(self.size, out["dtype"]).reshape(out["shape"])

    def facts(self):
        return {"api": self.api, "accelerator": self.accelerator,
                "fully_accelerated": bool(self.model.is_fully_accelerated())}


#: ONNX Runtime's element type names -> NumPy dtypes (those a converted vision model uses).
ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
              "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
              "tensor(int64)": np.int64}


class OrtSessionModel:
    """An .onnx model in an ONNX Runtime InferenceSession on the CPU execution provider, with
    `threads` intra-op threads (sequential execution: one operator at a time)."""

    api = "inference_session"
    accelerator = "cpu"

    def __init__(self, module, path, threads, io=None):
        options = module.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = module.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.threads = threads
        self.session = module.InferenceSession(path, options,
                                               providers=["CPUExecutionProvider"])
        self.inputs = [self._detail(v) for v in self.session.get_inputs()]
        self.outputs = [self._detail(v) for v in self.session.get_outputs()]
        self.first_output = [self.outputs[0]["name"]]
        self.feeds = {}

    @staticmethod
    def _detail(value):
        # Symbolic dimensions (a dynamic batch) are run with 1.
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in value.shape]
        return {"name": value.name, "shape": shape,
                "dtype": ORT_DTYPES.get(value.type, np.float32), "quantization": (0.0, 0)}

    def set_input(self, position, value):
        self.feeds[self.inputs[position]["name"]] = value

    def run(self, x):
        self.set_input(0, x)
        return self.session.run(self.first_output, self.feeds)[0]

    def facts(self):
        return {"api": self.api, "accelerator": self.accelerator,
                "providers": self.session.get_providers(), "intra_op_threads": self.threads}


def open_model(runtime, path, threads):
    """The model behind the runtime's API, loaded and ready to run; the load is timed by the
    caller (the CompiledModel's quantization details are read before, untimed)."""
    module = __import__(RUNTIMES[runtime][0], fromlist=["Interpreter"])
    if APIS[runtime] == "compiled_model":
        io = io_details(path)
        return lambda: CompiledModelRunner(module, path, threads, io)
    if APIS[runtime] == "inference_session":
        return lambda: OrtSessionModel(module, path, threads)
    return lambda: InterpreterModel(module, path, threads)


def load_stopping():
    """edge/stopping.py (edge/farm/runners/../../stopping.py), by path: the `edge` package may
    not be importable here (see above)."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(os.path.dirname(os.path.dirname(here)), "stopping.py")
    spec = importlib.util.spec_from_file_location("edge_stopping", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stopping = load_stopping()


def log(message):
    print(f"[tflite_worker {os.getpid()}] {message}", file=sys.stderr, flush=True)


def rss_bytes():
    """Current resident set size (Linux /proc), None where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def os_threads():
    """This process's thread count as the kernel reports it (Linux /proc), None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def usable_cpus():
    """CPUs this process may run on: more threads than this makes spinning thread pools stall
    (tflite-runtime 2.14 at 4 threads on 2 CPUs: about 100 times slower)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def peak_rss_bytes():
    # ru_maxrss survives execve: a worker forked from a large parent would report the parent's
    # peak. VmHWM (Linux) belongs to this program's own address space.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # KiB on Linux


def ms(ns):
    return ns / 1e6


def describe(detail):
    scale, zero = detail["quantization"]
    return {"name": detail["name"], "shape": [int(s) for s in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name, "scale": float(scale),
            "zero_point": int(zero)}


def quantize(x, detail):
    """Float input -> the tensor's dtype, through its scale/zero point when it is an integer."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    if scale == 0:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def dequantize(y, detail):
    scale, zero = detail["quantization"]
    if np.dtype(detail["dtype"]).kind == "f" or scale == 0:
        return y.astype(np.float32)
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def prepare_inputs(job, detail):
    """Per-invoke input arrays, ready for set_tensor; and where they came from."""
    shape = tuple(int(s) for s in detail["shape"])
    images_path = job.get("images_path")
    if not images_path:
        rng = np.random.default_rng(0)
        return [quantize(rng.uniform(-1.0, 1.0, shape).astype(np.float32), detail)], "random"
    images = np.load(images_path)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"evaluation images must be (N, H, W, C), got {images.shape}")
    if len(shape) != 4 or shape[0] != 1 or tuple(images.shape[1:]) != shape[1:]:
        raise ValueError(f"evaluation images {list(images.shape)} do not fit the model input "
                         f"{list(shape)}")
    mean = np.asarray(job.get("mean", [127.5] * 3), np.float32)
    std = np.asarray(job.get("std", [127.5] * 3), np.float32)
    floats = (images.astype(np.float32) - mean) / std
    return [quantize(floats[i:i + 1], detail) for i in range(len(floats))], "images"


def classify(exc):
    """Every error is "failed" here: whether a failure is a known incompatibility is decided by
    the caller, against the known issues' error signatures."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return "failed", f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def fault(kind):
    """Injected failures, for the runner's tests."""
    if not kind:
        return
    log(f"injected fault: {kind}")
    if kind == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == "hang":
        while True:
            time.sleep(3600)
    elif kind == "exit":
        os._exit(3)
    raise ValueError(f"unknown _fault {kind!r}")


def measure(job, result):
    runtime = job.get("runtime", "litert")
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; expected one of {sorted(RUNTIMES)}")
    _, distribution = RUNTIMES[runtime]
    threads = int(job.get("threads", 2))
    protocol = {**stopping.DEFAULTS, **(job.get("protocol") or {})}
    result.update(runtime=runtime, model_path=job["model_path"], threads=threads,
                  protocol=protocol, python_version=sys.version.split()[0],
                  numpy_version=np.__version__, cpus=usable_cpus())
    try:
        result["runtime_version"] = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        result["runtime_version"] = None
    load = open_model(runtime, job["model_path"], threads)

    result["rss_before_load_bytes"] = rss_bytes()
    threads_before = os_threads()
    start = time.perf_counter_ns()
    model = load()
    result["load_ms"] = ms(time.perf_counter_ns() - start)
    result.update(model.facts())
    result["rss_after_load_bytes"] = rss_bytes()
    log(f"loaded {job['model_path']} with {runtime} {result['runtime_version']} "
        f"in {result['load_ms']:.1f} ms")
    fault(job.get("_fault"))

    inputs_d, outputs_d = model.inputs, model.outputs
    result["input"] = [describe(d) for d in inputs_d]
    result["output"] = [describe(d) for d in outputs_d]
    inp, out = inputs_d[0], outputs_d[0]
    feeds, source = prepare_inputs(job, inp)
    result.update(inputs_source=source, inputs_count=len(feeds))
    # Any further inputs get one fixed random tensor each (the garden's models have one).
    rng = np.random.default_rng(1)
    for position, extra in enumerate(inputs_d[1:], start=1):
        value = quantize(rng.uniform(-1.0, 1.0, tuple(extra["shape"])).astype(np.float32), extra)
        model.set_input(position, value)
    run = model.run

    start = time.perf_counter_ns()
    run(feeds[0])
    result["first_invoke_ms"] = ms(time.perf_counter_ns() - start)
    # What the operating system says, not the request echoed: the threads the interpreter
    # started (its XNNPACK pool starts threads - 1 workers beside the caller).
    threads_after = os_threads()
    result["threads_started"] = (None if threads_before is None or threads_after is None
                                 else threads_after - threads_before)

    # The rules of edge/stopping.py: warm up until steady (or a cap), then time runs until
    # the median is known precisely enough (or a cap). The timed time is the sum of the samples.
    warmup = []
    while True:
        done, steady = stopping.warmup_done(warmup, protocol)
        if done:
            break
        start = time.perf_counter_ns()
        run(feeds[(len(warmup) + 1) % len(feeds)])
        warmup.append(ms(time.perf_counter_ns() - start))
    result["warmup_ms"] = warmup
    result["steady"] = steady

    samples, timed_ns = [], 0
    while True:
        done, reason = stopping.sampling_done(samples, protocol)
        if done:
            break
        x = feeds[len(samples) % len(feeds)]
        start = time.perf_counter_ns()
        run(x)
        took = time.perf_counter_ns() - start
        samples.append(ms(took))
        timed_ns += took
    result["stop_reason"] = reason
    result["samples_ms"] = samples
    result["timed_seconds"] = timed_ns / 1e9

    outputs = []
    for x in feeds[:max(0, int(job.get("return_outputs", 0)))]:
        y = np.ascontiguousarray(dequantize(run(x), out), dtype=np.float32)
        outputs.append({"shape": list(y.shape),
                        "b64": base64.b64encode(y.tobytes()).decode("ascii")})
    result["outputs"] = outputs
    result["peak_rss_bytes"] = peak_rss_bytes()


def join_cgroup(job, result):
    """Move this process into the job's cgroup (its ``cgroup.procs`` file) before any work, so
    every thread the interpreter starts is under the group's CPU bandwidth limit."""
    procs = job.get("cgroup_procs")
    if not procs:
        return
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
    result["cgroup"] = os.path.dirname(procs)


def serve_timing(job, out):
    """Calibration mode: load the model, then answer each stdin line "N" with the times of N
    invokes (ms) as one JSON line, until stdin closes. The caller changes the quota between
    requests."""
    runtime = job.get("runtime", "litert")
    model = open_model(runtime, job["model_path"], int(job["threads"]))()
    inp = model.inputs[0]
    rng = np.random.default_rng(0)
    x = quantize(rng.uniform(-1.0, 1.0, tuple(inp["shape"])).astype(np.float32), inp)
    # First invoke, then warm up until steady: the caller's unthrottled time must be steady.
    protocol = {**stopping.DEFAULTS, **(job.get("protocol") or {})}
    warmup = []
    while True:
        start = time.perf_counter_ns()
        model.run(x)
        warmup.append(ms(time.perf_counter_ns() - start))
        done, steady = stopping.warmup_done(warmup[1:], protocol)
        if done:
            break
    out.write(json.dumps({"ready": True, "warmup_runs": len(warmup) - 1,
                          "steady": steady}) + "\n")
    out.flush()
    for line in sys.stdin:
        n = int(line.strip() or 0)
        if n <= 0:
            break
        samples = []
        for _ in range(n):
            start = time.perf_counter_ns()
            model.run(x)
            samples.append(ms(time.perf_counter_ns() - start))
        out.write(json.dumps({"samples_ms": samples}) + "\n")
        out.flush()


def main():
    # The record goes to the real stdout; fd 1 then points at stderr, so that anything else
    # (print calls, native runtime logs) cannot corrupt it.
    result_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    faulthandler.enable()
    result = {"status": "ok", "error": None, "worker_pid": os.getpid()}
    try:
        job = json.loads(sys.stdin.readline())  # the job is one JSON line
        join_cgroup(job, result)
        if job.get("serve_timing"):
            serve_timing(job, result_out)
            os._exit(0)
        measure(job, result)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a record
        result["status"], result["error"] = classify(exc)
        result["peak_rss_bytes"] = peak_rss_bytes()
        log(f"{result['status']}: {result['error']}")
    result_out.write(json.dumps(result) + "\n")
    result_out.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: a crash there must not cost a finished record


if __name__ == "__main__":
    main()
