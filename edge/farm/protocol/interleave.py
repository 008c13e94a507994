"""Interleaved sampling: the cells that a report compares, timed in turns.

On a shared host a page's or a worker's speed drifts by tens of percent over seconds to
minutes. Two cells measured one after the other then differ by the drift as much as by what
they are, so identical models split into separate tie groups and an emulated phone's slowdown
against the host is off by whatever the host did in between. Interleaving removes that: the
cells of one comparison group (one model, runtime and thread count: its variants on the host
and on every emulated phone) are timed in rounds, each round one short block per cell in a
rotating order, so every cell samples the same stretch of time. An emulated phone's blocks run
under its own CPU quota in the same page or worker as the host's blocks of the same variant.

The group stops when every cell is done by `edge.stopping.sampling_done` (its median's 95 %
interval within the target) or as soon as one cell reaches a cap (runs or timed seconds): cells
already done keep their turn until then, so no cell's samples come from a quieter or busier
stretch than the others', and no cell's samples exceed the protocol's caps (those not done by
then say ``group_cap``). The first run of every block is
discarded: it may straddle the quota change.

A throttled cell with a target and a host cell is steered to its target before the rounds that
count (`_steer`): its quota moved, step by step, by the slowdown its blocks showed against its
host cell's blocks of the same rounds, until that slowdown is within `STEER_TOLERANCE` of the
target; those rounds' samples are dropped. While the rounds count, the quota keeps the
slowdown so far on the target (`_track`): a throttled page or worker drifts too, and not as its
unthrottled twin does, so a quota that gave the target a minute ago may not give it now, and a
few noisy blocks at one quota are made up for at the next. What is held fixed is the slowdown,
which is what the phone's profile says, not the quota, which is a means to it; every quota and
the slowdown measured under it are recorded (``Arm.steps``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge.stopping import sampling_done

#: Milliseconds of work per block (the first, discarded run not counted).
BLOCK_MS = 200.0
#: Runs per block: at least, at most.
BLOCK_RUNS = (3, 30)
#: Discarded runs at the start of every block.
DISCARD = 1
#: Stopping reasons of `sampling_done` that are caps: the first cell at a cap ends the group.
CAPS = ("max_runs", "max_seconds")
#: Every cell gets at least this many blocks, so its samples span the group's time.
MIN_ROUNDS = 3
#: Steering before the rounds that count: a step is this many rounds at one quota; at most
#: this many steps; an arm within this of its target slowdown is settled.
STEER_ROUNDS = 2
STEER_STEPS = 4
STEER_TOLERANCE = 0.08
#: Tracking while the rounds count: every this many rounds, an arm whose slowdown so far is
#: further than this from its target gets one steering step, towards a slowdown at most
#: `TRACK_RANGE` (factors of the target) off the target.
TRACK_ROUNDS = 2
TRACK_TOLERANCE = 0.03
TRACK_RANGE = (0.8, 1.25)
#: The largest quota change of one tracking step (log): a factor of 1.3.
TRACK_STEP = math.log(1.3)
#: A steered arm whose slowdown so far is further than `ON_TARGET` from its target when the
#: group would stop keeps it going, up to `OVERTIME` times the protocol's caps, so that
#: tracking can bring it back (those cells' records say ``overtime``).
ON_TARGET = 0.05
OVERTIME = 1.5
#: How a run's time answers a quota change before two quotas were tried (time ~ quota^-e):
#: above 1, because a throttled thread pool also loses time spinning and waking.
ELASTICITY = 1.5
ELASTICITY_RANGE = (0.5, 3.0)


@dataclass
class Arm:
    """One cell of a group: how to time `n` runs of its model (`time_runs`), and the CPU
    quota its blocks run under (`quota_us`, `period_us`; None: unthrottled)."""

    key: object
    time_runs: Callable[[int], list[float]]
    quota_us: int | None = None
    period_us: int | None = None
    samples: list[float] = field(default_factory=list)
    blocks: int = 0
    runs_per_block: int | None = None
    stop_reason: str | None = None
    #: A throttled arm's target slowdown against `host` (steered to; see `interleave`), the
    #: largest quota that still throttles (threads x period) and the smallest the kernel takes.
    target: float | None = None
    host: Arm | None = None
    max_quota_us: int | None = None
    min_quota_us: int = 1
    #: Every quota it ran under and the slowdown measured there: {"phase": "steer" | "track",
    #: "quota_us", "slowdown", "rounds"}; `settled`: steering reached the target.
    steps: list[dict] = field(default_factory=list)
    settled: bool = False
    #: The group ran past the protocol's caps for a steered arm still off target.
    overtime: bool = False

    @property
    def steered(self) -> bool:
        return bool(self.target and self.host is not None and self.quota_us)


def block_runs(probe_ms: Sequence[float], block_ms: float = BLOCK_MS) -> int:
    """Runs per block for a model whose runs take `probe_ms` (about `block_ms` of work)."""
    lo, hi = BLOCK_RUNS
    typical = max(0.05, float(statistics.median(probe_ms)))
    return max(lo, min(hi, round(block_ms / typical)))


def interleave(arms: Sequence[Arm], set_quota: Callable[[int | None, int | None], None],
               protocol: dict, *, max_rounds: int = 10_000) -> int:
    """Time every arm in rounds until each is done by `protocol`'s stopping rule (or
    `max_rounds`); returns the number of rounds. `set_quota(None, None)` lifts the throttle,
    and is where it is left."""
    arms = list(arms)
    if not arms:
        return 0
    rounds = 0
    try:
        if any(a.steered for a in arms):
            _steer(arms, set_quota)
        marks = {id(a): (0, 0) for a in arms}  # sample counts where the tracking window opens
        overtime = {**protocol, **{k: protocol[k] * OVERTIME for k in CAPS if protocol.get(k)}}
        extended = False
        while rounds < max_rounds:
            _round(arms, rounds, set_quota)
            for arm in arms:
                arm.blocks += 1
            rounds += 1
            if rounds % TRACK_ROUNDS == 0:
                _track(arms, marks)
            if rounds < MIN_ROUNDS:
                continue
            for arm in arms:
                done, reason = sampling_done(arm.samples, protocol)
                arm.stop_reason = reason if done else None
            capped = any(a.stop_reason in CAPS for a in arms)
            if capped or all(a.stop_reason for a in arms):
                if not any(_off_target(a) for a in arms) or _capped(arms, overtime):
                    break
                extended = True
    finally:
        set_quota(None, None)
    cap = int((overtime if extended else protocol).get("max_runs") or 0)
    for arm in arms:
        if cap and len(arm.samples) > cap:
            del arm.samples[cap:]  # at most the cap (the last block may run past it)
        arm.stop_reason = arm.stop_reason or ("group_cap" if rounds < max_rounds
                                              else "max_rounds")
        arm.overtime = extended
    return rounds


def _off_target(arm: Arm) -> bool:
    """A steered arm whose slowdown so far is further than `ON_TARGET` from its target."""
    got = ratio(arm.samples, arm.host.samples) if arm.steered else None
    return got is not None and abs(got / arm.target - 1) > ON_TARGET


def _capped(arms: list[Arm], protocol: dict) -> bool:
    return any(sampling_done(a.samples, protocol)[1] in CAPS for a in arms)


def _round(arms: list[Arm], index: int, set_quota) -> None:
    """One block of every arm, the order rotated by the round's index."""
    start = index % len(arms)
    for arm in arms[start:] + arms[:start]:
        _block(arm, set_quota)


