"""`edge pick`: which variant to ship on a device, under latency, size, memory and fidelity budgets.

The ranking rules live in ONE place, ``static/picker.js``, which the report page loads with a
<script> tag; this module runs the same file under Node (``static/pick_cli.mjs``, JSON in and
out) so that the page and the command line can never disagree. See picker.js for the rules.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from edge.errors import EdgeError

#: Runtimes on the GPU (picker.js ``GPU_RUNTIMES``).
GPU_RUNTIMES = ("tfjs-webgl", "tfjs-webgpu", "litertjs-webgpu", "ort-webgpu")

STATIC_DIR = Path(__file__).resolve().parent / "static"
PICKER_JS = STATIC_DIR / "picker.js"
PICK_CLI = STATIC_DIR / "pick_cli.mjs"

#: Environment variable naming the Node.js executable (default: ``node`` on PATH).
NODE_ENV = "EDGE_NODE"

#: The page's default budgets (picker.js ``DEFAULT_BUDGETS``), as `pick` keyword arguments.
DEFAULT_BUDGETS = {"max_p90_ms": 200.0, "max_size_mb": 10.0, "max_memory_mb": None,
                   "min_fidelity": 0.9, "max_cold_ms": None, "accuracy_pass": True}

_BUDGET_KEYS = {"max_p90_ms": "maxP90Ms", "max_size_mb": "maxSizeMb",
                "max_memory_mb": "maxMemoryMb", "min_fidelity": "minFidelity",
                "max_cold_ms": "maxColdMs", "accuracy_pass": "accuracyPass"}


def node_executable() -> str:
    """The Node.js executable: ``$EDGE_NODE`` or ``node`` on PATH; `EdgeError` when absent."""
    configured = os.environ.get(NODE_ENV)
    found = shutil.which(configured or "node")
    if found is None:
        where = f"${NODE_ENV}={configured!r}" if configured else "`node` on PATH"
        raise EdgeError(f"Node.js is needed to rank variants (the same rules as the report "
                        f"page, in {PICKER_JS.name}) but {where} was not found; install "
                        f"Node.js 18 or later or set {NODE_ENV}")
    return found


def rows_json(df: pd.DataFrame) -> str:
    """The tidy rows as a JSON list of objects (no ``samples``; NaN and missing as null)."""
    return df.drop(columns=["samples"], errors="ignore").to_json(
        orient="records", double_precision=15, date_format="iso")


def _budget(name: str, value: Any) -> float | bool | None:
    if value is None:
        return None
    if name == "accuracy_pass":
        return True if value else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise EdgeError(f"{name.replace('_', '-')} must be a number, got {value!r}") from None
    if math.isnan(number):
        return None
    if not math.isfinite(number) or number < 0:
        raise EdgeError(f"{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
    return number


def run_picker(rows: str, budgets: dict[str, Any], device: str | None,
               references: list[dict[str, Any]] | None = None) -> Any:
    """Run pick_cli.mjs on JSON rows (and the reference-point rows, when given); the parsed
    result (a dict, or a list without device)."""
    payload = f'{{"rows": {rows}, "budgets": {json.dumps(budgets)}, ' \
              f'"device": {json.dumps(device)}, ' \
              f'"references": {json.dumps(_plain_refs(references), allow_nan=False)}}}'
    try:
        proc = subprocess.run([node_executable(), str(PICK_CLI)], input=payload,
                              capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise EdgeError(f"{PICK_CLI.name} gave no answer within 60 s") from None
    except OSError as exc:
        raise EdgeError(f"cannot run Node.js for {PICK_CLI.name}: {exc}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
        raise EdgeError(f"{PICK_CLI.name} failed: {detail}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise EdgeError(f"{PICK_CLI.name} printed something that is not JSON: {exc}") from None


def _plain_refs(references: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Reference rows as JSON-ready dicts (NaN as None)."""
    if references is None:
        return None

    def plain(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, int | float | str | bool) or value is None:
            return value
        return str(value)

    return [{str(k): plain(v) for k, v in dict(ref).items()} for ref in references]


def require_model(df: pd.DataFrame, model: str | None) -> None:
    """`EdgeError` naming ``--model`` and the run's models when the run holds more than one
    model and none is chosen: a pick across models compares unlike things."""
    if model is not None or "model" not in df:
        return
    models = list(dict.fromkeys(df["model"].dropna()))
    if len(models) > 1:
        listed = "\n  ".join(str(m) for m in models)
        raise EdgeError(f"this run measured {len(models)} models: choose one with --model "
                        f"(a model name or its family):\n  {listed}")


