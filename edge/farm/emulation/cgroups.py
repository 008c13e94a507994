"""CPU bandwidth control: a cgroup (v1 or v2) whose quota slows every thread of the process tree
in it (the browser with every process it forks, or the native worker).

``quota = threads * period / slowdown`` microseconds of CPU time per ``period``, shared by all
threads of the group; the quota is calibrated by measurement (`edge.farm.emulation.calibration`).
Needs write access to the cgroup file system (root, or a delegated cgroup).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: CFS period. Short periods keep the throttled distribution unimodal (a 100 ms period lets
#: runs that fit in one period's budget go at full speed); the quota is calibrated to correct
#: the overshoot that spinning pool threads cause at short periods.
DEFAULT_PERIOD_US = 20_000
#: The kernel's smallest quota (1 ms).
MIN_QUOTA_US = 1_000
#: A calibration stops once the workload's slowdown is this close to the target (relative).


CGROUP_V1 = "cgroup-v1"
CGROUP_V2 = "cgroup-v2"


class EmulationUnavailable(RuntimeError):
    """CPU bandwidth control cannot be used here (the message says why)."""


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
