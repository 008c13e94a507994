"""A matrix rule's `protocol` table reaches the cells it gives, and only those."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edge.results.store import ResultStore

pytestmark = pytest.mark.slow

MATRIX = """
[build]
models = ["mobilenet_v2"]
variants = ["tflite-fp32", "tflite-int8-full"]
build_dir = "{build_dir}"

[bench]
devices = ["host"]
protocol = {{warmup = 1, min_runs = 20, min_seconds = 0.1, max_runs = 40, timeout_s = 60}}
reports_dir = "{reports}"

[[bench.cells]]
runtimes = ["litert"]
variants = ["tflite-fp32"]
threads = [1]

[[bench.cells]]
runtimes = ["litert"]
variants = ["tflite-int8-full"]
threads = [1]
interleave = false
protocol = {{min_runs = 3, max_runs = 3}}
"""


def test_a_rule_protocol_measures_its_cells_and_only_them(tiny_garden, tmp_path):
    reports = tmp_path / "reports"
    matrix = tmp_path / "m.toml"
    matrix.write_text(MATRIX.format(build_dir=tiny_garden["build_dir"], reports=reports))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "edge.cli", "bench", "--matrix", str(matrix),
                           "--tiny"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = [p for p in reports.glob("*/results.jsonl") if p.parent.name != "latest"]
    records = {r["variant"]: r for r in ResultStore(run.parent).records()}
    assert {r["status"] for r in records.values()} == {"ok"}
    short, run_protocol = records["tflite-int8-full"], records["tflite-fp32"]
    assert short["metrics"]["latency"]["n"] == 3
    assert short["protocol"]["min_runs"] == 3 and short["protocol"]["timeout_s"] == 60
    assert run_protocol["metrics"]["latency"]["n"] >= 20
    assert "protocol" not in run_protocol