def _block(arm: Arm, set_quota) -> None:
    set_quota(arm.quota_us, arm.period_us)
    if arm.runs_per_block is None:
        arm.runs_per_block = block_runs(arm.time_runs(DISCARD + 3)[DISCARD:])
    arm.samples.extend(float(s) for s in arm.time_runs(DISCARD + arm.runs_per_block)[DISCARD:])


def _steer(arms: list[Arm], set_quota) -> None:
    """Steps of `STEER_ROUNDS` interleaved rounds; after each, every unsettled throttled arm's
    quota moves by `steer_step` from the slowdown its blocks showed against its host arm's
    blocks of the same rounds (same stretch of time, so the host's drift cancels), until all
    are within `STEER_TOLERANCE` or `STEER_STEPS` steps are done. Every sample of these rounds
    is dropped."""
    steered = [a for a in arms if a.steered]
    index = 0
    for _ in range(STEER_STEPS):
        marks = {id(a): len(a.samples) for a in arms}
        for _ in range(STEER_ROUNDS):
            _round(arms, index, set_quota)
            index += 1
        for arm in steered:
            if arm.settled:
                continue
            got = ratio(arm.samples[marks[id(arm)]:], arm.host.samples[marks[id(arm.host)]:])
            arm.steps.append({"phase": "steer", "quota_us": arm.quota_us, "rounds": STEER_ROUNDS,
                              "slowdown": None if got is None else round(got, 4)})
            if got is None:
                continue
            if abs(got / arm.target - 1) <= STEER_TOLERANCE:
                arm.settled = True
            else:
                arm.quota_us = _next_quota(arm)
        if all(a.settled for a in steered):
            break
    if not all(a.settled for a in steered):  # the best quota seen, for the rounds that count
        for arm in steered:
            if not arm.settled:
                best = min((s for s in arm.steps if s["slowdown"]),
                           key=lambda s: abs(math.log(s["slowdown"] / arm.target)), default=None)
                if best is not None:
                    arm.quota_us = best["quota_us"]
    for arm in arms:
        arm.samples.clear()


