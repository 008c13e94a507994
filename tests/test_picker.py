"""The variant picker (static/picker.js, run under Node by edge.report.pick) and run comparison.

Expected picks are worked out by hand from the committed fixture (tests/fixtures/results/). For
mobilenet_v2 on host, the ok cells are (p90 ms, gzip MB, top1_agreement):

    tflite-fp32         tflite-runtime  0.245  1.475  1.0
    tflite-fp32         litert          0.558  1.475  1.0
    tflite-int8-full    litert          1.334  0.462  0.5
    tflite-int8-dynamic litert          1.369  0.467  1.0
    tflite-fp32         tflite-web      1.471  1.475  unknown (the fidelity check crashed)
    tflite-int8-full    tflite-web      4.518  0.462  0.5
    tfjs-uint8          tfjs-wasm      12.45   0.399  1.0
    tfjs-fp32           tfjs-wasm      18.58   1.485  1.0
    tfjs-fp32           tfjs-webgl     61.02   1.485  1.0

and on moto_g4: tfjs-fp32 / tfjs-wasm 405.6 ms and tfjs-uint8 / tfjs-wasm 424.2 ms (tfjs-webgl
failed); their three samples each cannot tell them apart (one tie group).

The rules added with the quality fields (GPU cells on emulated devices, tie groups, p50 when p90
is null, the memory metric, emulation and reference-point notes) run on hand-made rows and on
the hand-made second fixture (tests/fixtures/results-v2/).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.table import Table

from edge.errors import EdgeError
from edge.garden.base import HEADLINE_METRIC
from edge.report.compare import compare, format_compare
from edge.report.pick import (
    DEFAULT_BUDGETS,
    PICKER_JS,
    best_per_device,
    format_pick,
    pick,
    require_model,
)

FIXTURE = Path(__file__).parent / "fixtures" / "results"
RUN = "20261129-102929-9e7c"
MB = "mobilenet_v2:size=64,alpha=0.35,classes=6"
EVIL = "<script>alert(1)</script>"
DEFAULTS = dict(max_p90_ms=200, max_size_mb=10, max_memory_mb=None, min_fidelity=0.9)

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js not installed")


@pytest.fixture(scope="module")
def df(fixture_cells) -> pd.DataFrame:
    return fixture_cells


def picked(result: dict) -> tuple[str, str] | None:
    best = result["best"]
    return None if best is None else (best["variant"], best["runtime"])


def runners(result: dict) -> list[tuple[str, str]]:
    return [(r["variant"], r["runtime"]) for r in result["runnersUp"]]


def rows(*specs: dict) -> pd.DataFrame:
    """Hand-made tidy rows: device d, model m, status ok unless given."""
    base = {"device": "d", "model": "m", "family": "m", "status": "ok", "runtime": "r",
            "threads": None, "task": "classification", "memory_mb": math.nan,
            "fidelity": 1.0, "gzip_bytes": 1_000_000, "size_mb": 1.0}
    out = []
    for i, spec in enumerate(specs):
        row = {**base, "variant": f"v{i}", **spec}
        row["cell_id"] = f"{row['model']}|{row['variant']}|{row['runtime']}|{row['device']}"
        out.append(row)
    return pd.DataFrame(out)


# -- the rules ------------------------------------------------------------------------------

@needs_node
def test_best_on_host_under_the_default_budgets(df):
    result = pick(df, "host", **DEFAULTS, model=MB)
    assert picked(result) == ("tflite-fp32", "tflite-runtime")
    assert result["best"]["threads"] == 2
    assert runners(result) == [("tflite-fp32", "litert"), ("tflite-int8-dynamic", "litert"),
                               ("tfjs-uint8", "tfjs-wasm")]
    # both int8-full cells (0.5) and the unknown-fidelity cell miss min fidelity 0.9
    assert result["excludedBy"] == {"maxP90Ms": 0, "maxSizeMb": 0, "minFidelity": 3,
                                    "accuracyPass": 0}
    assert (result["candidates"], result["fitting"]) == (9, 6)
    assert result["binding"] is None
    why = result["why"]
    assert "p90 0.245 ms (max p90 200 ms)" in why
    assert "1.48 MB gzip (max size 10 MB)" in why
    assert "top1_agreement 1.000 (min fidelity 0.9)" in why
    assert result["verdict"] == f"pick tflite-fp32 (tflite-runtime, 2 threads) on host for {MB}"


@needs_node
def test_a_tighter_p90_budget_changes_the_pick(df):
    # Ranking is by p90, so a p90 budget can only cut from the slow end: first the runners-up
    # go, then the pick itself.
    loose = pick(df, "host", max_p90_ms=1.0, min_fidelity=0.9, model=MB)
    assert picked(loose) == ("tflite-fp32", "tflite-runtime")
    assert runners(loose) == [("tflite-fp32", "litert")]
    tight = pick(df, "host", max_p90_ms=0.5, min_fidelity=0.9, model=MB)
    assert picked(tight) == ("tflite-fp32", "tflite-runtime") and tight["runnersUp"] == []
    none = pick(df, "host", max_p90_ms=0.2, min_fidelity=0.9, model=MB)
    assert none["best"] is None and none["binding"] == "maxP90Ms"
    assert none["verdict"] == ("every candidate exceeds max p90 0.2 ms "
                               "(fastest on host: 0.245 ms); without it 6 would fit")


@needs_node
def test_a_size_budget_changes_the_pick(df):
    result = pick(df, "host", max_size_mb=1.0, min_fidelity=0.9, model=MB)
    assert picked(result) == ("tflite-int8-dynamic", "litert")
    assert runners(result) == [("tfjs-uint8", "tfjs-wasm")]
    on_phone = pick(df, "moto_g4", max_p90_ms=500, max_size_mb=1.0, model="mobilenet_v2")
    assert picked(on_phone) == ("tfjs-uint8", "tfjs-wasm") and on_phone["tied"] == []
    # without the size budget fp32 has the lower p90, but the two tie within noise: the
    # smaller download wins and fp32 is listed as tied, not as a runner-up
    loose = pick(df, "moto_g4", max_p90_ms=500, model="mobilenet_v2")
    assert picked(loose) == ("tfjs-uint8", "tfjs-wasm")
    assert [r["variant"] for r in loose["tied"]] == ["tfjs-fp32"] and loose["runnersUp"] == []


@needs_node
def test_runners_up_order_and_tie_breaks():
    frame = rows({"variant": "slow", "p90_ms": 9.0},
                 {"variant": "zeta", "p90_ms": 5.0},  # ties all the way: by variant name
                 {"variant": "alpha", "p90_ms": 5.0},
                 {"variant": "big", "p90_ms": 4.0, "gzip_bytes": 3_000_000, "size_mb": 3.0},
                 {"variant": "small", "p90_ms": 4.0, "gzip_bytes": 2_000_000, "size_mb": 2.0},
                 {"variant": "faithful", "p90_ms": 5.0, "gzip_bytes": 1_000_000,
                  "fidelity": 1.0},
                 {"variant": "aaa-loose", "p90_ms": 5.0, "fidelity": 0.95},  # by name first
                 {"variant": "broken", "p90_ms": 1.0, "status": "failed", "error": "x"})
    result = pick(frame, "d")
    order = [result["best"]["variant"]] + [r["variant"] for r in result["runnersUp"]]
    assert order == ["small", "big", "alpha", "faithful"]  # then zeta, aaa-loose, slow
    assert result["candidates"] == 7  # the failed cell is never a candidate
    result = pick(frame, "d", min_fidelity=0.99)
    assert [r["variant"] for r in [result["best"], *result["runnersUp"]]] == \
        ["small", "big", "alpha", "faithful"]
    assert result["excludedBy"] == {"minFidelity": 1, "accuracyPass": 0}


@needs_node
def test_unknown_fidelity_fails_a_min_fidelity_budget(df):
    browser = df[(df.model == MB) & df.runtime.isin(["tflite-web", "tfjs-wasm"])]
    # no fidelity budget: the fastest browser cell wins although its fidelity is unknown
    assert picked(pick(browser, "host")) == ("tflite-fp32", "tflite-web")
    # any fidelity budget, even 0, rules it out
    assert picked(pick(browser, "host", min_fidelity=0.0)) == ("tflite-int8-full", "tflite-web")
    strict = pick(browser, "host", min_fidelity=0.9)
    assert picked(strict) == ("tfjs-uint8", "tfjs-wasm")
    assert strict["excludedBy"] == {"minFidelity": 2, "accuracyPass": 0}


@needs_node
def test_unknown_memory_passes_only_without_a_memory_budget():
    frame = rows({"variant": "unknown", "p90_ms": 1.0},
                 {"variant": "heavy", "p90_ms": 2.0, "memory_mb": 300.0},
                 {"variant": "light", "p90_ms": 3.0, "memory_mb": 100.0})
    assert pick(frame, "d")["best"]["variant"] == "unknown"
    result = pick(frame, "d", max_memory_mb=200)
    assert result["best"]["variant"] == "light"
    assert result["excludedBy"] == {"maxMemoryMb": 2, "accuracyPass": 0}
    assert "memory 100 MB (max memory 200 MB)" in result["why"]


@needs_node
def test_nothing_fits_names_the_budget_that_rules_everything_out(df):
    phone = pick(df, "moto_g4", **DEFAULTS, model=MB)
    assert phone["best"] is None and phone["binding"] == "maxP90Ms"
    assert phone["verdict"] == "every candidate exceeds max p90 200 ms (fastest on moto_g4: 406 ms)"
    assert phone["excludedBy"] == {"maxP90Ms": 2, "maxSizeMb": 0, "minFidelity": 0,
                                   "accuracyPass": 0}

    size = pick(df, "host", max_size_mb=0.3, model=MB)
    assert size["binding"] == "maxSizeMb"
    assert size["verdict"] == "every candidate exceeds max size 0.3 MB (smallest on host: 0.399 MB)"

    fidelity = pick(df[df.runtime == "tflite-web"], "host", min_fidelity=0.9, model=MB)
    assert fidelity["binding"] == "minFidelity"
    assert fidelity["verdict"].startswith(
        "every candidate is below min fidelity 0.9 (best on host: top1_agreement 0.500)")

    # Dropping p90 <= 0.5 alone admits int8-dynamic and tfjs-uint8; dropping size <= 1 MB alone
    # admits only tflite-runtime fp32; fidelity alone admits nothing.
    mixed = pick(df, "host", max_p90_ms=0.5, max_size_mb=1.0, min_fidelity=0.9, model=MB)
    assert mixed["binding"] == "maxP90Ms"
    assert mixed["verdict"] == ("8 of 9 candidates exceed max p90 0.5 ms (fastest of those: "
                                "0.558 ms) and the others miss other budgets; without it 2 "
                                "would fit")


@needs_node
def test_the_binding_budget_is_the_one_whose_removal_admits_most():
    # p90 excludes 3 (each also misses size) and admits none when dropped; fidelity excludes
    # only 2 but admits both: fidelity is the binding budget.
    frame = rows({"p90_ms": 50.0, "size_mb": 20.0}, {"p90_ms": 60.0, "size_mb": 20.0},
                 {"p90_ms": 70.0, "size_mb": 20.0},
                 {"p90_ms": 5.0, "fidelity": 0.8}, {"p90_ms": 6.0, "fidelity": 0.85})
    result = pick(frame, "d", max_p90_ms=10, max_size_mb=10, min_fidelity=0.9)
    assert result["excludedBy"] == {"maxP90Ms": 3, "maxSizeMb": 3, "minFidelity": 2,
                                    "accuracyPass": 0}
    assert result["binding"] == "minFidelity"
    assert result["verdict"].startswith("2 of 5 candidates are below min fidelity 0.9 "
                                        "(best of those: top1_agreement 0.850)")
    # every candidate misses two budgets: no single change is enough
    stuck = pick(frame.iloc[:3], "d", max_p90_ms=10, max_size_mb=10)
    assert stuck["binding"] == "maxP90Ms"
    assert stuck["verdict"].endswith("; no single budget change is enough")


@needs_node
def test_a_device_without_successful_cells_says_so():
    frame = rows({"status": "failed", "error": "boom"}, {"status": "unsupported"},
                 {"device": "other", "p90_ms": 1.0})
    result = pick(frame, "d", **DEFAULTS)
    assert result["best"] is None and result["candidates"] == 0
    assert result["verdict"] == "no successful measurement on d (1 failed, 1 unsupported)"


def test_an_unknown_device_lists_the_devices_of_the_run(df):
    with pytest.raises(EdgeError, match=r"device 'pixel_5' was not measured in this run; "
                                        r"devices in the run: host, moto_g4"):
        pick(df, "pixel_5")
    with pytest.raises(EdgeError, match=r"model 'efficientnet_b0' was not measured on host"):
        pick(df, "host", model="efficientnet_b0")


def test_missing_node_is_a_clear_error(df, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_NODE", str(tmp_path / "no-node-here"))
    with pytest.raises(EdgeError, match=r"Node\.js is needed .*EDGE_NODE"):
        pick(df, "host")


@needs_node
def test_best_per_device_and_text(df):
    results = best_per_device(df, **DEFAULTS, model=MB)
    assert [r["device"] for r in results] == ["host", "moto_g4"]
    assert picked(results[0]) == ("tflite-fp32", "tflite-runtime")
    assert results[1]["best"] is None

    text = format_pick(results[0])
    assert text.splitlines()[0] == f"host / {MB}: use tflite-fp32 (tflite-runtime, 2 threads)"
    assert "  runners-up:" in text
    assert "    2. tflite-fp32 (litert, 2 threads): p90 0.558 ms, 1.48 MB gzip, fidelity 1.000" \
        in text
    assert "excluded: 3 by min fidelity" in text
    assert "nothing fits: every candidate exceeds max p90 200 ms" in format_pick(results[1])
    assert format_pick(results).count("\n\n") == 1


@needs_node
def test_markup_in_names_passes_through_untouched(df):
    result = pick(df, "host", model=EVIL)
    assert result["best"]["model"] == EVIL and result["model"] == EVIL


@needs_node
def test_the_script_matches_python_constants():
    script = (
        "const vm = require('node:vm'); const fs = require('node:fs');"
        f"vm.runInThisContext(fs.readFileSync({json.dumps(str(PICKER_JS))}, 'utf8'));"
        "const p = globalThis.edgePicker;"
        "console.log(JSON.stringify({h: p.HEADLINE_METRIC, d: p.DEFAULT_BUDGETS}));")
    out = json.loads(subprocess.run(["node", "-e", script], capture_output=True, text=True,
                                    check=True, timeout=30).stdout)
    assert out["h"] == HEADLINE_METRIC
    assert out["d"] == {"maxP90Ms": DEFAULT_BUDGETS["max_p90_ms"],
                        "maxSizeMb": DEFAULT_BUDGETS["max_size_mb"],
                        "maxMemoryMb": DEFAULT_BUDGETS["max_memory_mb"],
                        "minFidelity": DEFAULT_BUDGETS["min_fidelity"],
                        "maxColdMs": DEFAULT_BUDGETS["max_cold_ms"],
                        "accuracyPass": DEFAULT_BUDGETS["accuracy_pass"]}


# -- what the figures are worth -------------------------------------------------------------

V2 = FIXTURE.parent / "results-v2"
V2_RUN = "20270110-090000-5e1f"


@pytest.fixture(scope="module")
def v2() -> pd.DataFrame:
    from edge.report.table import load_run, tidy

    return tidy(load_run(V2, V2_RUN)[0])


@needs_node
def test_gpu_runtimes_are_never_recommended_on_an_emulated_device():
    frame = rows({"variant": "gpu", "runtime": "tfjs-webgl", "p90_ms": 1.0, "emulated": True},
                 {"variant": "gpu2", "runtime": "tfjs-webgpu", "p90_ms": 2.0, "emulated": True},
                 {"variant": "cpu", "runtime": "tfjs-wasm", "p90_ms": 50.0, "emulated": True})
    result = pick(frame, "d")
    assert result["best"]["variant"] == "cpu" and result["runnersUp"] == []
    assert (result["candidates"], result["gpuExcluded"]) == (1, 2)
    assert result["notes"][0] == ("2 GPU cells (tfjs-webgl, tfjs-webgpu) left out: on an "
                                  "emulated device the GPU is the host's, not the phone's")
    # only GPU cells: nothing to recommend, and the verdict says why
    alone = pick(frame.iloc[:2], "d")
    assert alone["best"] is None and alone["candidates"] == 0
    assert alone["verdict"] == "no successful measurement on d (2 ok on an emulated GPU)"
    # on the host a GPU cell is a candidate
    host = pick(frame.assign(emulated=False), "d")
    assert host["best"]["variant"] == "gpu" and host["gpuExcluded"] == 0


@needs_node
def test_software_rendering_on_the_host_is_labelled(v2):
    result = pick(v2[v2.runtime == "tfjs-webgl"], "host")
    assert result["verdict"].startswith("pick ")
    assert "tfjs-fp32 (tfjs-webgl, software rendering (host))" in result["verdict"]
    assert any(n.startswith("software rendering (host): ANGLE (Google, Vulkan")
               for n in result["notes"])
    assert "software rendering (host)" in format_pick(result).splitlines()[0]


@needs_node
def test_ties_within_noise_go_to_the_smaller_download_then_fidelity():
    base = {"runtime": "tfjs-wasm", "threads": 2}
    frame = rows({**base, "variant": "fp32", "p90_ms": 10.0, "tie_group": 1, "size_mb": 4.0,
                  "gzip_bytes": 4_000_000},
                 {**base, "variant": "fp16", "p90_ms": 10.2, "tie_group": 1, "size_mb": 2.0,
                  "gzip_bytes": 2_000_000, "fidelity": 0.99},
                 {**base, "variant": "uint8", "p90_ms": 10.4, "tie_group": 1, "size_mb": 2.0,
                  "gzip_bytes": 2_000_000, "fidelity": 1.0},
                 {**base, "variant": "slow", "p90_ms": 14.0, "tie_group": 2, "size_mb": 0.5,
                  "gzip_bytes": 500_000},
                 # the same tie group number in another runtime or thread count is no tie
                 {"runtime": "other", "threads": 2, "variant": "x", "p90_ms": 10.3,
                  "tie_group": 1, "size_mb": 0.1, "gzip_bytes": 100_000},
                 {**base, "threads": 4, "variant": "t4", "p90_ms": 10.1, "tie_group": 1,
                  "size_mb": 0.1, "gzip_bytes": 100_000})
    result = pick(frame, "d")
    assert result["best"]["variant"] == "uint8"  # as small as fp16, higher fidelity
    assert [r["variant"] for r in result["tied"]] == ["fp16", "fp32"]
    assert [r["variant"] for r in result["runnersUp"]] == ["t4", "x", "slow"]
    assert result["why"].startswith(
        "uint8 (r, 2 threads) ties within noise for the fastest of 6 candidates within budget "
        "on d (tied: fp16 (r, 2 threads), fp32 (r, 2 threads); among tied cells the smaller "
        "download, then the higher fidelity, wins): p90 10.4 ms".replace("(r,", "(tfjs-wasm,"))
    text = format_pick(result)
    assert "  tied within noise (the measurements cannot tell them apart):" in text
    assert "    = fp16 (tfjs-wasm, 2 threads): p90 10.2 ms, 2 MB gzip, fidelity 0.990" in text
    # without tie groups the same rows rank by p90 alone
    plain = pick(frame.drop(columns="tie_group"), "d")
    assert plain["best"]["variant"] == "fp32" and plain["tied"] == []


@needs_node
def test_litertjs_is_preferred_over_tfjs_tflite_when_they_tie_within_noise():
    base = {"threads": 2, "variant": "tflite-fp32"}
    frame = rows({**base, "runtime": "tflite-web", "p90_ms": 10.0, "ci_lo_ms": 9.5,
                  "ci_hi_ms": 10.2},
                 {**base, "runtime": "litertjs-wasm", "p90_ms": 10.6, "ci_lo_ms": 10.1,
                  "ci_hi_ms": 10.9},
                 {**base, "runtime": "tfjs-wasm", "p90_ms": 10.3, "ci_lo_ms": 9.9,
                  "ci_hi_ms": 10.5})
    result = pick(frame, "d")
    assert picked(result) == ("tflite-fp32", "litertjs-wasm")
    assert [r["runtime"] for r in result["tied"]] == ["tflite-web"]
    assert result["preferred"] == {
        "runtime": "litertjs-wasm", "over": "tflite-web",
        "why": "tflite-fp32 (litertjs-wasm, 2 threads) ties within noise with tflite-fp32 "
               "(tflite-web, 2 threads) (p50 95 % intervals 10.1\u201310.9 ms and "
               "9.5\u201310.2 ms overlap); between cells that tie, litertjs-wasm is preferred: "
               "tflite-web is its unmaintained predecessor"}
    assert result["why"].startswith(result["preferred"]["why"] + "; 3 candidates within")
    # separated intervals, another thread count or a budget miss: the fastest stays
    apart = frame.assign(ci_lo_ms=[9.5, 10.3, 9.9])
    assert picked(pick(apart, "d")) == ("tflite-fp32", "tflite-web")
    assert pick(apart, "d")["preferred"] is None
    other = frame.assign(threads=[2, 1, 2])
    assert picked(pick(other, "d")) == ("tflite-fp32", "tflite-web")
    assert picked(pick(frame, "d", max_p90_ms=10.5)) == ("tflite-fp32", "tflite-web")


@needs_node
def test_a_missing_p90_ranks_by_p50_and_says_so():
    frame = rows({"variant": "few", "p90_ms": None, "p50_ms": 3.0, "n_runs": 12},
                 {"variant": "many", "p90_ms": 4.0, "p50_ms": 3.5, "n_runs": 40},
                 {"variant": "slowfew", "p90_ms": None, "p50_ms": 30.0, "n_runs": 5})
    result = pick(frame, "d", max_p90_ms=10)
    assert result["best"]["variant"] == "few"
    assert "p50 3 ms (no p90: too few runs, 12) (max p90 10 ms)" in result["why"]
    assert result["excludedBy"] == {"maxP90Ms": 1,
                                    "accuracyPass": 0}  # the budget holds the p50 too
    assert [r["variant"] for r in result["runnersUp"]] == ["many"]
    assert "    3. slowfew (r): p50 30 ms (no p90: too few runs), 1 MB gzip, fidelity 1.000" \
        in format_pick(pick(frame, "d"))


@needs_node
def test_the_memory_budget_names_its_metric():
    frame = rows({"variant": "a", "p90_ms": 1.0, "memory_mb": 300.0,
                  "memory_metric": "renderer-peak-rss"},
                 {"variant": "b", "p90_ms": 2.0, "memory_mb": 100.0,
                  "memory_metric": "renderer-peak-rss"})
    result = pick(frame, "d", max_memory_mb=200)
    assert result["best"]["variant"] == "b"
    assert "memory 100 MB as renderer-peak-rss (max memory 200 MB)" in result["why"]


@needs_node
def test_emulated_figures_and_reference_points_are_explained():
    emu = {"emulated": True, "runtime": "tfjs-wasm", "threads": 2, "model": MB,
           "family": "mobilenet_v2", "emulation_method": "cgroup-v2", "target_slowdown": 5.0}
    frame = rows({**emu, "variant": "tfjs-fp32", "p90_ms": 40.0, "p50_ms": 38.0,
                  "achieved_slowdown": 4.952})
    refs = [{"phone": "d", "model": MB, "variant": "tfjs-fp32", "runtime": "tfjs-wasm",
             "threads": 2, "reference_ms": 30.0, "estimate_ms": 38.0, "ratio": 38.0 / 30.0,
             "method": "cgroup-v2", "source": "https://example.org/published", "note": None},
            {"phone": "other", "model": "mobilenet_v2", "variant": "tfjs-fp32",
             "runtime": "tfjs-wasm", "threads": None, "reference_ms": 1.0, "estimate_ms": None,
             "ratio": None, "note": "not measured in this run"}]
    result = pick(frame, "d", references=refs)
    assert result["notes"] == [
        "emulated estimate (cgroup-v2, achieved slowdown 4.95 vs target 5.00)",
        f"reference point (d {MB} tfjs-fp32 on tfjs-wasm): published 30 ms, emulated estimate "
        f"38 ms: emulation error \u00d71.27 (estimate / published) "
        f"[https://example.org/published]"]
    text = format_pick(result)
    assert "  note: emulated estimate (cgroup-v2, achieved slowdown 4.95 vs target 5.00)" in text
    assert "  note: reference point (d " in text
    # a reference point for the phone that was not measured: its error is unknown
    unmeasured = [dict(refs[1], phone="d")]
    notes = pick(frame, "d", references=unmeasured)["notes"]
    assert notes[1] == ("reference point (d mobilenet_v2 tfjs-fp32 on tfjs-wasm): published "
                        "1 ms; not measured in this run, so the emulation error is unknown")
    # no reference, off target, no method: said as such
    off = pick(frame.assign(off_target=True, emulation_method=None, achieved_slowdown=1.3), "d")
    assert off["notes"] == ["emulated estimate (emulation method not recorded, achieved "
                            "slowdown 1.30 vs target 5.00, off target)"]
    assert pick(frame.assign(emulated=False), "d")["notes"] == []


@needs_node
def test_the_second_fixture_picks(v2):
    phone = pick(v2, "pixel_5", **DEFAULTS, model="mobilenet_v2")
    assert picked(phone) == ("tfjs-uint8", "tfjs-wasm")  # the smallest of three tied
    assert [r["variant"] for r in phone["tied"]] == ["tfjs-fp16", "tfjs-fp32"]
    assert phone["gpuExcluded"] == 1 and phone["candidates"] == 3
    assert "emulated estimate (cgroup-v2, achieved slowdown 5.00 vs target 5.00)" in \
        phone["notes"]
    moto = pick(v2, "moto_g4", **DEFAULTS, model="mobilenet_v2")
    assert picked(moto) == ("tfjs-uint8", "tfjs-wasm")
    assert "p50 69.3 ms (no p90: too few runs, 12)" in moto["why"]
    assert moto["notes"] == ["emulated estimate (devtools-main-thread, achieved slowdown "
                             "unknown vs target 8.00)"]


def test_a_run_with_several_models_needs_a_model(df, v2):
    with pytest.raises(EdgeError, match=r"measured 4 models: choose one with --model") as err:
        require_model(df, None)
    assert MB in str(err.value) and EVIL in str(err.value)
    require_model(df, MB)
    require_model(df[df.model == MB], None)


@needs_node
def test_the_pick_command(capsys, monkeypatch):
    from edge.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_:
        main(["pick", "--reports-dir", str(V2), "--device", "pixel_5"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "this run measured 2 models: choose one with --model" in err
    assert "deeplab_v3:size=65,alpha=0.35,aspp_channels=16" in err

    with pytest.raises(SystemExit) as exit_:
        main(["pick", "--reports-dir", str(V2), "--device", "pixel_5", "--model",
              "mobilenet_v2", "--max-p90", "200"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "pixel_5 / mobilenet_v2: use tfjs-uint8 (tfjs-wasm, 2 threads)"
    assert "  note: emulated estimate (cgroup-v2, achieved slowdown 5.00 vs target 5.00)" in out
    assert "  note: 1 GPU cell (tfjs-webgl) left out" in out
    assert "    = tfjs-fp16 (tfjs-wasm, 2 threads)" in out


# -- compare --------------------------------------------------------------------------------

def frame(**cells: tuple) -> pd.DataFrame:
    """cell id -> (status, raw samples); p50/mean/std follow from the samples."""
    rows = []
    for cid, (status, samples) in cells.items():
        arr = np.asarray(samples, dtype=float)
        figures = ((float(np.median(arr)), float(arr.mean()), float(arr.std(ddof=1)))
                   if arr.size > 1 else (math.nan, math.nan, math.nan))
        rows.append({"cell_id": cid, "model": "m", "variant": cid, "runtime": "r",
                     "device": "d", "threads": None, "status": status, "p50_ms": figures[0],
                     "mean_ms": figures[1], "std_ms": figures[2], "samples": list(samples)})
    return pd.DataFrame(rows)


def spread(center: float, n: int = 30, step: float = 0.01) -> list[float]:
    """n evenly spaced samples from center: median center + step * (n - 1) / 2."""
    return [center + step * i for i in range(n)]


def test_compare_uses_the_rank_test_and_the_three_percent_floor():
    rng = np.random.default_rng(0)
    a = frame(slower=("ok", spread(10.0)), faster=("ok", spread(10.0)),
              noise=("ok", list(rng.normal(10.0, 1.0, 30))), small=("ok", spread(100.0, 200)),
              nosamples=("ok", spread(10.0)), broke=("ok", spread(10.0)),
              gone=("ok", spread(10.0)))
    b = frame(slower=("ok", spread(12.0)),   # +20 %, every B run slower than every A run
              faster=("ok", spread(8.0)),
              noise=("ok", list(rng.normal(10.0, 1.0, 30))),  # the same distribution
              small=("ok", spread(101.0, 200)),  # +1 %: p tiny, but within the 3 % target
              nosamples=("ok", []),
              broke=("failed", []),
              new=("ok", spread(5.0)))
    out = compare(a, b).set_index("cell_id")
    assert list(out.index) == ["slower", "faster", "noise", "small", "nosamples", "broke",
                               "gone", "new"]
    sig = out.significant.to_dict()
    assert sig == {"slower": True, "faster": True, "noise": False, "small": False,
                   "nosamples": False, "broke": False, "gone": False, "new": False}
    assert out.loc["slower", "ratio"] == pytest.approx(12.145 / 10.145)
    assert out.loc["slower", "delta_ms"] == pytest.approx(2.0)
    assert out.loc["slower", "rel_diff"] == pytest.approx(2.0 / 10.145)
    assert out.loc["slower", "p_value"] < 1e-6
    assert out.loc["slower", "note"] == "slower in B (median +2 ms (+19.7%), p < 0.0001, n 30/30)"
    assert out.loc["faster", "note"].startswith("faster in B (median -2 ms")
    assert out.loc["noise", "note"].startswith("within noise")
    assert out.loc["noise", "p_value"] > 0.01
    assert out.loc["small", "p_value"] < 1e-10 and out.loc["small", "rel_diff"] < 0.03
    assert out.loc["small", "note"].startswith("within noise (median +1 ms (+1.0%)")
    assert out.loc["nosamples", "note"] == "no raw samples in one run: not judged"
    assert (out.loc["nosamples", "n_a"], out.loc["nosamples", "n_b"]) == (30, 0)
    assert out.loc["broke", "note"] == "not comparable: ok in A, failed in B"
    assert out.presence.to_dict()["gone"] == "only A" and out.loc["gone", "note"] == \
        "only in A (ok)"
    assert out.loc["new", "presence"] == "only B" and math.isnan(out.loc["new", "p50_a"])
    assert pd.isna(out.loc["new", "n_a"]) and out.loc["new", "n_b"] == 30

    table = format_compare(compare(a, b))
    assert isinstance(table, Table) and table.row_count == 8


def test_compare_ignores_a_wide_spread_when_the_ranks_separate():
    """The old rule (|mean diff| > std_a + std_b) calls this noise: one 200 ms outlier in each
    run makes both standard deviations huge. The ranks still separate the runs."""
    a = frame(c=("ok", [*spread(10.0), 200.0]))
    b = frame(c=("ok", [*spread(12.0), 200.0]))
    row = compare(a, b).set_index("cell_id").loc["c"]
    assert abs(row["mean_b"] - row["mean_a"]) < row["std_a"] + row["std_b"]
    assert bool(row["significant"]) and row["note"].startswith("slower in B")


def test_compare_a_run_with_itself_finds_nothing(df):
    out = compare(df, df)
    assert len(out) == len(df) and set(out.presence) == {"both"}
    assert not out.significant.any()
    ok = out[(out.status_a == "ok")]
    assert (ok.ratio == 1.0).all()
    assert (ok.n_a > 0).all() and (ok.p_value == 1.0).all() and (ok.delta_ms == 0.0).all()


@needs_node
def test_a_variant_that_fails_its_accuracy_verdict_is_not_recommended_by_default():
    frame = rows({"variant": "int8", "p90_ms": 2.0, "accuracy_verdict": "fail",
                  "host_accuracy": 0.28, "accuracy_metric": "top1"},
                 {"variant": "fp32", "p90_ms": 4.0, "accuracy_verdict": "pass"},
                 {"variant": "unlabelled", "p90_ms": 5.0})  # no verdict: nothing to fail
    result = pick(frame, "d", **DEFAULTS)
    assert result["best"]["variant"] == "fp32"
    assert result["excludedBy"]["accuracyPass"] == 1
    assert "accuracy pass (accuracy verdict must pass)" in result["why"]
    relaxed = pick(frame, "d", **DEFAULTS, accuracy_pass=False)
    assert relaxed["best"]["variant"] == "int8"
    assert "accuracyPass" not in relaxed["excludedBy"]
    only = pick(frame[frame.variant == "int8"], "d", **DEFAULTS)
    assert only["best"] is None and only["binding"] == "accuracyPass"
    assert "fails its accuracy verdict" in only["verdict"]


@needs_node
def test_estimates_whose_intervals_overlap_tie_and_the_pick_says_what_to_measure():
    est = {"estimated": True, "device": "pixel_5", "evidence": "published", "factor": 5.0,
           "factor_lo": 4.0, "factor_hi": 6.25}
    frame = rows({**est, "variant": "a", "p50_ms": 10.0, "p90_ms": 11.0, "ci_lo_ms": 8.0,
                  "ci_hi_ms": 12.5, "size_mb": 2.0, "gzip_bytes": 2_000_000},
                 {**est, "variant": "b", "p50_ms": 11.0, "p90_ms": 12.0, "ci_lo_ms": 8.8,
                  "ci_hi_ms": 13.8, "size_mb": 1.0, "gzip_bytes": 1_000_000},
                 {**est, "variant": "c", "p50_ms": 30.0, "p90_ms": 33.0, "ci_lo_ms": 24.0,
                  "ci_hi_ms": 37.5})
    result = pick(frame, "pixel_5", **DEFAULTS)
    # a and b overlap: the smaller download wins the tie; c is apart
    assert result["best"]["variant"] == "b"
    assert [r["variant"] for r in result["tied"]] == ["a"]
    assert [r["variant"] for r in result["runnersUp"]] == ["c"]
    assert "not resolvable without the device" in result["why"]
    assert result["settle"].startswith("measure b (r) and a (r) on a real pixel_5")
    assert any(n.startswith("estimate (published)") for n in result["notes"])
    text = format_pick(result)
    assert "[estimated]" in text.splitlines()[0] and "to settle it: measure" in text
