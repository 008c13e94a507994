"""Interleaved comparison groups: the engine's rounds (against a simulated drifting host, the
subject being the order of the blocks), and a real group of native cells on the host and an
emulated phone (real worker processes, real CPU bandwidth control)."""

from __future__ import annotations

import statistics

import pytest

from edge.farm.protocol.interleave import DISCARD, MIN_ROUNDS, Arm, block_runs, interleave

PROTOCOL = {"min_runs": 10, "min_seconds": 0.0, "max_runs": 60, "max_seconds": 1e9,
            "target_ci": 0.03}


class DriftingHost:
    """A host whose speed halves after `switch_ms` of simulated work: a model of `cost_ms`
    per run takes twice as long after that. Simulated time advances with every run."""

    def __init__(self, switch_ms: float):
        self.clock = 0.0
        self.switch_ms = switch_ms
        self.quota: tuple | None = None
        self.calls: list[tuple] = []

    def runner(self, cost_ms: float, tag: str):
        def time_runs(n: int) -> list[float]:
            out = []
            for _ in range(n):
                factor = 2.0 if self.clock >= self.switch_ms else 1.0
                if self.quota and self.quota[0]:
                    factor *= 3.0  # a throttled block
                ms = cost_ms * factor
                self.clock += ms
                out.append(ms)
            self.calls.append((tag, n, self.quota))
            return out
        return time_runs

    def set_quota(self, quota, period):
        self.quota = (quota, period) if quota is not None else None


def test_identical_cells_measured_in_turns_agree_despite_the_drift():
    host = DriftingHost(switch_ms=3000)
    a, b = Arm("a", host.runner(10.0, "a")), Arm("b", host.runner(10.0, "b"))
    rounds = interleave([a, b], host.set_quota, {**PROTOCOL, "max_runs": 400,
                                                 "target_ci": 0.0})
    assert rounds >= MIN_ROUNDS
    # both saw the slow half as much as the fast half: the medians agree
    assert abs(statistics.median(a.samples) / statistics.median(b.samples) - 1) < 0.01
    # measured one after the other, the same two cells would differ by the drift
    seq = DriftingHost(switch_ms=3000)
    first, second = seq.runner(10.0, "a")(300), seq.runner(10.0, "b")(300)
    assert statistics.median(second) / statistics.median(first) == pytest.approx(2.0)


def test_each_block_runs_under_its_cells_quota_and_the_throttle_is_lifted_at_the_end():
    host = DriftingHost(switch_ms=1e12)
    free = Arm("host", host.runner(5.0, "host"))
    slow = Arm("phone", host.runner(5.0, "phone"), quota_us=2000, period_us=8000)
    interleave([free, slow], host.set_quota, PROTOCOL)
    assert host.quota is None
    assert {q for tag, _, q in host.calls if tag == "host"} == {None}
    assert {q for tag, _, q in host.calls if tag == "phone"} == {(2000, 8000)}
    # the discarded first run of each block is not among the samples
    assert len(slow.samples) == slow.blocks * slow.runs_per_block
    assert statistics.median(slow.samples) == pytest.approx(15.0)
    assert statistics.median(free.samples) == pytest.approx(5.0)
    assert all(n == DISCARD + free.runs_per_block for tag, n, _ in host.calls[2:]
               if tag == "host")


def test_every_cell_keeps_its_turn_until_all_are_done():
    host = DriftingHost(switch_ms=1e12)
    quick = Arm("quick", host.runner(1.0, "quick"))
    long = Arm("long", host.runner(50.0, "long"))
    rounds = interleave([quick, long], host.set_quota, {**PROTOCOL, "max_runs": 40})
    assert quick.blocks == long.blocks == rounds
    assert quick.stop_reason and long.stop_reason


