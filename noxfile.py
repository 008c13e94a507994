"""Thin sessions over library functions. The sessions that need TensorFlow share one
environment (.nox/edge, about 3.5 GB), installed once and refreshed when pyproject.toml changes.

Setup happens here, before anything is measured: the environments (on a Python that works:
3.11 or 3.12, tflite-runtime's on 3.11), a browser, and the pinned TF.js runtime (`npm ci` into
its per-user cache directory, `edge.farm.runners.web_runtime.web_runtime_dir`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
ENV = ROOT / ".nox" / "edge"
sys.path.insert(0, str(ROOT))  # edge.environment, web_runtime: standard library only

from edge.environment import (  # noqa: E402
    browser_install_hint,
    can_apt_install_chromium,
    choose_python,
    choose_tflite_runtime_python,
    find_browser,
)
from edge.farm.runners import web_runtime  # noqa: E402

nox.options.sessions = ["lint", "tests"]


def _shared_env(session: nox.Session) -> str:
    """Create or refresh the shared environment; return its python."""
    python = ENV / "bin" / "python"
    stamp = ENV / ".installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not python.exists():
        interpreter, warning = choose_python()
        if warning:
            session.warn(warning)
        session.log(f"creating {ENV} with {interpreter}")
        session.run(interpreter, "-m", "venv", str(ENV), external=True)
    if not stamp.exists() or stamp.read_text() != want:
        session.run(str(python), "-m", "pip", "install", "--upgrade", "pip", external=True)
        session.run(str(python), "-m", "pip", "install", "-e", f"{ROOT}[test]", external=True)
        stamp.write_text(want)
    return str(python)


def _tflite_runtime_env(session: nox.Session) -> str | None:
    """The second TFLite runtime, tflite-runtime 2.14, needs NumPy < 2 and Python 3.11: its own
    environment."""
    env = ROOT / ".nox" / "tflite-runtime"
    python = env / "bin" / "python"
    stamp = env / ".installed"
    if stamp.exists():
        return str(python)
    interpreter = choose_tflite_runtime_python()
    unsupported = "tflite-runtime could not be installed; its cells will be 'unsupported'"
    if interpreter is None:
        session.warn(f"{unsupported} (it needs Python 3.11: no python3.11 found on PATH)")
        return None
    try:
        session.run(interpreter, "-m", "venv", str(env), external=True)
        session.run(str(python), "-m", "pip", "install", "--quiet", "numpy<2",
                    "tflite-runtime==2.14.0", external=True)
    except nox.command.CommandFailed:
        session.warn(unsupported)
        return None
    stamp.write_text("ok")
    return str(python)


def _browser(session: nox.Session) -> None:
    """Make sure a Chromium exists; on Debian as root, install the distribution's package;
    elsewhere say what to install and how to point EDGE_BROWSER at it."""
    if find_browser():
        return
    if can_apt_install_chromium():
        session.log("no Chromium found: installing Debian's chromium package")
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "chromium", external=True,
                    env={"DEBIAN_FRONTEND": "noninteractive"})
    else:
        session.warn(browser_install_hint() + "; until then browser cells fail")


def _web_runtime(session: nox.Session) -> None:
    """Install the pinned TF.js runtime the harness page loads (`npm ci` into the directory of
    its package-lock.json's hash, `web_runtime.web_runtime_dir()`, the one the loopback server
    serves) when it is not there: at setup, never during a measurement."""
    if web_runtime.is_installed():
        return
    npm = shutil.which("npm")
    if npm is None:
        session.warn("npm not found: install Node.js with npm, then run "
                     f"`{web_runtime.INSTALL_COMMAND}`; until then browser cells fail")
        return
    target = web_runtime.prepare()
    session.run(npm, "ci", "--no-audit", "--no-fund", "--legacy-peer-deps", "--prefix",
                str(target), external=True)


def _call(session: nox.Session, python: str, expression: str, **env: str) -> None:
    session.run(python, "-c", expression, external=True,
                env={"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"), **env})


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Run the test suite (tiny model configurations; minutes)."""
    python = _shared_env(session)
    _browser(session)
    _web_runtime(session)
    trt = _tflite_runtime_env(session)
    session.run(python, "-m", "pytest", *(session.posargs or ["-q"]), external=True,
                env={"EDGE_TFLITE_RUNTIME_PYTHON": trt} if trt else {})


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and this file."""
    python = _shared_env(session)
    session.run(python, "-m", "ruff", "check", "edge", "tests", "noxfile.py", "benchmarks",
                external=True)


@nox.session(python=False)
def device_matrix(session: nox.Session) -> None:
    """The main job: build, validate and measure the default matrix (./device_matrix.toml if
    there is one, else the one shipped in edge/data).

    Arguments after `--` go to the job: --preset smoke|full, --resume RUN_ID, --tiny, -j N,
    --shard I/N, --model PATH (your own model instead of the matrix's; repeatable) with --task,
    --input-size, --mean, --std, --images, --eval-data."""
    python = _shared_env(session)
    _browser(session)
    _web_runtime(session)
    trt = _tflite_runtime_env(session)
    args = repr(list(session.posargs))
    _call(session, python, f"from edge.workflow import device_matrix; device_matrix({args})",
          **({"EDGE_TFLITE_RUNTIME_PYTHON": trt} if trt else {}))


@nox.session(python=False)
def screenshot(session: nox.Session) -> None:
    """The README's picture: the latest run's report (reports/latest/index.html) in Chromium at a
    fixed viewport, written to docs/img/report.png (`-- INDEX [OUT]` for others)."""
    python = _shared_env(session)
    _browser(session)
    args = repr(list(session.posargs))
    _call(session, python, f"from edge.report.screenshot import main; main({args})")


@nox.session(python=False)
def bench_build(session: nox.Session) -> None:
    """Benchmark: cold build of the default garden, then a no-op rebuild; prints figures."""
    python = _shared_env(session)
    session.run(python, str(ROOT / "benchmarks" / "build.py"), *session.posargs, external=True,
                env={"TF_CPP_MIN_LOG_LEVEL": "3"})


@nox.session(python=False)
def bench_training(session: nox.Session) -> None:
    """Benchmark: train the default garden (or the models after `--`); prints each model's
    training time and held-out accuracy against its target."""
    python = _shared_env(session)
    session.run(python, str(ROOT / "benchmarks" / "training.py"), *session.posargs,
                external=True, env={"TF_CPP_MIN_LOG_LEVEL": "3"})


@nox.session(python=False)
def bench_overhead(session: nox.Session) -> None:
    """Benchmark: harness overhead against bare timing loops (TFLite and the browser page)."""
    python = _shared_env(session)
    _browser(session)
    _web_runtime(session)
    session.run(python, str(ROOT / "benchmarks" / "overhead.py"), *session.posargs,
                external=True, env={"TF_CPP_MIN_LOG_LEVEL": "3"})


@nox.session(python=False)
def faults(session: nox.Session) -> None:
    """Fault injection: crashes, hangs, lost contexts, signals, corrupt artifacts; prints faults
    injected, cells that survived, records lost (must be 0) and duplicates (must be 0)."""
    python = _shared_env(session)
    _browser(session)
    _web_runtime(session)
    session.run(python, str(ROOT / "benchmarks" / "faults.py"), *session.posargs,
                external=True, env={"TF_CPP_MIN_LOG_LEVEL": "3"})


@nox.session(python=False)
def bench_emulation(session: nox.Session) -> None:
    """Benchmark: target vs achieved slowdown per emulation method, and the emulation error
    against published real-device figures (needs MobileNetV2 built)."""
    python = _shared_env(session)
    _browser(session)
    _web_runtime(session)
    session.run(python, str(ROOT / "benchmarks" / "emulation.py"), *session.posargs,
                external=True, env={"TF_CPP_MIN_LOG_LEVEL": "3"})


@nox.session(python=False)
def bench_runtimes(session: nox.Session) -> None:
    """Benchmark: today's runtimes side by side on one model and thread count (LiteRT.js against
    tfjs-tflite, CompiledModel against Interpreter, ONNX Runtime Web against TF.js against
    LiteRT.js); `-- --all-models`: LiteRT.js on every garden model's .tflite variants."""
    python = _shared_env(session)
    _browser(session)
    _web_runtime(session)
    session.run(python, str(ROOT / "benchmarks" / "runtimes.py"), *session.posargs,
                external=True, env={"TF_CPP_MIN_LOG_LEVEL": "3"})


@nox.session(python=False)
def bench_estimator(session: nox.Session) -> None:
    """Benchmark: the phone estimates against every published point, left out in turn, beside
    the bare benchmark-index ratio, with the coverage of the stated intervals (needs a run of the
    main job); `-- --stand-in` also calibrates and checks a stand-in device (root, minutes)."""
    python = _shared_env(session)
    _browser(session)
    _web_runtime(session)
    session.run(python, str(ROOT / "benchmarks" / "estimator.py"), *session.posargs,
                external=True, env={"TF_CPP_MIN_LOG_LEVEL": "3"})
