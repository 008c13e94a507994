"""The tidy table of a run: columns and types, failures, headline fidelity, Parquet/CSV, damage,
the quality columns (interval, tie group, emulation, load, GPU) and the memory metric.

Runs on the committed fixtures: tests/fixtures/results/<run>/ (real records of a tiny run, from
before the quality fields, see its README) and tests/fixtures/results-v2/<run>/ (hand-made
records with every field); no TensorFlow, no browser.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from edge.errors import EdgeError
from edge.report.table import (
    COLUMNS,
    FLAG_COLUMNS,
    TEXT_COLUMNS,
    load_run,
    memory_figure,
    tidy,
    write_tidy,
)
from edge.results import DamagedRecordWarning

FIXTURE = Path(__file__).parent / "fixtures" / "results"
RUN = "20261129-102929-9e7c"
V2 = Path(__file__).parent / "fixtures" / "results-v2"
V2_RUN = "20270110-090000-5e1f"
MB = "mobilenet_v2:size=64,alpha=0.35,classes=6"
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def df(fixture_cells) -> pd.DataFrame:
    return fixture_cells


def cell(df: pd.DataFrame, variant: str, runtime: str, device: str, model: str = MB) -> dict:
    rows = df[(df.model == model) & (df.variant == variant) & (df.runtime == runtime)
              & (df.device == device)]
    assert len(rows) == 1, (model, variant, runtime, device)
    return rows.iloc[0].to_dict()


# -- loading --------------------------------------------------------------------------------

def test_load_run_skips_the_damaged_last_line_with_a_warning():
    with pytest.warns(DamagedRecordWarning, match=r"results\.jsonl:18: .*truncated last line"):
        records, meta = load_run(FIXTURE, RUN)
    assert len(records) == 17
    assert meta is not None and meta["run_id"] == RUN and meta["cells"] == 18
    assert {r["run_id"] for r in records} == {RUN}


def test_load_run_defaults_to_the_latest_run():
    with pytest.warns(DamagedRecordWarning):
        records, meta = load_run(FIXTURE)
    assert meta["run_id"] == RUN and len(records) == 17


def test_load_run_names_the_runs_when_the_run_is_unknown(tmp_path):
    with pytest.raises(EdgeError, match=rf"no run 'nope' .*runs there: {RUN}"):
        load_run(FIXTURE, "nope")
    assert not (FIXTURE / "nope").exists()  # looking does not create a run directory
    with pytest.raises(EdgeError, match="no runs in"):
        load_run(tmp_path)


# -- tidy -----------------------------------------------------------------------------------

def test_one_row_per_cell_with_the_documented_columns_and_types(df):
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 17 and df.cell_id.is_unique
    for col in ("threads", "bytes", "gzip_bytes", "n_runs", "tie_group"):
        assert str(df[col].dtype) == "Int64", col
    for col in ("emulated", "wide"):
        assert df[col].dtype == bool, col
    for col in ("steady", "off_target", "busy", "gpu_software"):
        assert str(df[col].dtype) == "boolean", col
    for col in ("size_mb", "load_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
                "std_ms", "ci_lo_ms", "ci_hi_ms", "ci_rel", "memory_mb", "tf_peak_mb",
                "fidelity", "download_s", "cpu_factor", "target_slowdown",
                "achieved_slowdown", "other_cores"):
        assert df[col].dtype == "float64", col
    assert set(df.device) == {"host", "moto_g4"}
    assert set(df.status) == {"ok", "failed", "unsupported"}
    assert set(df.family) == {"mobilenet_v2", "deeplab_v3", "psenet", EVIL}
    assert all(isinstance(s, list) for s in df.samples)


def test_browser_cell_figures(df):
    r = cell(df, "tfjs-uint8", "tfjs-wasm", "moto_g4")
    assert r["cell_id"] == f"{MB}|tfjs-uint8|tfjs-wasm|moto_g4"
    assert (r["format"], r["quantization"], r["task"]) == ("tfjs", "uint8", "classification")
    assert r["emulated"] and r["device_label"] == "Low-end Android (Moto G4 class)"
    assert pd.isna(r["threads"])
    assert r["gzip_bytes"] == 398724 and r["size_mb"] == pytest.approx(0.398724)
    assert r["first_ms"] == pytest.approx(631.7949999999255)  # first_inference_ms
    assert r["p50_ms"] == pytest.approx(345.8149999999441)
    assert r["p90_ms"] == pytest.approx(424.1790000000037)
    assert r["n_runs"] == 3 and r["wide"]
    assert r["samples"] == [345.815, 293.935, 443.77]
    # an old record: the renderer's RSS after the runs (never its USS, 83.1 MB)
    assert r["memory_mb"] == pytest.approx(217.858048)
    assert r["memory_metric"] == "renderer-rss-after-run"
    assert r["tf_peak_mb"] == pytest.approx(1.892424)  # tfProfilePeakBytes, not tfPeakBytes
    assert r["cpu_factor"] == pytest.approx(3.7575) and r["download_s"] == pytest.approx(2.726)
    assert r["backend"] == "wasm"
    assert r["fidelity_status"] == "warn"


def test_native_cell_figures(df):
    r = cell(df, "tflite-fp32", "litert", "host")
    assert r["threads"] == 2 and not r["emulated"]
    assert r["first_ms"] == pytest.approx(1.922242)  # first_invoke_ms
    assert r["memory_mb"] == pytest.approx(145.248256)  # peak_rss_bytes (VmHWM)
    assert r["memory_metric"] == "worker-peak-rss"
    assert math.isnan(r["tf_peak_mb"]) and math.isnan(r["cpu_factor"])
    assert r["backend"] is None
    assert len(r["samples"]) == 12  # trimmed in the fixture; n_runs is the real count
    assert r["n_runs"] == 20


def test_failures_keep_their_error_and_have_no_timings(df):
    failed = cell(df, "tfjs-fp32", "tfjs-webgl", "moto_g4")
    assert failed["status"] == "failed"
    assert failed["error"] == "browser: Target page, context or browser has been closed"
    for col in ("p50_ms", "p90_ms", "mean_ms", "load_ms", "first_ms", "memory_mb", "fidelity"):
        assert math.isnan(failed[col]), col
    assert failed["samples"] == [] and not failed["wide"] and pd.isna(failed["n_runs"])
    assert failed["size_mb"] == pytest.approx(1.485298)  # the artifact is still known

    native = cell(df, "tflite-int8-dynamic", "tflite-runtime", "host")
    assert native["status"] == "unsupported"
    assert native["error"].startswith("ValueError: Didn't find op for builtin opcode "
                                      "'FULLY_CONNECTED' version '12'")
    assert native["memory_mb"] == pytest.approx(73.56416)  # measured before it failed

    web = cell(df, "tflite-int8-dynamic", "tflite-web", "host")
    assert web["status"] == "unsupported"
    assert web["error"].startswith("Failed to create TFLiteWebModelRunner")
    assert math.isnan(web["load_ms"]) and web["backend"] == "tflite-web"
    assert df[df.status == "ok"].error.isna().all()


def test_fidelity_is_the_headline_figure_of_the_task(df):
    # classification: top1_agreement (0.5), not top5_agreement (1.0)
    assert cell(df, "tflite-int8-full", "litert", "host")["fidelity"] == 0.5
    # segmentation: mean_iou, not pixel_agreement (0.99959)
    seg = cell(df, "tfjs-fp32", "tfjs-wasm", "moto_g4",
               model="deeplab_v3:size=65,alpha=0.35,aspp_channels=16")
    assert seg["task"] == "segmentation"
    assert seg["fidelity"] == pytest.approx(0.9989452278311843)
    # text detection: kernel_iou, not box_f1 (0.421)
    text = cell(df, "tfjs-uint8", "tfjs-wasm", "moto_g4",
                model="psenet:kernels=3,size=64,alpha=0.35,fpn_channels=8")
    assert text["task"] == "text_detection"
    assert text["fidelity"] == pytest.approx(0.5691812575113966)
    assert text["fidelity_status"] == "fail"
    # a fidelity check that crashed: status kept, no figure
    crashed = cell(df, "tflite-fp32", "tflite-web", "host")
    assert crashed["fidelity_status"] == "error" and math.isnan(crashed["fidelity"])


def test_old_records_leave_the_new_columns_empty(df):
    for col in ("ci_lo_ms", "ci_hi_ms", "ci_rel", "target_slowdown", "achieved_slowdown",
                "other_cores"):
        assert df[col].isna().all(), col
    for col in FLAG_COLUMNS:
        assert df[col].isna().all(), col
    assert df.emulation_method.isna().all() and df.gpu_renderer.isna().all()
    # tie groups need only samples: every ok cell with samples has one
    ok = df[(df.status == "ok") & (df.samples.map(len) > 0)]
    assert ok.tie_group.notna().all() and (ok.tie_group >= 1).all()
    assert df[df.status != "ok"].tie_group.isna().all()
    # a cell alone in its model, runtime, device and threads is the fastest of its group
    assert cell(df, "tflite-fp32", "tflite-runtime", "host")["tie_group"] == 1


# -- the quality columns ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def v2() -> pd.DataFrame:
    return tidy(load_run(V2, V2_RUN)[0])


def test_new_fields_become_columns(v2):
    r = cell(v2, "tfjs-fp16", "tfjs-wasm", "pixel_5")
    assert (r["ci_lo_ms"], r["ci_hi_ms"]) == (pytest.approx(39.909), pytest.approx(40.9071))
    assert r["ci_rel"] == pytest.approx((40.9071 - 39.909) / 2 / r["p50_ms"])
    assert r["steady"] is False
    assert r["emulation_method"] == "cgroup-v2"
    assert r["target_slowdown"] == 5.0 and r["achieved_slowdown"] == pytest.approx(5.0281)
    assert r["off_target"] is False
    assert r["busy"] is True and r["other_cores"] == pytest.approx(0.62)
    assert r["memory_metric"] == "renderer-peak-rss"
    assert r["memory_mb"] == pytest.approx(287.000168)
    assert r["tf_peak_mb"] == pytest.approx(1.892424)
    assert pd.isna(r["gpu_software"]) and r["gpu_renderer"] is None  # not a GPU runtime

    gpu = cell(v2, "tfjs-fp32", "tfjs-webgl", "pixel_5")
    assert gpu["gpu_software"] is True and "SwiftShader" in gpu["gpu_renderer"]
    assert gpu["off_target"] is True

    native = v2[v2.runtime == "litert"].iloc[0]
    assert native.memory_metric == "worker-peak-rss" and native.memory_mb == \
        pytest.approx(151.257088)
    host = cell(v2, "tfjs-fp32", "tfjs-wasm", "host")
    assert host["emulation_method"] is None and math.isnan(host["target_slowdown"])
    assert host["busy"] is False


def test_p90_is_null_with_too_few_runs(v2):
    few = cell(v2, "tfjs-uint8", "tfjs-wasm", "moto_g4")
    assert few["n_runs"] == 12 and math.isnan(few["p90_ms"]) and few["p50_ms"] > 0
    assert few["emulation_method"] == "devtools-main-thread"
    assert math.isnan(few["achieved_slowdown"])  # no host cell with one thread


def test_tie_groups_per_model_runtime_device_and_threads(v2):
    ok = v2[v2.status == "ok"]
    # the weight-only variants are one group on the host and on pixel_5
    for device in ("host", "pixel_5"):
        wasm = ok[(ok.device == device) & (ok.runtime == "tfjs-wasm") & (ok.model == MB)]
        assert len(wasm) == 3 and set(wasm.tie_group) == {1}, device
    assert pd.isna(cell(v2, "tfjs-fp32", "tfjs-wasm", "moto_g4")["tie_group"])  # timed out


def test_tie_groups_split_distinct_cells():
    def record(variant, center):
        samples = [center + 0.01 * i for i in range(30)]
        return {"cell_id": variant, "model": "m", "variant": variant, "runtime": "r",
                "device": "d", "status": "ok", "metrics": {"latency": {"samples": samples}}}

    out = tidy([record("slow", 20.0), record("fast", 10.0), record("fast-too", 10.02),
                record("other", 5.0) | {"runtime": "r2"}])
    assert dict(zip(out.variant, out.tie_group, strict=True)) == {
        "slow": 2, "fast": 1, "fast-too": 1, "other": 1}


def test_memory_never_mixes_measures():
    rss_only = {"metrics": {"memory": {"renderer_uss": 50e6, "renderer_rss": 120e6}}}
    assert memory_figure(rss_only) == (120e6, "renderer-rss-after-run")
    uss_only = {"metrics": {"memory": {"renderer_uss": 50e6}}}
    value, metric = memory_figure(uss_only)
    assert math.isnan(value) and metric is None
    peak = {"runtime": "tfjs-wasm", "metrics": {"memory": {"peak_rss_bytes": 200e6,
                                                           "renderer_rss": 120e6}}}
    assert memory_figure(peak) == (200e6, "renderer-peak-rss")  # named by the runtime
    native = {"runtime": "litert", "metrics": {"memory": {"peak_rss_bytes": 90e6}}}
    assert memory_figure(native) == (90e6, "worker-peak-rss")


def test_markup_in_a_model_name_is_kept_verbatim(df):
    r = df[df.family == EVIL].iloc[0]
    assert r.model == EVIL and r.cell_id.startswith(EVIL + "|")


def test_tidy_tolerates_sparse_records():
    out = tidy([{"cell_id": "m|v|r|d", "status": "timeout", "metrics": None,
                 "latency": "nonsense", "threads": "2", "gzip_bytes": 1.5e6,
                 "task": "unknown-task", "emulation": "x", "load": [1], "gpu": 3},
                {"cell_id": "m|v|r|d2", "status": "ok", "task": None, "runtime": "tfjs-webgl",
                 "emulation": {"method": 7, "achieved_slowdown": "fast", "off_target": "yes"},
                 "load": {"busy": 1, "other_cores": None}, "gpu": {"software": "no"},
                 "metrics": {"fidelity": {"figures": {"mean_iou": 0.7}},
                             "latency": {"p90": float("inf"), "samples": [1, None, "x", 2.0],
                                         "ci95": [3.0, 1.0], "steady": "yes"}}}])
    assert list(out.columns) == list(COLUMNS) and len(out) == 2
    first, second = out.iloc[0], out.iloc[1]
    assert pd.isna(first.threads) and first.gzip_bytes == 1_500_000
    assert first.size_mb == pytest.approx(1.5) and math.isnan(first.fidelity)
    assert first.model is None and first.family is None and first.samples == []
    assert math.isnan(second.p90_ms) and second.samples == [1.0, 2.0]
    assert second.fidelity == 0.7  # unknown task: the first headline figure present
    assert math.isnan(second.ci_lo_ms) and pd.isna(second.steady)  # an inverted interval
    assert second.emulation_method == "7" and math.isnan(second.achieved_slowdown)
    assert pd.isna(second.off_target) and pd.isna(second.busy) and pd.isna(second.gpu_software)
    assert second.tie_group == 1 and pd.isna(first.tie_group)

    empty = tidy([])
    assert list(empty.columns) == list(COLUMNS) and len(empty) == 0


# -- files ----------------------------------------------------------------------------------

def test_parquet_and_csv_round_trip(df, tmp_path):
    parquet, csv = write_tidy(df, tmp_path / "out")
    assert (parquet.name, csv.name) == ("cells.parquet", "cells.csv")

    back = pd.read_parquet(parquet)
    assert list(back.columns) == list(COLUMNS)
    assert [list(s) for s in back.samples] == list(df.samples)
    def plain(frame):  # text comes back as pandas' string dtype, missing as NaN
        frame = frame.drop(columns="samples").copy()
        for col in TEXT_COLUMNS:
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
        return frame

    pd.testing.assert_frame_equal(plain(back), plain(df), check_dtype=False)
    assert str(back.threads.dtype) == "Int64" and back.wide.dtype == bool

    text = pd.read_csv(csv)
    assert "samples" not in text.columns
    assert list(text.columns) == [c for c in COLUMNS if c != "samples"]
    assert list(text.cell_id) == list(df.cell_id)  # commas and markup in names survive
    assert EVIL in set(text.model)
    failed = text[text.status == "failed"].iloc[0]
    assert failed.error == "browser: Target page, context or browser has been closed"
    assert text.p90_ms.equals(df.p90_ms)


def test_the_report_does_not_import_tensorflow():
    code = ("import sys, edge.report, edge.report.table, edge.report.pick, "
            "edge.report.compare; sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
