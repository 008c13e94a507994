"""Competing load: how much CPU other processes took while a cell was measured.

A cell measured while another job runs on the host measures the scheduler, not the model: in
one run native cells measured beside another job came out faster on 1 thread than on 2 and
float16 twice as slow as float32. Every cell therefore records the CPU time the rest of the
system took during it:

    other = busy time of all CPUs (/proc/stat)  -  CPU time of this process and its descendants

``busy`` counts user, nice, system, irq and softirq time (not idle, iowait or steal: time the
hypervisor gave to other machines is not a process here). Our own tree is this process, its
live descendants (browser, renderers, Playwright's driver, a worker) and the children it has
reaped (``RUSAGE_CHILDREN``: a worker that finished during the cell). A cell is ``busy`` when the
others averaged more than `BUSY_CORES` CPUs.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

import psutil

#: Others using more than this many CPUs on average during a cell flag it.
BUSY_CORES = 0.25
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def system_busy_s() -> float | None:
    """CPU seconds all CPUs spent busy since boot (Linux /proc/stat); None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = values[:7]
    return (user + nice + system + irq + softirq) / _TICK


def _tree_cpu() -> dict[int, tuple[float, bool]]:
    """pid -> (CPU seconds (user + system), a direct child of ours) of this process and its
    live descendants."""
    out: dict[int, tuple[float, bool]] = {}
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            out[proc.pid] = (t.user + t.system, proc.ppid() == me.pid)
        except psutil.Error:
            continue
    return out


def _reaped_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass
class LoadMeter:
    """``meter = LoadMeter.start(); ...; meter.stop()`` -> the record's ``load`` field."""

    wall0: float
    busy0: float | None
    tree0: dict[int, tuple[float, bool]]
    reaped0: float

    @classmethod
    def start(cls) -> LoadMeter:
        return cls(time.monotonic(), system_busy_s(), _tree_cpu(), _reaped_s())

    def stop(self) -> dict:
        wall = time.monotonic() - self.wall0
        busy1 = system_busy_s()
        tree1 = _tree_cpu()
        ours = sum(t - self.tree0.get(pid, (0.0, False))[0] for pid, (t, _) in tree1.items())
        # Children of ours that exited and were reaped during the cell: their whole CPU time is
        # in RUSAGE_CHILDREN, of which the part before the start was already in tree0.
        ours += _reaped_s() - self.reaped0
        ours -= sum(t for pid, (t, direct) in self.tree0.items() if pid not in tree1 and direct)
        if self.busy0 is None or busy1 is None or wall <= 0:
            return {"wall_s": round(wall, 3), "other_cpu_s": None, "other_cores": None,
                    "busy": False, "note": "no /proc/stat here: competing load not measured"}
        other = max(0.0, (busy1 - self.busy0) - max(0.0, ours))
        cores = other / wall
        return {"wall_s": round(wall, 3), "other_cpu_s": round(other, 3),
                "other_cores": round(cores, 3), "busy": cores > BUSY_CORES}
