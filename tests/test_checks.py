"""Self-checks over a run's records (edge.results.checks): every pass, fail and n/a path on
hand-made records, then the two committed fixture runs."""

from __future__ import annotations

import json
import warnings

import pytest
from rich.console import Console
from rich.table import Table

from edge.report.table import load_run
from edge.results.checks import CHECK_NAMES, checks_json, format_checks, self_checks
from edge.results.store import DamagedRecordWarning
from edge.stats import noise_floor

from .conftest import RESULTS_FIXTURE, RESULTS_RUN

V2_FIXTURE = RESULTS_FIXTURE.parent / "results-v2"


def rec(device="host", variant="tfjs-fp32", runtime="tfjs-wasm", threads=2, status="ok",
        p50=None, ci=None, samples=None, emulation=None, load=None, gpu=None, model="m"):
    latency = {}
    if p50 is not None:
        latency["p50"] = p50
    if ci is not None:
        latency["ci95"] = list(ci)
    if samples is not None:
        latency["samples"] = list(samples)
    cell = "|".join([model, variant, runtime, device]) + (f"|t{threads}" if threads else "")
    return {"cell_id": cell, "model": model, "variant": variant, "runtime": runtime,
            "device": device, "threads": threads, "status": status, "emulated": device != "host",
            "metrics": {"latency": latency} if latency else {}, "emulation": emulation,
            "load": load, "gpu": gpu}


def check(records, name):
    found = {c["name"]: c for c in self_checks(records)}
    assert list(found) == list(CHECK_NAMES)
    return found[name]


def spread(center, n=40, step=0.01):
    """n distinct samples around ``center`` (deterministic)."""
    return [round(center * (1 + step * (i - n / 2) / n), 6) for i in range(n)]


# -- emulated-not-faster ------------------------------------------------------------------------

def test_emulated_slower_than_the_host_passes():
    c = check([rec(p50=11, ci=(10, 12)), rec("phone", p50=50, ci=(45, 55))],
              "emulated-not-faster")
    assert c["status"] == "pass" and c["details"] == []
    assert c["summary"].startswith("0 of 1 emulated cells faster than the host (beyond their "
                                   "interval and the run's page-to-page spread)")


def test_emulated_faster_beyond_both_intervals_fails():
    records = [rec(p50=11, ci=(10, 12)), rec("phone", p50=7, ci=(5, 9)),
               rec(variant="tfjs-uint8", p50=11, ci=(10, 12)),
               rec("phone", variant="tfjs-uint8", p50=40, ci=(38, 42))]
    c = check(records, "emulated-not-faster")
    assert c["status"] == "fail"
    assert c["summary"].startswith("1 of 2 emulated cells faster than the host")
    assert len(c["details"]) == 1
    assert c["details"][0].startswith("m tfjs-fp32 tfjs-wasm phone t2: p50 7 ms [5, 9] vs host")


def test_overlapping_intervals_are_not_faster():
    # the emulated median is lower, but its interval reaches into the host's
    c = check([rec(p50=11, ci=(10, 12)), rec("phone", p50=10, ci=(9, 11))],
              "emulated-not-faster")
    assert c["status"] == "pass"


def test_without_an_interval_the_medians_decide():
    c = check([rec(p50=10), rec("phone", p50=9, ci=(8, 9.5))], "emulated-not-faster")
    assert c["status"] == "fail"
    assert "1 compared by median (no interval recorded)" in c["summary"]
    assert check([rec(p50=10), rec("phone", p50=12)], "emulated-not-faster")["status"] == "pass"


def test_only_the_same_variant_runtime_and_threads_are_compared():
    records = [rec(p50=10, ci=(9, 11)), rec("phone", threads=4, p50=1, ci=(0.9, 1.1)),
               rec("phone", runtime="tfjs-webgl", p50=1, ci=(0.9, 1.1)),
               rec(variant="tfjs-uint8", status="failed"),
               rec("phone", variant="tfjs-uint8", p50=1, ci=(0.9, 1.1))]
    c = check(records, "emulated-not-faster")
    assert c["status"] == "n/a" and "no emulated cell has a host cell" in c["summary"]


# -- weight-variants-tie ------------------------------------------------------------------------

def test_weight_only_variants_with_one_distribution_tie():
    same = spread(20.0)
    records = [rec(variant="tfjs-fp32", samples=same),
               rec(variant="tfjs-fp16", samples=list(reversed(same))),
               rec(variant="tfjs-uint8", samples=same[1:] + same[:1])]
    c = check(records, "weight-variants-tie")
    assert c["status"] == "pass"
    assert c["summary"].startswith("all 1 groups of weight-only TF.js variants tie within "
                                   "noise")


