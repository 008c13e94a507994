"""Real Chromium through Playwright: each backend and tfjs-tflite on tiny models.

The harness must prove which backend ran, return timed runs and outputs that match the float32
reference, and turn an impossible combination into an `unsupported` record.
"""

from __future__ import annotations

import os

import pytest

from edge.convert.cache import Store
from edge.convert.pipeline import artifacts_for
from edge.farm.cells import Bench, verify_artifact
from edge.farm.emulation.devices import load_catalog
from edge.farm.protocol.interleave import OVERTIME
from edge.farm.protocol.protocol import Protocol
from edge.farm.scheduling.matrix import Cell, Matrix
from edge.farm.scheduling.run import _run_cells, resolve_threads
from edge.results.store import ResultStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PROTOCOL = Protocol(warmup=1, max_warmup=10, min_runs=5, min_seconds=0.1, max_runs=25,
                    timeout_s=90)


def _measure(tiny_garden, tmp_path_factory, cells_of, emulation):
    from rich.console import Console

    build_dir = tiny_garden["build_dir"]
    store = Store(build_dir)
    artifacts = artifacts_for(tiny_garden["targets"], store)
    slug = {t.source: t.slug for t in tiny_garden["targets"]}
    cells = cells_of(slug)
    run_dir = tmp_path_factory.mktemp("reports") / "run"
    results = ResultStore(run_dir)
    matrix = Matrix(path=build_dir / "m.toml", models=[], variants=[], build_dir=build_dir)
    catalog = load_catalog()
    bench = Bench(matrix, artifacts, store, results, "test-run", PROTOCOL, catalog, {},
                  Console(quiet=True), emulation=emulation)
    records = []

    def checked(cell):
        artifact = artifacts[(cell.model, cell.variant)]
        assert verify_artifact(artifact) is None
        return artifact

    _run_cells(bench, resolve_threads(cells, catalog, emulation), checked, records.append,
               catalog, store)
    return {r["runtime"] + "|" + r["variant"] + "|" + r["device"]: r for r in records}


@pytest.fixture(scope="module")
def measured(tiny_garden, tmp_path_factory):
    """Measure a handful of browser cells once (host first, as a run orders them); returns
    records by runtime|variant|device."""
    from edge.farm.emulation.methods import choose_emulation

    def cells(slug):
        return [
            Cell(slug["mobilenet_v2"], "tfjs-fp32", "tfjs-wasm", "host"),
            Cell(slug["mobilenet_v2"], "tfjs-uint8", "tfjs-webgl", "host"),
            Cell(slug["mobilenet_v2"], "tfjs-fp16", "tfjs-webgpu", "host"),
            Cell(slug["mobilenet_v2"], "tflite-fp32", "tflite-web", "host"),
            Cell(slug["mobilenet_v2"], "tflite-int8-full", "tflite-web", "host"),
            Cell(slug["mobilenet_v2"], "tflite-int8-dynamic", "tflite-web", "host"),
            Cell(slug["psenet"], "tfjs-fp32", "tfjs-wasm", "host"),
            Cell(slug["psenet"], "tfjs-fp32", "tfjs-wasm", "moto_g4"),
            Cell(slug["mobilenet_v2"], "tfjs-uint8", "tfjs-webgl", "moto_g4"),
            Cell(slug["deeplab_v3"], "tfjs-fp32", "tfjs-wasm", "pixel_7"),
        ]

    emulation = choose_emulation()
    try:
        yield _measure(tiny_garden, tmp_path_factory, cells, emulation)
    finally:
        emulation.close()


@pytest.fixture(scope="module")
def fallback(tiny_garden, tmp_path_factory):
    """The same host/phone pair where bandwidth control is unavailable (forced): DevTools
    throttling of the main thread, single-threaded WASM."""
    from edge.farm.emulation.methods import DEVTOOLS, Emulation

    def cells(slug):
        return [Cell(slug["psenet"], "tfjs-fp32", "tfjs-wasm", "host"),
                Cell(slug["psenet"], "tfjs-fp32", "tfjs-wasm", "moto_g4")]

    emulation = Emulation(DEVTOOLS, None, "bandwidth control not writable (forced by the test)")
    return _measure(tiny_garden, tmp_path_factory, cells, emulation)


@pytest.mark.parametrize("key,backend", [
    ("tfjs-wasm|tfjs-fp32|host", "wasm"),
    ("tfjs-webgl|tfjs-uint8|host", "webgl"),
    ("tfjs-webgpu|tfjs-fp16|host", "webgpu"),
    ("tflite-web|tflite-fp32|host", "tflite-web"),
    ("tflite-web|tflite-int8-full|host", "tflite-web"),
])
def test_backend_runs_and_is_the_one_asked_for(measured, key, backend):
    rec = measured[key]
    assert rec["status"] == "ok", rec["error"]
    m = rec["metrics"]
    assert m["backend"]["name"] == backend
    lat = m["latency"]
    # a group runs past its caps (by OVERTIME) while a steered phone is still off target
    overtime = OVERTIME if (m.get("interleaved") or {}).get("overtime") else 1
    assert PROTOCOL.min_runs <= lat["n"] <= PROTOCOL.max_runs * overtime
    assert 0 < lat["min"] <= lat["ci95"][0] <= lat["p50"] <= lat["ci95"][1] <= lat["max"]
    assert lat["p90"] is None if lat["n"] < 20 else lat["p50"] <= lat["p90"] <= lat["max"]
    assert m["load_ms"] > 0 and m["first_inference_ms"] > 0
    assert m["memory"]["leakedTensors"] == 0
    # the renderer's RSS sampled during the timed runs
    assert m["memory"]["peak_rss_bytes"] > 0 and m["memory"]["rss_samples"] >= 1
    assert m["memory"]["memory_metric"] == "renderer-peak-rss"
    assert "load" in rec and rec["load"]["wall_s"] > 0
    # outputs came back from the page and match the float32 reference
    fid = m["fidelity"]
    assert fid["images"] > 0
    if rec["quantization"] in ("none", "fp32"):
        assert fid["status"] == "pass", fid["reasons"]
    assert rec["emulated"] is False