class ThrottledModel:
    """A model of 10 ms per run whose throttled time is `scale` x (2000 us / quota)^`elasticity`
    times longer; `after` (calls, scale) changes the scale once that many blocks have run."""

    def __init__(self, scale=4.0, elasticity=1.0, after=None):
        self.quota = None
        self.scale, self.elasticity, self.after, self.calls = scale, elasticity, after, 0

    def set_quota(self, quota, period):
        self.quota = quota

    def time_runs(self, n):
        self.calls += 1
        if self.after and self.calls > self.after[0]:
            self.scale = self.after[1]
        factor = 1.0 if self.quota is None else \
            self.scale * (2000 / self.quota) ** self.elasticity
        return [10.0 * factor] * n


def test_a_throttled_cell_is_steered_to_its_target_before_the_rounds_that_count():
    """A first quota off target (4x at 2000 us for a 3x target, run time inversely proportional
    to the quota) is moved by the slowdown against the host arm: one step by the assumed
    elasticity, then by the elasticity the two quotas showed; the steering samples are
    dropped."""
    model = ThrottledModel()
    host = Arm("host", model.time_runs)
    phone = Arm("phone", model.time_runs, quota_us=2000, period_us=8000, target=3.0, host=host,
                max_quota_us=8000)
    interleave([host, phone], model.set_quota, PROTOCOL)
    steer = [s for s in phone.steps if s["phase"] == "steer"]
    assert [s["quota_us"] for s in steer] == [2000, 2423, 2667]
    assert [s["slowdown"] for s in steer] == pytest.approx([4.0, 3.3016, 3.0], abs=1e-3)
    assert phone.settled and phone.quota_us == 2667
    assert statistics.median(phone.samples) / statistics.median(host.samples) == \
        pytest.approx(3.0, rel=0.01)
    assert len(phone.samples) == phone.blocks * phone.runs_per_block  # steering samples dropped
    assert all(s["phase"] == "track" for s in phone.steps[len(steer):])


def test_a_steep_throttle_is_bracketed_not_overshot():
    """Run time that answers the quota with elasticity 2.5 (a spinning thread pool): steps by
    the assumed elasticity overshoot; the bracket then interpolates and the arm settles."""
    model = ThrottledModel(scale=6.0, elasticity=2.5)
    host = Arm("host", model.time_runs)
    phone = Arm("phone", model.time_runs, quota_us=2000, period_us=8000, target=3.0, host=host,
                max_quota_us=8000)
    interleave([host, phone], model.set_quota, PROTOCOL)
    assert phone.settled
    assert statistics.median(phone.samples) / statistics.median(host.samples) == \
        pytest.approx(3.0, rel=0.05)


def test_a_drift_while_the_rounds_count_is_tracked_and_recorded():
    """The throttled model gets 30 % slower after the steering: tracking steps bring the
    slowdown so far back to the target, the samples taken at every quota stay, and every quota
    is recorded."""
    model = ThrottledModel(after=(12, 5.2))
    host = Arm("host", model.time_runs)
    phone = Arm("phone", model.time_runs, quota_us=2667, period_us=8000, target=3.0, host=host,
                max_quota_us=8000)
    interleave([host, phone], model.set_quota, {**PROTOCOL, "min_runs": 150,
                                                 "max_runs": 300})
    track = [s for s in phone.steps if s["phase"] == "track"]
    assert any(s["slowdown"] > 3.3 for s in track)  # the drift was seen
    assert len({s["quota_us"] for s in track}) > 1  # and answered
    assert phone.quota_us > 2667
    # the slowdown over every counted sample is held on the target, not just the last rounds'
    assert statistics.median(phone.samples) / statistics.median(host.samples) == \
        pytest.approx(3.0, rel=0.05)


def test_a_phone_off_target_at_the_cap_keeps_the_group_going_until_it_is_back():
    """The throttled model gets 30 % slower just before the group is done: it runs past the caps
    (at most 1.5 x) while tracking brings the slowdown so far back within 5 %."""
    from edge.farm.protocol.interleave import ON_TARGET, OVERTIME
    model = ThrottledModel(after=(8, 5.2))
    host = Arm("host", model.time_runs)
    phone = Arm("phone", model.time_runs, quota_us=2667, period_us=8000, target=3.0, host=host,
                max_quota_us=8000)
    cap = 40
    interleave([host, phone], model.set_quota, {**PROTOCOL, "max_runs": cap})
    assert phone.overtime and host.overtime
    assert cap < max(len(phone.samples), len(host.samples)) <= cap * OVERTIME
    got = statistics.median(phone.samples) / statistics.median(host.samples)
    assert abs(got / 3.0 - 1) <= ON_TARGET


