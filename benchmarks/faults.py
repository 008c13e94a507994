"""Fault-injection session: every fault scenario of tests/test_faults.py on a small matrix.

Builds the tiny mobilenet_v2 in the five variants the scenarios use (cached in --build-dir), then
injects each fault for real: a renderer killed mid-cell, an endless loop in the page, the WebGL
context lost, a page out of JS heap, Chromium killed during and between cells, SIGINT and
SIGTERM to `edge bench` (then --resume), SIGINT the moment a TFLite worker is forked, TFLite
workers that segfault, hang and exit, and corrupted artifacts. Prints each scenario's records,
then: faults injected, cells that survived (recorded with a status), records lost, duplicates.

Exits 1 when a record is lost or duplicated, when a scenario could not inject its fault, or when
a scenario itself raised. About 2 minutes on 2 cores, plus about 1 minute to build the
variants the first time.

Usage: python benchmarks/faults.py [--build-dir build] [--only NAME ...] [--no-browser]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the scenarios live in tests/test_faults.py
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _figure(rec: dict) -> str:
    lat = (rec.get("metrics") or {}).get("latency") or {}
    return f"p50 {lat['p50']:.1f} ms" if lat else (rec.get("error") or "")[:90]


def main() -> int:
    from edge import workflow
    from tests.test_faults import MODEL, SCENARIOS, VARIANTS, Garden

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"scenarios to run: {', '.join(n for n, _, _ in SCENARIOS)}")
    parser.add_argument("--no-browser", action="store_true", help="skip browser scenarios")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if (not args.only or s[0] in args.only)
              and not (args.no_browser and s[1])]
    if not chosen:
        parser.error("no scenario selected")

    started = time.perf_counter()
    targets = workflow.garden_targets([MODEL], tiny=True, variants=VARIANTS)
    build = workflow.build(targets, args.build_dir, jobs=2)
    print(f"build: {build.line()} ({time.perf_counter() - started:.0f} s)", flush=True)
    if build.failures:
        return 2
    garden = Garden(args.build_dir, targets)

    rows, broken = [], []
    with tempfile.TemporaryDirectory(prefix="edge-faults-") as tmp:
        for i, (name, _, scenario) in enumerate(chosen, 1):
            t0 = time.perf_counter()
            try:
                out = scenario(garden, Path(tmp))
            except Exception:  # noqa: BLE001 - a scenario that breaks is reported, not fatal
                broken.append(name)
                print(f"[{i}/{len(chosen)}] {name}: the scenario itself failed\n"
                      + traceback.format_exc(), flush=True)
                continue
            seconds = time.perf_counter() - t0
            print(f"[{i}/{len(chosen)}] {out.fault}: {seconds:.0f} s", flush=True)
            cell_seconds = out.notes.get("seconds") or {}
            for rec in out.records:
                mark = "  <- fault" if rec["cell_id"] in out.faulted else ""
                took = cell_seconds.get(rec["cell_id"])
                took = f"{took:5.1f} s" if took is not None else "      -"
                where = "|".join(rec["cell_id"].split("|")[1:])  # the model is the same
                print(f"    {rec['status']:8} {where:32} {took}  {_figure(rec)}{mark}")
            for key in ("returncode", "interrupted", "workers_left_running", "records_before",
                        "spinning_after", "launches", "renderer_flags", "damage", "error"):
                if key in out.notes:
                    print(f"    {key}: {out.notes[key]}")
            if out.notes.get("errors"):
                print(f"    injection errors: {out.notes['errors']}")
            rows.append((name, out, seconds))

    print()
    print(f"{'scenario':22} {'injected':>8} {'cells':>5} {'survived':>8} {'lost':>4} "
          f"{'dup':>3} {'faulted cells':>22} {'seconds':>7}")
    for name, out, seconds in rows:
        statuses = ",".join(out.rec(c)["status"] for c in out.faulted
                            if c in {r['cell_id'] for r in out.records}) or "-"
        print(f"{name:22} {out.injected:8} {len(out.cells):5} {out.survived:8} "
              f"{len(out.lost):4} {out.duplicates:3} {statuses:>22} {seconds:7.0f}")
    injected = sum(out.injected for _, out, _ in rows)
    cells = sum(len(out.cells) for _, out, _ in rows)
    survived = sum(out.survived for _, out, _ in rows)
    lost = sum(len(out.lost) for _, out, _ in rows)
    duplicates = sum(out.duplicates for _, out, _ in rows)
    not_injected = [name for name, out, _ in rows if out.injected == 0]
    print()
    print(f"faults injected: {injected} (in {len(rows)} scenarios)")
    print(f"cells that survived (recorded with a status): {survived} of {cells}")
    print(f"records lost: {lost}")
    print(f"duplicates: {duplicates}")
    if not_injected:
        print(f"fault not injected in: {', '.join(not_injected)}")
    if broken:
        print(f"scenarios that failed to run: {', '.join(broken)}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 1 if lost or duplicates or not_injected or broken else 0


if __name__ == "__main__":
    sys.exit(main())