def test_weight_only_variants_that_split_fail_with_the_groups_and_the_noise_floor():
    fast, slow = spread(10.0), spread(20.0)
    records = [rec(variant="tfjs-fp32", samples=fast), rec(variant="tfjs-uint8", samples=slow),
               rec(variant="tfjs-fp16", samples=fast),
               # another device: its own group, which ties
               rec("phone", variant="tfjs-fp32", samples=slow),
               rec("phone", variant="tfjs-uint8", samples=slow)]
    c = check(records, "weight-variants-tie")
    assert c["status"] == "fail"
    floor = noise_floor({r["cell_id"]: r["metrics"]["latency"]["samples"] for r in records})
    assert floor > 0
    assert c["summary"].startswith("1 of 2 groups of weight-only TF.js variants split")
    assert f"noise floor \u00b1{floor:.1%} of the median" in c["summary"]
    split = c["details"][0]
    assert split.startswith("m tfjs-wasm host t2: ")
    groups = split.split(": ", 1)[1].split(" | ")
    assert len(groups) == 2
    assert "tfjs-fp32" in groups[0] and "tfjs-fp16" in groups[0]  # fastest group first
    assert groups[1].startswith("tfjs-uint8 (20")


def test_weight_variants_need_two_tfjs_variants_of_one_model_runtime_and_device():
    records = [rec(variant="tflite-fp32", runtime="litert", samples=spread(1.0)),
               rec(variant="tflite-int8-dynamic", runtime="litert", samples=spread(2.0)),
               rec(variant="tfjs-fp32", samples=spread(10.0)),
               rec("phone", variant="tfjs-uint8", samples=spread(30.0)),
               rec(variant="tfjs-uint8", status="failed")]
    c = check(records, "weight-variants-tie")
    assert c["status"] == "n/a" and "weight-only" in c["summary"]


# -- slowdown-on-target -------------------------------------------------------------------------

def emulated(achieved, target=5.0, i=0):
    return rec("phone", variant=f"v{i}", p50=1.0,
               emulation={"method": "cgroup-v2", "target_slowdown": target,
                          "achieved_vs_host": achieved})


def test_ninety_percent_on_target_passes():
    records = [emulated(5.2, i=i) for i in range(9)] + [emulated(3.0, i=9)]
    c = check(records, "slowdown-on-target")
    assert c["status"] == "pass"
    assert c["summary"].startswith("9 of 10 emulated cells (90%) within 15% of the target")
    assert "worst: target 5.00, achieved 3.00" in c["summary"]
    assert c["details"] == ["m v9 tfjs-wasm phone t2: target 5.00, achieved 3.00 (-40%)"]


def test_less_than_ninety_percent_on_target_fails():
    records = ([emulated(4.6, i=i) for i in range(8)]
               + [emulated(7.0, i=8), emulated(2.0, i=9)])
    c = check(records, "slowdown-on-target")
    assert c["status"] == "fail"
    assert c["summary"].startswith("8 of 10 emulated cells (80%)")
    assert [d.split(":")[0] for d in c["details"]] == ["m v9 tfjs-wasm phone t2",
                                                      "m v8 tfjs-wasm phone t2"]  # worst first


def test_slowdown_is_na_without_an_achieved_figure():
    records = [emulated(None), rec(p50=1.0), rec("phone", status="failed",
                                                 emulation={"target_slowdown": 5.0,
                                                            "achieved_vs_host": 1.0})]
    c = check(records, "slowdown-on-target")
    assert c["status"] == "n/a" and "host cell" in c["summary"]


# -- competing-load -----------------------------------------------------------------------------

def load(cores):
    return {"wall_s": 10.0, "other_cpu_s": cores * 10, "other_cores": cores,
            "busy": cores > 0.25}


def test_quiet_cells_pass_with_the_largest_other_load():
    c = check([rec(load=load(0.1)), rec(variant="b", load=load(0.2)),
               rec(variant="c", status="failed", load=load(1.5))], "competing-load")
    assert c["status"] == "pass"
    assert c["summary"] == "no cell measured under competing load (max other load 0.20 cores)"


def test_a_busy_cell_fails_with_its_load():
    c = check([rec(load=load(0.1)), rec(variant="b", load=load(0.8))], "competing-load")
    assert c["status"] == "fail"
    assert c["summary"] == ("1 of 2 cells measured under competing load (max other load 0.80 "
                            "cores)")
    assert c["details"] == ["m b tfjs-wasm host t2: other processes used 0.80 cores"]


def test_load_not_measured_is_na():
    unmeasured = {"wall_s": 3.0, "other_cpu_s": None, "other_cores": None, "busy": False}
    c = check([rec(), rec(variant="b", load=unmeasured)], "competing-load")
    assert c["status"] == "n/a"


# -- no-emulated-gpu ----------------------------------------------------------------------------