def test_page_is_cross_origin_isolated_with_wasm_threads(measured):
    rec = measured["tfjs-wasm|tfjs-fp32|host"]
    facts = rec["metrics"]["backend"]
    assert facts["crossOriginIsolated"] is True
    assert facts["wasm"]["simd"] is True
    # The thread count the runtime reports (tf.wasm.getThreadsCount) is the cell's: the host
    # and the phones compared with it run min(phone cores, host cores) threads.
    assert facts["wasm"]["threadsUsedReported"] is True
    assert facts["wasm"]["threadsUsed"] == rec["threads"]
    assert 1 <= rec["threads"] <= (os.cpu_count() or 1)


def test_software_rendering_is_visible(measured):
    rec = measured["tfjs-webgl|tfjs-uint8|host"]
    facts = rec["metrics"]["backend"]
    assert facts["webgl"]["version"] == 2
    assert "SwiftShader" in facts["webgl"]["renderer"]
    assert rec["gpu"] == {"renderer": facts["webgl"]["renderer"], "software": True}


def test_no_gpu_estimate_for_an_emulated_phone(measured):
    rec = measured["tfjs-webgl|tfjs-uint8|moto_g4"]
    assert rec["status"] == "unsupported"
    assert rec["error"].startswith("GPU backends are not emulated")
    assert rec["known_issue"]["runtime"] == "*-webg*"
    assert "latency" not in (rec.get("metrics") or {})


def test_dynamic_range_classifier_is_unsupported_in_tfjs_tflite(measured):
    rec = measured["tflite-web|tflite-int8-dynamic|host"]
    assert rec["status"] == "unsupported"
    assert "FULLY_CONNECTED" in rec["error"]
    assert "FULLY_CONNECTED" in rec["known_issue"]["signature"]


def test_emulated_phone_is_throttled_and_labelled(measured):
    rec = measured["tfjs-wasm|tfjs-fp32|moto_g4"]
    host = measured["tfjs-wasm|tfjs-fp32|host"]
    assert rec["status"] == "ok", rec["error"]
    assert rec["emulated"] is True and rec["threads"] == host["threads"]
    cal = rec["calibration"]
    assert cal["target_index"] == 400 and cal["host_index"] > 0
    assert cal["factor"] >= 1.0 and (cal["factor"] > 1.0 or cal["warning"])
    emu = rec["emulation"]
    assert emu["method"] in ("cgroup-v1", "cgroup-v2", "devtools-main-thread")
    assert emu["target_slowdown"] == pytest.approx(cal["factor"], rel=1e-3)
    assert emu["threads"] == rec["threads"]
    # The throttle is proven by a slower run of the same cell at the same threads.
    achieved = rec["metrics"]["latency"]["p50"] / host["metrics"]["latency"]["p50"]
    assert emu["achieved_vs_host"] == pytest.approx(achieved, rel=1e-3)
    # ... and by the cell's own paired blocks: throttled slower than unthrottled, same page.
    paired = emu["paired"]
    assert paired["throttled_ms"] > paired["unthrottled_ms"]
    assert emu["achieved_slowdown"] == paired["ratio"]
    if emu["target_slowdown"] > 2:
        assert achieved > 1.5 and paired["ratio"] > 1.5, emu
    assert rec["download_s_estimated"] > 0 and rec["network"] == "slow-4g"
    # PSE ran in plain JS on the page and was timed apart from inference
    pse = rec["metrics"]["pse"]
    assert pse is not None and pse["ms"] >= 0 and pse["boxes"] >= 0


def test_fallback_emulation_runs_and_is_labelled(fallback):
    host = fallback["tfjs-wasm|tfjs-fp32|host"]
    rec = fallback["tfjs-wasm|tfjs-fp32|moto_g4"]
    assert host["status"] == rec["status"] == "ok", (host["error"], rec["error"])
    # DevTools throttling reaches the main thread only: one WASM thread, on both sides.
    assert rec["threads"] == host["threads"] == 1
    assert rec["metrics"]["backend"]["wasm"]["threadsUsed"] == 1
    emu = rec["emulation"]
    assert emu["method"] == "devtools-main-thread" and emu["threads"] == 1
    assert "forced by the test" in emu["note"]
    assert rec["metrics"]["page"]["cpu_throttling_rate"] == pytest.approx(emu["target_slowdown"])
    if emu["target_slowdown"] > 2:
        assert emu["achieved_slowdown"] > 1.5, emu


def test_segmentation_in_the_browser_matches_reference(measured):
    rec = measured["tfjs-wasm|tfjs-fp32|pixel_7"]
    assert rec["status"] == "ok", rec["error"]
    assert rec["metrics"]["fidelity"]["figures"]["pixel_agreement"] > 0.99
