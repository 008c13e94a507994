"""The rank test, tie groups and noise floor of edge.stats.

Reference p-values are worked out by hand below (normal approximation, tie and continuity
corrections), and optionally checked against SciPy's asymptotic method where SciPy is present.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.stats import distinguishable, mann_whitney, noise_floor, tie_groups

# -- mann_whitney ---------------------------------------------------------------------------


def test_complete_separation_of_three_against_three():
    """a = 1 2 3, b = 4 5 6: ranks of a 1 2 3, R = 6, U = 6 - 3*4/2 = 0; mean 9/2 = 4.5,
    variance 9/12 * 7 = 5.25; z = (4.5 - 0.5) / sqrt(5.25) = 1.745743; p = erfc(z / sqrt 2)
    = 0.0808556."""
    u, p = mann_whitney([1, 2, 3], [4, 5, 6])
    assert u == 0.0
    assert p == pytest.approx(0.0808556, abs=1e-7)
    u_b, p_b = mann_whitney([4, 5, 6], [1, 2, 3])
    assert u_b == 9.0 and p_b == pytest.approx(p)  # two-sided: symmetric


def test_ties_use_average_ranks_and_the_tie_correction():
    """a = 1 2 2 3, b = 2 3 3 4. Pooled and sorted: 1 | 2 2 2 | 3 3 3 | 4, average ranks 1, 3,
    6, 8. Ranks of a: 1 3 3 6, R = 13, U = 13 - 10 = 3. Two groups of three ties:
    sum(t^3 - t) = 48; variance = 16/12 * (9 - 48/56) = 10.857143; z = (|3 - 8| - 0.5) /
    3.295018 = 1.365699; p = 0.172034. (Without the tie correction the variance would be
    12 and p = 0.193601.)"""
    u, p = mann_whitney([1, 2, 2, 3], [2, 3, 3, 4])
    assert u == 3.0
    assert p == pytest.approx(0.172034, abs=1e-6)
    assert p != pytest.approx(0.193601, abs=1e-3)


def test_ten_against_ten_fully_separated():
    """1..10 against 11..20: U = 0, variance 100/12 * 21 = 175, z = 49.5 / 13.228757 =
    3.741859, p = 1.8264e-4."""
    u, p = mann_whitney(range(1, 11), range(11, 21))
    assert u == 0.0
    assert p == pytest.approx(1.8264e-4, rel=1e-3)


def test_all_values_tied_gives_p_one():
    assert mann_whitney([5.0] * 4, [5.0] * 6) == (12.0, 1.0)


def test_u_counts_pairs():
    a, b = [1.0, 4.0, 4.0, 9.0], [2.0, 4.0, 7.0]
    u, _ = mann_whitney(a, b)
    pairs = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    assert u == pairs == 6.0  # 4 beats 2 and ties 4 (twice), 9 beats all


def test_rejects_empty_and_non_finite():
    with pytest.raises(ValueError):
        mann_whitney([], [1.0])
    with pytest.raises(ValueError):
        mann_whitney([1.0, math.nan], [1.0])


def test_agrees_with_scipy_asymptotic():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    for _ in range(50):
        a = np.round(rng.normal(10, 1, rng.integers(1, 40)), 1)  # rounded: many ties
        b = np.round(rng.normal(10.4, 1, rng.integers(1, 40)), 1)
        ref = stats.mannwhitneyu(a, b, method="asymptotic", alternative="two-sided")
        u, p = mann_whitney(a, b)
        assert u == pytest.approx(float(ref.statistic))
        assert p == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-15)


# -- distinguishable and tie_groups ---------------------------------------------------------


def _normal(seed: int, center: float, n: int = 30, cv: float = 0.04) -> list[float]:
    return list(np.random.default_rng(seed).normal(center, center * cv, n))


def test_identical_distributions_tie():
    a, b = _normal(1, 20.0), _normal(2, 20.0)
    same, p, _ = distinguishable(a, b)
    assert not same and p > 0.01
    assert [sorted(g) for g in tie_groups({"a": a, "b": b})] == [["a", "b"]]


def test_twenty_percent_shift_separates_with_thirty_runs():
    fast, slow = _normal(3, 20.0), _normal(4, 24.0)
    same, p, diff = distinguishable(fast, slow)
    assert same and p < 1e-6 and diff == pytest.approx(0.2, abs=0.05)
    assert tie_groups({"slow": slow, "fast": fast}) == [["fast"], ["slow"]]


def test_significant_but_small_difference_is_not_a_difference():
    """1 % apart with little noise: the rank test is sure, the medians are within 3 %."""
    a = _normal(5, 100.0, n=200, cv=0.002)
    b = _normal(6, 101.0, n=200, cv=0.002)
    same, p, diff = distinguishable(a, b)
    assert p < 1e-10 and diff == pytest.approx(0.01, abs=0.002)
    assert not same
    assert distinguishable(a, b, rel=0.005)[0]


def test_large_but_noisy_difference_is_not_significant():
    a, b = [10.0, 30.0, 12.0], [14.0, 28.0, 16.0]  # medians 12 and 16: 33 %, but p = 0.66
    same, p, diff = distinguishable(a, b)
    assert diff == pytest.approx(1 / 3) and p > 0.5 and not same


def test_tie_groups_compare_with_the_fastest_member():
    """Medians about 10, 10.25 and 10.5: b is within 3 % of a and of c, c is 5 % slower than a
    and starts a new group, because membership is judged against the group's first member."""
    samples = {"a": _normal(10, 10.0, n=40, cv=0.01), "b": _normal(11, 10.25, n=40, cv=0.01),
               "c": _normal(12, 10.5, n=40, cv=0.01), "d": _normal(13, 20.0, n=40, cv=0.01)}
    assert distinguishable(samples["a"], samples["c"])[0]
    assert not distinguishable(samples["b"], samples["c"])[0]
    assert tie_groups(samples) == [["a", "b"], ["c"], ["d"]]


def test_tie_groups_every_key_once_sorted_by_median():
    samples = {k: _normal(i, 10.0 * 1.5 ** i, n=20) for i, k in enumerate("zyxw")}
    groups = tie_groups(samples)
    assert [k for g in groups for k in g] == ["z", "y", "x", "w"]
    assert groups == [["z"], ["y"], ["x"], ["w"]]
    assert tie_groups({}) == []
    assert tie_groups({"only": [1.0]}) == [["only"]]


def test_tie_groups_with_exact_ties():
    """Coarse timer: two keys with the same quantized samples are one group."""
    q = [2.0] * 10 + [2.1] * 10
    assert tie_groups({"k1": q, "k2": list(reversed(q)), "k3": [3.0] * 20}) == \
        [["k1", "k2"], ["k3"]]


# -- noise_floor ----------------------------------------------------------------------------


def test_noise_floor_is_the_widest_relative_ci():
    """n = 10, sorted 1..10: CI ranks 1 and 9, values 2 and 10, half-width 4, median 5.5."""
    tight = [100.0] * 10
    wide = [float(x) for x in range(1, 11)]
    assert noise_floor({"tight": tight}) == 0.0
    assert noise_floor({"tight": tight, "wide": wide}) == pytest.approx(4 / 5.5)
    assert noise_floor({}) == 0.0
