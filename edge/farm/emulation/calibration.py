"""Calibration: the CPU quota that makes a workload run a target factor slower, the slowdown a
cell achieved in paired (unthrottled, throttled) blocks, and the record's ``emulation`` field.

Nothing here assumes the throttle worked: every emulated record says the method, its target and
the slowdown achieved.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.farm.emulation.cgroups import DEFAULT_PERIOD_US, MIN_QUOTA_US, CpuGroup
from edge.farm.protocol.interleave import steer_step

#: A calibration stops once the workload's slowdown is this close to the target (relative).
CALIBRATION_TOLERANCE = 0.05
#: Unthrottled/throttled block pairs per calibration step.
STEP_PAIRS = 2
#: A cell whose achieved slowdown is further than this from its target is flagged.
OFF_TARGET = 0.15


@dataclass
class Calibration:
    """What a quota calibration found: the quota and the slowdown its workload achieved."""

    target: float
    quota_us: int | None
    period_us: int
    base_ms: float | None
    achieved: float | None
    steps: list[dict] = field(default_factory=list)
    workload: str | None = None
    converged: bool = False

    def as_dict(self) -> dict:
        return {"target": self.target, "quota_us": self.quota_us, "period_us": self.period_us,
                "base_ms": self.base_ms, "achieved": self.achieved, "steps": self.steps,
                "workload": self.workload, "converged": self.converged}


def paired_slowdown(set_throttle: Callable[[bool], None], time_runs: Callable[[], list[float]],
                    pairs: int = 3) -> tuple[float, float, float]:
    """The slowdown a throttle causes, measured in alternating blocks (unthrottled, throttled)
    x `pairs`: (median of the per-pair ratios, median unthrottled ms, median throttled ms).
    Pairing cancels the host's drift, which on a shared machine moves a page's speed by tens
    of percent over seconds: a ratio of two times taken minutes apart measures the drift as
    much as the throttle. `set_throttle(False)` lifts the throttle, `set_throttle(True)`
    applies it; the throttle is left applied."""
    ratios, free, slow = [], [], []
    for _ in range(max(1, pairs)):
        set_throttle(False)
        f = statistics.median(time_runs())
        set_throttle(True)
        t = statistics.median(time_runs())
        free.append(f)
        slow.append(t)
        ratios.append(t / f)
    return statistics.median(ratios), statistics.median(free), statistics.median(slow)


def quota_setter(group: CpuGroup, quota_us: float | None) -> Callable[[bool], None]:
    """`set_throttle` for `paired_slowdown`: the group's quota on, or no limit."""
    return lambda on: group.set_quota(quota_us if on else None)


def calibrate_quota(group: CpuGroup, time_runs: Callable[[], list[float]], target: float,
                    threads: int, *, max_steps: int = 6,
                    tolerance: float = CALIBRATION_TOLERANCE,
                    workload: str | None = None,
                    start_share: float | None = None) -> Calibration:
    """Find the quota at which `time_runs` (a few timed runs of the calibration workload, ms)
    is `target` times slower than unthrottled. Each step measures the slowdown against an
    unthrottled block taken just before it (`paired_slowdown`); the next quota comes from
    `edge.farm.protocol.interleave.steer_step`, as for a comparison group's steering; the best
    step is kept when none lands within `tolerance`.
    `start_share`: the first quota as a share of ``threads x period`` (e.g. what the same
    device's last calibration found), instead of ``1 / target``."""
    group.set_quota(None)
    first = statistics.median(time_runs())
    cal = Calibration(target, None, group.period_us, first, None, workload=workload)
    if target <= 1.0 + 1e-9:
        cal.achieved, cal.converged = 1.0, True
        return cal
    group.set_quota(None, period_for(first, target, threads))
    cal.period_us = group.period_us
    share = start_share if start_share and 0 < start_share <= 1 else 1 / target
    quota = threads * group.period_us * share
    ceiling = threads * group.period_us  # no throttle at all
    points: list[tuple[float, float]] = []
    best: tuple[float, int, float] | None = None  # (error, quota, achieved)
    bases = []
    for _ in range(max_steps):
        group.set_quota(quota)
        quota = group.quota_us or quota
        achieved, base, _slow = paired_slowdown(quota_setter(group, quota), time_runs,
                                                STEP_PAIRS)
        bases.append(base)
        cal.steps.append({"quota_us": int(quota), "achieved": round(achieved, 4)})
        error = abs(achieved / target - 1)
        if best is None or error < best[0]:
            best = (error, int(quota), achieved)
        if error <= tolerance:
            break
        points.append((quota, achieved))
        quota = steer_step(points, target, MIN_QUOTA_US, ceiling)
    assert best is not None
    group.set_quota(best[1])
    cal.base_ms = statistics.median(bases)
    cal.quota_us, cal.achieved = group.quota_us, round(best[2], 4)
    cal.converged = best[0] <= tolerance
    return cal


def period_for(base_ms: float, target: float, threads: int) -> int:
    """A CFS period for a workload of `base_ms` per run: short against the run (a quarter of
    it, at most `DEFAULT_PERIOD_US`), so that no run fits in one period's budget and the
    throttled times stay unimodal; long enough that the quota stays above the kernel's 1 ms
    minimum."""
    # The nominal quota at least twice the minimum, so calibration has room below it.
    shortest = math.ceil(2 * MIN_QUOTA_US * max(1.0, target) / max(1, threads))
    return int(max(shortest, min(DEFAULT_PERIOD_US, base_ms * 1000 / 4)))


def off_target(achieved: float | None, target: float | None) -> bool:
    """True when an achieved slowdown is further than `OFF_TARGET` from its target."""
    if achieved is None or target is None or target <= 0:
        return False
    return abs(achieved / target - 1) > OFF_TARGET


def emulation_record(method: str, target: float, threads: int, *, achieved: float | None,
                     calibration: Calibration | None = None, note: str | None = None,
                     vs_host: float | None = None, paired: dict | None = None) -> dict:
    """The record's ``emulation`` field.

    ``achieved_slowdown`` is the cell's own paired measurement (throttled against unthrottled
    blocks of the same model in the same page or worker, alternating: `paired_slowdown`);
    ``achieved_vs_host`` is the cell's p50 over the host cell's p50 of the same model, variant,
    runtime and threads, measured at another time of the run (drift included)."""
    def r(x):
        return None if x is None else round(float(x), 4)

    return {
        "method": method,
        "target_slowdown": r(target),
        "calibration_slowdown": calibration.achieved if calibration else None,
        "calibration_workload": calibration.workload if calibration else None,
        "achieved_slowdown": r(achieved),
        "achieved_vs_host": r(vs_host),
        "paired": paired,
        "threads": int(threads),
        "period_us": calibration.period_us if calibration else None,
        "quota_us": calibration.quota_us if calibration else None,
        "off_target": off_target(achieved, target),
        "off_target_vs_host": off_target(vs_host, target),
        "note": note,
    }
