"""Self-checks over a run's records: what its figures are worth before anyone reads them.

`self_checks` takes the records of one run (plain dicts, as `edge.results.store` reads them) and
returns one check per question, each ``{"name", "status", "summary", "details"}`` with status
``"pass"``, ``"fail"`` or ``"n/a"`` (nothing to check; the summary says why):

- ``emulated-not-faster``: an emulated phone cell is never faster than the host cell of the
  same model, variant, runtime and threads beyond the two cells' measured intervals widened by
  the run's page-to-page spread (`edge.stats.noise_margin`; the medians when an interval is
  missing), and never faster throttled than unthrottled in its own paired blocks. A
  slowed-down host that beats the plain host means the emulation failed.
- ``weight-variants-tie``: TF.js variants that differ only in how their weights are stored
  (``tfjs-fp32``, ``tfjs-fp16``, ``tfjs-uint16``, ``tfjs-uint8``: dequantized on load, the
  same compute afterwards) on one model, runtime, device and thread count fall in one tie group
  (`edge.stats.tie_groups` over their raw samples). Two groups mean the run cannot tell apart
  cells that must be equal: its differences of that size are noise.
- ``slowdown-on-target``: at least 90 % of the emulated cells whose achieved slowdown is known
  are within 15 % of their target slowdown.
- ``competing-load``: no measured cell ran while other processes kept more than a quarter of a
  core busy, or while another lane's cell ran on this machine (``load.busy``).
- ``no-emulated-gpu``: no successful WebGL/WebGPU cell on an emulated phone (its GPU would be
  the host's, not the phone's).

`format_checks` renders them as a `rich` table, `checks_json` as the text of ``checks.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edge.stats import noise_floor, noise_margin, tie_groups
from edge.text import dig as _get

PASS, FAIL, NA = "pass", "fail", "n/a"

#: TF.js variants that differ only in weight storage: identical compute once loaded.
WEIGHT_ONLY_VARIANTS = ("tfjs-fp32", "tfjs-fp16", "tfjs-uint16", "tfjs-uint8")
#: Runtimes that run on the GPU (in an emulated profile: the host's GPU).
GPU_RUNTIMES = ("tfjs-webgl", "tfjs-webgpu", "litertjs-webgpu", "ort-webgpu")
#: An achieved slowdown within this relative distance of its target is on target...
SLOWDOWN_TOLERANCE = 0.15
#: ... and at least this share of the emulated cells must be.
SLOWDOWN_SHARE = 0.90
#: The host cells to compare emulated ones against.
HOST_DEVICE = "host"
#: How many offending cells a summary names at most (the details list them all).
WORST_SHOWN = 5

CHECK_NAMES = ("emulated-not-faster", "weight-variants-tie", "slowdown-on-target",
               "competing-load", "no-emulated-gpu")

__all__ = ["CHECK_NAMES", "self_checks", "format_checks", "checks_json", "PASS", "FAIL", "NA"]


# -- reading records ----------------------------------------------------------------------------

def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ok(record: Mapping[str, Any]) -> bool:
    return record.get("status") == "ok"


def _emulated(record: Mapping[str, Any]) -> bool:
    return bool(record.get("emulated"))


def _is_host(record: Mapping[str, Any]) -> bool:
    return record.get("device") == HOST_DEVICE and not _emulated(record)


def _p50(record: Mapping[str, Any]) -> float | None:
    return _num(_get(record, "metrics", "latency", "p50"))


def _ci(record: Mapping[str, Any]) -> tuple[float, float] | None:
    ci = _get(record, "metrics", "latency", "ci95")
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return None
    lo, hi = _num(ci[0]), _num(ci[1])
    if lo is None or hi is None or lo > hi:
        return None
    return lo, hi


def _samples(record: Mapping[str, Any]) -> list[float]:
    raw = _get(record, "metrics", "latency", "samples")
    if not isinstance(raw, list):
        return []
    return [v for v in (_num(x) for x in raw) if v is not None]


def _cell(record: Mapping[str, Any], *, device: bool = True) -> str:
    """``model variant runtime [device] [tN]`` for the details."""
    parts = [str(record.get("model")), str(record.get("variant")), str(record.get("runtime"))]
    if device:
        parts.append(str(record.get("device")))
    threads = record.get("threads")
    if threads is not None:
        parts.append(f"t{threads}")
    return " ".join(parts)


def _ms(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _interval(record: Mapping[str, Any]) -> str:
    ci = _ci(record)
    text = f"p50 {_ms(_p50(record))} ms"
    return text + (f" [{_ms(ci[0])}, {_ms(ci[1])}]" if ci else " (no interval)")


def _check(name: str, status: str, summary: str, details: Iterable[str] = ()) -> dict[str, Any]:
    return {"name": name, "status": status, "summary": summary, "details": list(details)}


# -- the checks ---------------------------------------------------------------------------------

def _emulated_not_faster(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    name = "emulated-not-faster"
    hosts: dict[tuple, Mapping[str, Any]] = {}
    for r in records:
        if _ok(r) and _is_host(r):
            hosts.setdefault(_key(r), r)
    pairs = [(r, hosts[_key(r)]) for r in records
             if _ok(r) and _emulated(r) and _key(r) in hosts]
    if not pairs:
        return _check(name, NA, "no emulated cell has a host cell of the same model, variant, "
                                "runtime and threads to compare with")
    faster, by_median, paired_slower = [], 0, 0
    for emu, host in pairs:
        # Measured apart, two pages differ by the run's page-to-page spread as well as by
        # their own intervals: only a gap beyond both says "faster".
        cvs = [_num(_get(r, "noise", "between_cv")) for r in (emu, host)]
        margin = noise_margin(max((c for c in cvs if c is not None), default=None))
        emu_ci, host_ci = _ci(emu), _ci(host)
        if emu_ci is not None and host_ci is not None:
            beyond = emu_ci[1] < host_ci[0] * (1 - margin)
        else:
            by_median += 1
            emu_p50, host_p50 = _p50(emu), _p50(host)
            beyond = (emu_p50 is not None and host_p50 is not None
                      and emu_p50 < host_p50 * (1 - margin))
        if beyond:
            faster.append(f"{_cell(emu)}: {_interval(emu)} vs host {_interval(host)} "
                          f"(beyond the run's ±{margin:.0%} page-to-page spread)")
    # The same model in the same page, throttled against unthrottled blocks in turn: no
    # spread between pages to hide behind.
    for r in records:
        paired = _get(r, "emulation", "paired")
        if _ok(r) and _emulated(r) and isinstance(paired, Mapping):
            ratio = _num(paired.get("ratio"))
            if ratio is None:
                continue
            if ratio < 1.0:
                faster.append(f"{_cell(r)}: throttled {paired.get('throttled_ms')} ms vs "
                              f"unthrottled {paired.get('unthrottled_ms')} ms in the same page "
                              f"(x{ratio:.2f})")
            else:
                paired_slower += 1
    summary = (f"{len(faster)} of {len(pairs)} emulated cells faster than the host (beyond "
               f"their interval and the run's page-to-page spread)")
    if paired_slower:
        summary += f"; {paired_slower} slower than unthrottled in paired blocks, as they must be"
    if by_median:
        summary += f"; {by_median} compared by median (no interval recorded)"
    return _check(name, FAIL if faster else PASS, summary, faster)


def _key(record: Mapping[str, Any]) -> tuple:
    return (record.get("model"), record.get("variant"), record.get("runtime"),
            record.get("threads"))


def _weight_variants_tie(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    name = "weight-variants-tie"
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        if _ok(r) and r.get("variant") in WEIGHT_ONLY_VARIANTS and _samples(r):
            key = (r.get("model"), r.get("runtime"), r.get("device"), r.get("threads"))
            groups.setdefault(key, []).append(r)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return _check(name, NA, "no model, runtime and device has two or more weight-only "
                                "TF.js variants (" + ", ".join(WEIGHT_ONLY_VARIANTS)
                                + ") measured")
    split = []
    margins: list[float] = []
    for (model, runtime, device, threads), members in groups.items():
        samples = _keyed_samples(members)
        cvs = [(m.get("noise") or {}).get("between_cv") for m in members]
        cvs = [float(c) for c in cvs if isinstance(c, int | float)]
        margin = noise_margin(max(cvs) if cvs else None)
        margins.append(margin)
        found = tie_groups(samples, rel=margin)
        if len(found) > 1:
            where = f"{model} {runtime} {device}" + (f" t{threads}" if threads is not None
                                                      else "")
            medians = {k: _median(v) for k, v in samples.items()}
            split.append(f"{where}: " + " | ".join(
                ", ".join(f"{k} ({_ms(medians[k])} ms)" for k in group) for group in found))
    if not split:
        return _check(name, PASS, f"all {len(groups)} groups of weight-only TF.js variants tie "
                                  f"within noise (rank test, and a difference under "
                                  f"±{max(margins):.0%}, the run's measured page-to-page "
                                  f"spread, is not one)")
    floor = noise_floor({str(r.get("cell_id")): _samples(r) for r in records
                         if _ok(r) and _samples(r)})
    summary = (f"{len(split)} of {len(groups)} groups of weight-only TF.js variants split "
               f"into several tie groups although their compute is identical (run noise floor "
               f"{_floor_text(floor)})")
    return _check(name, FAIL, summary, split + [f"run noise floor: {_floor_text(floor)}"])


def _keyed_samples(members: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Samples per variant name (the cell id when a variant occurs twice)."""
    names = [str(r.get("variant")) for r in members]
    unique = len(set(names)) == len(names)
    return {(str(r.get("variant")) if unique else str(r.get("cell_id"))): _samples(r)
            for r in members}


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _floor_text(floor: Any) -> str:
    value = _num(floor)
    return "unknown" if value is None else f"\u00b1{value:.1%} of the median"


