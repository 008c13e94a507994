"""`edge doctor`: what this machine has for measuring, and how to fix what is missing."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata

from edge.errors import EdgeError

BACKENDS_JS = """async () => {
  const out = {};
  const within = (p, ms) => Promise.race(
    [p, new Promise(resolve => setTimeout(() => resolve(false), ms))]);
  for (const b of ['cpu', 'wasm', 'webgl', 'webgpu']) {
    try { out[b] = (await within(tf.setBackend(b), 15000)) && tf.getBackend() === b; }
    catch (e) { out[b] = false; }
  }
  return out;
}"""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def _tool(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def checks() -> list[tuple[str, bool, str, str]]:
    """(what, ok, found, how to fix) for each part of the measuring stack."""
    from edge.environment import browser_check
    from edge.farm.runners import web_runtime
    from edge.farm.runners.browser import resolve_browser
    from edge.farm.runners.tflite_runner import tflite_runtime_python

    rows = []
    for pkg, fix in (("tensorflow", "pip install -e . (or run any nox session)"),
                     ("tensorflowjs", "pip install -e ."), ("ai-edge-litert", "pip install -e ."),
                     ("playwright", "pip install -e ."),
                     ("tf2onnx", "pip install -e . (ONNX variants)"),
                     ("onnxruntime", "pip install -e . (runtime onnxruntime, ONNX int8)"),
                     ("onnxconverter-common", "pip install -e . (onnx-fp16)")):
        v = _version(pkg)
        rows.append((pkg, v != "missing", v, fix))
    trt = tflite_runtime_python()
    rows.append(("tflite-runtime env", trt is not None, trt or "not found",
                 "nox -s device_matrix creates .nox/tflite-runtime (numpy<2 + tflite-runtime)"))
    rows.append(litert_gpu_row())
    node, npm = _tool(["node", "--version"]), _tool(["npm", "--version"])
    from edge.farm.emulation.methods import choose_emulation

    emulation = choose_emulation()
    emulation.close()
    rows.append(("CPU emulation", emulation.all_threads, emulation.method + (
        f": {emulation.reason}" if emulation.reason else " (every thread of the measured tree)"),
        "" if emulation.all_threads else "run as root or in a delegated cgroup for bandwidth "
        "control; until then phones are emulated single-threaded (DevTools) and native cells on "
        "phones are unsupported"))
    rows.append(("node", node is not None, node or "not found", "apt-get install nodejs npm"))
    rows.append(("npm", npm is not None, npm or "not found", "apt-get install npm"))
    tfjs = web_runtime.installed_version()
    rows.append(("TF.js runtime", tfjs is not None,
                 f"{tfjs} ({web_runtime.web_runtime_dir()})" if tfjs
                 else f"not installed in {web_runtime.web_runtime_dir()}",
                 web_runtime.INSTALL_COMMAND))
    try:
        info = resolve_browser()
        rows.append(("browser", True, f"{info.path} ({info.source})", ""))
    except EdgeError as exc:
        info = None
        rows.append(("browser", False, "not found", str(exc)))
    rows.append(browser_check(None if info is None else info.path))
    if info is not None and tfjs is not None:
        rows.extend(_browser_checks(info))
    return rows


def _browser_checks(info) -> list[tuple[str, bool, str, str]]:
    from edge.farm.runners.browser import BrowserSession, open_page
    from edge.farm.runners.server import LoopbackServer
    from edge.farm.runners.web_runtime import harness_dir, node_modules

    rows = []
    roots = {"harness": harness_dir(), "node_modules": node_modules()}
    try:
        with LoopbackServer(roots) as server, BrowserSession(info) as session:
            rows.append(("browser version", True, session.version(), ""))
            context, page, _ = open_page(session, server.url)
            try:
                facts = page.evaluate("() => window.edgeHarness.facts()")
                backends = page.evaluate(BACKENDS_JS)
                litert = page.evaluate("() => window.edgeHarness.litertCheck()")
                litert_gpu = page.evaluate(
                    "() => window.edgeHarness.litertCheck('litertjs-webgpu')")
                ort = page.evaluate("() => window.edgeHarness.ortCheck()")
            finally:
                context.close()
        for name, ok in backends.items():
            fix = {"webgpu": "needs --enable-unsafe-webgpu (edge passes it) and an adapter",
                   "webgl": "needs a GPU or SwiftShader"}.get(name, "")
            rows.append((f"backend {name}", bool(ok), "initialises" if ok else "unavailable",
                         fix))
        rows.append(litert_row(litert))
        rows.append(litert_webgpu_row(litert_gpu, facts.get("webgpu") or {}))
        rows.append(ort_row(ort))
        renderer = (facts.get("webgl") or {}).get("renderer") or "?"
        rows.append(("GPU renderer", True, str(renderer),
                     "SwiftShader means software rendering: WebGL/WebGPU figures are not a "
                     "phone GPU's"))
        rows.append(("cross-origin isolated", bool(facts.get("crossOriginIsolated")),
                     str(facts.get("crossOriginIsolated")), "the loopback server's COOP/COEP"))
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        rows.append(("harness page", False, str(exc).splitlines()[0], "see the error"))
    return rows


def litert_row(check: dict) -> tuple[str, bool, str, str]:
    """The doctor's row for LiteRT.js (runtime litertjs-wasm): whether it initialised in the
    harness page, its version, WASM build and thread pool."""
    from edge.farm.runners.web_runtime import INSTALL_COMMAND

    if check.get("error") or not check.get("loaded"):
        return ("LiteRT.js (litertjs-wasm)", False, str(check.get("error") or "did not load"),
                f"reinstall the pinned web runtime: {INSTALL_COMMAND}")
    return ("LiteRT.js (litertjs-wasm)", True,
            f"initialises: @litertjs/core {check.get('version')}, {check.get('build')} WASM "
            f"build, {check.get('threadsUsed')} threads in its pool", "")


def litert_webgpu_row(check: dict, adapter: dict) -> tuple[str, bool, str, str]:
    """The doctor's row for LiteRT.js on WebGPU (runtime litertjs-webgpu): whether the page has
    an adapter for it, which, and whether it is the host's software one."""
    name = "LiteRT.js WebGPU (litertjs-webgpu)"
    if check.get("error"):
        return (name, False, str(check["error"]),
                "needs a WebGPU adapter (a GPU, or Chromium's SwiftShader fallback with "
                "--enable-unsafe-webgpu, which edge passes): without one, no cell")
    from edge.farm.runners.browser import gpu_field

    gpu = gpu_field("litertjs-webgpu", {"webgpu": adapter})  # as its cells' records say it
    return (name, True, f"initialises on {gpu['renderer'] or 'an adapter it does not describe'}"
            + (" (software: the host's rasterizer, never a phone GPU estimate)"
               if gpu["software"] else ""), "")


