"""An interrupted run loses nothing, and --resume finishes it without duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edge.results.store import ResultStore

pytestmark = pytest.mark.slow

MATRIX = """
[build]
models = ["mobilenet_v2", "efficientnet_lite0", "deeplab_v3", "psenet"]
variants = ["tflite-fp32", "tflite-fp16", "tflite-int8-full"]
build_dir = "{build_dir}"

[bench]
devices = ["host"]
protocol = {{warmup = 1, min_runs = 20, min_seconds = 0.3, max_runs = 40, timeout_s = 60}}
reports_dir = "{reports}"

[[bench.cells]]
runtimes = ["litert"]
threads = [1, 2]
"""


def _bench(matrix, *extra):
    return [sys.executable, "-m", "edge.cli", "bench", "--matrix", str(matrix), "--tiny", *extra]


def test_sigint_then_resume_loses_and_duplicates_nothing(tiny_garden, tmp_path):
    reports = tmp_path / "reports"
    matrix = tmp_path / "m.toml"
    matrix.write_text(MATRIX.format(build_dir=tiny_garden["build_dir"], reports=reports))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(_bench(matrix), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    results = None
    while time.monotonic() < deadline:
        runs = list(reports.glob("*/results.jsonl"))
        if runs and len(runs[0].read_text().splitlines()) >= 3:
            results = runs[0]
            break
        time.sleep(0.1)
    assert results is not None, "no records appeared"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, out
    before = results.read_text().splitlines()
    total = 4 * 3 * 2
    assert 3 <= len(before) < total, "the run finished before it could be interrupted"
    assert all(json.loads(line) for line in before)  # every written line is whole

    run_id = results.parent.name
    done = subprocess.run(_bench(matrix, "--resume", run_id), env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    records = ResultStore(results.parent).records()
    ids = [r["cell_id"] for r in records]
    assert len(ids) == total and len(set(ids)) == total
    after = results.read_text().splitlines()
    assert after[:len(before)] == before  # nothing measured before was rewritten
    assert {r["status"] for r in records} == {"ok"}