def test_steering_stays_inside_its_bracket_and_its_limits():
    from edge.farm.protocol.interleave import steer_step
    # too slow at 1000 (x6), too fast at 4000 (x2): the next quota lies between them
    nxt = steer_step([(1000, 6.0), (4000, 2.0)], 3.0, 500, 8000)
    assert 1000 < nxt < 4000
    # one point: at most a halving/doubling, and never past the floor or the ceiling
    assert steer_step([(2000, 100.0)], 3.0, 500, 8000) == pytest.approx(4000)
    assert steer_step([(600, 100.0)], 3.0, 500, 8000) == pytest.approx(1200)
    assert steer_step([(7000, 1.01)], 3.0, 500, 8000) == pytest.approx(3500)
    assert steer_step([(5000, 100.0)], 3.0, 500, 8000) == 8000


def test_block_size_is_about_200_ms_of_work():
    assert block_runs([20.0, 20.0, 21.0]) == 10
    assert block_runs([1000.0]) == 3
    assert block_runs([0.01]) == 30


#: A MobileNetV2 large enough (milliseconds per run) for a CPU quota to slow every run: a
#: sub-millisecond model fits inside one period's budget and runs unthrottled.
GROUP_MODEL = {"size": 128, "alpha": 0.75, "classes": 6}


@pytest.fixture(scope="module")
def group_garden(tmp_path_factory):
    from edge import workflow
    from edge.convert.targets import garden_target
    from edge.garden import REGISTRY

    build_dir = tmp_path_factory.mktemp("group-build")
    targets = [garden_target(REGISTRY["mobilenet_v2"].resolve(GROUP_MODEL),
                             variants=("tflite-fp32", "tflite-fp16"))]
    workflow.build(targets, build_dir, jobs=2)
    return {"build_dir": build_dir, "targets": targets}


@pytest.mark.browser
@pytest.mark.slow
def test_a_group_on_the_host_and_an_emulated_phone_is_measured_in_turns(group_garden, tmp_path):
    """Two native variants on the host and on an emulated phone: one interleaved group; the
    phone's slowdown is its p50 over the host cell's p50 from the same rounds, and it is a
    slowdown."""
    from rich.console import Console

    from edge.convert.cache import Store
    from edge.convert.pipeline import artifacts_for
    from edge.farm.emulation.devices import load_catalog
    from edge.farm.emulation.methods import choose_emulation
    from edge.farm.protocol.protocol import Protocol
    from edge.farm.scheduling.matrix import Cell, Matrix
    from edge.farm.scheduling.run import run_matrix
    from edge.results.store import ResultStore

    emulation = choose_emulation()
    if emulation.controller is None:
        pytest.skip(f"CPU bandwidth control not writable here: {emulation.reason}")
    build_dir = group_garden["build_dir"]
    slug = group_garden["targets"][0].slug
    cells = [Cell(slug, v, "litert", d, 1) for v in ("tflite-fp32", "tflite-fp16")
             for d in ("host", "moto_g4")]
    store = Store(build_dir)
    artifacts = artifacts_for(group_garden["targets"], store, {(c.model, c.variant)
                                                              for c in cells})
    results = ResultStore(tmp_path / "run")
    protocol = Protocol(warmup=1, max_warmup_seconds=1.0, min_runs=10, min_seconds=0.2,
                        max_seconds=1.5, timeout_s=60)
    try:
        run_matrix(Matrix(path=tmp_path / "m.toml", models=[], variants=[],
                          build_dir=build_dir, fidelity_images=1),
                   cells, artifacts, store, results, "group", protocol, load_catalog(),
                   Console(quiet=True), emulation=emulation, noise_repeats=0)
    finally:
        emulation.close()
    recs = {(r["variant"], r["device"]): r for r in results.records()}
    assert len(recs) == 4
    assert [r["device"] for r in results.records()][:2] == ["host", "host"]  # hosts first
    rounds = {r["metrics"]["interleaved"]["rounds"] for r in recs.values()}
    assert len(rounds) == 1 and rounds.pop() >= MIN_ROUNDS
    for (variant, device), rec in recs.items():
        assert rec["status"] == "ok", rec["error"]
        assert rec["metrics"]["latency_alone"]["n"] >= 1
        assert rec["metrics"]["fidelity"]["images"] == 1
        if device == "host":
            continue
        emu = rec["emulation"]
        host_p50 = recs[(variant, "host")]["metrics"]["latency"]["p50"]
        p50 = rec["metrics"]["latency"]["p50"]
        assert emu["achieved_vs_host"] == pytest.approx(p50 / host_p50, rel=1e-3)
        assert emu["achieved_slowdown"] == emu["achieved_vs_host"]
        assert emu["paired"]["method"] == "interleaved"
        assert "own model" in emu["calibration_workload"]
        assert emu["quota_us"] == rec["metrics"]["interleaved"]["quota_us"]
        # physics: a phone emulated several times slower than the host is slower
        assert emu["target_slowdown"] > 2 and emu["achieved_vs_host"] > 1.5, emu


