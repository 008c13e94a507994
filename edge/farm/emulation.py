"""How a phone's CPU is emulated on this host, and what the emulation achieved.

A phone is slower than the host on every thread, so the emulation must slow every thread the
measured code runs on: the page's main thread, its WASM pthreads and workers, and a native
worker's thread pool. Two methods:

``cgroup-v1`` / ``cgroup-v2``
    Linux CPU bandwidth control. The measured process tree (the browser with every process it
    forks, or the native worker) runs in a cgroup of its own whose quota allows ``threads /
    slowdown`` CPUs: ``quota = threads * period / slowdown`` microseconds of CPU time per
    ``period``. The quota is shared by all threads in the group, so spinning thread pools eat
    it too; the quota is therefore *calibrated by measurement* (`calibrate_quota`): a
    calibration workload of the same runtime and thread count is timed unthrottled and then
    under the quota, and the quota is corrected until the workload's slowdown is within
    `CALIBRATION_TOLERANCE` of the target. Needs write access to the cgroup file system (root,
    or a delegated cgroup).
``devtools-main-thread``
    The fallback where bandwidth control is not writable: Chromium's
    ``Emulation.setCPUThrottlingRate`` slows the page's main thread only, so every browser cell
    runs single-threaded WASM on the main thread (one thread), where the throttle applies to all
    the work. Native cells cannot be emulated this way and are recorded ``unsupported``.

Every emulated record says which method ran, its target and the slowdown achieved; nothing here
assumes the throttle worked.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: CFS period. Short periods keep the throttled distribution unimodal (a 100 ms period lets
#: runs that fit in one period's budget go at full speed); the quota is calibrated to correct
#: the overshoot that spinning pool threads cause at short periods.
DEFAULT_PERIOD_US = 20_000
#: The kernel's smallest quota (1 ms).
MIN_QUOTA_US = 1_000
#: A calibration stops once the workload's slowdown is this close to the target (relative).
CALIBRATION_TOLERANCE = 0.05
#: Unthrottled/throttled block pairs per calibration step.
STEP_PAIRS = 2
#: A cell whose achieved slowdown is further than this from its target is flagged.
OFF_TARGET = 0.15
#: Environment variable forcing a method: "cgroup" (fail if unavailable) or "devtools".
METHOD_ENV = "EDGE_EMULATION"

CGROUP_V1 = "cgroup-v1"
CGROUP_V2 = "cgroup-v2"
DEVTOOLS = "devtools-main-thread"


class EmulationUnavailable(RuntimeError):
    """CPU bandwidth control cannot be used here (the message says why)."""


# -- cgroups ----------------------------------------------------------------------------------

def _mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, fs type, options) of the cgroup file systems."""
    found = []
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                    found.append((parts[1], parts[2], parts[3].split(",")))
    except OSError:
        pass
    return found


def _own_cgroup(controller: str | None) -> str:
    """This process's cgroup path for a v1 controller, or the v2 path (controller None)."""
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            hier, controllers, path = line.rstrip("\n").split(":", 2)
            if controller is None and hier == "0" and controllers == "":
                return path
            if controller is not None and controller in controllers.split(","):
                return path
    raise EmulationUnavailable(f"no {controller or 'v2'} cgroup for this process")