def _slowdown_on_target(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Achieved here is the cell's own emulated p50 over the host p50 of the same model,
    variant, runtime and threads in the same run (``emulation.achieved_vs_host``), never the
    calibration workload's slowdown."""
    name = "slowdown-on-target"
    cells = []
    missing = 0
    for r in records:
        if not (_ok(r) and _emulated(r)):
            continue
        achieved = _num(_get(r, "emulation", "achieved_vs_host"))
        target = _num(_get(r, "emulation", "target_slowdown"))
        if target is None or target <= 0:
            continue
        if achieved is None:
            missing += 1
            continue
        cells.append((abs(achieved / target - 1.0), achieved, target, r))
    if not cells:
        return _check(name, NA, "no emulated cell has a host cell of the same model, variant, "
                                "runtime and threads to compare its p50 with")
    within = sum(1 for off, *_ in cells if off <= SLOWDOWN_TOLERANCE)
    share = within / len(cells)
    cells.sort(key=lambda c: -c[0])
    off_target = [c for c in cells if c[0] > SLOWDOWN_TOLERANCE]
    shown = off_target if off_target else cells[:WORST_SHOWN]
    details = [f"{_cell(r)}: target {target:.2f}, achieved {achieved:.2f} "
               f"({achieved / target - 1:+.0%})"
               + (" (interleaved with the host cell)" if _get(r, "metrics", "interleaved",
                                                               "rounds") else "")
               for _off, achieved, target, r in shown]
    worst = cells[0]
    summary = (f"{within} of {len(cells)} emulated cells ({share:.0%}) within "
               f"{SLOWDOWN_TOLERANCE:.0%} of the target slowdown, achieved = the cell's p50 over "
               f"the host cell's p50 in this run (needed: {SLOWDOWN_SHARE:.0%}); worst: target "
               f"{worst[2]:.2f}, achieved {worst[1]:.2f}")
    if missing:
        summary += f"; {missing} emulated cells without a host cell to compare with"
    return _check(name, PASS if share >= SLOWDOWN_SHARE else FAIL, summary, details)


def _competing_load(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    name = "competing-load"
    measured = [r for r in records if _ok(r) and isinstance(r.get("load"), Mapping)
                and (_num(r["load"].get("other_cores")) is not None
                     or r["load"].get("busy") is True)]
    if not measured:
        return _check(name, NA, "no cell measured the load of other processes")
    busy = [r for r in measured if r["load"].get("busy") is True]
    others = [v for v in (_num(r["load"].get("other_cores")) for r in measured) if v is not None]
    top = max(others) if others else None
    top_text = f"{top:.2f}" if top is not None else "unknown"
    if not busy:
        return _check(name, PASS, f"no cell measured under competing load (max other load "
                                  f"{top_text} cores)")
    busy.sort(key=lambda r: -(_num(r["load"].get("other_cores")) or 0.0))
    details = [f"{_cell(r)}: other processes used "
               f"{_fmt_cores(_num(r['load'].get('other_cores')))} cores"
               + (f", {r['load']['concurrent_cells']} cell(s) of other lanes ran meanwhile"
                  if r["load"].get("concurrent_cells") else "") for r in busy]
    return _check(name, FAIL, f"{len(busy)} of {len(measured)} cells measured under competing "
                              f"load (max other load {top_text} cores)", details)


def _fmt_cores(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _no_emulated_gpu(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    name = "no-emulated-gpu"
    emulated = [r for r in records if _ok(r) and _emulated(r)]
    if not emulated:
        return _check(name, NA, "no emulated cell was measured")
    gpu = [r for r in emulated if r.get("runtime") in GPU_RUNTIMES]
    if not gpu:
        return _check(name, PASS, f"no GPU runtime measured on an emulated device "
                                  f"({len(emulated)} emulated cells)")
    details = [f"{_cell(r)}: renderer {_get(r, 'gpu', 'renderer') or 'unknown'}" for r in gpu]
    cells = "1 GPU cell" if len(gpu) == 1 else f"{len(gpu)} GPU cells"
    return _check(name, FAIL, f"{cells} on emulated devices: their GPU is the host's, not the "
                              f"phone's", details)


def self_checks(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every self-check over the records of one run, in `CHECK_NAMES` order."""
    records = [r for r in records if isinstance(r, Mapping)]
    return [_emulated_not_faster(records), _weight_variants_tie(records),
            _slowdown_on_target(records), _competing_load(records), _no_emulated_gpu(records)]


# -- output -------------------------------------------------------------------------------------

_STYLE = {PASS: "green", FAIL: "bold red", NA: "dim"}


def format_checks(checks: Sequence[Mapping[str, Any]]):
    """A `rich.table.Table`: one line per check (PASS/FAIL/N/A, name, summary), the details of
    failed checks indented below their line."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Self-checks", show_lines=False, expand=False)
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("summary", overflow="fold")
    for check in checks:
        status = str(check.get("status"))
        table.add_row(Text(status.upper(), style=_STYLE.get(status, "")),
                      str(check.get("name")), str(check.get("summary")))
        if status == FAIL:
            details = list(check.get("details") or [])
            for line in details[:WORST_SHOWN]:
                table.add_row("", "", Text(f"  {line}", style="red"))
            if len(details) > WORST_SHOWN:
                table.add_row("", "", Text(f"  ... and {len(details) - WORST_SHOWN} more "
                                           f"(checks.json)", style="dim"))
    return table


def checks_json(checks: Sequence[Mapping[str, Any]]) -> str:
    """The text of ``checks.json``: ``{"passed": bool, "counts": {...}, "checks": [...]}``
    (``passed`` is false when any check failed; n/a checks do not fail a run)."""
    counts = {s: sum(1 for c in checks if c.get("status") == s) for s in (PASS, FAIL, NA)}
    payload = {"passed": counts[FAIL] == 0, "counts": counts, "checks": list(checks)}
    return json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
