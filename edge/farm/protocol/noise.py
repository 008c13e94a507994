"""The run's noise: how much one cell moves between fresh pages (or worker processes) on this
host, now. Each run first measures its calibration workload `NOISE_REPEATS` times on the host,
each in a fresh page or worker, 20 runs after a steady warm-up (each runner's
`noise_medians`); the relative standard deviation of those medians is the run's noise, and two
cells measured apart are only told apart beyond it (`edge.stats.noise_margin`)."""

from __future__ import annotations

import numpy as np

#: Fresh pages (and worker processes) in which a run measures its own noise.
NOISE_REPEATS = 4


def noise_spread(medians: list[float], workload: str, between: str) -> dict:
    """The record's ``noise``: the medians' relative standard deviation (``between_cv``)."""
    mean = float(np.mean(medians))
    cv = float(np.std(medians, ddof=1) / mean) if len(medians) > 1 and mean else None
    return {"between_cv": None if cv is None else round(cv, 4), "repeats": len(medians),
            "medians_ms": [round(m, 3) for m in medians], "workload": workload,
            "between": between}
