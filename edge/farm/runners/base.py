"""What a runner is: given a cell, its artifact, the bench context and where the run measures,
it measures the cell and returns the record it wrote through the bench's `record`.

A runner never raises for what a model or a runtime does: crashes, hangs and rejected ops are
records (`failed`, `timeout`, `unsupported`). Runners hold no state of their own; what a run
learns (calibrations, targets, noise, the records) lives in the bench (`edge.farm.cells.Bench`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar


@dataclass
class Where:
    """Where a run measures: its browser session and the loopback server's URL (None for a run
    without browser cells or emulated phones)."""

    session: object | None = None
    server_url: str | None = None


class Runner(ABC):
    """Measures the cells of one or more runtimes (`edge.farm.runners.table.RUNNERS`)."""

    #: "native" | "browser": the key of the run's noise and of a device's cgroup.
    kind: ClassVar[str]
    #: Runs outside the browser (a worker process): native cells of a rule default to the host.
    native: ClassVar[bool]
    #: The runtime whose first cell measures the run's noise for this kind of runner.
    noise_runtime: ClassVar[str | None] = None
    #: What the noise probe's repeats are, for the record ("worker processes", ...).
    noise_between: ClassVar[str] = ""

    #: Can keep a model loaded and time it on request (`timing`): its cells are measured in
    #: comparison groups, interleaved (`edge.farm.protocol.interleave`).
    interleaves: ClassVar[bool] = False

    def __init__(self, *, gpu: bool = False):
        #: Runs on the GPU: never emulated (the host's GPU is not a phone's), no thread count.
        self.gpu = gpu

    @abstractmethod
    def run(self, bench, cell, artifact, where: Where) -> dict:
        """Measure `cell` (an `edge.farm.scheduling.matrix.Cell`) with `artifact`; the record
        written with `bench.record`."""

    def noise_medians(self, bench, cell, cells, where: Where,
                      repeats: int) -> tuple[list[float], object] | None:
        """The run's noise probe: the calibration workload of `cell`'s format measured
        `repeats` times, each in a fresh page or worker; (medians in ms, the artifact), or None
        where this runner cannot measure it here."""
        return None

    def connection_lost(self, bench, cell, where: Where, error: str | None) -> bool:
        """Whether `cell` failed (with `error`) because the connection to its device was lost
        or could not be made: the scheduler measures such a cell again after a pause
        (`edge.farm.scheduling.lanes`). False here: a cell on this machine has no connection."""
        return False

    def timing(self, bench, cell, artifact, where: Where, group):
        """A context manager: `cell`'s model loaded and warmed up in a page or worker that runs
        in `group` (a CpuGroup, or None for the root), yielding ``time_runs(n) -> [ms, ...]``.
        Only for runners that `interleaves`."""
        raise NotImplementedError(f"{type(self).__name__} does not time models on request")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gpu={self.gpu})"
