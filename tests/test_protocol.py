"""The measurement protocol: stopping rule, presets, validation, summary statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.farm.protocol import PRESETS, Protocol, ProtocolError, summarize

# -- stopping rule --------------------------------------------------------------------------


def test_done_needs_min_runs_and_min_seconds():
    p = Protocol(warmup=0, min_runs=10, min_seconds=1.0, max_runs=200)
    assert not p.done(0, 0.0)
    assert not p.done(9, 5.0)  # enough time, too few runs
    assert not p.done(50, 0.99)  # enough runs, too little time
    assert p.done(10, 1.0)  # both minimums exactly met
    assert p.done(11, 2.0)


def test_done_caps_at_max_runs_whatever_the_time():
    p = Protocol(min_runs=3, min_seconds=100.0, max_runs=20, max_seconds=200.0, timeout_s=600.0)
    assert not p.done(19, 0.5)
    assert p.done(20, 0.5)
    assert p.done(25, 0.0)


def test_done_with_zero_min_seconds_stops_at_min_runs():
    p = Protocol(min_runs=5, min_seconds=0.0, max_runs=5)
    assert not p.done(4, 0.0)
    assert p.done(5, 0.0)


def test_stopping_rule_drives_a_simulated_loop():
    """A 1 ms model runs until min_seconds; a 1 s model stops at min_runs; a 0.01 ms one at
    the cap."""
    p = Protocol(min_runs=10, min_seconds=1.0, max_runs=200)

    def runs_for(per_run_s):
        runs, elapsed = 0, 0.0
        while not p.done(runs, elapsed):
            runs, elapsed = runs + 1, elapsed + per_run_s
        return runs

    assert runs_for(0.01) == 100
    assert runs_for(1.0) == 10
    assert runs_for(0.00001) == 200


# -- presets and validation -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["smoke", "default", "full"])
def test_presets_validate_and_round_trip(name):
    p = PRESETS[name]
    p.validate()
    assert Protocol.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_preset_values():
    assert PRESETS["default"] == Protocol()
    assert PRESETS["smoke"].to_dict() == {"warmup": 1, "min_runs": 3, "min_seconds": 0.2,
                                          "max_runs": 20, "max_seconds": 5.0, "timeout_s": 60.0}
    assert PRESETS["full"].min_runs == 30 and PRESETS["full"].max_runs == 1000
    assert PRESETS["smoke"].max_runs < PRESETS["default"].max_runs < PRESETS["full"].max_runs


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
    for key in ("warmup", "min_runs", "min_seconds", "max_runs", "timeout_s"):
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
    assert s["p99"] == pytest.approx(99.01)
    assert s["cv"] == pytest.approx(s["std"] / 50.5)
    assert s["wide"] is True
    assert s["samples"] == [float(i) for i in range(1, 101)]


def test_summarize_known_small_set():
    s = summarize([10.0, 12.0, 11.0, 13.0])
    assert s["mean"] == pytest.approx(11.5)
    assert s["std"] == pytest.approx(1.2909944)
    assert s["p50"] == pytest.approx(11.5)
    assert s["p90"] == pytest.approx(12.7)


def test_wide_flag_false_for_tight_samples():
    s = summarize([10.0, 10.1, 9.9, 10.05, 9.95])
    assert s["cv"] < 0.1 and s["wide"] is False


def test_wide_flag_true_at_ten_percent():
    s = summarize([9.0, 11.0, 8.5, 11.5])
    assert s["cv"] >= 0.1 and s["wide"] is True


def test_single_sample():
    s = summarize([4.25])
    assert s["n"] == 1 and s["std"] == 0.0 and s["cv"] == 0.0 and s["wide"] is False
    assert s["mean"] == s["min"] == s["max"] == s["p50"] == s["p90"] == s["p99"] == 4.25


def test_all_zero_samples_are_not_wide():
    """A coarse browser timer can report 0 ms for every run of a tiny model."""
    s = summarize([0.0, 0.0, 0.0])
    assert s["cv"] == 0.0 and s["wide"] is False


def test_samples_rounded_and_json_ready():
    s = summarize(np.array([1.234567, 2.000049], dtype=np.float32))
    assert s["samples"] == [1.2346, 2.0]
    assert all(type(s[k]) is float for k in ("mean", "std", "min", "max", "p50", "p90", "p99",
                                             "cv"))
    assert type(s["n"]) is int and type(s["wide"]) is bool
    json.dumps(s, allow_nan=False)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, float("inf")], [-1.0, 2.0],
                                 [[1.0, 2.0]], ["fast"]])
def test_summarize_rejects_bad_samples(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_adaptive_run_count_stops_slow_cells_after_max_seconds():
    p = Protocol(min_runs=10, min_seconds=1.0, max_runs=200, max_seconds=20.0)
    assert not p.done(2, 30.0)  # never fewer than three timed runs
    assert p.done(3, 20.0)      # slow cell: three runs of 7 s each are enough
    assert not p.done(9, 19.9)
    with pytest.raises(ValueError, match="max_seconds"):
        Protocol(min_seconds=5.0, max_seconds=1.0)