def _track(arms: list[Arm], marks: dict) -> None:
    """Every `TRACK_ROUNDS` counted rounds, each throttled arm's slowdown so far (all its
    counted samples against its host arm's) is held on its target: when it is further than
    `TRACK_TOLERANCE`, the quota takes one step (by `ELASTICITY`, at most `TRACK_STEP`)
    from the slowdown the last rounds showed (against the host arm's blocks of the same
    rounds) towards the slowdown that brings it back, i.e. the target corrected by the error
    so far (at most `TRACK_RANGE` off the target). A throttled page drifts, and not as its
    unthrottled twin does; the samples stay, each taken under the quota recorded for it in
    `Arm.steps`."""
    for arm in arms:
        if not arm.steered:
            continue
        mine, theirs = marks[id(arm)]
        got = ratio(arm.samples[mine:], arm.host.samples[theirs:])
        so_far = ratio(arm.samples, arm.host.samples)
        if got is None or so_far is None:
            continue
        arm.steps.append({"phase": "track", "quota_us": arm.quota_us, "rounds": TRACK_ROUNDS,
                          "slowdown": round(got, 4), "so_far": round(so_far, 4)})
        if abs(so_far / arm.target - 1) > TRACK_TOLERANCE:
            lo, hi = TRACK_RANGE
            goal = arm.target * min(hi, max(lo, arm.target / so_far))
            # A plain step by the assumed elasticity: a bracket or a secant drawn through a
            # few noisy blocks would pin the quota where the noise put it.
            step = max(-TRACK_STEP, min(TRACK_STEP, math.log(got / goal) / ELASTICITY))
            ceiling = arm.max_quota_us or arm.quota_us * 4
            arm.quota_us = int(round(min(ceiling, max(arm.min_quota_us,
                                                      arm.quota_us * math.exp(step)))))
    for arm in arms:
        if arm.steered:
            marks[id(arm)] = (len(arm.samples), len(arm.host.samples))


def _next_quota(arm: Arm) -> int:
    points = [(s["quota_us"], s["slowdown"]) for s in arm.steps if s["slowdown"]]
    ceiling = arm.max_quota_us or max(q for q, _ in points) * 4
    return int(round(steer_step(points, arm.target, arm.min_quota_us, ceiling)))


def steer_step(points: Sequence[tuple[float, float]], target: float, floor: float,
               ceiling: float) -> float:
    """The next quota towards `target` from the (quota, slowdown) `points` measured so far, the
    last one the current quota. Once a quota too small (slowdown above the target) and a larger
    one too large are known, it interpolates between the latest two in log space (kept inside
    the bracket: one noisy step must not throw it out); otherwise it steps by the slowdown's
    error over the elasticity the last two distinct quotas showed (`ELASTICITY` before there
    are two; within `ELASTICITY_RANGE`), at most a doubling or halving. Kept in [floor,
    ceiling]."""
    goal = math.log(target)
    logs = [(math.log(q), math.log(max(s, 1e-6))) for q, s in points]
    quota, slow = logs[-1]
    over = next((p for p in reversed(logs) if p[1] > goal), None)   # quota too small
    under = next((p for p in reversed(logs) if p[1] < goal), None)  # quota too large
    if over and under and under[0] > over[0] and under[1] < over[1]:
        frac = min(0.8, max(0.2, (goal - over[1]) / (under[1] - over[1])))
        step = over[0] + frac * (under[0] - over[0])
    else:
        elasticity = ELASTICITY
        earlier = [p for p in logs[:-1] if abs(p[0] - quota) > 1e-9]
        if earlier:
            measured = -(slow - earlier[-1][1]) / (quota - earlier[-1][0])
            if measured > 0:
                elasticity = min(ELASTICITY_RANGE[1], max(ELASTICITY_RANGE[0], measured))
        step = quota + max(-math.log(2), min(math.log(2), (slow - goal) / elasticity))
    return min(ceiling, max(floor, math.exp(step)))


def ratio(slow: Sequence[float], fast: Sequence[float]) -> float | None:
    """Median over median (None without samples or with a zero median)."""
    if not slow or not fast:
        return None
    den = statistics.median(fast)
    return None if den <= 0 or not math.isfinite(den) else statistics.median(slow) / den
