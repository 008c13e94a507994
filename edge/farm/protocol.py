"""The measurement protocol shared by the browser harness and the TFLite runner.

One *cell* (model x variant x runtime x device) is measured as in TFLite's ``benchmark_model`` and
pyperf: ``warmup`` warm-up runs first (recorded apart, excluded from the statistics), then timed
runs until the stopping rule `Protocol.done` holds -- at least ``min_runs`` runs *and* at least
``min_seconds`` of timed time, but never more than ``max_runs`` runs, and (adaptive run count)
no more than ``max_seconds`` of timed time once three runs are in. ``timeout_s`` is the
deadline for the whole cell (warm-up included); a cell that misses it is recorded with status
``timeout``.

`summarize` turns the timed samples (milliseconds) into the statistics stored with each record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from edge.errors import SpecError

#: pyperf warns that a benchmark "seems unstable" when its standard deviation reaches 10% of
#: its mean; records carry the same flag as ``wide``.
WIDE_CV = 0.10


class ProtocolError(SpecError, ValueError):
    """An invalid protocol: a `ValueError`, and an `EdgeError` so the CLI prints it plainly."""


#: Field name -> expected type (an int field takes only integers; a float field any number).
_KINDS: dict[str, type] = {"warmup": int, "min_runs": int, "min_seconds": float,
                           "max_runs": int, "max_seconds": float, "timeout_s": float}

#: Even a cell that hits ``max_seconds`` keeps at least this many timed runs.
MIN_RUNS_FLOOR = 3


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

    if v["warmup"] < 0:
        raise bad("warmup", "must be >= 0")
    if v["min_runs"] < 1:
        raise bad("min_runs", "must be >= 1")
    if v["min_seconds"] < 0:
        raise bad("min_seconds", "must be >= 0")
    if v["max_runs"] < 1:
        raise bad("max_runs", "must be >= 1")
    if v["timeout_s"] <= 0:
        raise bad("timeout_s", "must be > 0")
    if v["min_runs"] > v["max_runs"]:
        raise bad("min_runs", f"must not exceed max_runs ({v['max_runs']})")
    if v["max_seconds"] < v["min_seconds"]:
        raise bad("max_seconds", f"must be at least min_seconds ({v['min_seconds']})")
    if v["timeout_s"] <= v["min_seconds"]:
        raise bad("timeout_s", f"must exceed min_seconds ({v['min_seconds']})")


@dataclass(frozen=True)
class Protocol:
    """How many times to run one cell, and for how long. Validated on construction."""

    warmup: int = 3  # warm-up runs, recorded apart, excluded from statistics
    min_runs: int = 10  # at least this many timed runs ...
    min_seconds: float = 1.0  # ... and at least this much timed time ...
    max_runs: int = 200  # ... but never more than this (cap)
    max_seconds: float = 20.0  # adaptive: slow cells stop after this much timed time (>= 3 runs)
    timeout_s: float = 120.0  # deadline for one cell

    def __post_init__(self) -> None:
        self.validate()
        for name, kind in _KINDS.items():  # min_seconds=1 is stored (and serialized) as 1.0
            if kind is float:
                object.__setattr__(self, name, float(getattr(self, name)))

    def validate(self, source: str | None = None) -> None:
        """Raise `ProtocolError` (a `ValueError`) naming the field of the first bad value."""
        _check(asdict(self), source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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

    def done(self, runs: int, elapsed_s: float) -> bool:
        """The stopping rule, after ``runs`` timed runs taking ``elapsed_s`` seconds of timed
        time: stop at the cap, or once both the minimum count and the minimum time are met, or
        (adaptive run count, for slow cells) once ``max_seconds`` of timed time is spent and at
        least `MIN_RUNS_FLOOR` runs are in."""
        return (runs >= self.max_runs
                or (runs >= self.min_runs and elapsed_s >= self.min_seconds)
                or (runs >= MIN_RUNS_FLOOR and elapsed_s >= self.max_seconds))


PRESETS: dict[str, Protocol] = {
    "smoke": Protocol(warmup=1, min_runs=3, min_seconds=0.2, max_runs=20, max_seconds=5.0,
                      timeout_s=60.0),
    "default": Protocol(),
    "full": Protocol(warmup=5, min_runs=30, min_seconds=3.0, max_runs=1000, max_seconds=120.0,
                     timeout_s=600.0),
}


def summarize(samples_ms: Sequence[float]) -> dict[str, Any]:
    """Statistics of the timed samples (milliseconds; warm-up runs must not be included).

    ``std`` is the sample standard deviation (ddof=1; 0 for a single sample), percentiles are
    numpy's linear interpolation, ``cv`` is std/mean (0 when the mean is 0, e.g. every sample
    below a coarse browser timer's resolution), and ``wide`` is pyperf's "unstable" warning:
    std >= 10% of the mean. Empty, non-finite or negative samples raise `ValueError`."""
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
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "min": float(a.min()),
        "max": float(a.max()),
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "cv": cv,
        "wide": bool(std >= WIDE_CV * mean) if mean > 0 else False,
        "samples": [round(float(v), 4) for v in a],
    }
