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
discarded: it may straddle the quota change. A throttled cell with a target and a host cell is
first tuned: its quota corrected once from a few rounds against its host (`_tune`).
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
#: Rounds that tune each throttled cell's quota against its host cell before the rounds that
#: count (their samples are dropped), and how close the tuned slowdown must already be to be
#: left alone.
TUNE_ROUNDS = 3
TUNE_TOLERANCE = 0.03


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
    #: A throttled arm's target slowdown against `host` (tuned in the first rounds; see
    #: `interleave`), and the largest quota that still throttles (threads x period).
    target: float | None = None
    host: Arm | None = None
    max_quota_us: int | None = None
    #: What tuning did: the quota it started from and the slowdown it measured there.
    tuning: dict | None = None


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
        if any(a.target and a.host is not None and a.quota_us for a in arms):
            _tune(arms, set_quota)
        while rounds < max_rounds:
            start = rounds % len(arms)
            for arm in arms[start:] + arms[:start]:
                _block(arm, set_quota)
                arm.blocks += 1
            rounds += 1
            if rounds < MIN_ROUNDS:
                continue
            for arm in arms:
                done, reason = sampling_done(arm.samples, protocol)
                arm.stop_reason = reason if done else None
            capped = any(a.stop_reason in CAPS for a in arms)
            if capped or all(a.stop_reason for a in arms):
                break
    finally:
        set_quota(None, None)
    cap = int(protocol.get("max_runs") or 0)
    for arm in arms:
        if cap and len(arm.samples) > cap:
            del arm.samples[cap:]  # at most the cap (the last block may run past it)
        arm.stop_reason = arm.stop_reason or ("group_cap" if rounds < max_rounds
                                              else "max_rounds")
    return rounds


def _block(arm: Arm, set_quota) -> None:
    set_quota(arm.quota_us, arm.period_us)
    if arm.runs_per_block is None:
        arm.runs_per_block = block_runs(arm.time_runs(DISCARD + 3)[DISCARD:])
    arm.samples.extend(float(s) for s in arm.time_runs(DISCARD + arm.runs_per_block)[DISCARD:])


def _tune(arms: list[Arm], set_quota) -> None:
    """`TUNE_ROUNDS` interleaved rounds; then each throttled arm's quota is corrected once by
    its measured slowdown against its host arm (run time taken as inversely proportional to
    the quota), and every sample of these rounds is dropped. A calibration of a few paired
    blocks is off by the host's drift during those blocks; these rounds see the same stretch
    of time for the arm and its host."""
    for r in range(TUNE_ROUNDS):
        start = r % len(arms)
        for arm in arms[start:] + arms[:start]:
            _block(arm, set_quota)
    for arm in arms:
        if arm.target and arm.host is not None and arm.quota_us:
            got = ratio(arm.samples, arm.host.samples)
            arm.tuning = {"quota_us": arm.quota_us, "slowdown": None if got is None
                          else round(got, 4), "rounds": TUNE_ROUNDS}
            if got and abs(got / arm.target - 1) > TUNE_TOLERANCE:
                quota = arm.quota_us * got / arm.target
                if arm.max_quota_us:
                    quota = min(quota, arm.max_quota_us)
                arm.quota_us = max(1, int(round(quota)))
    for arm in arms:
        arm.samples.clear()


def ratio(slow: Sequence[float], fast: Sequence[float]) -> float | None:
    """Median over median (None without samples or with a zero median)."""
    if not slow or not fast:
        return None
    den = statistics.median(fast)
    return None if den <= 0 or not math.isfinite(den) else statistics.median(slow) / den
