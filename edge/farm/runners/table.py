"""Runtime name -> the runner that measures its cells: the one place that says where a
runtime's cells run. Adding a runtime: its format in `edge.variants.RUNTIMES` (the vocabulary)
and its runner here (a new kind of runner: one module in this package with a `Runner`)."""

from __future__ import annotations

from edge.farm.runners.adb import AdbRunner
from edge.farm.runners.base import Runner
from edge.farm.runners.browser import BrowserRunner
from edge.farm.runners.native import NativeRunner

RUNNERS: dict[str, Runner] = {
    "litert": NativeRunner(),
    "litert-compiled": NativeRunner(),
    "tflite-runtime": NativeRunner(),
    "onnxruntime": NativeRunner(),
    "tfjs-wasm": BrowserRunner(),
    "tfjs-webgl": BrowserRunner(gpu=True),
    "tfjs-webgpu": BrowserRunner(gpu=True),
    "tflite-web": BrowserRunner(),
    "litertjs-wasm": BrowserRunner(),
    "litertjs-webgpu": BrowserRunner(gpu=True),
    "benchmark-model": AdbRunner(),
    "ort-wasm": BrowserRunner(),
    "ort-webgpu": BrowserRunner(gpu=True),
}

#: Runtimes whose cells run in a native worker process on this machine.
NATIVE_RUNTIMES = tuple(r for r, runner in RUNNERS.items()
                        if runner.native and runner.kind == "native")
#: Runtimes whose cells run natively on a real phone over adb (a profile's ``adb``).
ADB_RUNTIMES = tuple(r for r, runner in RUNNERS.items() if runner.kind == "adb")
#: Browser runtimes that run on the GPU: never emulated (the host's GPU is not a phone's).
GPU_RUNTIMES = tuple(r for r, runner in RUNNERS.items() if runner.gpu)


def runner_for(runtime: str) -> Runner:
    try:
        return RUNNERS[runtime]
    except KeyError:
        raise ValueError(f"no runner for runtime {runtime!r}; known: "
                         f"{', '.join(RUNNERS)}") from None


def noise_runners() -> list[Runner]:
    """One runner of each kind, in table order: the run measures its noise once per kind."""
    first: dict[str, Runner] = {}
    for runner in RUNNERS.values():
        first.setdefault(runner.kind, runner)
    return list(first.values())
