"""When to stop warming up, when to stop sampling, and which percentiles a sample can support.

The one definition of the measurement protocol's rules, used by `edge.farm.protocol`, by
`edge.stats`, by the native worker (``edge/farm/runners/tflite_worker.py`` loads this file by
path: it runs under interpreters without the ``edge`` package, so this module uses the standard
library only) and, line for line, by the
browser harness (``edge/data/web/stopping.js``). Both implementations are checked against the same
vectors (``tests/data/stopping_vectors.json``) and must agree exactly: every computation below
uses IEEE double arithmetic in a fixed order (left-to-right sums, medians of sorted copies, the
mean of the two middle values for an even count), which JavaScript reproduces bit for bit.

Times are the sums of the samples (milliseconds), compared with the limits in seconds times 1000.

Warm-up (`warmup_done`)
    At least ``warmup`` runs; then the cell is *steady* once the median of the last `WINDOW`
    runs is within ``steady_tol`` (relative) of the median of the `WINDOW` runs before them.
    Warming stops, steady or not, at ``max_warmup`` runs or once the warm-up runs have taken
    ``max_warmup_seconds``.

Sampling (`sampling_done`)
    After at least ``min_runs`` runs and ``min_seconds`` of timed time, stop once the 95 %
    confidence interval of the median (`median_ci95`) has a half-width of at most
    ``target_ci`` times the median (reason ``"ci"``). Whatever the interval, stop at
    ``max_runs`` runs (``"max_runs"``), or once the timed time reaches ``max_seconds`` with at
    least `MIN_RUNS_FLOOR` runs in (``"max_seconds"``).

Percentiles (`percentile_ok`)
    The q-th percentile is reported only when at least two samples lie above it.
"""

from __future__ import annotations

import math

#: Every protocol field and its default: the one place the defaults live.
DEFAULTS = {
    "warmup": 3,  # warm-up runs at least (recorded apart, never in the statistics)
    "max_warmup": 50,  # ... at most
    "max_warmup_seconds": 10.0,  # ... and no longer than this, steady or not
    "steady_tol": 0.05,  # steady: successive window medians within 5 %
    "min_runs": 10,  # timed runs at least ...
    "min_seconds": 0.5,  # ... and at least this much timed time before the CI may stop
    "max_runs": 300,  # cap on timed runs
    "max_seconds": 15.0,  # cap on timed time (once MIN_RUNS_FLOOR runs are in)
    "target_ci": 0.03,  # stop when the median's 95 % CI half-width <= 3 % of the median
    "timeout_s": 120.0,  # deadline for the whole cell (enforced by the caller)
}

#: The warm-up compares the medians of two successive windows of this many runs.
WINDOW = 5

#: Even a cell that hits ``max_seconds`` keeps at least this many timed runs.
MIN_RUNS_FLOOR = 3

#: z(0.975) / 2: the 95 % interval of the median spans ranks n/2 -/+ 0.98 sqrt(n).
_CI_Z_HALF = 0.98

#: Stopping reasons reported by `sampling_done`.
REASONS = ("ci", "max_runs", "max_seconds")


def _param(cfg, name):
    value = cfg.get(name) if cfg is not None else None
    return DEFAULTS[name] if value is None else value


def _total(samples):
    total = 0.0
    for s in samples:  # left to right, as in JavaScript (no compensated summation)
        total += s
    return total


def _median_sorted(xs):
    n = len(xs)
    mid = n // 2
    if n % 2:
        return xs[mid]
    return (xs[mid - 1] + xs[mid]) / 2


def median(samples):
    """The median of ``samples`` (the mean of the two middle values for an even count)."""
    if not samples:
        raise ValueError("median of no samples")
    return _median_sorted(sorted(samples))


def ci95_ranks(n):
    """0-based ranks (lo, hi) in the sorted samples bounding the 95 % CI of the median."""
    if n < 1:
        raise ValueError("confidence interval of no samples")
    spread = _CI_Z_HALF * math.sqrt(n)
    lo = math.floor(n / 2 - spread)
    hi = math.ceil(n / 2 + spread)
    return max(0, min(n - 1, lo)), max(0, min(n - 1, hi))


def median_ci95(samples):
    """The distribution-free 95 % confidence interval (lo, hi) of the median: the order
    statistics at the ranks of `ci95_ranks` (the whole range for small samples)."""
    xs = sorted(samples)
    lo, hi = ci95_ranks(len(xs))
    return xs[lo], xs[hi]


def ci_half_width(samples):
    """Half the width of `median_ci95`."""
    lo, hi = median_ci95(samples)
    return (hi - lo) / 2


def warmup_done(samples_ms, cfg=None):
    """(done, steady) after the warm-up runs ``samples_ms``: done once steady (see the module
    docstring) or at a cap; ``steady`` says which. ``cfg`` maps protocol field names (as in
    `DEFAULTS`) to values; missing ones take their defaults."""
    n = len(samples_ms)
    if n >= _param(cfg, "warmup") and n >= 2 * WINDOW:
        last = _median_sorted(sorted(samples_ms[n - WINDOW:]))
        before = _median_sorted(sorted(samples_ms[n - 2 * WINDOW:n - WINDOW]))
        if abs(last - before) <= _param(cfg, "steady_tol") * before:
            return True, True
    if n >= _param(cfg, "warmup") and (
            n >= _param(cfg, "max_warmup")
            or _total(samples_ms) >= _param(cfg, "max_warmup_seconds") * 1000):
        return True, False
    return False, False


def sampling_done(samples_ms, cfg=None):
    """(done, reason) after the timed runs ``samples_ms``: reason is one of `REASONS` when done,
    "" otherwise. A precise median ("ci") wins over a cap reached at the same run."""
    n = len(samples_ms)
    if n == 0:
        return False, ""
    total = _total(samples_ms)
    if n >= _param(cfg, "min_runs") and total >= _param(cfg, "min_seconds") * 1000:
        xs = sorted(samples_ms)
        lo, hi = ci95_ranks(n)
        if (xs[hi] - xs[lo]) / 2 <= _param(cfg, "target_ci") * _median_sorted(xs):
            return True, "ci"
    if n >= _param(cfg, "max_runs"):
        return True, "max_runs"
    if n >= MIN_RUNS_FLOOR and total >= _param(cfg, "max_seconds") * 1000:
        return True, "max_seconds"
    return False, ""


def percentile_ok(n, q):
    """Whether n samples support the q-th quantile (0 < q < 1): at least two samples above it,
    n * (1 - q) >= 2 (p90 from 20 samples, p99 from 200). The 1e-9 absorbs the rounding of
    1 - q (20 * (1 - 0.9) is 1.9999999999999996 in binary floating point)."""
    return n * (1 - q) + 1e-9 >= 2
