"""The measurement protocol: stopping rule, presets, validation, summary statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.farm.protocol.protocol import (
    DEFAULTS,
    MIN_RUNS_FLOOR,
    PRESETS,
    Protocol,
    ProtocolError,
    summarize,
)

# -- the rules, through Protocol (edge.stopping holds them) ---------- -----------------------------


def test_defaults_come_from_stopping():
    assert Protocol().to_dict() == DEFAULTS
    assert PRESETS["default"] == Protocol()


def test_sampling_needs_min_runs_min_seconds_and_a_narrow_ci():
    p = Protocol(warmup=0, min_runs=10, min_seconds=1.0, max_runs=200)
    assert p.sampling_done([]) == (False, "")
    assert p.sampling_done([200.0] * 9) == (False, "")  # enough time, too few runs
    assert p.sampling_done([50.0] * 19) == (False, "")  # enough runs, 950 ms
    assert p.sampling_done([50.0] * 20) == (True, "ci")
    noisy = [40.0, 60.0] * 10  # CI from 40 to 60: half-width 10 > 3 % of 50
    assert p.sampling_done(noisy) == (False, "")
    assert Protocol(target_ci=0.25).sampling_done(noisy) == (True, "ci")


def test_sampling_caps_at_max_runs_whatever_the_time_and_ci():
    p = Protocol(min_runs=3, min_seconds=100.0, max_runs=20, max_seconds=200.0, timeout_s=600.0)
    assert p.sampling_done([1.0] * 19) == (False, "")
    assert p.sampling_done([1.0] * 20) == (True, "max_runs")


def test_adaptive_run_count_stops_slow_cells_after_max_seconds():
    p = Protocol(min_runs=10, min_seconds=1.0, max_runs=200, max_seconds=20.0)
    assert p.sampling_done([15_000.0, 15_000.0]) == (False, "")  # never fewer than 3 runs
    assert p.sampling_done([7_000.0, 7_000.0, 6_000.0]) == (True, "max_seconds")
    noisy = [1_000.0, 3_000.0] * 5  # never a narrow CI
    assert p.sampling_done(noisy[:9]) == (False, "")  # 17 s
    assert p.sampling_done(noisy) == (True, "max_seconds")  # 20 s
    assert MIN_RUNS_FLOOR == 3
    with pytest.raises(ValueError, match="max_seconds"):
        Protocol(min_seconds=5.0, max_seconds=1.0)


def test_stopping_rule_drives_a_simulated_loop():
    """Constant latencies have a zero-width CI: the count is set by min_seconds (0.5 s), by
    min_runs, or by the cap; a 2 s model stops at max_seconds (15 s) after 8 runs."""
    p = Protocol()

    def runs_for(ms):
        samples = []
        while not p.sampling_done(samples)[0]:
            samples.append(ms)
        return len(samples), p.sampling_done(samples)[1]

    assert runs_for(10.0) == (50, "ci")
    assert runs_for(100.0) == (10, "ci")
    assert runs_for(0.001) == (300, "max_runs")
    assert runs_for(2000.0) == (8, "max_seconds")


def test_warmup_until_steady_or_a_cap():
    p = Protocol()
    noisy_start = [126.0, 90.0, 151.0, 140.0, 62.0, 61.0, 63.0, 62.0, 61.0, 62.0, 61.0, 62.0]
    assert p.warmup_done(noisy_start[:11]) == (False, False)
    assert p.warmup_done(noisy_start) == (True, True)
    rising = [0.01 * 1.1 ** i for i in range(60)]  # never steady, under 1 s in all
    assert p.warmup_done(rising[:49]) == (False, False)
    assert p.warmup_done(rising[:50]) == (True, False)  # max_warmup
    assert Protocol(max_warmup_seconds=1.0).warmup_done([600.0, 600.0]) == (False, False)
    assert Protocol(max_warmup_seconds=1.0).warmup_done([600.0] * 3) == (True, False)
    assert Protocol(warmup=0, max_warmup=0).warmup_done([]) == (True, False)


def test_to_js_is_camel_case_with_every_field():
    js = PRESETS["full"].to_js()
    assert js == {"warmup": 5, "maxWarmup": 100, "maxWarmupSeconds": 30.0, "steadyTol": 0.05,
                  "minRuns": 30, "minSeconds": 3.0, "maxRuns": 1000, "maxSeconds": 120.0,
                  "targetCi": 0.02, "timeoutS": 600.0}
    json.dumps(js, allow_nan=False)


# -- presets and validation -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["smoke", "default", "full"])
def test_presets_validate_and_round_trip(name):
    p = PRESETS[name]
    p.validate()
    assert Protocol.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_preset_values():
    assert PRESETS["default"] == Protocol()
    assert PRESETS["smoke"].to_dict() == {
        "warmup": 1, "max_warmup": 10, "max_warmup_seconds": 2.0, "steady_tol": 0.05,
        "min_runs": 3, "min_seconds": 0.2, "max_runs": 20, "max_seconds": 5.0,
        "target_ci": 0.03, "timeout_s": 60.0}
    assert PRESETS["full"].min_runs == 30 and PRESETS["full"].max_runs == 1000
    assert PRESETS["full"].target_ci == 0.02 < PRESETS["default"].target_ci
    for field in ("max_warmup", "max_warmup_seconds", "max_runs", "max_seconds", "timeout_s"):
        values = [getattr(PRESETS[name], field) for name in ("smoke", "default", "full")]
        assert values == sorted(values) and values[0] < values[2], field


def test_presets_fit_their_deadline():
    """Warm-up and timed caps together leave room for loading within timeout_s."""
    for p in PRESETS.values():
        assert p.max_warmup_seconds + p.max_seconds < p.timeout_s


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"warmup": -1}, "warmup"),
    ({"min_runs": 0}, "min_runs"),
    ({"min_runs": -3}, "min_runs"),
    ({"min_seconds": -0.5}, "min_seconds"),
    ({"max_runs": 0}, "max_runs"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"timeout_s": -1.0}, "timeout_s"),
    ({"min_runs": 300, "max_runs": 200}, "min_runs"),  # inconsistent
    ({"min_seconds": 10.0, "timeout_s": 5.0}, "timeout_s"),  # cannot meet min_seconds in time
    ({"min_seconds": float("nan")}, "min_seconds"),
    ({"timeout_s": float("inf")}, "timeout_s"),
    ({"min_runs": 2.5}, "min_runs"),
    ({"warmup": True}, "warmup"),
    ({"max_runs": "100"}, "max_runs"),
    ({"max_warmup": -1}, "max_warmup"),
    ({"warmup": 5, "max_warmup": 4}, "max_warmup"),  # inconsistent
    ({"max_warmup": 2.0}, "max_warmup"),
    ({"max_warmup_seconds": -1.0}, "max_warmup_seconds"),
    ({"steady_tol": -0.01}, "steady_tol"),
    ({"target_ci": -0.03}, "target_ci"),
    ({"target_ci": float("nan")}, "target_ci"),
    ({"steady_tol": "5%"}, "steady_tol"),
])
def test_bad_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"'{field}'"):
        Protocol(**kwargs)


def test_protocol_error_is_a_value_error_and_an_edge_error():
    with pytest.raises(ProtocolError) as info:
        Protocol(min_runs=0)
    assert isinstance(info.value, ValueError) and isinstance(info.value, EdgeError)


def test_integer_seconds_are_stored_as_floats():
    p = Protocol(min_seconds=2, timeout_s=30)
    assert isinstance(p.min_seconds, float) and isinstance(p.timeout_s, float)
    assert p.to_dict()["min_seconds"] == 2.0


def test_protocol_is_frozen():
    with pytest.raises(AttributeError):
        PRESETS["default"].min_runs = 1  # type: ignore[misc]


# -- from_dict ------------------------------------------------------------------------------


def test_from_dict_partial_keeps_defaults():
    p = Protocol.from_dict({"min_runs": 5, "min_seconds": 2})
    assert p == Protocol(min_runs=5, min_seconds=2.0)
    assert Protocol.from_dict({}) == Protocol()


def test_from_dict_unknown_key_names_source_key_and_allowed_keys():
    with pytest.raises(ValueError) as info:
        Protocol.from_dict({"min_run": 5}, source="device_matrix.toml [protocol]")
    msg = str(info.value)
    assert "device_matrix.toml [protocol]" in msg and "min_run" in msg
    for key in DEFAULTS:
        assert key in msg


def test_from_dict_wrong_type_names_source_and_key():
    with pytest.raises(ValueError, match=r"^m\.toml: .*'min_seconds'.*number"):
        Protocol.from_dict({"min_seconds": "1s"}, source="m.toml")
    with pytest.raises(ValueError, match=r"m\.toml: .*'warmup'.*integer"):
        Protocol.from_dict({"warmup": 1.5}, source="m.toml")


def test_from_dict_bad_value_names_source():
    with pytest.raises(ValueError, match=r"m\.toml: .*'min_runs'.*max_runs"):
        Protocol.from_dict({"min_runs": 50, "max_runs": 10}, source="m.toml")


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ValueError, match="cli: .*mapping"):
        Protocol.from_dict([("min_runs", 3)], source="cli")  # type: ignore[arg-type]


# -- summarize ------------------------------------------------------------------------------


def test_summarize_one_to_hundred():
    s = summarize(list(range(1, 101)))
    assert s["n"] == 100
    assert s["mean"] == pytest.approx(50.5)
    assert s["std"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))  # 29.011...
    assert s["std"] == pytest.approx(29.0114, abs=1e-4)
    assert (s["min"], s["max"]) == (1.0, 100.0)
    assert s["p50"] == pytest.approx(50.5)
    assert s["p90"] == pytest.approx(90.1)
    assert s["p99"] is None  # 100 samples cannot support a 99th percentile
    assert s["cv"] == pytest.approx(s["std"] / 50.5)
    assert s["wide"] is True
    assert s["samples"] == [float(i) for i in range(1, 101)]
    # ranks floor(50 - 9.8) = 40 and ceil(59.8) = 60 of 1..100: 41 and 61
    assert s["ci95"] == [41.0, 61.0]
    assert s["ci_rel"] == pytest.approx(10 / 50.5)
    assert s["steady"] is None and s["warmup_runs"] is None


def test_summarize_known_small_set():
    s = summarize([10.0, 12.0, 11.0, 13.0])
    assert s["mean"] == pytest.approx(11.5)
    assert s["std"] == pytest.approx(1.2909944)
    assert s["p50"] == pytest.approx(11.5)
    assert s["p90"] is None and s["p99"] is None
    assert s["ci95"] == [10.0, 13.0]  # n = 4: the whole range
    assert s["ci_rel"] == pytest.approx(1.5 / 11.5)


def test_wide_flag_false_for_tight_samples():
    s = summarize([10.0, 10.1, 9.9, 10.05, 9.95])
    assert s["cv"] < 0.1 and s["wide"] is False


def test_wide_flag_true_at_ten_percent():
    s = summarize([9.0, 11.0, 8.5, 11.5])
    assert s["cv"] >= 0.1 and s["wide"] is True


def test_single_sample():
    s = summarize([4.25])
    assert s["n"] == 1 and s["std"] == 0.0 and s["cv"] == 0.0 and s["wide"] is False
    assert s["mean"] == s["min"] == s["max"] == s["p50"] == 4.25
    assert s["p90"] is None and s["p99"] is None
    assert s["ci95"] == [4.25, 4.25] and s["ci_rel"] == 0.0


def test_all_zero_samples_are_not_wide():
    """A coarse browser timer can report 0 ms for every run of a tiny model."""
    s = summarize([0.0, 0.0, 0.0])
    assert s["cv"] == 0.0 and s["wide"] is False
    assert s["ci95"] == [0.0, 0.0] and s["ci_rel"] == 0.0
    assert summarize([0.0, 0.0, 0.1])["ci_rel"] is None  # zero median, non-zero width


def test_samples_rounded_and_json_ready():
    s = summarize(np.array([1.234567, 2.000049], dtype=np.float32))
    assert s["samples"] == [1.2346, 2.0]
    assert all(type(s[k]) is float for k in ("mean", "std", "min", "max", "p50", "cv",
                                             "ci_rel"))
    assert s["p90"] is None and s["p99"] is None
    assert type(s["n"]) is int and type(s["wide"]) is bool
    json.dumps(s, allow_nan=False)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, float("inf")], [-1.0, 2.0],
                                 [[1.0, 2.0]], ["fast"]])
def test_summarize_rejects_bad_samples(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_percentiles_appear_at_twenty_and_two_hundred_samples():
    assert summarize([1.0] * 19)["p90"] is None
    s20 = summarize(list(range(20)))
    assert s20["p90"] == pytest.approx(17.1) and s20["p99"] is None
    s200 = summarize(list(range(200)))
    assert s200["p99"] == pytest.approx(197.01)
    assert summarize(list(range(199)))["p99"] is None


def test_summarize_records_the_warm_up():
    s = summarize([10.0] * 12, warmup_samples=[30.0, 12.0, 10.0], steady=True)
    assert s["warmup_runs"] == 3 and s["steady"] is True
    s = summarize([10.0] * 12, warmup_samples=[], steady=False)
    assert s["warmup_runs"] == 0 and s["steady"] is False
    assert set(s) >= {"n", "mean", "std", "min", "max", "p50", "p90", "p99", "cv", "wide",
                      "samples", "ci95", "ci_rel", "steady", "warmup_runs"}
    json.dumps(s, allow_nan=False)
