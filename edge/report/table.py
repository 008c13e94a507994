"""One tidy table of a run: one row per measured cell, the columns every report reads.

`load_run` reads ``reports/<run-id>/results.jsonl`` (damaged lines are skipped with a
`DamagedRecordWarning`, see `edge.results.store`) and ``run.json``; `tidy` flattens the records
into a `pandas.DataFrame`; `write_tidy` saves it as ``cells.parquet`` (with the latency samples
as a list column) and ``cells.csv`` (without them).

``memory_mb`` is a resident set size (RSS) in decimal MB, and ``memory_metric`` names which:
``renderer-peak-rss`` (the page renderer's RSS sampled during the timed runs, its maximum),
``worker-peak-rss`` (the native worker's VmHWM, the Python interpreter included) or, for records
written before peak sampling, ``renderer-rss-after-run`` (the renderer's RSS once the runs were
over). Never a USS: the columns do not mix measures. Compare memory within one metric, not
across. ``tf_peak_mb`` is TF.js's tracked peak (``tf.profile``).

The quality of a figure has its own columns: ``ci_lo_ms``/``ci_hi_ms`` (95 % interval of the
median), ``ci_rel`` (its half-width over the median), ``steady`` (the warm-up reached a steady
state), the emulation of a phone profile (``emulation_method``, ``target_slowdown``,
``achieved_slowdown``, ``off_target``), competing load (``busy``, ``other_cores``), the GPU of
WebGL/WebGPU cells (``gpu_renderer``, ``gpu_software``: the host's software rasterizer) and
``tie_group``: within one model, runtime, device and thread count, the group of cells that
`edge.stats.tie_groups` finds indistinguishable (1 = the fastest group; missing for cells
without samples). ``p90_ms`` is NaN when a cell has too few runs for a p90.

Missing figures are NaN (a failed or unsupported record has few metrics), unknown flags NA,
never an error. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from edge.errors import EdgeError
from edge.garden.base import HEADLINE_METRIC
from edge.results.store import (
    META_NAME,
    RESULTS_NAME,
    DamagedRecordWarning,
    ResultStore,
    latest_run,
    list_runs,
)
from edge.text import dig as _get

#: The tidy table's columns, in order.
COLUMNS = (
    "run_id", "cell_id", "model", "family", "variant", "format", "quantization", "runtime",
    "device", "device_label", "threads", "emulated", "status", "error", "task", "bytes",
    "gzip_bytes", "size_mb", "load_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
    "std_ms", "n_runs", "wide", "ci_lo_ms", "ci_hi_ms", "ci_rel", "steady", "tie_group",
    "memory_mb", "memory_metric", "tf_peak_mb", "fidelity_status", "fidelity", "download_s",
    "cpu_factor", "emulation_method", "target_slowdown", "achieved_slowdown", "off_target",
    "busy", "other_cores", "gpu_renderer", "gpu_software", "noise_cv", "backend", "samples",
    "accuracy_metric", "host_accuracy", "host_accuracy_ref", "host_drop", "host_drop_lo",
    "host_drop_hi", "accuracy_verdict", "accuracy_n", "accuracy_data", "calibration",
    "accuracy", "accuracy_drop", "accuracy_images",
)

#: Columns of text (None when unknown).
TEXT_COLUMNS = ("run_id", "cell_id", "model", "family", "variant", "format", "quantization",
                "runtime", "device", "device_label", "status", "error", "task",
                "fidelity_status", "backend", "memory_metric", "emulation_method",
                "gpu_renderer", "accuracy_metric", "accuracy_verdict", "accuracy_data",
                "calibration")
#: Whole numbers that may be unknown (pandas' nullable ``Int64``).
INT_COLUMNS = ("threads", "bytes", "gzip_bytes", "n_runs", "tie_group", "accuracy_n",
               "accuracy_images")
#: Always known (False when the record does not say).
BOOL_COLUMNS = ("emulated", "wide")
#: Flags that may be unknown (pandas' nullable ``boolean``: NA for records that do not say).
FLAG_COLUMNS = ("steady", "off_target", "busy", "gpu_software")
#: Measured figures (``float64``, NaN when unknown).
FLOAT_COLUMNS = ("size_mb", "load_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
                 "std_ms", "ci_lo_ms", "ci_hi_ms", "ci_rel", "memory_mb", "tf_peak_mb",
                 "fidelity", "download_s", "cpu_factor", "target_slowdown",
                 "achieved_slowdown", "other_cores", "noise_cv", "host_accuracy",
                 "host_accuracy_ref", "host_drop", "host_drop_lo", "host_drop_hi", "accuracy",
                 "accuracy_drop")

#: ``memory_metric`` values.
RENDERER_PEAK_RSS = "renderer-peak-rss"
WORKER_PEAK_RSS = "worker-peak-rss"
RENDERER_RSS_AFTER_RUN = "renderer-rss-after-run"
#: Runtimes that measure in a native worker process (the others run in the browser).
NATIVE_RUNTIMES = ("litert", "litert-compiled", "tflite-runtime", "onnxruntime")
#: Runtimes that run on a GPU.
GPU_RUNTIMES = ("tfjs-webgl", "tfjs-webgpu", "litertjs-webgpu", "ort-webgpu")
#: Renderer names of software rasterizers (for records without ``gpu.software``).
_SOFTWARE_RENDERERS = ("swiftshader", "llvmpipe", "softpipe", "software", "basic render")

MB = 1e6  # sizes and memory are in decimal megabytes, like the gzip size of a download


def load_run(reports_dir: Path | str, run_id: str | None = None
             ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The records and the metadata (``run.json``, None when absent or unreadable, with a
    warning) of one run; ``run_id`` None means the latest run. `EdgeError` naming the runs
    there when the run does not exist."""
    root = Path(reports_dir)
    if run_id is None:
        run_id = latest_run(root)
        if run_id is None:
            raise EdgeError(f"no runs in {root} (measure one with `edge bench`)")
    run_dir = root / run_id
    if not ((run_dir / RESULTS_NAME).is_file() or (run_dir / META_NAME).is_file()):
        runs = list_runs(root)
        known = ", ".join(runs) if runs else "none"
        raise EdgeError(f"no run {run_id!r} in {root}; runs there: {known}")
    store = ResultStore(run_dir)  # the directory exists, so this creates nothing
    records = store.records()
    try:
        meta = store.read_meta()
    except ValueError as exc:
        warnings.warn(f"{exc}; reporting without the run's metadata", DamagedRecordWarning,
                      stacklevel=2)
        meta = None
    return records, meta