@pytest.mark.slow
@pytest.mark.parametrize("runtime,interleave", [
    ("litert", True), ("litert", False),
    # a browser rule leaves the thread count to the run: its cells must stay alone after that
    pytest.param("litertjs-wasm", False, marks=pytest.mark.browser),
])
def test_a_rule_with_interleave_false_measures_its_cells_alone(group_garden, tmp_path,
                                                               runtime, interleave):
    """The same two host cells form one comparison group, or are measured one after another
    when their only rule says `interleave = false`."""
    from rich.console import Console

    from edge.convert.cache import Store
    from edge.convert.pipeline import artifacts_for
    from edge.farm.emulation.devices import load_catalog
    from edge.farm.emulation.methods import choose_emulation
    from edge.farm.protocol.protocol import Protocol
    from edge.farm.scheduling.matrix import load_matrix
    from edge.farm.scheduling.run import run_matrix
    from edge.results.store import ResultStore

    build_dir = group_garden["build_dir"]
    slug = group_garden["targets"][0].slug
    path = tmp_path / "m.toml"
    path.write_text(f"""
[build]
models = ["mobilenet_v2"]
variants = ["tflite-fp32", "tflite-fp16"]
build_dir = "{build_dir}"
[bench]
fidelity_images = 1
[[bench.cells]]
runtimes = ["{runtime}"]
devices = ["host"]
{"threads = [1]" if runtime == "litert" else ""}
interleave = {str(interleave).lower()}
""")
    matrix = load_matrix(path, device_names=["host"])
    cells = matrix.cells("default", [slug])
    alone = matrix.alone_cells("default", [slug])
    assert len(cells) == 2
    assert alone == (frozenset() if interleave else frozenset(cells))
    store = Store(build_dir)
    artifacts = artifacts_for(group_garden["targets"], store,
                              {(c.model, c.variant) for c in cells})
    results = ResultStore(tmp_path / "run")
    protocol = Protocol(warmup=1, max_warmup_seconds=0.5, min_runs=10, min_seconds=0.1,
                        max_seconds=0.5, timeout_s=60)
    emulation = choose_emulation()
    try:
        run_matrix(matrix, cells, artifacts, store, results, "alone", protocol,
                   load_catalog(), Console(quiet=True), emulation=emulation, noise_repeats=0,
                   alone=alone)
    finally:
        emulation.close()
    recs = results.records()
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs)
    for rec in recs:
        assert ("interleaved" in rec["metrics"]) is interleave
        assert rec["metrics"]["latency"]["n"] >= 10
