"""Comparison groups: the cells a report compares (one model, runtime and thread count: its
variants on the host and on every emulated phone), measured together so that the host's drift
cannot pass for a difference between them.

A group is measured in three steps:

1. **Interleaved latency.** Each variant's model is loaded once, in one page (or worker) of its
   own, and warmed up. Every cell is then timed in rounds of short blocks
   (`edge.farm.protocol.interleave`): host blocks unthrottled, phone blocks under the phone's
   quota, all in the same stretch of time; each phone's quota is steered to its target on that
   very model against its host cell's blocks, so the slowdown it achieves is the cell's own,
   not a proxy's.
2. **Each cell alone**, in a fresh page or worker (under its phone's quota): load time, first
   run, warm-up, memory, outputs for fidelity, and a short look at its latency
   (``metrics.latency_alone``) with `edge.farm.protocol.protocol.alone_protocol`.
3. **Records.** ``metrics.latency`` is the interleaved one; ``metrics.interleaved`` says how it
   was taken; an emulated cell's ``emulation.achieved_slowdown`` (and ``achieved_vs_host``) is
   its p50 over the host cell's p50 of the same variant from the same rounds. Host records are
   written first.

A cell whose variant cannot be loaded for timing is still measured alone, and its record says
why it was not interleaved. An interrupted group writes nothing; `--resume` measures it again.
"""

from __future__ import annotations

import statistics
from contextlib import ExitStack

from rich.markup import escape

from edge.farm.cells import Bench, workload_name
from edge.farm.protocol.interleave import DISCARD, Arm, interleave, ratio
from edge.farm.protocol.load import LoadMeter
from edge.farm.protocol.protocol import alone_protocol
from edge.farm.runners.base import Where
from edge.farm.runners.table import runner_for
from edge.farm.scheduling.matrix import Cell


def comparison_groups(cells: list[Cell], catalog: dict, emulation,
                      alone: frozenset = frozenset()) -> list[list[Cell]]:
    """The run's comparison groups, in the order of their first cell: cells of one model,
    runtime and thread count on the host or on a phone emulated by CPU bandwidth control, of a
    runtime that can time a loaded model on request, except the cells to be measured `alone`
    (the matrix's `interleave = false` rules); only groups of two or more cells."""
    groups: dict[tuple, list[Cell]] = {}
    for c in cells:
        if c in alone:
            continue
        runner = runner_for(c.runtime)
        profile = catalog.get(c.device)
        if not runner.interleaves or runner.gpu or profile is None or profile.endpoint:
            continue
        if not profile.is_host and not (profile.emulated and emulation.controller is not None
                                        and emulation.all_threads):
            continue
        groups.setdefault((c.model, c.runtime, c.threads), []).append(c)
    return [g for g in groups.values() if len(g) >= 2]


def measure_group(bench: Bench, cells: list[Cell], where: Where, checked, finish,
                  measure_cell) -> None:
    """Measure one comparison group (see the module's docstring); `checked(cell)` gives the
    verified artifact (or records the problem and gives None), `finish(rec)` reports a written
    record, `measure_cell(bench, cell, artifact, where)` measures a cell alone."""
    cells = sorted(cells, key=lambda c: c.device != "host")  # hosts first, else run order
    members = [(c, a) for c in cells if (a := checked(c)) is not None]
    if not members:
        return
    first = members[0][0]
    label = f"{first.model} {first.runtime}" + (f" t{first.threads}" if first.threads else "")
    bench.console.print(escape(f"  group {label}: {len(members)} cells interleaved"))
    try:
        timed = _interleaved(bench, members, where)
    except Exception as exc:  # noqa: BLE001 - each cell is still measured alone
        timed = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"}
    bench.held = []
    try:
        for cell, artifact in members:
            arm = timed.get(cell)
            if arm is not None and arm.get("calibration") is not None:
                key = (cell.device, cell.runtime, cell.threads or 1)
                bench.calibrations[key] = arm["calibration"]  # this cell's own quota
            measure_cell(bench, cell, artifact, where)
        held = bench.held
    finally:
        bench.held = None
    for rec in held:
        _merge(bench, rec, timed)
        bench.write(rec)
        finish(rec)