def _budgets(model: str | None, **values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {_BUDGET_KEYS[k]: _budget(k, v) for k, v in values.items()}
    if model is not None:
        out["model"] = model
    return out


def _check_scope(df: pd.DataFrame, device: str | None, model: str | None) -> None:
    devices = list(dict.fromkeys(df["device"].dropna())) if "device" in df else []
    if device is not None and device not in devices:
        known = ", ".join(devices) if devices else "none"
        raise EdgeError(f"device {device!r} was not measured in this run; devices in the run: "
                        f"{known}")
    if model is not None:
        scope = df if device is None else df[df["device"] == device]
        models = list(dict.fromkeys(scope["model"].dropna()))
        families = {str(m).split(":", 1)[0] for m in models}
        if model not in models and model not in families:
            where = f" on {device}" if device is not None else ""
            raise EdgeError(f"model {model!r} was not measured{where} in this run; models: "
                            f"{', '.join(models) if models else 'none'}")


def pick(df: pd.DataFrame, device: str, max_p90_ms: float | None = None,
         max_size_mb: float | None = None, max_memory_mb: float | None = None,
         min_fidelity: float | None = None, *, model: str | None = None,
         references: list[dict[str, Any]] | None = None, max_cold_ms: float | None = None,
         accuracy_pass: bool = True) -> dict[str, Any]:
    """The best variant on ``device`` within the budgets (None: not applied), by picker.js's
    rules; ``model`` (a model name or family) restricts the candidates to one model;
    ``references`` are reference-point rows (`edge.reference_points.compare_with_records`)
    whose emulation error the notes quote. Returns picker.js's result: ``best`` (a row or
    None), ``why``, ``tied`` (rows tied within noise with the best), ``runnersUp`` (up to 3
    rows), ``excludedBy`` ({budget: candidates it excludes}), ``gpuExcluded`` (GPU cells on an
    emulated device, never candidates), ``binding`` (the budget that rules everything out, when
    nothing fits), ``verdict``, ``notes`` (what the figures are worth), ``candidates``,
    ``fitting``, ``settle`` (for estimates that tie: what a measurement on the device would
    settle). ``max_cold_ms`` caps the cold start (download + load + first inference);
    ``accuracy_pass`` (default True) leaves out variants that fail their task-accuracy verdict.
    `EdgeError` when Node.js is missing or the device (or model) was not measured."""
    _check_scope(df, device, model)
    budgets = _budgets(model, max_p90_ms=max_p90_ms, max_size_mb=max_size_mb,
                       max_memory_mb=max_memory_mb, min_fidelity=min_fidelity,
                       max_cold_ms=max_cold_ms, accuracy_pass=accuracy_pass)
    return run_picker(rows_json(df), budgets, device, references)


def best_per_device(df: pd.DataFrame, max_p90_ms: float | None = None,
                    max_size_mb: float | None = None, max_memory_mb: float | None = None,
                    min_fidelity: float | None = None, *, model: str | None = None,
                    references: list[dict[str, Any]] | None = None,
                    max_cold_ms: float | None = None,
                    accuracy_pass: bool = True) -> list[dict[str, Any]]:
    """`pick` for every device of the run (in the order they were measured), one node call."""
    _check_scope(df, None, model)
    budgets = _budgets(model, max_p90_ms=max_p90_ms, max_size_mb=max_size_mb,
                       max_memory_mb=max_memory_mb, min_fidelity=min_fidelity,
                       max_cold_ms=max_cold_ms, accuracy_pass=accuracy_pass)
    return run_picker(rows_json(df), budgets, None, references)


# -- words ----------------------------------------------------------------------------------

def _fmt(x: Any, unit: str = "") -> str:
    if not isinstance(x, int | float) or isinstance(x, bool) or not math.isfinite(x):
        return "?"
    text = f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"
    return text + unit


def _label(row: dict[str, Any]) -> str:
    threads = row.get("threads")
    where = str(row.get("runtime")) + (f", {threads} thread{'' if threads == 1 else 's'}"
                                       if threads else "")
    if row.get("gpu_software") is True and row.get("runtime") in GPU_RUNTIMES:
        where += ", software rendering (host)"
    return f"{row.get('variant')} ({where})"


def _known(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _figures(row: dict[str, Any]) -> str:
    fidelity = row.get("fidelity")
    fid = "fidelity unknown" if not _known(fidelity) else f"fidelity {fidelity:.3f}"
    size = row.get("size_mb")
    if not _known(size) and _known(row.get("gzip_bytes")):
        size = row["gzip_bytes"] / 1e6
    if row.get("estimated") is True:
        latency = (f"p50 {_fmt(row.get('p50_ms'), ' ms')} estimated (80 % interval "
                   f"{_fmt(row.get('ci_lo_ms'))}\u2013{_fmt(row.get('ci_hi_ms'), ' ms')}, "
                   f"{row.get('evidence')})")
    elif _known(row.get("p90_ms")) or not _known(row.get("p50_ms")):
        latency = f"p90 {_fmt(row.get('p90_ms'), ' ms')}"
    else:
        latency = f"p50 {_fmt(row.get('p50_ms'), ' ms')} (no p90: too few runs)"
    accuracy = _accuracy_text(row)
    cold = row.get("cold_ms")
    if not _known(cold) and _known(row.get("load_ms")) and _known(row.get("first_ms")):
        cold = row["load_ms"] + row["first_ms"] + (row["download_s"] * 1000
                                                   if _known(row.get("download_s")) else 0)
    cold_text = f", cold start {_fmt(cold, ' ms')}" if _known(cold) else ""
    return (f"{latency}, {_fmt(size, ' MB')} gzip, {fid}{cold_text}"
            + (f", {accuracy}" if accuracy else ""))


def _accuracy_text(row: dict[str, Any]) -> str:
    """A variant's task accuracy on the host's held-out images and its verdict ("" if none)."""
    if not _known(row.get("host_accuracy")):
        return ""
    text = (f"{row.get('accuracy_metric')} {row['host_accuracy']:.3f} on the host "
            f"({row.get('accuracy_verdict')}")
    if _known(row.get("host_accuracy_ref")) and row["host_accuracy_ref"] > 0:
        text += f", keeps {row['host_accuracy'] / row['host_accuracy_ref']:.1%} of float32"
    return text + ")"


def format_pick(result: dict[str, Any] | list[dict[str, Any]]) -> str:
    """A pick result (or `best_per_device`'s list) as plain text for a terminal."""
    if isinstance(result, list):
        return "\n\n".join(format_pick(r) for r in result)
    device = result.get("device")
    model = result.get("model")
    head = f"{device}" + (f" / {model}" if model else "")
    best = result.get("best")
    notes = [f"  note: {n}" for n in result.get("notes") or []]
    if best is None:
        lines = [f"{head}: nothing fits: {result.get('verdict', '')}"]
        why = result.get("why")
        if why and why != result.get("verdict"):
            lines.append(f"  {why}")
        return "\n".join(lines + notes)
    name = _label(best)
    if model is None:
        name = f"{best.get('model')} {name}"
    if best.get("estimated") is True:
        name += " [estimated]"
    lines = [f"{head}: use {name}", f"  why: {result.get('why', '')}", *notes]
    if result.get("settle"):
        lines.append(f"  to settle it: {result['settle']}")
    if _accuracy_text(best):
        warn = " (fails its accuracy verdict)" if best.get("accuracy_verdict") == "fail" else ""
        lines.append(f"  accuracy{warn}: {_accuracy_text(best)}")
    tied = result.get("tied") or []
    if tied:
        lines.append("  tied: each estimate inside the other's interval, not resolvable "
                     "without the device:"
                     if best.get("estimated") is True else
                     "  tied within noise (the measurements cannot tell them apart):")
        for row in tied:
            lines.append(f"    = {_label(row)}: {_figures(row)}")
    runners = result.get("runnersUp") or []
    if runners:
        lines.append("  runners-up:")
        for i, row in enumerate(runners, start=2):
            lines.append(f"    {i}. {_label(row)}: {_figures(row)}")
    excluded = {k: v for k, v in (result.get("excludedBy") or {}).items() if v}
    if excluded:
        words = {"maxP90Ms": "max p90", "maxSizeMb": "max size", "maxMemoryMb": "max memory",
                 "minFidelity": "min fidelity", "maxColdMs": "max cold start",
                 "accuracyPass": "its accuracy verdict (--allow-accuracy-fail admits them)"}
        lines.append("  excluded: " + ", ".join(f"{v} by {words.get(k, k)}"
                                                for k, v in excluded.items()))
    return "\n".join(lines)
