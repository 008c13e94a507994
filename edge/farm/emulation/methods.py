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

import os
from dataclasses import dataclass

from edge.farm.emulation.cgroups import CgroupController, EmulationUnavailable, detect_cgroup

#: Environment variable forcing a method: "cgroup" (fail if unavailable) or "devtools".
METHOD_ENV = "EDGE_EMULATION"
DEVTOOLS = "devtools-main-thread"


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