def _interleaved(bench: Bench, members, where: Where) -> dict:
    """Time the group's cells in rounds; {cell: {...}, "error": ...} per cell."""
    from edge.farm.emulation.calibration import Calibration, period_for
    from edge.farm.emulation.cgroups import MIN_QUOTA_US

    runner = runner_for(members[0][0].runtime)
    group = bench.group("interleave", runner.kind)
    out: dict = {}
    variants: dict[str, list] = {}
    for cell, artifact in members:
        variants.setdefault(cell.variant, []).append((cell, artifact))
    with ExitStack() as stack:
        arms: list[Arm] = []
        phones: list[tuple[Cell, Arm, float, str]] = []  # (cell, arm, base ms, workload)
        for variant, pairs in variants.items():
            cell, artifact = pairs[0]
            try:
                time_runs = stack.enter_context(runner.timing(bench, cell, artifact, where,
                                                              group))
            except Exception as exc:  # noqa: BLE001 - these cells are measured alone only
                why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
                for c, _ in pairs:
                    out[c] = {"error": f"not interleaved: could not load for timing: {why}"}
                continue
            host = Arm(("host", variant), time_runs)
            arms.append(host)
            base = None
            for c, art in pairs:
                if c.device == "host":
                    out[c] = {"arm": host, "host": host}
                    continue
                if group is None:
                    out[c] = {"error": "not interleaved: no CPU bandwidth control"}
                    continue
                if base is None:
                    group.set_quota(None)
                    base = statistics.median(time_runs(DISCARD + 3)[DISCARD:])
                target = bench.targets.get(c.device, 1.0)
                threads = c.threads or 1
                period = period_for(base, target, threads)
                share = _start_share(bench, c) or 1 / target
                arm = Arm(c, time_runs, max(MIN_QUOTA_US, int(threads * period * share)),
                          period, target=target, host=host, max_quota_us=threads * period,
                          min_quota_us=MIN_QUOTA_US)
                arms.append(arm)
                phones.append((c, arm, base, f"{workload_name(art)} (the cell's own model, "
                                             "steered in turns with its host cell)"))
                out[c] = {"arm": arm, "host": host}

        def set_quota(quota, period):
            if group is not None:
                group.set_quota(quota, period)

        meter = LoadMeter.start()
        rounds = interleave(arms, set_quota, bench.protocol.to_dict())
        out["load"] = meter.stop()
        bench.console.print(escape(
            f"    {rounds} rounds in {out['load']['wall_s']:.0f} s"
            + (" (past the caps: a phone was still off target)"
               if any(a.overtime for a in arms) else "")))
        out["rounds"] = rounds
        out["cells"] = len(arms)
        for c, arm, base, workload in phones:
            steered = [s for s in arm.steps if s["phase"] == "steer" and s["slowdown"]]
            last = steered[-1]["slowdown"] if steered else None
            out[c]["calibration"] = Calibration(
                arm.target, arm.quota_us, arm.period_us, round(base, 4), last,
                steps=[{"quota_us": s["quota_us"], "achieved": s["slowdown"]} for s in steered],
                workload=workload, converged=arm.settled)
            changes = sum(1 for a, b in zip(arm.steps, arm.steps[1:], strict=False)
                          if a["quota_us"] != b["quota_us"])
            bench.console.print(escape(
                f"    {c.device} {c.variant}: quota {arm.quota_us} us / {arm.period_us} us, "
                f"steered to x{last if last is not None else float('nan'):.2f} "
                f"(target {arm.target:.2f}), {changes} quota change(s)"))
    return out


