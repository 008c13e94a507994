"""One tidy table of a run: one row per measured cell, the columns every report reads.

`load_run` reads ``reports/<run-id>/results.jsonl`` (damaged lines are skipped with a
`DamagedRecordWarning`, see `edge.results.store`) and ``run.json``; `tidy` flattens the records
into a `pandas.DataFrame`; `write_tidy` saves it as ``cells.parquet`` (with the latency samples
as a list column) and ``cells.csv`` (without them).

``memory_mb`` is the renderer's USS (else RSS) for browser runtimes and the worker process's
peak RSS for native TFLite runtimes (which includes the Python interpreter): compare memory
within a kind of runtime, not across. Missing figures are NaN (a failed or unsupported record
has few metrics), never an error. Nothing here imports TensorFlow.
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

#: The tidy table's columns, in order.
COLUMNS = (
    "run_id", "cell_id", "model", "family", "variant", "format", "quantization", "runtime",
    "device", "device_label", "threads", "emulated", "status", "error", "task", "bytes",
    "gzip_bytes", "size_mb", "load_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
    "std_ms", "n_runs", "wide", "memory_mb", "tf_peak_mb", "fidelity_status", "fidelity",
    "download_s", "cpu_factor", "backend", "samples",
)

#: Columns of text (None when unknown).
TEXT_COLUMNS = ("run_id", "cell_id", "model", "family", "variant", "format", "quantization",
                "runtime", "device", "device_label", "status", "error", "task",
                "fidelity_status", "backend")
#: Whole numbers that may be unknown (pandas' nullable ``Int64``).
INT_COLUMNS = ("threads", "bytes", "gzip_bytes", "n_runs")
#: Always known (False when the record does not say).
BOOL_COLUMNS = ("emulated", "wide")
#: Measured figures (``float64``, NaN when unknown).
FLOAT_COLUMNS = ("size_mb", "load_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
                 "std_ms", "memory_mb", "tf_peak_mb", "fidelity", "download_s", "cpu_factor")

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

def _get(mapping: Any, *keys: str) -> Any:
    """``mapping[k1][k2]...``, or None as soon as a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


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


def tidy_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record as one row of the tidy table (see `COLUMNS`)."""
    metrics = record.get("metrics") if isinstance(record.get("metrics"), Mapping) else {}
    latency = metrics.get("latency") if isinstance(metrics.get("latency"), Mapping) else {}
    memory = metrics.get("memory") if isinstance(metrics.get("memory"), Mapping) else {}
    fidelity = metrics.get("fidelity") if isinstance(metrics.get("fidelity"), Mapping) else {}
    model = _text(record.get("model"))
    task = _text(record.get("task"))
    gzip_bytes = _int(record.get("gzip_bytes"))
    memory_bytes = _first_known(memory.get("renderer_uss"), memory.get("renderer_rss"),
                                metrics.get("peak_rss_bytes"))
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
        "memory_mb": memory_bytes / MB,
        "tf_peak_mb": _num(memory.get("tfPeakBytes")) / MB,
        "fidelity_status": _text(fidelity.get("status")),
        "fidelity": headline_fidelity(task, fidelity.get("figures")),
        "download_s": _num(record.get("download_s_estimated")),
        "cpu_factor": _num(_get(record, "calibration", "factor")),
        "backend": _text(_get(metrics, "backend", "name")),
        "samples": _samples(latency),
    }


def tidy(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The tidy table: one row per record (i.e. per cell), columns `COLUMNS` in that order.
    Text columns hold None when unknown, `INT_COLUMNS` are nullable ``Int64``, `BOOL_COLUMNS`
    plain ``bool``, the figures ``float64`` with NaN when unknown, ``samples`` a list of floats
    (empty when there were no timed runs)."""
    rows = [tidy_row(r) for r in records]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in INT_COLUMNS:
        df[col] = df[col].astype("Int64")
    for col in BOOL_COLUMNS:
        df[col] = df[col].astype(bool)
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
