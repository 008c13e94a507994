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
failed).
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
    assert result["excludedBy"] == {"maxP90Ms": 0, "maxSizeMb": 0, "minFidelity": 3}
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
    assert picked(on_phone) == ("tfjs-uint8", "tfjs-wasm")
    assert picked(pick(df, "moto_g4", max_p90_ms=500, model="mobilenet_v2")) == \
        ("tfjs-fp32", "tfjs-wasm")


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
    assert result["excludedBy"] == {"minFidelity": 1}


@needs_node
def test_unknown_fidelity_fails_a_min_fidelity_budget(df):
    browser = df[(df.model == MB) & df.runtime.isin(["tflite-web", "tfjs-wasm"])]
    # no fidelity budget: the fastest browser cell wins although its fidelity is unknown
    assert picked(pick(browser, "host")) == ("tflite-fp32", "tflite-web")
    # any fidelity budget, even 0, rules it out
    assert picked(pick(browser, "host", min_fidelity=0.0)) == ("tflite-int8-full", "tflite-web")
    strict = pick(browser, "host", min_fidelity=0.9)
    assert picked(strict) == ("tfjs-uint8", "tfjs-wasm")
    assert strict["excludedBy"] == {"minFidelity": 2}


@needs_node
def test_unknown_memory_passes_only_without_a_memory_budget():
    frame = rows({"variant": "unknown", "p90_ms": 1.0},
                 {"variant": "heavy", "p90_ms": 2.0, "memory_mb": 300.0},
                 {"variant": "light", "p90_ms": 3.0, "memory_mb": 100.0})
    assert pick(frame, "d")["best"]["variant"] == "unknown"
    result = pick(frame, "d", max_memory_mb=200)
    assert result["best"]["variant"] == "light"
    assert result["excludedBy"] == {"maxMemoryMb": 2}
    assert "memory 100 MB (max memory 200 MB)" in result["why"]


@needs_node
def test_nothing_fits_names_the_budget_that_rules_everything_out(df):
    phone = pick(df, "moto_g4", **DEFAULTS, model=MB)
    assert phone["best"] is None and phone["binding"] == "maxP90Ms"
    assert phone["verdict"] == "every candidate exceeds max p90 200 ms (fastest on moto_g4: 406 ms)"
    assert phone["excludedBy"] == {"maxP90Ms": 2, "maxSizeMb": 0, "minFidelity": 0}

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
    assert result["excludedBy"] == {"maxP90Ms": 3, "maxSizeMb": 3, "minFidelity": 2}
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
                        "minFidelity": DEFAULT_BUDGETS["min_fidelity"]}


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