def test_gpu_on_an_emulated_device_fails():
    gpu = {"renderer": "SwiftShader", "software": True}
    records = [rec("phone", runtime="tfjs-webgl", threads=None, p50=3.0, gpu=gpu),
               rec("phone", runtime="tfjs-wasm", p50=9.0),
               rec(runtime="tfjs-webgpu", threads=None, p50=1.0)]  # the host: fine
    c = check(records, "no-emulated-gpu")
    assert c["status"] == "fail"
    assert c["details"] == ["m tfjs-fp32 tfjs-webgl phone: renderer SwiftShader"]


def test_no_gpu_on_emulated_devices_passes_and_no_emulation_is_na():
    records = [rec("phone", runtime="tfjs-webgl", threads=None, status="failed"),
               rec("phone", p50=9.0), rec(runtime="tfjs-webgl", threads=None, p50=1.0)]
    assert check(records, "no-emulated-gpu")["status"] == "pass"
    assert check(records[2:], "no-emulated-gpu")["status"] == "n/a"


# -- output and the fixtures --------------------------------------------------------------------

def test_format_and_json():
    records = [rec(load=load(0.1)), rec(variant="b", load=load(0.9))]
    checks = self_checks(records)
    table = format_checks(checks)
    assert isinstance(table, Table)
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    for name in CHECK_NAMES:
        assert name in text
    assert "FAIL" in text and "N/A" in text and "other processes used 0.90 cores" in text
    assert table.row_count == len(CHECK_NAMES) + 1  # the failed check's detail line

    data = json.loads(checks_json(checks))
    assert data["passed"] is False and data["counts"] == {"pass": 0, "fail": 1, "n/a": 4}
    assert data["checks"] == checks
    quiet = json.loads(checks_json(self_checks([rec(load=load(0.1))])))
    assert quiet["passed"] is True


def fixture_records(root, run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRecordWarning)
        return load_run(root, run)[0]


def test_old_records_without_the_new_fields():
    checks = {c["name"]: c for c in self_checks(fixture_records(RESULTS_FIXTURE, RESULTS_RUN))}
    assert {k: c["status"] for k, c in checks.items()} == {
        "emulated-not-faster": "pass", "weight-variants-tie": "pass",
        "slowdown-on-target": "n/a", "competing-load": "n/a", "no-emulated-gpu": "pass"}
    assert "2 compared by median" in checks["emulated-not-faster"]["summary"]


def test_the_second_fixture_fails_what_it_was_made_to_fail():
    checks = {c["name"]: c for c in self_checks(fixture_records(V2_FIXTURE, None))}
    assert {k: c["status"] for k, c in checks.items()} == {
        "emulated-not-faster": "pass", "weight-variants-tie": "pass",
        "slowdown-on-target": "fail", "competing-load": "fail", "no-emulated-gpu": "fail"}
    assert checks["slowdown-on-target"]["summary"].startswith("4 of 5 emulated cells (80%)")
    assert "tfjs-webgl pixel_5" in checks["slowdown-on-target"]["details"][0]
    assert checks["competing-load"]["details"] == [
        "mobilenet_v2:size=64,alpha=0.35,classes=6 tfjs-fp16 tfjs-wasm pixel_5 t2: other "
        "processes used 0.62 cores"]


@pytest.mark.parametrize("bad", [None, "x", 3])
def test_junk_records_are_ignored(bad):
    assert [c["status"] for c in self_checks([bad])] == ["n/a"] * len(CHECK_NAMES)


# -- the run's page-to-page spread and the paired blocks ------------------------------------------

def test_a_gap_within_the_page_to_page_spread_is_not_faster_but_beyond_it_is():
    noise = {"between_cv": 0.10}  # margin 2.77 x 10 % = 28 %
    host = rec(p50=10, ci=(9.8, 10.2))
    within = rec("phone", p50=8, ci=(7.9, 8.1))
    for r in (host, within):
        r["noise"] = noise
    assert check([host, within], "emulated-not-faster")["status"] == "pass"
    beyond = rec("phone", p50=6, ci=(5.9, 6.1))
    beyond["noise"] = noise
    assert check([host, beyond], "emulated-not-faster")["status"] == "fail"


def test_a_paired_throttle_that_made_the_cell_faster_fails():
    host = rec(p50=10, ci=(9.8, 10.2))
    paired = {"ratio": 0.9, "unthrottled_ms": 10.0, "throttled_ms": 9.0}
    phone = rec("phone", p50=30, ci=(29, 31),
                emulation={"achieved_slowdown": 0.9, "target_slowdown": 3.0, "paired": paired})
    c = check([host, phone], "emulated-not-faster")
    assert c["status"] == "fail" and "in the same page" in c["details"][0]
    phone["emulation"]["paired"] = {**paired, "ratio": 3.0, "throttled_ms": 30.0}
    c = check([host, phone], "emulated-not-faster")
    assert c["status"] == "pass" and "1 slower than unthrottled in paired blocks" in c["summary"]