# -- flattening ---------------------------------------------------------------------------------

def _num(value: Any) -> float:
    """A finite float, or NaN for None, text, booleans, infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _first_known(*values: Any) -> float:
    for value in values:
        number = _num(value)
        if not math.isnan(number):
            return number
    return math.nan


def headline_fidelity(task: str | None, figures: Any) -> float:
    """The task's headline figure (`HEADLINE_METRIC`) from ``metrics.fidelity.figures``; for an
    unknown task, the first headline figure the record has. NaN when there is none."""
    if not isinstance(figures, Mapping):
        return math.nan
    if task in HEADLINE_METRIC:
        return _num(figures.get(HEADLINE_METRIC[task]))
    return _first_known(*(figures.get(name) for name in HEADLINE_METRIC.values()))


def _samples(latency: Any) -> list[float]:
    raw = _get(latency, "samples")
    if not isinstance(raw, list):
        return []
    return [float(v) for v in raw
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _ci95(latency: Mapping[str, Any]) -> tuple[float, float]:
    ci = latency.get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        lo, hi = _num(ci[0]), _num(ci[1])
        if not (math.isnan(lo) or math.isnan(hi)) and lo <= hi:
            return lo, hi
    return math.nan, math.nan


def memory_figure(record: Mapping[str, Any]) -> tuple[float, str | None]:
    """``(bytes, metric)``: the peak RSS the record names (``metrics.memory.peak_rss_bytes``
    with its ``memory_metric``), else, for older records, the renderer's RSS after the runs
    (browser) or the worker's peak RSS (``metrics.peak_rss_bytes``, native). Never a USS.
    ``(NaN, None)`` when the record has none."""
    metrics = record.get("metrics") if isinstance(record.get("metrics"), Mapping) else {}
    memory = metrics.get("memory") if isinstance(metrics.get("memory"), Mapping) else {}
    native = record.get("runtime") in NATIVE_RUNTIMES
    peak = _num(memory.get("peak_rss_bytes"))
    if not math.isnan(peak):
        metric = _text(memory.get("memory_metric") or metrics.get("memory_metric"))
        return peak, metric or (WORKER_PEAK_RSS if native else RENDERER_PEAK_RSS)
    after_run = _num(memory.get("renderer_rss"))
    if not math.isnan(after_run):
        return after_run, RENDERER_RSS_AFTER_RUN
    worker = _num(metrics.get("peak_rss_bytes"))  # the worker's VmHWM
    if not math.isnan(worker):
        return worker, _text(metrics.get("memory_metric")) or WORKER_PEAK_RSS
    return math.nan, None


def gpu_facts(record: Mapping[str, Any]) -> tuple[str | None, bool | None]:
    """``(renderer, software)`` of a WebGL/WebGPU cell: the record's ``gpu`` when present, else
    what ``metrics.backend`` reports (software when the renderer names a software rasterizer).
    ``(None, None)`` for other runtimes."""
    if record.get("runtime") not in GPU_RUNTIMES:
        return None, None
    gpu = record.get("gpu") if isinstance(record.get("gpu"), Mapping) else {}
    renderer = _text(gpu.get("renderer"))
    software = _flag(gpu.get("software"))
    backend = _get(record, "metrics", "backend")
    if renderer is None:
        webgl = _get(backend, "webgl", "renderer")
        if isinstance(webgl, str):
            renderer = webgl
        elif isinstance(_get(backend, "webgpu"), Mapping) and _get(backend, "webgpu",
                                                                    "available"):
            parts = [_get(backend, "webgpu", k) for k in ("vendor", "architecture")]
            renderer = " ".join(str(p) for p in parts if p) or None
            if software is None and _flag(_get(backend, "webgpu", "isFallbackAdapter")):
                software = True
    if software is None and renderer is not None:
        software = any(word in renderer.lower() for word in _SOFTWARE_RENDERERS)
    return renderer, software


def tidy_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record as one row of the tidy table (see `COLUMNS`; ``tie_group`` is left NA: it
    needs the other cells, see `tidy`)."""
    metrics = record.get("metrics") if isinstance(record.get("metrics"), Mapping) else {}
    latency = metrics.get("latency") if isinstance(metrics.get("latency"), Mapping) else {}
    memory = metrics.get("memory") if isinstance(metrics.get("memory"), Mapping) else {}
    fidelity = metrics.get("fidelity") if isinstance(metrics.get("fidelity"), Mapping) else {}
    emulation = record.get("emulation") if isinstance(record.get("emulation"), Mapping) else {}
    load = record.get("load") if isinstance(record.get("load"), Mapping) else {}
    model = _text(record.get("model"))
    task = _text(record.get("task"))
    gzip_bytes = _int(record.get("gzip_bytes"))
    memory_bytes, memory_metric = memory_figure(record)
    ci_lo, ci_hi = _ci95(latency)
    renderer, software = gpu_facts(record)
    return {
        "run_id": _text(record.get("run_id")),
        "cell_id": _text(record.get("cell_id")),
        "model": model,
        "family": model.split(":", 1)[0] if model else None,
        "variant": _text(record.get("variant")),
        "format": _text(record.get("format")),
        "quantization": _text(record.get("quantization")),
        "runtime": _text(record.get("runtime")),
        "device": _text(record.get("device")),
        "device_label": _text(record.get("device_label")),
        "threads": _int(record.get("threads")),
        "emulated": bool(record.get("emulated")),
        "status": _text(record.get("status")),
        "error": _text(record.get("error")),
        "task": task,
        "bytes": _int(record.get("bytes")),
        "gzip_bytes": gzip_bytes,
        "size_mb": gzip_bytes / MB if gzip_bytes is not None else math.nan,
        "load_ms": _num(metrics.get("load_ms")),
        "first_ms": _first_known(metrics.get("first_inference_ms"),
                                 metrics.get("first_invoke_ms")),
        "p50_ms": _num(latency.get("p50")),
        "p90_ms": _num(latency.get("p90")),
        "p99_ms": _num(latency.get("p99")),
        "mean_ms": _num(latency.get("mean")),
        "std_ms": _num(latency.get("std")),
        "n_runs": _int(latency.get("n")),
        "wide": bool(latency.get("wide")),
        "ci_lo_ms": ci_lo,
        "ci_hi_ms": ci_hi,
        "ci_rel": _num(latency.get("ci_rel")),
        "steady": _flag(latency.get("steady")),
        "tie_group": None,
        "memory_mb": memory_bytes / MB,
        "memory_metric": memory_metric,
        "tf_peak_mb": _num(memory.get("tfProfilePeakBytes")) / MB,
        "fidelity_status": _text(fidelity.get("status")),
        "fidelity": headline_fidelity(task, fidelity.get("figures")),
        "download_s": _num(record.get("download_s_estimated")),
        "cpu_factor": _num(_get(record, "calibration", "factor")),
        "emulation_method": _text(emulation.get("method")),
        "target_slowdown": _num(emulation.get("target_slowdown")),
        "achieved_slowdown": _num(emulation.get("achieved_slowdown")),
        "off_target": _flag(emulation.get("off_target")),
        "busy": _flag(load.get("busy")),
        "other_cores": _num(load.get("other_cores")),
        "gpu_renderer": renderer,
        "gpu_software": software,
        "noise_cv": _num(_get(record, "noise", "between_cv")),
        "backend": _text(_get(metrics, "backend", "name")),
        "samples": _samples(latency),
        **accuracy_columns(record, fidelity),
    }


