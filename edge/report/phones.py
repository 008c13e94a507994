"""The phones' answer: the rows the picker ranks for every catalogued phone.

A run measures once on the host (and on any real device it has); every catalogued phone then
gets estimated rows, the host's cell times a factor with its evidence and interval
(`edge.estimate`). Cells measured in an emulated browser are not ranked for warm latency: their
load, compile, first inference and memory under the phone's CPU throttle replace the estimate's
arithmetic for cold start (`edge.estimate.attach_emulated_cold_start`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from edge.errors import EdgeError

#: The calibrations file `edge calibrate` writes and runs read (env: EDGE_CALIBRATIONS).
CALIBRATIONS_ENV = "EDGE_CALIBRATIONS"
DEFAULT_CALIBRATIONS = "device_calibrations.toml"


def calibrations_path() -> Path:
    return Path(os.environ.get(CALIBRATIONS_ENV) or DEFAULT_CALIBRATIONS)


@dataclass
class PhoneAnswer:
    """The picker's rows (measured host and real-device cells plus every phone's estimates),
    the factors behind the estimates, the catalog's phones and what could not be read."""

    rows: pd.DataFrame
    factors: list[dict[str, Any]] = field(default_factory=list)
    phones: list[Any] = field(default_factory=list)
    host_index: float | None = None
    calibrations: str | None = None
    error: str | None = None


def phone_answer(df: pd.DataFrame, records: Sequence[Mapping[str, Any]],
                 meta: Mapping[str, Any] | None = None) -> PhoneAnswer:
    """Estimated rows for every catalogued phone, joined to the run's measured non-emulated
    rows. A catalog or calibrations file that cannot be read leaves the measured rows alone
    and says why in ``error``."""
    from edge.estimate import (
        attach_emulated_cold_start,
        catalog_phones,
        estimate_rows,
        load_calibrations,
        make_estimator,
    )
    from edge.reference_points import load_reference_points

    measured = df[~df["emulated"]] if "emulated" in df else df
    catalog = (meta or {}).get("catalog")
    cal_path = calibrations_path()
    try:
        phones = catalog_phones(catalog)
        calibrations = load_calibrations(cal_path)
        estimator = make_estimator(records, load_reference_points(), phones, calibrations)
    except (EdgeError, OSError, ValueError) as exc:
        return PhoneAnswer(measured.copy(), error=f"no phone estimates: {exc}")
    # a phone measured for real in this run is answered by its measurement, not an estimate
    real = {d for d in measured["device"].dropna() if d != "host"}
    targets = [p for p in phones if p.name not in real]
    emulated = df[df["emulated"]] if "emulated" in df else df.iloc[0:0]
    plain = measured.drop(columns=["samples"], errors="ignore").to_dict(orient="records")
    estimates = estimate_rows([_clean(r) for r in plain], estimator, targets)
    attach_emulated_cold_start(estimates, [_clean(r) for r in emulated.drop(
        columns=["samples"], errors="ignore").to_dict(orient="records")])
    # a phone without any factor (no index, no evidence) keeps its emulated cells, if any
    answered = {e["device"] for e in estimates}
    fallback = emulated[~emulated["device"].isin(answered)] if len(emulated) else emulated
    parts = [measured] + ([fallback] if len(fallback) else []) + \
        ([pd.DataFrame(estimates)] if estimates else [])
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else measured.copy()
    if "estimated" in frame:
        frame["estimated"] = frame["estimated"].eq(True)
    factors = []
    seen = set()
    for est in estimates:
        key = (est["device"], est["runtime_kind"], est["precision"])
        if key in seen:
            continue
        seen.add(key)
        factors.append(estimator.factor(*key).as_dict())
    return PhoneAnswer(frame, factors, targets, estimator.host_index,
                       str(cal_path) if calibrations else None)


def _clean(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            v = None
        out[k] = v
    return out
