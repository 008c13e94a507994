"""Which latencies are really different: a rank test on raw samples, tie groups, the noise floor.

One rule decides everywhere (``edge report --compare``, tie groups in rankings): two sets of
timed samples are *distinguishable* when the Mann-Whitney U test rejects "same distribution" at
``alpha`` (two-sided) **and** their medians differ by more than ``rel`` (relative to the smaller
one). The second condition keeps a difference smaller than the protocol's precision target
(`edge.stopping`: the median known to within 3 %) from counting, however many runs made it
statistically detectable.

NumPy only (no SciPy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from edge.stopping import median_ci95

#: Significance level of the rank test.
ALPHA = 0.01
#: Medians closer than this (relative) are never a difference: the protocol's CI target.
REL = 0.03


def _samples(values: Sequence[float], name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name}: need a non-empty flat list of samples, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: samples must be finite")
    return a


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test of ``a`` against ``b``: ``(u, p)``.

    ``u`` is the statistic of ``a``: the number of pairs (x from a, y from b) with x > y, ties
    counting one half (``u`` of b is ``len(a) * len(b) - u``). ``p`` comes from the normal
    approximation with the tie correction of the variance and a continuity correction of 0.5:

        z = (|u - n1 n2 / 2| - 0.5) / sqrt(n1 n2 / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1))))
        p = erfc(z / sqrt(2)), at most 1

    (t: the sizes of the groups of tied values). This is SciPy's ``method="asymptotic"``; it is
    not the exact distribution, which differs for very small samples (n1, n2 below about 8) but
    the samples compared here are tens to hundreds of runs. When every value is tied the
    variance is zero and p is 1."""
    x, y = _samples(a, "a"), _samples(b, "b")
    n1, n2 = x.size, y.size
    n = n1 + n2
    values, inverse, counts = np.unique(np.concatenate([x, y]), return_inverse=True,
                                        return_counts=True)
    last = np.cumsum(counts).astype(np.float64)  # 1-based rank of each group's last member
    average = last - (counts - 1) / 2.0  # the average rank of a tied group
    ranks = average[inverse.reshape(-1)]
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    tie_term = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return u, 1.0
    z = (abs(u - n1 * n2 / 2.0) - 0.5) / math.sqrt(variance)
    return u, min(1.0, math.erfc(z / math.sqrt(2.0)))


def relative_difference(a: Sequence[float], b: Sequence[float]) -> float:
    """|median(b) - median(a)| over the smaller median (0 when equal, inf from a zero median)."""
    ma = float(np.median(_samples(a, "a")))
    mb = float(np.median(_samples(b, "b")))
    low = min(ma, mb)
    if ma == mb:
        return 0.0
    return abs(mb - ma) / low if low > 0 else math.inf


def distinguishable(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA,
                    rel: float = REL) -> tuple[bool, float, float]:
    """(distinguishable, p, relative difference of medians): the module's rule."""
    _, p = mann_whitney(a, b)
    diff = relative_difference(a, b)
    return (p < alpha and diff > rel), p, diff


def tie_groups(samples: Mapping[str, Sequence[float]], alpha: float = ALPHA,
               rel: float = REL) -> list[list[str]]:
    """Group keys whose latencies cannot be told apart, fastest first.

    Keys are sorted by median (ties by key); walking in that order, a key joins the current
    group when it is not `distinguishable` from the group's first (fastest) member, and starts
    a new group otherwise. Every key lands in exactly one group."""
    order = sorted(samples, key=lambda k: (float(np.median(_samples(samples[k], str(k)))),
                                           str(k)))
    groups: list[list[str]] = []
    for key in order:
        if groups and not distinguishable(samples[groups[-1][0]], samples[key], alpha, rel)[0]:
            groups[-1].append(key)
        else:
            groups.append([key])
    return groups


#: 1.96 * sqrt(2): two independent measurements whose own spread (between pages or worker
#: processes of the same cell) has relative standard deviation cv differ by less than
#: 2.77 * cv in 95 % of cases.
BETWEEN_FACTOR = 1.96 * math.sqrt(2)


def noise_margin(between_cv: float | None) -> float:
    """The relative difference below which two separately measured cells are not told apart:
    `REL` (the protocol's +/-3 % target), or more where the run measured a larger spread
    between repeated measurements of one cell (fresh pages or worker processes): 2.77 times
    its relative standard deviation."""
    if between_cv is None or not math.isfinite(between_cv):
        return REL
    return max(REL, BETWEEN_FACTOR * float(between_cv))


def noise_floor(samples: Mapping[str, Sequence[float]]) -> float:
    """The largest relative half-width of the 95 % CI of the median among the keys (e.g. 0.04:
    no median is known better than +/-4 %); 0.0 for no keys. A key with a zero median and a
    non-zero interval makes it infinite."""
    worst = 0.0
    for key, values in samples.items():
        a = _samples(values, str(key))
        lo, hi = median_ci95([float(v) for v in a])
        half = (hi - lo) / 2
        med = float(np.median(a))
        if half == 0:
            continue
        worst = max(worst, half / med if med > 0 else math.inf)
    return worst
