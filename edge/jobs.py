"""Long-running jobs that nox sessions call: the device matrix (build → validate → measure)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.markup import escape

from edge.errors import EdgeError
from edge.farm.matrix import MATRIX_FILE, PRESETS, Matrix, load_matrix


def _protocol(matrix: Matrix, preset: str):
    from edge.farm.protocol import PRESETS as PROTOCOLS
    from edge.farm.protocol import Protocol

    spec = "smoke" if preset == "smoke" else matrix.protocol
    if isinstance(spec, dict):
        protocol = Protocol.from_dict(spec, source=f"{matrix.path}: [bench] protocol")
    elif spec in PROTOCOLS:
        protocol = PROTOCOLS[spec]
    else:
        raise EdgeError(f"{matrix.path}: [bench] protocol: unknown preset {spec!r}; "
                        f"allowed: {', '.join(PROTOCOLS)} or a table")
    protocol.validate()
    return protocol


def measure(matrix: Matrix, *, preset: str = "default", tiny: bool = False,
            run_id: str | None = None, resume: str | None = None, console=None) -> Path:
    """Measure the matrix's cells into reports/<run-id>/results.jsonl; returns the run dir."""
    from edge import workflow
    from edge.convert.cache import Store
    from edge.convert.pipeline import artifacts_for
    from edge.farm.bench import run_matrix, summary_table
    from edge.farm.devices import load_catalog
    from edge.farm.emulation import choose_emulation
    from edge.farm.protocol import Protocol
    from edge.results.checks import checks_json, format_checks, self_checks
    from edge.results.store import ResultStore, host_metadata, new_run_id

    console = console or workflow.make_console()
    catalog = load_catalog()
    run_id = resume or run_id or new_run_id()
    run_dir = matrix.reports_dir / run_id
    meta = None
    if resume:
        if not (run_dir / "results.jsonl").exists() and not (run_dir / "run.json").exists():
            raise EdgeError(f"--resume {resume}: no such run under {matrix.reports_dir}")
        meta = ResultStore(run_dir).read_meta()
    if meta:  # a resumed run keeps the settings it started with
        preset, tiny = meta.get("preset", preset), meta.get("tiny", tiny)
        protocol = Protocol.from_dict(meta["protocol"], source=f"{run_dir}/run.json")
    else:
        protocol = _protocol(matrix, preset)
    targets = workflow.garden_targets(matrix.models, tiny=tiny, variants=matrix.variants)
    cells = matrix.cells(preset, [t.slug for t in targets])
    needed = {(c.model, c.variant) for c in cells}
    store = Store(matrix.build_dir)
    artifacts = artifacts_for(targets, store, needed)
    results = ResultStore(run_dir)
    if meta is None:
        method = choose_emulation()
        method.close()
        results.write_meta({"run_id": run_id, "matrix": str(matrix.path), "preset": preset,
                            "tiny": tiny, "cells": len(cells), "protocol": protocol.to_dict(),
                            "host": host_metadata(),
                            "emulation": {"method": method.method, "reason": method.reason}})
    console.print(f"run {run_id}: {len(cells)} cells, {len(results.done_cells())} already "
                  f"measured -> {run_dir}")
    emulation = choose_emulation()
    try:
        run_matrix(matrix, cells, artifacts, store, results, run_id, protocol, catalog,
                   console, emulation=emulation)
    finally:
        emulation.close()
    records = results.records()
    console.print(summary_table(records))
    checks = self_checks(records)
    console.print(format_checks(checks))
    (run_dir / "checks.json").write_text(json.dumps(checks_json(checks), indent=1) + "\n")
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    console.print(f"records: {len(records)} of {len(cells)} cells; " + ", ".join(
        f"{k} {v}" for k, v in sorted(counts.items())))
    return run_dir


def device_matrix(argv: list[str] | None = None) -> None:
    """Build and validate every model × variant of the matrix, measure the cells, print tables."""
    from edge import workflow

    parser = argparse.ArgumentParser(prog="nox -s device_matrix --")
    parser.add_argument("--matrix", type=Path, default=MATRIX_FILE)
    parser.add_argument("--preset", choices=PRESETS, default="default")
    parser.add_argument("--resume", metavar="RUN_ID", help="finish the missing cells of a run")
    parser.add_argument("--tiny", action="store_true", help="tiny model configurations")
    parser.add_argument("-j", "--jobs", type=int)
    parser.add_argument("--no-measure", action="store_true", help="build and validate only")
    args = parser.parse_args(argv or [])
    console = workflow.make_console()
    started = time.perf_counter()
    try:
        from edge.farm.devices import load_catalog

        matrix = load_matrix(args.matrix, device_names=list(load_catalog()))
        targets = workflow.garden_targets(matrix.models, tiny=args.tiny,
                                          variants=matrix.variants)
        if args.preset == "smoke":  # build only what the smoke cells measure
            cells = matrix.cells("smoke", [t.slug for t in targets])
            matrix.models = matrix.models[:1]
            matrix.variants = sorted({c.variant for c in cells})
            targets = workflow.garden_targets(matrix.models, tiny=args.tiny,
                                              variants=matrix.variants)
    except EdgeError as exc:
        console.print("[red]error:[/] " + escape(str(exc)))
        raise SystemExit(2) from None
    summary = workflow.build(targets, matrix.build_dir, jobs=args.jobs or matrix.jobs)
    keys = workflow.artifact_keys(summary)
    t_build = time.perf_counter() - started
    results = workflow.validate(keys, matrix.build_dir)
    console.print(workflow.variants_table(keys, matrix.build_dir))
    for o in summary.failures:
        console.print(f"[red]{o.status}[/] " + escape(f"{o.job.label}: {o.error}"))
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "warn", "fail", "n/a")}
    console.print(summary.line())
    console.print(f"host fidelity: {counts['pass']} pass, {counts['warn']} warn, "
                  f"{counts['fail']} fail, {counts['n/a']} n/a (TF.js: measured in the browser)")
    t_validate = time.perf_counter() - started - t_build
    if summary.failures:
        raise SystemExit(1)
    if args.no_measure:
        return
    try:
        run_dir = measure(matrix, preset=args.preset, tiny=args.tiny, resume=args.resume,
                          console=console)
    except EdgeError as exc:
        console.print("[red]error:[/] " + escape(str(exc)))
        raise SystemExit(2) from None
    from edge.report.html import write_report

    index = write_report(run_dir.parent, run_dir.name)
    total = time.perf_counter() - started
    console.print(f"report: {index}")
    console.print(f"device matrix ({args.preset}): build {t_build:.0f} s, validate "
                  f"{t_validate:.0f} s, measure {total - t_build - t_validate:.0f} s, "
                  f"total {total:.0f} s; results in {run_dir / 'results.jsonl'}")
