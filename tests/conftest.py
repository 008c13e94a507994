"""Shared fixtures. The tiny garden is built once per test session (in worker processes)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from edge.garden import REGISTRY
from edge.variants import DEFAULT_VARIANTS

#: Every variant the tests build for each garden model (the uint8-I/O one once, on the baseline).
EXTRA_VARIANTS = {"mobilenet_v2": ("tflite-int8-full-uint8io",)}


def tiny_variants(name: str) -> tuple[str, ...]:
    return DEFAULT_VARIANTS + EXTRA_VARIANTS.get(name, ())


#: The committed results fixture (a real tiny run, trimmed; see its README).
RESULTS_FIXTURE = Path(__file__).parent / "fixtures" / "results"
RESULTS_RUN = "20261129-102929-9e7c"


def write_fixture_report(reports: Path) -> Path:
    """The committed results fixture copied under `reports` with its HTML report written (its
    deliberately damaged last line skipped); returns the report's index.html."""
    import shutil

    from edge.report.html import write_report
    from edge.results.store import DamagedRecordWarning

    shutil.copytree(RESULTS_FIXTURE / RESULTS_RUN, reports / RESULTS_RUN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRecordWarning)
        return write_report(reports, RESULTS_RUN)


@pytest.fixture(scope="module")
def fixture_cells():
    """The fixture run as a tidy table (its deliberately damaged last line skipped)."""
    from edge.report.table import load_run, tidy
    from edge.results.store import DamagedRecordWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRecordWarning)
        records, _ = load_run(RESULTS_FIXTURE, RESULTS_RUN)
    return tidy(records)


@pytest.fixture(scope="session")
def tiny_garden(tmp_path_factory):
    """Build and validate every garden model's tiny configuration in every variant."""
    from edge import workflow
    from edge.convert.targets import garden_target

    build_dir = tmp_path_factory.mktemp("build")
    targets = [garden_target(spec.resolve(spec.tiny), variants=tiny_variants(name))
               for name, spec in REGISTRY.items()]
    summary = workflow.build(targets, build_dir, jobs=2)
    keys = workflow.artifact_keys(summary)
    fidelity = {(f.target, f.variant): f for f in workflow.validate(keys, build_dir)}
    return {"build_dir": build_dir, "targets": targets, "summary": summary,
            "fidelity": fidelity}


@pytest.fixture(autouse=True)
def _ctrl_c_delivered():
    """Every test starts with Ctrl-C deliverable: SIGINT unblocked and Python's own handler, as
    in a user's shell. Native libraries that an earlier test loaded into this process may block
    signals in the main thread, and a blocked signal mask is inherited by every process a test
    starts, so the interruption tests would measure the test process, not edge."""
    import signal

    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT, signal.SIGTERM])
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
