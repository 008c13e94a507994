"""The TFLite benchmark tool (`benchmark_model`, tensorflow/lite/tools/benchmark, now LiteRT's):
the flags a protocol maps to, and what its output says.

Flags (the tool's README and `benchmark_model.cc`): ``--graph``, ``--num_threads``,
``--warmup_runs`` and ``--warmup_min_secs`` (the warm-up runs "at least N iterations and at
least S seconds"), ``--num_runs``, ``--min_secs`` and ``--max_secs`` (the timed runs: at least
``num_runs`` and ``min_secs``, stopping past ``max_secs``), ``--use_xnnpack`` / ``--use_gpu``
(delegates). A protocol maps onto them as `benchmark_flags` says; the tool has no steadiness test
and no cap on the number of runs, so ``max_warmup``, ``steady_tol``, ``max_runs`` and
``target_ci`` have no flag.

Its output changed over the years; `parse_output` reads each form that was published:

- the statistics of each phase, one line after its ``Running benchmark for at least ...`` line:
  ``count=50 first=390368 curr=390936 min=389982 max=417669 avg=394183 std=4373`` (microseconds),
  since 2020 or so also ``p5=... median=... p95=...``; the first phase is the warm-up, the
  second the timed runs (operator profiles print ``Timings (microseconds): count=...`` lines of
  their own, which are not a phase's);
- the summary: ``Average inference timings in us: Warmup: W, Init: I, no stats: A`` (up to
  2019; ``Inference: A`` in the documentation's Android app), then ``Inference timings in us:
  Init: I, First inference: F, Warmup (avg): W, Inference (avg): A``;
- memory in MB: ``Peak memory footprint (MB): init=X overall=Y`` (2020), then ``Memory
  footprint delta from the start of the tool (MB): init=X overall=Y``, and with
  ``--report_peak_memory_footprint=true`` ``Overall peak memory footprint (MB) via periodic
  monitoring: P``;
- LiteRT 2's ``BENCHMARK RESULTS`` block, in milliseconds: ``Model initialization: I ms``,
  ``Warmup (first): F ms``, ``Warmup (avg): W ms (N runs)``, ``Inference (avg|min|max): T ms``,
  ``Inference (std): S``, ``Init footprint: X MB``, ``Overall footprint: Y MB``.

Lines may carry a log prefix (``INFO: ``, ``INFO: [file.h:92] ``, logcat's ``... I/tflite  (
pid): ``); numbers may be in exponent form (``2.71985e+06``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations")
_STAT = re.compile(rf"\b(count|first|curr|min|max|avg|std|p5|median|p95)=({_NUM})")
_PROFILE_STAT = re.compile(r"Timings \(microseconds\):|Memory \(bytes\):")
_SUMMARY = re.compile(rf"(?<!Average )Inference timings in us: Init: ({_NUM}), First inference: "
                      rf"({_NUM}), Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})")
_OLD_SUMMARY = re.compile(rf"Average inference timings in us: Warmup: ({_NUM}), Init: "
                          rf"({_NUM}), (?:no stats|Inference): ({_NUM})")
_DELTA = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory "
                    rf"footprint) \(MB\): init=({_NUM}) overall=({_NUM})")
_PERIODIC = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})")
_LITERT2 = {
    "init_ms": re.compile(rf"Model initialization:\s+({_NUM}) ms"),
    "first_ms": re.compile(rf"Warmup \(first\):\s+({_NUM}) ms"),
    "warmup_avg_ms": re.compile(rf"Warmup \(avg\):\s+({_NUM}) ms \((\d+) runs\)"),
    "avg_ms": re.compile(rf"Inference \(avg\):\s+({_NUM}) ms \((\d+) runs\)"),
    "min_ms": re.compile(rf"Inference \(min\):\s+({_NUM}) ms"),
    "max_ms": re.compile(rf"Inference \(max\):\s+({_NUM}) ms"),
    "std_ms": re.compile(rf"Inference \(std\):\s+({_NUM})"),
    "init_mb": re.compile(rf"Init footprint:\s+({_NUM}) MB"),
    "overall_mb": re.compile(rf"Overall footprint:\s+({_NUM}) MB"),
}
_ERROR = re.compile(r"^(?:.*?\b)?(?:ERROR|E/tflite[^:]*):\s*(.+)$")


class BenchmarkOutputError(ValueError):
    """The output holds no timed runs' statistics (the tool failed, or is not benchmark_model);
    the message quotes its first error line or its last lines."""


@dataclass
class Phase:
    """One phase's statistics in microseconds (`count`, `first`, `curr`, `min`, `max`, `avg`,
    `std`, `p5`, `median`, `p95`: whichever the line gives) and the runs it was asked for."""

    requested_runs: int | None = None
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def count(self) -> int | None:
        return int(self.stats["count"]) if "count" in self.stats else None


@dataclass
class BenchmarkOutput:
    """What one run of the tool printed. Times in microseconds, memory in MB; None where the
    output does not say."""

    form: str  # "stats-lines" | "litert2-summary"
    warmup: Phase | None = None
    inference: Phase | None = None
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    memory_peak_mb: float | None = None

    def latency_ms(self) -> dict[str, Any]:
        """The record's ``metrics.latency`` in milliseconds. ``p50`` is the tool's median
        where it prints one, else its mean (``p50_from`` says which); the tool prints no
        samples, so there is no ``ci95`` and no ``p90``/``p99``."""
        stats = self.inference.stats if self.inference else {}
        avg = stats.get("avg", self.inference_avg_us)
        if avg is None:
            raise BenchmarkOutputError("no average inference time in the output")
        ms = {k: v / 1000.0 for k, v in stats.items() if k != "count"}
        mean = avg / 1000.0
        std = ms.get("std")
        median = ms.get("median")
        return {
            "n": self.inference.count if self.inference else None,
            "mean": mean, "std": std, "min": ms.get("min"), "max": ms.get("max"),
            "p50": median if median is not None else mean,
            "p50_from": "median" if median is not None else "mean",
            "p5": ms.get("p5"), "p95": ms.get("p95"), "p90": None, "p99": None,
            "cv": (std / mean) if std is not None and mean > 0 else None,
            "wide": bool(std >= 0.1 * mean) if std is not None and mean > 0 else False,
            "ci95": None, "ci_rel": None, "steady": None,
            "warmup_runs": self.warmup.count if self.warmup else None,
            "first_ms": _ms(self.first_us), "init_ms": _ms(self.init_us),
            "warmup_mean_ms": _ms(self.warmup_avg_us),
        }

    def memory(self) -> dict[str, Any]:
        """The record's ``metrics.memory``: the tool's figures in MB; ``peak_rss_bytes`` only
        from the periodic peak (the others are deltas from the tool's start)."""
        peak = self.memory_peak_mb
        return {"init_delta_mb": self.memory_init_mb, "overall_delta_mb": self.memory_overall_mb,
                "peak_mb": peak,
                "peak_rss_bytes": round(peak * 2**20) if peak is not None else None,
                "memory_metric": ("benchmark_model-periodic-peak" if peak is not None
                                  else "benchmark_model-footprint-delta")}


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


def parse_output(text: str) -> BenchmarkOutput:
    """Read one run's output (stdout and stderr together); `BenchmarkOutputError` when it has
    no timed runs' statistics."""
    phases: list[Phase] = []
    pending: Phase | None = None
    out = BenchmarkOutput(form="stats-lines")
    litert2: dict[str, tuple[float, int | None]] = {}
    for line in text.splitlines():
        running = _RUNNING.search(line)
        if running:
            pending = Phase(requested_runs=int(running.group(1)))
            continue
        if pending is not None and "count=" in line and not _PROFILE_STAT.search(line):
            pending.stats = {k: float(v) for k, v in _STAT.findall(line)}
            phases.append(pending)
            pending = None
            continue
        if m := _SUMMARY.search(line):
            out.init_us, out.first_us, out.warmup_avg_us, out.inference_avg_us = (
                float(g) for g in m.groups())
        elif m := _OLD_SUMMARY.search(line):
            out.warmup_avg_us, out.init_us, out.inference_avg_us = (float(g) for g in m.groups())
        elif m := _DELTA.search(line):
            out.memory_init_mb, out.memory_overall_mb = float(m.group(1)), float(m.group(2))
        elif m := _PERIODIC.search(line):
            out.memory_peak_mb = float(m.group(1))
        else:
            for key, pattern in _LITERT2.items():
                if m := pattern.search(line):
                    runs = int(m.group(2)) if m.lastindex and m.lastindex > 1 else None
                    litert2[key] = (float(m.group(1)), runs)
                    break
    if phases:
        out.warmup = phases[0] if len(phases) > 1 else None
        out.inference = phases[-1]
    elif "avg_ms" in litert2:
        out = _from_litert2(litert2)
    if out.inference is None and out.inference_avg_us is None:
        raise BenchmarkOutputError(f"no timed runs in the benchmark_model output: "
                                   f"{error_summary(text)}")
    return out


def _from_litert2(values: Mapping[str, tuple[float, int | None]]) -> BenchmarkOutput:
    def us(key: str) -> float | None:
        return values[key][0] * 1000.0 if key in values else None

    out = BenchmarkOutput(form="litert2-summary", init_us=us("init_ms"), first_us=us("first_ms"),
                          warmup_avg_us=us("warmup_avg_ms"), inference_avg_us=us("avg_ms"))
    stats = {"avg": us("avg_ms"), "min": us("min_ms"), "max": us("max_ms"), "std": us("std_ms"),
             "count": values["avg_ms"][1]}
    out.inference = Phase(stats={k: float(v) for k, v in stats.items() if v is not None})
    if "warmup_avg_ms" in values:
        out.warmup = Phase(stats={"avg": us("warmup_avg_ms") or 0.0,
                                  "count": float(values["warmup_avg_ms"][1] or 0)})
    if "init_mb" in values:
        out.memory_init_mb = values["init_mb"][0]
    if "overall_mb" in values:
        out.memory_overall_mb = values["overall_mb"][0]
    return out


def read_memory(text: str) -> dict[str, float | None]:
    """The memory lines alone, in MB (``init``, ``overall``: the deltas from the tool's start;
    ``peak``: the periodic monitor's), the last of each kind; None where absent."""
    found: dict[str, float | None] = {"init": None, "overall": None, "peak": None}
    for line in text.splitlines():
        if m := _DELTA.search(line):
            found["init"], found["overall"] = float(m.group(1)), float(m.group(2))
        elif m := _PERIODIC.search(line):
            found["peak"] = float(m.group(1))
    return found


def error_summary(text: str, lines: int = 5) -> str:
    """The output's first error line, else its last `lines` non-empty lines (one string)."""
    rows = [row.strip() for row in text.splitlines() if row.strip()]
    for row in rows:
        if m := _ERROR.match(row):
            return m.group(1).strip()
    return " | ".join(rows[-lines:]) if rows else "(no output)"


def benchmark_flags(graph: str, threads: int, protocol: Mapping[str, Any], *,
                    use_xnnpack: bool = True, use_gpu: bool = False) -> list[str]:
    """benchmark_model's flags for one cell: the model at `graph` (its path on the device),
    `threads` CPU threads, and the protocol (`edge.farm.protocol.protocol.Protocol.to_dict`):
    ``warmup`` -> ``--warmup_runs`` (no time floor: ``--warmup_min_secs=0``), ``min_runs`` ->
    ``--num_runs``, ``min_seconds`` -> ``--min_secs``, ``max_seconds`` -> ``--max_secs``."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    flags = [f"--graph={graph}", f"--num_threads={int(threads)}",
             f"--warmup_runs={int(protocol['warmup'])}", "--warmup_min_secs=0",
             f"--num_runs={int(protocol['min_runs'])}",
             f"--min_secs={float(protocol['min_seconds']):g}",
             f"--max_secs={float(protocol['max_seconds']):g}"]
    flags.append(f"--use_xnnpack={'true' if use_xnnpack else 'false'}")
    if use_gpu:
        flags.append("--use_gpu=true")
    return flags
