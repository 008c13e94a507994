"""Emulation accuracy: target against achieved slowdown per method, and the emulation error
against published real-device figures.

For each emulation method this host supports (CPU bandwidth control by cgroup, and the
DevTools main-thread fallback, forced with EDGE_EMULATION=devtools), it measures MobileNetV2
on the host and on emulated phones (TF.js WASM and LiteRT where the method can throttle it),
then prints, per emulated cell: the target slowdown, what the calibration workload achieved,
and what the cell itself achieved (its p50 over the host p50 of the same cell at the same
threads). Then the reference-point table: each published phone figure beside the emulated
estimate of the same model, runtime and threads, with their ratio (the emulation error).

Usage: python benchmarks/emulation.py [--methods cgroup,devtools] [--devices moto_g4,...]
Needs the garden's MobileNetV2 built (`edge build mobilenet_v2` or the main job).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MATRIX = """
[build]
models = ["mobilenet_v2"]
variants = ["tflite-fp32", "tflite-int8-full", "tfjs-fp32"]
build_dir = "{build_dir}"

[bench]
devices = {devices}
reports_dir = "{reports}"
threads = [2]

[[bench.cells]]
runtimes = ["tfjs-wasm"]
variants = ["tfjs-fp32"]

[[bench.cells]]
runtimes = ["litert"]
variants = ["tflite-fp32", "tflite-int8-full"]
devices = {devices}

[[bench.cells]]
runtimes = ["tfjs-wasm"]
variants = ["tfjs-fp32"]
devices = ["host", "pixel_4"]
threads = [1]

[[bench.cells]]
runtimes = ["litert"]
variants = ["tflite-fp32", "tflite-int8-full"]
devices = ["host", "pixel_2"]
threads = [1]
"""


def _run(method: str, devices: list[str], build_dir: Path, reports: Path, console) -> list:
    from edge.farm.scheduling.matrix import load_matrix
    from edge.results.store import ResultStore
    from edge.workflow import measure

    os.environ["EDGE_EMULATION"] = method
    path = reports / f"{method}.toml"
    path.write_text(MATRIX.format(build_dir=build_dir, reports=reports / method,
                                  devices=repr(["host", *devices]).replace("'", '"')))
    run_dir = measure(load_matrix(path), console=console)
    return ResultStore(run_dir).records()


def _table(method: str, records: list):
    from rich.table import Table

    table = Table(title=f"{method}: target vs achieved slowdown (emulated p50 / host p50, "
                        "same cell and threads)")
    for col in ("cell", "target", "calibration", "achieved", "error", "status"):
        table.add_column(col, justify="left" if col in ("cell", "status") else "right")
    errors = []
    for r in records:
        emu = r.get("emulation")
        if not emu:
            continue
        got, target = emu.get("achieved_slowdown"), emu.get("target_slowdown")
        err = None if got is None else got / target - 1
        if err is not None:
            errors.append(abs(err))
        cal = emu.get("calibration_slowdown")
        table.add_row(r["cell_id"], f"{target:.2f}", "-" if cal is None else f"{cal:.2f}",
                      "-" if got is None else f"{got:.2f}",
                      "-" if err is None else f"{err:+.0%}" + (" !" if emu["off_target"] else ""),
                      r["status"] + (" busy" if (r.get("load") or {}).get("busy") else ""))
    if errors:
        within = sum(e <= 0.15 for e in errors)
        table.caption = (f"{within} of {len(errors)} cells within 15 % of target; median |error| "
                         f"{statistics.median(errors):.0%}")
    return table


def main() -> None:
    from rich.console import Console

    from edge.reference_points import compare_with_records, format_table, load_reference_points

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="cgroup,devtools")
    parser.add_argument("--devices", default="moto_g4,pixel_5,pixel_7")
    parser.add_argument("--build-dir", default="build", type=Path)
    args = parser.parse_args()
    console = Console()
    devices = [d for d in args.devices.split(",") if d]
    tables, all_records = [], []
    with tempfile.TemporaryDirectory(prefix="edge-emulation-") as tmp:
        for method in [m for m in args.methods.split(",") if m]:
            try:
                records = _run(method, devices, args.build_dir.resolve(), Path(tmp), console)
            except Exception as exc:  # noqa: BLE001 - e.g. cgroups unavailable: say so
                console.print(f"[red]{method}: {type(exc).__name__}: {exc}[/]")
                continue
            tables.append(_table(method, records))
            all_records.extend(records)
    for table in tables:
        console.print(table)
    rows = compare_with_records(load_reference_points(), all_records)
    console.print(format_table(rows))


if __name__ == "__main__":
    main()
