"""The protocol's rules (edge/stopping.py and edge/data/web/stopping.js) and their shared
vectors: both implementations must reproduce tests/data/stopping_vectors.json exactly."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge import stopping
from edge.farm.protocol.protocol import Protocol
from edge.stopping import (
    DEFAULTS,
    MIN_RUNS_FLOOR,
    ci95_ranks,
    median,
    median_ci95,
    percentile_ok,
    sampling_done,
    warmup_done,
)

ROOT = Path(__file__).resolve().parents[1]
VECTORS = json.loads((ROOT / "tests" / "data" / "stopping_vectors.json").read_text())
JS_TEST = ROOT / "tests" / "js" / "stopping.test.js"
WORKER = ROOT / "edge" / "farm" / "runners" / "tflite_worker.py"


def simulate(samples: list[float], cfg: dict) -> dict:
    """The worker's loops: warm up until warmup_done, then time runs until sampling_done."""
    n = 0
    while True:
        done, steady = warmup_done(samples[:n], cfg)
        if done:
            break
        n += 1
        assert n <= len(samples), "sequence too short for the warm-up"
    m = 0
    while True:
        done, reason = sampling_done(samples[n:n + m], cfg)
        if done:
            break
        m += 1
        assert n + m <= len(samples), "sequence too short for the sampling"
    timed = samples[n:n + m]
    return {"warmup_runs": n, "steady": steady, "timed_runs": m, "reason": reason,
            "median": median(timed), "ci95": list(median_ci95(timed))}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


# -- the shared vectors ---------------------------------------------------------------------


def test_vectors_cover_every_rule_with_hand_checked_cases():
    cells = VECTORS["cells"]
    assert len(cells) >= 12
    hand = [c for c in cells if c["source"] == "hand"]
    assert {c["expect"]["reason"] for c in hand} == {"ci", "max_runs", "max_seconds"}
    assert {c["expect"]["steady"] for c in hand} == {True, False}
    assert {c["expect"]["reason"] for c in cells} == set(stopping.REASONS)
    assert all(c["note"] for c in hand)
    assert any(c["source"] == "hand" for c in VECTORS["median_ci95"])


@pytest.mark.parametrize("cell", VECTORS["cells"], ids=lambda c: c["name"])
def test_python_reproduces_the_vectors(cell):
    got = simulate(cell["samples"], cell["cfg"])
    assert got == cell["expect"]
    # The vectors hold exactly the runs used: warm-up plus timed.
    assert len(cell["samples"]) == got["warmup_runs"] + got["timed_runs"]


@pytest.mark.parametrize("case", VECTORS["median_ci95"], ids=lambda c: str(len(c["samples"])))
def test_python_median_ci95_vectors(case):
    assert list(ci95_ranks(len(case["samples"]))) == case["ranks"]
    assert list(median_ci95(case["samples"])) == case["ci95"]
    assert median(case["samples"]) == case["median"]


def test_python_percentile_vectors():
    for case in VECTORS["percentile_ok"]:
        assert percentile_ok(case["n"], case["q"]) is case["ok"], case