@dataclass
class CpuGroup:
    """One cgroup with CPU bandwidth control: `set_quota`, `add`, `usage_s`, `remove`."""

    path: Path
    version: int
    period_us: int = DEFAULT_PERIOD_US
    quota_us: int | None = None  # None: unlimited

    @property
    def method(self) -> str:
        return CGROUP_V2 if self.version == 2 else CGROUP_V1

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def set_quota(self, quota_us: int | None, period_us: int | None = None) -> None:
        """Allow `quota_us` of CPU time per period (None: no limit)."""
        if period_us is not None:
            self.period_us = int(period_us)
        if quota_us is not None:
            quota_us = max(MIN_QUOTA_US, int(round(quota_us)))
        self.quota_us = quota_us
        if self.version == 2:
            value = f"{'max' if quota_us is None else quota_us} {self.period_us}"
            (self.path / "cpu.max").write_text(value)
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(self.period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(-1 if quota_us is None else quota_us))
            burst = self.path / "cpu.cfs_burst_us"
            if burst.exists():  # no borrowing across periods: the budget is the budget
                with contextlib.suppress(OSError):
                    burst.write_text("0")

    def set_slowdown(self, slowdown: float, threads: int) -> None:
        """The nominal quota for `slowdown` on `threads` busy threads (before calibration)."""
        self.set_quota(threads * self.period_us / max(1.0, slowdown))

    def add(self, pid: int) -> None:
        """Move a process (all its threads) into the group; its future children follow."""
        self.procs_file.write_text(str(int(pid)))

    def add_tree(self, pids: Iterable[int]) -> int:
        """Move processes into the group; those that exited meanwhile are skipped. Returns how
        many moved."""
        moved = 0
        for pid in pids:
            try:
                self.add(pid)
                moved += 1
            except (ProcessLookupError, FileNotFoundError):
                continue
            except OSError as exc:
                if exc.errno == 3:  # ESRCH: gone
                    continue
                raise
        return moved

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in self.procs_file.read_text().split()]
        except OSError:
            return []

    def throttled_periods(self) -> int | None:
        """How many periods the group was throttled in (cpu.stat nr_throttled)."""
        try:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "nr_throttled":
                    return int(value)
        except (OSError, ValueError):
            pass
        return None

    def remove(self) -> None:
        """Move any process left back to the parent group and delete this one."""
        parent = self.path.parent / "cgroup.procs"
        for pid in self.pids():
            with contextlib.suppress(OSError):
                parent.write_text(str(pid))
        with contextlib.suppress(OSError):
            self.path.rmdir()


@dataclass
class CgroupController:
    """Creates `CpuGroup`s under this process's own cgroup."""

    root: Path  # the directory new groups are made in
    version: int
    groups: list[CpuGroup] = field(default_factory=list)

    @property
    def method(self) -> str:
        return CGROUP_V2 if self.version == 2 else CGROUP_V1

    def group(self, name: str, period_us: int = DEFAULT_PERIOD_US) -> CpuGroup:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        path = self.root / f"edge-{os.getpid()}-{safe}"
        path.mkdir(exist_ok=True)
        group = CpuGroup(path, self.version, period_us)
        group.set_quota(None, period_us)
        self.groups.append(group)
        return group

    def close(self) -> None:
        for group in reversed(self.groups):
            group.remove()
        self.groups.clear()


def detect_cgroup() -> CgroupController:
    """A controller for CPU bandwidth control, or `EmulationUnavailable` saying why not.

    v2: the unified hierarchy with the ``cpu`` controller available to this process's cgroup's
    children; v1: a hierarchy mounted with the ``cpu`` controller. Either way a trial group is
    created and its quota written, so "available" means "works here"."""
    mounts = _mounts()
    reasons = []
    for mount, fstype, options in mounts:
        try:
            if fstype == "cgroup" and "cpu" in options:
                own = _own_cgroup("cpu")
                controller = CgroupController(Path(mount) / own.lstrip("/"), 1)
            elif fstype == "cgroup2":
                own = _own_cgroup(None)
                base = Path(mount) / own.lstrip("/")
                available = (base / "cgroup.controllers").read_text().split()
                if "cpu" not in available:
                    reasons.append(f"{mount}: the cpu controller is not delegated to {own}")
                    continue
                # A v2 cgroup with processes in it cannot enable controllers for children
                # ("no internal processes"): make groups beside ours only if ours is the root.
                subtree = base / "cgroup.subtree_control"
                if "cpu" not in subtree.read_text().split():
                    subtree.write_text("+cpu")
                controller = CgroupController(base, 2)
            else:
                continue
            trial = controller.group("probe")
            try:
                trial.set_slowdown(2.0, 1)
            finally:
                trial.remove()
                controller.groups.clear()
            return controller
        except (OSError, EmulationUnavailable) as exc:
            reasons.append(f"{mount}: {exc}")
    if not mounts:
        reasons.append("no cgroup file system mounted")
    raise EmulationUnavailable("CPU bandwidth control is not writable here ("
                               + "; ".join(reasons) + ")")