def accuracy_columns(record: Mapping[str, Any], fidelity: Mapping[str, Any]) -> dict:
    """Task accuracy of the cell's variant: on the host over the held-out set (with the drop
    against float32 and its interval, the verdict and the data it comes from), and in this
    cell's runtime on the labelled fidelity images; the int8 calibration set."""
    host = record.get("host_accuracy") if isinstance(record.get("host_accuracy"),
                                                     Mapping) else {}
    mine = fidelity.get("accuracy") if isinstance(fidelity.get("accuracy"), Mapping) else {}
    calibration = record.get("calibration") if isinstance(record.get("calibration"),
                                                          Mapping) else None
    interval = host.get("drop_interval") or (None, None)
    return {
        "accuracy_metric": _text(host.get("metric") or mine.get("metric")),
        "host_accuracy": _num(host.get("value")),
        "host_accuracy_ref": _num(host.get("reference")),
        "host_drop": _num(host.get("drop")),
        "host_drop_lo": _num(interval[0]),
        "host_drop_hi": _num(interval[1]),
        "accuracy_verdict": _text(host.get("verdict")),
        "accuracy_n": _int(host.get("images")),
        "accuracy_data": _text(host.get("data")),
        "calibration": (f"{calibration.get('source')} ({calibration.get('images')} images)"
                        if calibration else None),
        "accuracy": _num(mine.get("value")),
        "accuracy_drop": _num(mine.get("drop")),
        "accuracy_images": _int(mine.get("images")),
    }


