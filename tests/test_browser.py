"""Real Chromium through Playwright: each backend and tfjs-tflite on tiny models.

The harness must prove which backend ran, return timed runs and outputs that match the float32
reference, and turn an impossible combination into an `unsupported` record.
"""

from __future__ import annotations

import os

import pytest

from edge.convert.cache import Store
from edge.farm.bench import Bench, _run_browser_cells, artifacts_for, verify_artifact
from edge.farm.devices import load_catalog
from edge.farm.matrix import Cell, Matrix
from edge.farm.protocol import Protocol
from edge.results.store import ResultStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PROTOCOL = Protocol(warmup=1, min_runs=3, min_seconds=0.1, max_runs=10, timeout_s=90)


@pytest.fixture(scope="module")
def measured(tiny_garden, tmp_path_factory):
    """Measure a handful of browser cells once; returns records by cell id."""
    from rich.console import Console

    build_dir = tiny_garden["build_dir"]
    store = Store(build_dir)
    artifacts = artifacts_for(tiny_garden["targets"], store)
    slug = {t.source: t.slug for t in tiny_garden["targets"]}
    cells = [
        Cell(slug["mobilenet_v2"], "tfjs-fp32", "tfjs-wasm", "host"),
        Cell(slug["mobilenet_v2"], "tfjs-uint8", "tfjs-webgl", "host"),
        Cell(slug["mobilenet_v2"], "tfjs-fp16", "tfjs-webgpu", "host"),
        Cell(slug["mobilenet_v2"], "tflite-fp32", "tflite-web", "host"),
        Cell(slug["mobilenet_v2"], "tflite-int8-full", "tflite-web", "host"),
        Cell(slug["mobilenet_v2"], "tflite-int8-dynamic", "tflite-web", "host"),
        Cell(slug["psenet"], "tfjs-fp32", "tfjs-wasm", "moto_g4"),
        Cell(slug["deeplab_v3"], "tfjs-fp32", "tfjs-wasm", "pixel_7"),
    ]
    run_dir = tmp_path_factory.mktemp("reports") / "run"
    results = ResultStore(run_dir)
    matrix = Matrix(path=build_dir / "m.toml", models=[], variants=[], build_dir=build_dir)
    catalog = load_catalog()
    bench = Bench(matrix, artifacts, store, results, "test-run", PROTOCOL, catalog, {},
                  Console(quiet=True))
    records = []

    def checked(cell):
        artifact = artifacts[(cell.model, cell.variant)]
        assert verify_artifact(artifact) is None
        return artifact

    _run_browser_cells(bench, cells, checked, records.append, catalog, store)
    return {r["runtime"] + "|" + r["variant"] + "|" + r["device"]: r for r in records}


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
    assert PROTOCOL.min_runs <= lat["n"] <= PROTOCOL.max_runs
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["max"]
    assert m["load_ms"] > 0 and m["first_inference_ms"] > 0
    assert m["memory"]["leakedTensors"] == 0
    assert m["memory"].get("renderer_rss", 0) > 0
    # outputs came back from the page and match the float32 reference
    fid = m["fidelity"]
    assert fid["images"] > 0
    if rec["quantization"] in ("none", "fp32"):
        assert fid["status"] == "pass", fid["reasons"]
    assert rec["emulated"] is False


def test_page_is_cross_origin_isolated_with_wasm_threads(measured):
    facts = measured["tfjs-wasm|tfjs-fp32|host"]["metrics"]["backend"]
    assert facts["crossOriginIsolated"] is True
    assert facts["wasm"]["simd"] is True
    assert 1 <= facts["wasm"]["threadsUsed"] <= (os.cpu_count() or 1)


def test_software_rendering_is_visible(measured):
    facts = measured["tfjs-webgl|tfjs-uint8|host"]["metrics"]["backend"]
    assert facts["webgl"]["version"] == 2
    assert "SwiftShader" in facts["webgl"]["renderer"]


def test_dynamic_range_classifier_is_unsupported_in_tfjs_tflite(measured):
    rec = measured["tflite-web|tflite-int8-dynamic|host"]
    assert rec["status"] == "unsupported"
    assert "FULLY_CONNECTED" in rec["error"]


def test_emulated_phone_is_throttled_and_labelled(measured):
    rec = measured["tfjs-wasm|tfjs-fp32|moto_g4"]
    assert rec["status"] == "ok", rec["error"]
    assert rec["emulated"] is True
    cal = rec["calibration"]
    assert cal["target_index"] == 400 and cal["host_index"] > 0
    assert cal["factor"] >= 1.0 and (cal["factor"] > 1.0 or cal["warning"])
    assert rec["download_s_estimated"] > 0 and rec["network"] == "slow-4g"
    # PSE ran in plain JS on the page and was timed apart from inference
    pse = rec["metrics"]["pse"]
    assert pse is not None and pse["ms"] >= 0 and pse["boxes"] >= 0


def test_segmentation_in_the_browser_matches_reference(measured):
    rec = measured["tfjs-wasm|tfjs-fp32|pixel_7"]
    assert rec["status"] == "ok", rec["error"]
    assert rec["metrics"]["fidelity"]["figures"]["pixel_agreement"] > 0.99
