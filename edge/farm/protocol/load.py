"""Competing load: how much CPU other processes took while a cell was measured.

A cell measured while another job runs on the host measures the scheduler, not the model: in
one run native cells measured beside another job came out faster on 1 thread than on 2 and
float16 twice as slow as float32. Every cell therefore records the CPU time the rest of the
system took during it: the sum, over every process that is neither this process nor one of its
descendants (browser, renderers, Playwright's driver, workers), of the user and system time it
was charged during the cell (/proc/<pid>/stat), a process that started during the cell with all
of its time. Both sides use the kernel's per-process accounting: the system-wide counters of
/proc/stat disagree with it under CPU bandwidth control (a throttled group is charged less per
process than the CPUs' busy time shows), which made every throttled cell look busy. Processes
that start and exit within one cell are not seen. A cell is ``busy`` when the others averaged
more than `BUSY_CORES` CPUs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

#: Others using more than this many CPUs on average during a cell flag it.
BUSY_CORES = 0.25
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s() -> dict[int, float] | None:
    """pid -> CPU seconds (user + system) of every process (Linux /proc); None elsewhere."""
    if not os.path.isdir("/proc/self"):
        return None
    out: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces) in parentheses.
        fields = data[data.rfind(b")") + 2:].split()
        try:
            out[int(name)] = (int(fields[11]) + int(fields[12])) / _TICK
        except (IndexError, ValueError):
            continue
    return out


def _ours() -> set[int]:
    me = psutil.Process()
    pids = {me.pid}
    try:
        pids.update(p.pid for p in me.children(recursive=True))
    except psutil.Error:
        pass
    return pids


@dataclass
class LoadMeter:
    """``meter = LoadMeter.start(); ...; meter.stop()`` -> the record's ``load`` field."""

    wall0: float
    cpu0: dict[int, float] | None
    ours0: set[int]

    @classmethod
    def start(cls) -> LoadMeter:
        return cls(time.monotonic(), process_cpu_s(), _ours())

    def stop(self) -> dict:
        wall = time.monotonic() - self.wall0
        cpu1 = process_cpu_s()
        ours = self.ours0 | _ours()
        if self.cpu0 is None or cpu1 is None or wall <= 0:
            return {"wall_s": round(wall, 3), "other_cpu_s": None, "other_cores": None,
                    "busy": False, "note": "no /proc here: competing load not measured"}
        other = sum(max(0.0, t - self.cpu0.get(pid, 0.0))
                    for pid, t in cpu1.items() if pid not in ours)
        cores = other / wall
        return {"wall_s": round(wall, 3), "other_cpu_s": round(other, 3),
                "other_cores": round(cores, 3), "busy": cores > BUSY_CORES}