@pytest.fixture(scope="module")
def js_results() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js not installed")
    proc = subprocess.run([node, str(JS_TEST)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_js_defaults_and_constants_match_python(js_results):
    assert js_results["defaults"] == {_camel(k): v for k, v in DEFAULTS.items()}
    assert js_results["window"] == stopping.WINDOW
    assert js_results["min_runs_floor"] == MIN_RUNS_FLOOR
    assert tuple(js_results["reasons"]) == stopping.REASONS
    # Protocol.to_js sends exactly the keys stopping.js reads.
    assert set(Protocol().to_js()) == set(js_results["defaults"])


@pytest.mark.parametrize("index", range(len(VECTORS["cells"])),
                         ids=[c["name"] for c in VECTORS["cells"]])
def test_js_reproduces_the_vectors(js_results, index):
    cell = VECTORS["cells"][index]
    got = js_results["cells"][index]
    assert got.pop("name") == cell["name"]
    assert "error" not in got, got
    assert got == cell["expect"]  # exact: same floats, same counts, same reason


def test_js_median_ci95_and_percentile_vectors(js_results):
    for got, case in zip(js_results["median_ci95"], VECTORS["median_ci95"], strict=True):
        assert got == {"ranks": case["ranks"], "ci95": case["ci95"], "median": case["median"]}
    assert js_results["percentile_ok"] == [c["ok"] for c in VECTORS["percentile_ok"]]


# -- the rules, directly --------------------------------------------------------------------


def test_defaults_are_the_documented_ones():
    assert DEFAULTS == {"warmup": 3, "max_warmup": 50, "max_warmup_seconds": 10.0,
                        "steady_tol": 0.05, "min_runs": 10, "min_seconds": 0.5, "max_runs": 300,
                        "max_seconds": 15.0, "target_ci": 0.03, "timeout_s": 120.0}


def test_warmup_needs_two_windows_and_the_minimum():
    flat = [5.0] * 9
    assert warmup_done(flat, {}) == (False, False)  # one window short of a comparison
    assert warmup_done([*flat, 5.0], {}) == (True, True)
    # a minimum above two windows is honoured even when steady earlier
    assert warmup_done([5.0] * 10, {"warmup": 12}) == (False, False)
    assert warmup_done([5.0] * 12, {"warmup": 12}) == (True, True)


def test_warmup_steady_tolerance_is_relative_to_the_earlier_window():
    # window medians 100 and 105: exactly 5 % -> steady; 105.5 -> not
    assert warmup_done([100.0] * 5 + [105.0] * 5, {}) == (True, True)
    assert warmup_done([100.0] * 5 + [105.5] * 5, {}) == (False, False)
    assert warmup_done([100.0] * 5 + [105.5] * 5, {"steady_tol": 0.06}) == (True, True)
    # a faster later window counts the same way
    assert warmup_done([100.0] * 5 + [94.0] * 5, {}) == (False, False)


def test_warmup_caps():
    rising = [float(10 * 1.1 ** i) for i in range(30)]  # never steady
    assert warmup_done(rising[:19], {"max_warmup": 20}) == (False, False)
    assert warmup_done(rising[:20], {"max_warmup": 20}) == (True, False)
    assert warmup_done([400.0, 400.0], {"max_warmup_seconds": 0.8}) == (False, False)
    assert warmup_done([400.0, 400.0, 400.0], {"max_warmup_seconds": 0.8}) == (True, False)
    # max_warmup = 0 disables the warm-up
    assert warmup_done([], {"warmup": 0, "max_warmup": 0}) == (True, False)


def test_sampling_ci_needs_min_runs_and_min_seconds():
    cfg = {"min_runs": 10, "min_seconds": 1.0, "max_runs": 1000, "max_seconds": 100.0}
    assert sampling_done([50.0] * 9, cfg) == (False, "")  # precise but too few runs
    assert sampling_done([50.0] * 19, cfg) == (False, "")  # 950 ms < 1 s
    assert sampling_done([50.0] * 20, cfg) == (True, "ci")
    assert sampling_done([], cfg) == (False, "")


def test_sampling_caps():
    noisy = [10.0, 20.0] * 200
    cfg = {"min_seconds": 0.0, "max_runs": 40}
    assert sampling_done(noisy[:39], cfg) == (False, "")
    assert sampling_done(noisy[:40], cfg) == (True, "max_runs")
    slow = {"max_seconds": 2.0}
    assert sampling_done([3000.0, 3000.0], slow) == (False, "")  # the floor of three runs
    assert sampling_done([3000.0] * 3, slow) == (True, "max_seconds")
    # a precise median wins over a cap reached on the same run
    assert sampling_done([10.0] * 5, {"min_runs": 5, "min_seconds": 0.0, "max_runs": 5}) == \
        (True, "ci")


def test_median_ci95_is_a_distribution_free_interval():
    xs = list(range(100, 0, -1))
    lo, hi = median_ci95(xs)
    assert (lo, hi) == (41, 61)  # sorted 1..100, ranks 40 and 60
    assert lo <= median(xs) <= hi
    assert median([3.0, 1.0, 2.0, 4.0]) == 2.5
    with pytest.raises(ValueError):
        median_ci95([])


def test_percentile_gating():
    assert not percentile_ok(19, 0.90) and percentile_ok(20, 0.90)
    assert not percentile_ok(199, 0.99) and percentile_ok(200, 0.99)
    assert percentile_ok(2, 0.0) and not percentile_ok(1, 0.0)


def test_module_uses_the_standard_library_only():
    """tflite_worker.py loads it by path under interpreters without the edge package."""
    tree = ast.parse((ROOT / "edge" / "stopping.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "math"}


def test_worker_loads_the_same_rules_by_path():
    script = ("import runpy, sys, json; "
              f"g = runpy.run_path({str(WORKER)!r}); "
              "s = g['stopping']; print(json.dumps([s.__file__, s.DEFAULTS]))")
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True,
                          text=True, timeout=60, check=False, cwd="/")
    assert proc.returncode == 0, proc.stderr
    path, defaults = json.loads(proc.stdout)
    assert Path(path) == ROOT / "edge" / "stopping.py"
    assert defaults == DEFAULTS