def _start_share(bench: Bench, cell: Cell) -> float | None:
    """The first quota of a phone's arm as a share of threads x period: what this device's
    last calibration at these threads found (this runtime's first), else None."""
    threads = cell.threads or 1
    found = bench.calibrations.get((cell.device, cell.runtime, threads))
    if found is None:
        found = next((cal for (device, _, t), cal in reversed(bench.calibrations.items())
                      if device == cell.device and t == threads), None)
    if found is None or not found.quota_us or not found.period_us:
        return None
    share = found.quota_us / (threads * found.period_us)
    return share if 0 < share <= 1 else None


def _merge(bench: Bench, rec: dict, timed: dict) -> None:
    """Put a held record's interleaved latency (and, on a phone, its slowdown) in place."""
    from edge.farm.emulation.calibration import emulation_record
    from edge.farm.protocol.protocol import summarize

    cell = Cell(rec["model"], rec["variant"], rec["runtime"], rec["device"], rec.get("threads"))
    entry = timed.get(cell) or {"error": timed.get("error", "not interleaved")}
    metrics = rec.setdefault("metrics", {})
    if rec["status"] != "ok":
        return
    if "arm" not in entry:
        metrics["interleaved"] = {"error": entry.get("error")}
        return
    arm, host = entry["arm"], entry["host"]
    if timed.get("load") is not None:  # the rounds' competing load, and the cell's alone
        rec["load"] = _load(timed["load"], rec.get("load"))
    alone = metrics.get("latency")
    metrics["latency"] = summarize(arm.samples, steady=(alone or {}).get("steady"))
    metrics["latency"]["warmup_runs"] = (alone or {}).get("warmup_runs")
    if alone is not None:
        metrics["latency_alone"] = alone
    metrics["interleaved"] = {
        "cells": timed.get("cells"), "rounds": timed.get("rounds"), "blocks": arm.blocks,
        "runs_per_block": arm.runs_per_block, "discarded_per_block": DISCARD,
        "stop_reason": arm.stop_reason, "overtime": arm.overtime, "quota_us": arm.quota_us,
        "period_us": arm.period_us,
        "alone_protocol": alone_protocol(bench.protocol).to_dict()}
    if cell.device == "host" or "emulation" not in rec:
        return
    achieved = ratio(arm.samples, host.samples)
    old = rec["emulation"]
    cal = entry.get("calibration")
    note = old.get("note")
    if note and note.startswith("no host cell"):
        note = None
    host_p50 = round(statistics.median(host.samples), 4) if host.samples else None
    rec["emulation"] = emulation_record(
        old.get("method"), old.get("target_slowdown") or 1.0, cell.threads or 1,
        achieved=achieved, calibration=cal, note=note, vs_host=achieved,
        paired={"ratio": None if achieved is None else round(achieved, 4),
                "method": "interleaved", "unthrottled_ms": host_p50,
                "throttled_ms": round(statistics.median(arm.samples), 4),
                "host_blocks": host.blocks, "blocks": arm.blocks,
                "runs_per_block": arm.runs_per_block})
    rec["emulation"]["quota_us"] = arm.quota_us
    rec["emulation"]["steering"] = _steering(arm)


def _steering(arm: Arm) -> dict:
    """What steering did to a throttled arm: every quota and the slowdown measured under it
    (``steps``, phase ``steer`` before the counted rounds, ``track`` during them), whether the
    steering rounds reached the target, and the range of quotas the counted samples ran under."""
    counted = [s["quota_us"] for s in arm.steps if s["phase"] == "track"] + [arm.quota_us]
    return {"steps": arm.steps, "settled": arm.settled,
            "counted_quota_range_us": [min(counted), max(counted)]}


def _load(rounds: dict, alone: dict | None) -> dict:
    """A grouped cell's ``load``: the competing load during the group's rounds (where its
    ``metrics.latency`` comes from) and, under ``alone``, during its measurement alone; busy
    when either was, ``other_cores`` the larger."""
    cores = [c for c in (rounds.get("other_cores"), (alone or {}).get("other_cores"))
             if c is not None]
    return {**rounds, "other_cores": max(cores) if cores else None,
            "busy": bool(rounds.get("busy") or (alone or {}).get("busy")),
            "rounds_other_cores": rounds.get("other_cores"), "alone": alone}
