"""Thin sessions over library functions. The sessions that need TensorFlow share one
environment (.nox/edge, about 3.5 GB), installed once and refreshed when pyproject.toml changes."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
ROOT = Path(__file__).parent
ENV = ROOT / ".nox" / "edge"


def _shared_env(session: nox.Session) -> str:
    """Create or refresh the shared environment; return its python."""
    python = ENV / "bin" / "python"
    stamp = ENV / ".installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(ENV), external=True)
    if not stamp.exists() or stamp.read_text() != want:
        session.run(str(python), "-m", "pip", "install", "--upgrade", "pip", external=True)
        session.run(str(python), "-m", "pip", "install", "-e", f"{ROOT}[test]", external=True)
        stamp.write_text(want)
    return str(python)


def _call(session: nox.Session, python: str, expression: str) -> None:
    session.run(python, "-c", expression, external=True,
                env={"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")})


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Run the test suite (tiny model configurations; minutes)."""
    python = _shared_env(session)
    session.run(python, "-m", "pytest", *(session.posargs or ["-q"]), external=True)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and this file."""
    python = _shared_env(session)
    session.run(python, "-m", "ruff", "check", "edge", "tests", "noxfile.py", "benchmarks",
                external=True)


@nox.session(python=False)
def device_matrix(session: nox.Session) -> None:
    """The main job: build and validate the default matrix (device_matrix.toml)."""
    python = _shared_env(session)
    args = repr(list(session.posargs))
    _call(session, python, f"from edge.jobs import device_matrix; device_matrix({args})")


@nox.session(python=False)
def bench_build(session: nox.Session) -> None:
    """Benchmark: cold build of the default garden, then a no-op rebuild; prints figures."""
    python = _shared_env(session)
    session.run(python, str(ROOT / "benchmarks" / "build.py"), *session.posargs, external=True,
                env={"TF_CPP_MIN_LOG_LEVEL": "3"})