def tie_group_numbers(rows: Iterable[Mapping[str, Any]]) -> list[int | None]:
    """Per row (in order), its tie group within the ok rows with samples of the same model,
    runtime, device and thread count (`edge.stats.tie_groups`: 1 = the group of the fastest);
    None for rows that are not ok or have no samples."""
    from edge.stats import noise_margin, tie_groups

    rows = list(rows)
    out: list[int | None] = [None] * len(rows)
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        if row.get("status") == "ok" and row.get("samples"):
            key = (row.get("model"), row.get("runtime"), row.get("device"), row.get("threads"))
            groups.setdefault(key, []).append(i)
    for members in groups.values():
        if len(members) == 1:
            out[members[0]] = 1
            continue
        keys = {f"{n}:{rows[i].get('cell_id')}": i for n, i in enumerate(members)}
        cvs = [rows[i].get("noise_cv") for i in members]
        cvs = [float(c) for c in cvs if c is not None and c == c]
        found = tie_groups({k: list(rows[i]["samples"]) for k, i in keys.items()},
                           rel=noise_margin(max(cvs) if cvs else None))
        for number, group in enumerate(found, start=1):
            for key in group:
                out[keys[key]] = number
    return out


def tidy(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The tidy table: one row per record (i.e. per cell), columns `COLUMNS` in that order.
    Text columns hold None when unknown, `INT_COLUMNS` are nullable ``Int64``, `BOOL_COLUMNS`
    plain ``bool``, `FLAG_COLUMNS` nullable ``boolean``, the figures ``float64`` with NaN when
    unknown, ``samples`` a list of floats (empty when there were no timed runs)."""
    rows = [tidy_row(r) for r in records]
    for row, group in zip(rows, tie_group_numbers(rows), strict=True):
        row["tie_group"] = group
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in INT_COLUMNS:
        df[col] = df[col].astype("Int64")
    for col in BOOL_COLUMNS:
        df[col] = df[col].astype(bool)
    for col in FLAG_COLUMNS:
        df[col] = df[col].astype("boolean")
    for col in FLOAT_COLUMNS:
        df[col] = df[col].astype("float64")
    for col in TEXT_COLUMNS:  # an all-None column would otherwise be inferred as float
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    df["samples"] = df["samples"].astype(object)
    return df


def write_tidy(df: pd.DataFrame, out_dir: Path | str) -> tuple[Path, Path]:
    """Write ``cells.parquet`` (every column, ``samples`` as a list column) and ``cells.csv``
    (without ``samples``) into ``out_dir`` (created if needed); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parquet, csv = out / "cells.parquet", out / "cells.csv"
    df.to_parquet(parquet, index=False)
    df.drop(columns=["samples"], errors="ignore").to_csv(csv, index=False)
    return parquet, csv
