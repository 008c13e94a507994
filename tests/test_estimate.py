"""Phone estimates from evidence (edge/estimate.py): factors, their levels and bands, and the
estimated rows the report and the picker rank."""

from __future__ import annotations

import math

import pytest

from edge.estimate import (
    INDEX_BAND,
    MIN_BAND,
    EstimateError,
    Estimator,
    Evidence,
    Phone,
    catalog_phones,
    estimate_rows,
    load_calibrations,
    make_estimator,
    write_calibrations,
)
from edge.reference_points import load_reference_points

NET = {"download_kbps": 8000.0, "latency_ms": 100.0}


def phone(name, index):
    return Phone(name, name.title(), index, NET, 4.0, 8)


def ev(phone_name, precision, ratio, model="mobilenet_v2", kind="native", level="published"):
    variant = {"float": "tflite-fp32", "int8": "tflite-int8-full"}[precision]
    runtime = "litert" if kind == "native" else "litertjs-wasm"
    return Evidence(phone_name, kind, f"{precision}@mt", model, variant, runtime, 4, 2,
                    10.0 * ratio, 10.0, level, f"{phone_name}-{model}-{precision}")


def host_row(variant, p50, runtime="litert"):
    return {"device": "host", "status": "ok", "model": "mobilenet_v2", "family": "mobilenet_v2",
            "variant": variant, "runtime": runtime, "threads": 2, "cell_id": f"c-{variant}",
            "p50_ms": p50, "p90_ms": p50 * 1.05, "ci_lo_ms": p50 * 0.98,
            "ci_hi_ms": p50 * 1.02, "load_ms": 50.0, "first_ms": 2 * p50,
            "gzip_bytes": 3e6 if variant == "tflite-fp32" else 1e6}


def test_a_factor_without_evidence_is_the_index_ratio_with_the_widest_band():
    est = Estimator([], {"slow": phone("slow", 500.0)}, host_index=2000.0)
    f = est.factor("slow", "native", "float@mt")
    assert f.level == "index"
    assert f.value == pytest.approx(4.0)
    assert f.band == pytest.approx(INDEX_BAND)
    assert f.lo == pytest.approx(1.0) and f.hi == pytest.approx(16.0)
    assert "index" in f.note


def test_no_index_and_no_evidence_gives_no_factor():
    est = Estimator([], {"slow": phone("slow", 500.0)}, host_index=None)
    f = est.factor("slow", "native", "float@mt")
    assert f.level == "none" and math.isnan(f.value)
    assert "not measured" in f.note


def test_published_points_set_the_factor_and_the_band_is_never_below_one_factors_error():
    evidence = [ev("p3", "float", 5.0), ev("p3", "float", 5.1, model="efficientnet_lite0")]
    est = Estimator(evidence, {"p3": phone("p3", 650.0)}, host_index=2000.0)
    f = est.factor("p3", "native", "float@mt")
    assert f.level == "published" and f.n == 2
    assert f.value == pytest.approx(math.sqrt(5.0 * 5.1))
    assert f.band == pytest.approx(MIN_BAND)  # the two agree closely: the floor holds


def test_the_band_widens_with_the_evidence_spread():
    evidence = [ev("p3", "float", 2.0), ev("p3", "float", 8.0, model="efficientnet_lite0")]
    f = Estimator(evidence, {"p3": phone("p3", 650.0)}, 2000.0).factor("p3", "native", "float@mt")
    assert f.band == pytest.approx(math.log(4.0))  # each predicted from the other: 4x off


def test_device_calibration_outranks_published_figures():
    evidence = [ev("p3", "float", 5.0), ev("p3", "float", 3.0, level="device")]
    f = Estimator(evidence, {"p3": phone("p3", 650.0)}, 2000.0).factor("p3", "native", "float@mt")
    assert f.level == "device" and f.value == pytest.approx(3.0)