# -- the method of a run -------------------------------------------------------------------------

@dataclass
class Emulation:
    """The method chosen for a run: cgroup bandwidth control, else the DevTools fallback."""

    method: str
    controller: CgroupController | None
    reason: str | None = None  # why the fallback was taken

    @property
    def all_threads(self) -> bool:
        """True when the throttle applies to every thread (so multi-threaded cells are fine)."""
        return self.controller is not None

    def browser_threads(self, profile_cores: int, host_cores: int) -> int:
        """WASM threads of a browser cell: min(phone cores, host cores) under bandwidth control;
        one (the main thread, the only one DevTools throttles) in the fallback."""
        if not self.all_threads:
            return 1
        return max(1, min(int(profile_cores), int(host_cores)))

    def close(self) -> None:
        if self.controller is not None:
            self.controller.close()


def choose_emulation(forced: str | None = None) -> Emulation:
    """Detect bandwidth control; fall back to DevTools throttling when it is unavailable.
    `forced` (or $EDGE_EMULATION): "cgroup" raises when unavailable, "devtools" skips cgroups."""
    forced = forced or os.environ.get(METHOD_ENV) or None
    if forced not in (None, "cgroup", "devtools"):
        raise ValueError(f"{METHOD_ENV} must be 'cgroup' or 'devtools', got {forced!r}")
    if forced == "devtools":
        return Emulation(DEVTOOLS, None, f"{METHOD_ENV}=devtools")
    try:
        controller = detect_cgroup()
    except EmulationUnavailable as exc:
        if forced == "cgroup":
            raise
        return Emulation(DEVTOOLS, None, str(exc))
    return Emulation(controller.method, controller)


# -- calibration ----------------------------------------------------------------------------------

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
                    workload: str | None = None) -> Calibration:
    """Find the quota at which `time_runs` (a few timed runs of the calibration workload, ms)
    is `target` times slower than unthrottled. Each step measures the slowdown against an
    unthrottled block taken just before it (`paired_slowdown`); the workload's time is taken as
    inversely proportional to the quota between steps (a secant step in log space once two
    points are known); the best step is kept when none lands within `tolerance`."""
    group.set_quota(None)
    first = statistics.median(time_runs())
    cal = Calibration(target, None, group.period_us, first, None, workload=workload)
    if target <= 1.0 + 1e-9:
        cal.achieved, cal.converged = 1.0, True
        return cal
    group.set_quota(None, period_for(first, target, threads))
    cal.period_us = group.period_us
    quota = threads * group.period_us / target
    ceiling = threads * group.period_us  # no throttle at all
    too_slow: tuple[float, float] | None = None  # (log quota, log achieved), achieved > target
    too_fast: tuple[float, float] | None = None  # achieved < target
    best: tuple[float, int, float] | None = None  # (error, quota, achieved)
    bases = []
    goal = math.log(target)
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
        point = (math.log(quota), math.log(max(achieved, 1e-6)))
        if achieved > target:
            too_slow = point
        else:
            too_fast = point
        if too_slow and too_fast and too_fast[1] < too_slow[1]:
            # Bracketed: interpolate in log space, kept inside the bracket (noise-proof).
            (q0, a0), (q1, a1) = too_slow, too_fast
            frac = min(0.8, max(0.2, (goal - a0) / (a1 - a0)))
            log_quota = q0 + frac * (q1 - q0)
        else:
            # Time taken as inversely proportional to the quota; at most a doubling per step.
            log_quota = point[0] + max(-math.log(2), min(math.log(2), point[1] - goal))
        quota = min(ceiling, max(MIN_QUOTA_US, math.exp(log_quota)))
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
