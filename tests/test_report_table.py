"""The tidy table of a run: columns and types, failures, headline fidelity, Parquet/CSV, damage.

Runs on the committed fixture tests/fixtures/results/<run>/ (real records of a tiny run, see its
README); no TensorFlow, no browser.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from edge.errors import EdgeError
from edge.report.table import COLUMNS, TEXT_COLUMNS, load_run, tidy, write_tidy
from edge.results import DamagedRecordWarning

FIXTURE = Path(__file__).parent / "fixtures" / "results"
RUN = "20261129-102929-9e7c"
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
    for col in ("threads", "bytes", "gzip_bytes", "n_runs"):
        assert str(df[col].dtype) == "Int64", col
    for col in ("emulated", "wide"):
        assert df[col].dtype == bool, col
    for col in ("size_mb", "load_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
                "std_ms", "memory_mb", "tf_peak_mb", "fidelity", "download_s", "cpu_factor"):
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
    assert r["memory_mb"] == pytest.approx(83.095552)  # renderer_uss first
    assert r["tf_peak_mb"] == pytest.approx(1.646688)
    assert r["cpu_factor"] == pytest.approx(3.7575) and r["download_s"] == pytest.approx(2.726)
    assert r["backend"] == "wasm"
    assert r["fidelity_status"] == "warn"


def test_native_cell_figures(df):
    r = cell(df, "tflite-fp32", "litert", "host")
    assert r["threads"] == 2 and not r["emulated"]
    assert r["first_ms"] == pytest.approx(1.922242)  # first_invoke_ms
    assert r["memory_mb"] == pytest.approx(145.248256)  # peak_rss_bytes
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


def test_markup_in_a_model_name_is_kept_verbatim(df):
    r = df[df.family == EVIL].iloc[0]
    assert r.model == EVIL and r.cell_id.startswith(EVIL + "|")


def test_tidy_tolerates_sparse_records():
    out = tidy([{"cell_id": "m|v|r|d", "status": "timeout", "metrics": None,
                 "latency": "nonsense", "threads": "2", "gzip_bytes": 1.5e6,
                 "task": "unknown-task"},
                {"cell_id": "m|v|r|d2", "status": "ok", "task": None,
                 "metrics": {"fidelity": {"figures": {"mean_iou": 0.7}},
                             "latency": {"p90": float("inf"), "samples": [1, None, "x", 2.0]}}}])
    assert list(out.columns) == list(COLUMNS) and len(out) == 2
    first, second = out.iloc[0], out.iloc[1]
    assert pd.isna(first.threads) and first.gzip_bytes == 1_500_000
    assert first.size_mb == pytest.approx(1.5) and math.isnan(first.fidelity)
    assert first.model is None and first.family is None and first.samples == []
    assert math.isnan(second.p90_ms) and second.samples == [1.0, 2.0]
    assert second.fidelity == 0.7  # unknown task: the first headline figure present

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