def test_a_phones_ranking_differs_from_the_hosts_where_its_evidence_says_so():
    # The host runs int8 2.3x faster than float32 (VNNI). Phone A publishes both precisions:
    # its int8 pays off far less (1.2x). Phone B publishes float32 only: its int8 factor borrows
    # A's precision effect.
    evidence = [ev("a", "float", 4.0), ev("a", "int8", 4.0 * 2.3 / 1.2),
                ev("b", "float", 6.0)]
    phones = [phone("a", 700.0), phone("b", 500.0)]
    est = Estimator(evidence, {p.name: p for p in phones}, 2000.0)
    rows = [host_row("tflite-fp32", 4.0), host_row("tflite-int8-full", 4.0 / 2.3),
            host_row("tflite-fp32", 15.0, runtime="litertjs-wasm")]
    out = estimate_rows(rows, est, phones)
    by = {(r["device"], r["variant"], r["runtime"]): r for r in out}
    a_fp32, a_int8 = by[("a", "tflite-fp32", "litert")], by[("a", "tflite-int8-full", "litert")]
    assert rows[1]["p50_ms"] < rows[0]["p50_ms"]  # the host ranks int8 first ...
    assert a_int8["p50_ms"] > 0.8 * a_fp32["p50_ms"]  # ... phone A barely gains from it
    assert a_int8["p50_ms"] / a_fp32["p50_ms"] == pytest.approx(1 / 1.2)
    assert a_fp32["evidence"] == "published" and a_int8["evidence"] == "published"
    b_int8 = by[("b", "tflite-int8-full", "litert")]
    assert b_int8["evidence"] == "published-precision"
    assert b_int8["factor"] == pytest.approx(6.0 * (4.0 * 2.3 / 1.2) / 4.0)
    # WASM: no published point on any phone: the index ratio, labelled, widest band
    wasm = by[("a", "tflite-fp32", "litertjs-wasm")]
    assert wasm["evidence"] == "index"
    assert wasm["factor_hi"] / wasm["factor"] == pytest.approx(4.0)
    # every estimate carries an interval around it and a cold start
    for r in out:
        assert r["ci_lo_ms"] < r["p50_ms"] < r["ci_hi_ms"]
        assert r["estimated"] is True and r["cold_ms"] > r["download_ms"] > 0


def test_index_scaled_uses_other_phones_and_leaves_the_phone_out_of_its_own_band():
    evidence = [ev("a", "float", 4.0), ev("b", "float", 8.0)]
    phones = {"a": phone("a", 1000.0), "b": phone("b", 500.0), "c": phone("c", 250.0)}
    est = Estimator(evidence, phones, 2000.0)
    f = est.factor("c", "native", "float@mt")
    assert f.level == "index-scaled"
    # index ratios a 2, b 4; published/index: a 2, b 2 -> c: 8 x 2
    assert f.value == pytest.approx(16.0)
    assert f.band == pytest.approx(MIN_BAND)  # a and b predict each other exactly


def test_calibrations_round_trip_and_errors_name_the_file(tmp_path):
    path = tmp_path / "cal.toml"
    entry = {"phone": "a", "model": "mobilenet_v2", "variant": "tflite-fp32",
             "runtime": "litert", "threads": 2, "host_threads": 2, "phone_ms": 30.0,
             "host_ms": 5.0, "date": "2026-12-07", "runtime_version": "2.3.0"}
    write_calibrations(path, [entry])
    write_calibrations(path, [{**entry, "phone_ms": 25.0}])  # replaces, not appends
    got = load_calibrations(path)
    assert len(got) == 1 and got[0]["phone_ms"] == 25.0
    bad = tmp_path / "bad.toml"
    bad.write_text('[[calibrations]]\nphone = "a"\n')
    with pytest.raises(EstimateError, match="bad.toml.*phone_ms|bad.toml.*model"):
        load_calibrations(bad)


def test_the_shipped_reference_points_pair_with_host_records():
    points = load_reference_points()
    records = []
    for variant, threads, p50 in [("tflite-fp32", 1, 7.0), ("tflite-int8-full", 1, 3.0),
                                  ("tflite-fp32", 2, 4.0), ("tflite-int8-full", 2, 1.7)]:
        records.append({"device": "host", "status": "ok", "model": "mobilenet_v2",
                        "variant": variant, "runtime": "litert", "threads": threads,
                        "metrics": {"latency": {"p50": p50}},
                        "host_benchmark": {"index": 2000.0}})
    est = make_estimator(records, points, catalog_phones())
    one = est.factor("pixel_2", "native", "float@1t")
    many = est.factor("pixel_2", "native", "float@mt")
    assert one.level == many.level == "published"
    # the XNNPACK figures (today's kernels) stand for the phone; the 2018/2020 TFLite ones
    # don't; one thread pairs with the host's one-thread cell, the big cores with its most
    assert one.sources == ("xnnpack-readme-mobilenet_v2-pixel_2-fp32-1t",)
    assert one.value == pytest.approx(53.0 / 7.0)
    assert many.sources == ("xnnpack-readme-mobilenet_v2-pixel_2-fp32-bigcores",)
    assert many.value == pytest.approx(18.0 / 4.0)
    moto = est.factor("moto_g4", "native", "int8@mt")
    assert moto.level == "index-scaled" and moto.band >= MIN_BAND
