"""The measurement protocol shared by the browser harness and the TFLite runner.

One *cell* (model x variant x runtime x device) is measured as in TFLite's ``benchmark_model`` and
pyperf, with the rules of `edge.stopping` (their one Python definition; the harness runs the
same rules from ``edge/data/web/stopping.js``):

- warm-up runs first, recorded apart and excluded from the statistics: at least ``warmup``
  runs, then until the latency is *steady* (the median of the last five runs within
  ``steady_tol`` of the five before), but no more than ``max_warmup`` runs or
  ``max_warmup_seconds`` (then the cell is recorded as not steady);
- then timed runs until the 95 % confidence interval of the median is within ``target_ci`` of
  the median (after at least ``min_runs`` runs and ``min_seconds`` of timed time), or until
  ``max_runs`` runs, or ``max_seconds`` of timed time once three runs are in.

``timeout_s`` is the deadline for the whole cell (warm-up included); a cell that misses it is
recorded with status ``timeout``. The defaults live in `edge.stopping.DEFAULTS`.

`summarize` turns the timed samples (milliseconds) into the statistics stored with each record.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from edge import stopping
from edge.errors import SpecError
from edge.stopping import DEFAULTS, MIN_RUNS_FLOOR

__all__ = ["DEFAULTS", "MIN_RUNS_FLOOR", "PRESETS", "WIDE_CV", "Protocol", "ProtocolError",
           "summarize"]

#: pyperf warns that a benchmark "seems unstable" when its standard deviation reaches 10% of
#: its mean; records carry the same flag as ``wide``.
WIDE_CV = 0.10


class ProtocolError(SpecError, ValueError):
    """An invalid protocol: a `ValueError`, and an `EdgeError` so the CLI prints it plainly."""


#: Field name -> expected type (an int field takes only integers; a float field any number).
_KINDS: dict[str, type] = {name: type(value) for name, value in DEFAULTS.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _check(v: Mapping[str, Any], source: str | None) -> None:
    where = f"{source}: " if source else ""
    for name, kind in _KINDS.items():
        value = v[name]
        ok = isinstance(value, int if kind is int else int | float) and not isinstance(value, bool)
        if not ok:
            what = "an integer" if kind is int else "a number"
            raise ProtocolError(f"{where}protocol field {name!r} must be {what}, "
                                f"got {value!r} ({type(value).__name__})")
        if not math.isfinite(value):
            raise ProtocolError(f"{where}protocol field {name!r} must be finite, got {value!r}")

    def bad(name: str, why: str) -> ProtocolError:
        return ProtocolError(f"{where}protocol field {name!r} {why}, got {v[name]!r}")

    for name in ("warmup", "max_warmup", "max_warmup_seconds", "steady_tol", "min_seconds",
                 "target_ci"):
        if v[name] < 0:
            raise bad(name, "must be >= 0")
    if v["min_runs"] < 1:
        raise bad("min_runs", "must be >= 1")
    if v["max_runs"] < 1:
        raise bad("max_runs", "must be >= 1")
    if v["timeout_s"] <= 0:
        raise bad("timeout_s", "must be > 0")
    if v["max_warmup"] < v["warmup"]:
        raise bad("max_warmup", f"must be at least warmup ({v['warmup']})")
    if v["min_runs"] > v["max_runs"]:
        raise bad("min_runs", f"must not exceed max_runs ({v['max_runs']})")
    if v["max_seconds"] < v["min_seconds"]:
        raise bad("max_seconds", f"must be at least min_seconds ({v['min_seconds']})")
    if v["timeout_s"] <= v["min_seconds"]:
        raise bad("timeout_s", f"must exceed min_seconds ({v['min_seconds']})")


@dataclass(frozen=True)
class Protocol:
    """How long to warm up one cell and how many timed runs to take (the rules are
    `edge.stopping`'s). Validated on construction."""

    warmup: int = DEFAULTS["warmup"]  # warm-up runs at least ...
    max_warmup: int = DEFAULTS["max_warmup"]  # ... at most, steady or not ...
    max_warmup_seconds: float = DEFAULTS["max_warmup_seconds"]  # ... and for no longer
    steady_tol: float = DEFAULTS["steady_tol"]  # steady: window medians within this (relative)
    min_runs: int = DEFAULTS["min_runs"]  # timed runs: at least this many ...
    min_seconds: float = DEFAULTS["min_seconds"]  # ... and at least this much timed time ...
    max_runs: int = DEFAULTS["max_runs"]  # ... but never more than this (cap)
    max_seconds: float = DEFAULTS["max_seconds"]  # slow cells stop after this (>= 3 runs)
    target_ci: float = DEFAULTS["target_ci"]  # stop once the median's 95 % CI is within this
    timeout_s: float = DEFAULTS["timeout_s"]  # deadline for one cell

    def __post_init__(self) -> None:
        self.validate()
        for name, kind in _KINDS.items():  # min_seconds=1 is stored (and serialized) as 1.0
            if kind is float:
                object.__setattr__(self, name, float(getattr(self, name)))

    def validate(self, source: str | None = None) -> None:
        """Raise `ProtocolError` (a `ValueError`) naming the field of the first bad value."""
        _check(asdict(self), source)

    def to_dict(self) -> dict[str, Any]:
        """Every field, snake_case: what the native worker and `from_dict` read."""
        return asdict(self)

    def to_js(self) -> dict[str, Any]:
        """Every field with camelCase keys (``minRuns``, ``targetCi``, ``timeoutS``...): the
        ``protocol`` of the browser harness's config, read by ``edge/data/web/stopping.js``."""
        return {_camel(name): value for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "protocol") -> Protocol:
        """Build from a (possibly partial) mapping, e.g. a TOML table; missing keys keep their
        defaults. Unknown keys, wrong types and bad values raise `ProtocolError` naming
        ``source`` (and the key)."""
        allowed = ", ".join(_KINDS)
        if not isinstance(d, Mapping):
            raise ProtocolError(f"{source}: a protocol must be a table/mapping with keys "
                                f"{allowed}; got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in _KINDS)
        if unknown:
            raise ProtocolError(f"{source}: unknown protocol key(s) {', '.join(unknown)}; "
                                f"allowed keys: {allowed}")
        merged = {f.name: f.default for f in fields(cls)} | dict(d)
        _check(merged, source)
        return cls(**merged)

    def warmup_done(self, samples_ms: Sequence[float]) -> tuple[bool, bool]:
        """(done, steady) after the warm-up runs ``samples_ms``: `stopping.warmup_done`."""
        return stopping.warmup_done(list(samples_ms), self.to_dict())

    def sampling_done(self, samples_ms: Sequence[float]) -> tuple[bool, str]:
        """(done, reason) after the timed runs ``samples_ms``: `stopping.sampling_done`."""
        return stopping.sampling_done(list(samples_ms), self.to_dict())


PRESETS: dict[str, Protocol] = {
    "smoke": Protocol(warmup=1, max_warmup=10, max_warmup_seconds=2.0, min_runs=3,
                      min_seconds=0.2, max_runs=20, max_seconds=5.0, timeout_s=60.0),
    "default": Protocol(),
    "full": Protocol(warmup=5, max_warmup=100, max_warmup_seconds=30.0, min_runs=30,
                     min_seconds=3.0, max_runs=1000, max_seconds=120.0, target_ci=0.02,
                     timeout_s=600.0),
}


#: A cell measured alone inside a group: warm-up and sampling capped (its latency comes from the
#: interleaved blocks; the alone step is for load, first run, memory and outputs, and a short
#: look at its latency in a page or worker of its own).
ALONE_WARMUP_S = 1.0
ALONE_SAMPLING_S = 0.5


def alone_protocol(protocol: Protocol) -> Protocol:
    """The protocol of a group's cell measured alone: the run's, with short caps."""
    return dataclasses.replace(
        protocol, max_warmup_seconds=min(protocol.max_warmup_seconds, ALONE_WARMUP_S),
        min_runs=min(protocol.min_runs, 3), min_seconds=min(protocol.min_seconds, 0.3),
        max_seconds=min(protocol.max_seconds, ALONE_SAMPLING_S))


def summarize(samples_ms: Sequence[float], warmup_samples: Sequence[float] | None = None,
              steady: bool | None = None) -> dict[str, Any]:
    """Statistics of the timed samples (milliseconds; warm-up runs must not be included).

    ``std`` is the sample standard deviation (ddof=1; 0 for a single sample), percentiles are
    numpy's linear interpolation, ``p90``/``p99`` are None when too few samples support them
    (`stopping.percentile_ok`: 20 and 200 samples), ``cv`` is std/mean (0 when the mean is 0,
    e.g. every sample below a coarse browser timer's resolution), and ``wide`` is pyperf's
    "unstable" warning: std >= 10% of the mean. ``ci95`` is the distribution-free 95 %
    confidence interval of the median (`stopping.median_ci95`) and ``ci_rel`` its half-width
    over the median (None for a zero median with a non-zero width). ``steady`` (did the warm-up
    settle) and ``warmup_runs`` (``len(warmup_samples)``) are None when not given.
    Empty, non-finite or negative samples raise `ValueError`."""
    try:
        a = np.asarray(samples_ms, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"samples must be numbers (milliseconds): {exc}") from None
    if a.ndim != 1:
        raise ValueError(f"samples must be a flat sequence, got shape {a.shape}")
    if a.size == 0:
        raise ValueError("cannot summarize an empty list of samples")
    if not np.isfinite(a).all():
        raise ValueError("samples must be finite (found NaN or infinity)")
    if (a < 0).any():
        raise ValueError(f"samples must be >= 0 ms, found {float(a.min())}")
    n = int(a.size)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if n > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99], method="linear"))
    cv = std / mean if mean > 0 else 0.0
    values = [float(v) for v in a]
    lo, hi = stopping.median_ci95(values)
    half = (hi - lo) / 2
    ci_rel = half / p50 if p50 > 0 else (0.0 if half == 0 else None)
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "min": float(a.min()),
        "max": float(a.max()),
        "p50": p50,
        "p90": p90 if stopping.percentile_ok(n, 0.90) else None,
        "p99": p99 if stopping.percentile_ok(n, 0.99) else None,
        "cv": cv,
        "wide": bool(std >= WIDE_CV * mean) if mean > 0 else False,
        "ci95": [lo, hi],
        "ci_rel": ci_rel,
        "steady": None if steady is None else bool(steady),
        "warmup_runs": None if warmup_samples is None else len(warmup_samples),
        "samples": [round(v, 4) for v in values],
    }