def ort_row(check: dict) -> tuple[str, bool, str, str]:
    """The doctor's row for ONNX Runtime Web (runtime ort-wasm): whether its module loads in the
    harness page, its version, and whether its threaded WASM can use threads there."""
    from edge.farm.runners.web_runtime import INSTALL_COMMAND

    name = "ONNX Runtime Web (ort-wasm)"
    if check.get("error") or not check.get("loaded"):
        return (name, False, str(check.get("error") or "did not load"),
                f"reinstall the pinned web runtime: {INSTALL_COMMAND}")
    threads = ("threads available (cross-origin isolated)" if check.get("crossOriginIsolated")
               else "single-threaded: the page is not cross-origin isolated")
    return (name, True, f"loads: onnxruntime-web {check.get('version')}, {threads}", "")


def gpu_devices() -> list[str]:
    """The host's GPU device nodes (DRM render nodes, NVIDIA devices): where LiteRT's GPU
    accelerator could run. Empty on a host without a GPU."""
    from pathlib import Path

    found = sorted(str(p) for p in Path("/dev/dri").glob("renderD*")) if Path(
        "/dev/dri").is_dir() else []
    return found + sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*"))


def litert_gpu_row(devices: list[str] | None = None) -> tuple[str, bool, str, str]:
    """LiteRT CompiledModel's accelerators: CPU always (runtime litert-compiled); a GPU cell
    only where the host has a GPU, and never one on a software rasterizer."""
    devices = gpu_devices() if devices is None else devices
    if not devices:
        return ("LiteRT accelerators", True, "CompiledModel on CPU; no GPU cell: this host has "
                "no GPU device (/dev/dri render node or /dev/nvidia*)", "")
    return ("LiteRT accelerators", True, f"CompiledModel on CPU; GPU device(s) present "
            f"({', '.join(devices)}), but no GPU cell is measured yet", "")
