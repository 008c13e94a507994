"""The run over a matrix: which cells run in what order (host cells first, then each device's
native and browser cells), the thread count of each browser cell, the run's noise probe and
the calibration per device, one record per cell through the runner of its runtime
(`edge.farm.runners.table.RUNNERS`). Cells on this machine's CPU run one after another; each
real device's cells run in a lane of their own, concurrently (`edge.farm.scheduling.lanes`).

Interrupting a run loses nothing already written; `resume` finishes the missing cells of a run
without duplicating any. A cell that cannot run is a record, never a crash of the matrix.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edge.convert.cache import Store
from edge.farm.cells import Artifact, Bench, now, verify_artifact, workload_name
from edge.farm.protocol.noise import NOISE_REPEATS, noise_spread
from edge.farm.protocol.protocol import Protocol
from edge.farm.runners.base import Where
from edge.farm.runners.table import noise_runners, runner_for
from edge.farm.scheduling.interleaved import comparison_groups, measure_group
from edge.farm.scheduling.lanes import RemoteLanes, Schedule, split_lanes
from edge.farm.scheduling.matrix import Cell, Matrix


def measure_noise(bench: Bench, cells: list[Cell], where: Where) -> None:
    """The run's noise (`edge.farm.protocol.noise`), once per kind of runner: its first cell of
    the runner's noise runtime names the workload's format and threads."""
    repeats = bench.noise_repeats
    if repeats < 2:
        return
    for runner in noise_runners():
        cell = next((c for c in cells if c.runtime == runner.noise_runtime), None)
        if cell is None:
            continue
        probe = runner.noise_medians(bench, cell, cells, where, repeats)
        if probe is not None:
            medians, art = probe
            bench.noise[runner.kind] = noise_spread(medians, workload_name(art),
                                                    runner.noise_between)
    for kind, noise in bench.noise.items():
        cv = noise["between_cv"]
        bench.console.print(f"noise ({kind}): the same cell in {noise['repeats']} fresh "
                            f"{noise['between']}: medians "
                            f"{', '.join(f'{m:.1f}' for m in noise['medians_ms'])} ms"
                            + ("" if cv is None else f" (±{cv:.0%} relative SD)"))


def measure_cell(bench: Bench, cell: Cell, artifact: Artifact, where: Where) -> dict:
    """One cell, by the runner of its runtime, under its rule's protocol where it has one."""
    with bench.protocol_for(cell):
        return runner_for(cell.runtime).run(bench, cell, artifact, where)



def run_matrix(matrix: Matrix, cells: list[Cell], artifacts: dict, store: Store, results,
               run_id: str, protocol, catalog: dict, console, emulation=None,
               noise_repeats: int = NOISE_REPEATS, shard: str | None = None,
               alone: frozenset = frozenset(), protocols: dict | None = None) -> dict:
    """Measure every cell not yet in `results`; returns counts by status. `shard` ("i/n") is
    recorded in each record's provenance (the cells are the shard's already). The `alone` cells
    (`Matrix.alone_cells`) are measured alone, never in a comparison group; `protocols`
    (`Matrix.cell_protocols`) lays a rule's protocol fields over the run's for its cells.

    Host cells run first (the emulated cells' achieved slowdown is their p50 against the host's
    same cell), then each device's native and browser cells; a real device's cells run in its
    own lane, concurrently (`edge.farm.scheduling.lanes`). Each cell records the competing load
    measured during it and how it was scheduled."""
    from edge.farm.emulation.methods import choose_emulation
    from edge.results.store import cell_id, host_metadata

    host = host_metadata()
    own_emulation = emulation is None
    emulation = emulation or choose_emulation()
    bench = Bench(matrix, artifacts, store, results, run_id, protocol, catalog, host, console,
                  emulation=emulation, noise_repeats=noise_repeats, shard=shard)
    bench.schedule = Schedule(catalog)
    cells = resolve_threads(cells, catalog, emulation)
    bench.alone = frozenset(resolve_threads(list(alone), catalog, emulation))
    for cell, fields in (protocols or {}).items():
        for resolved in resolve_threads([cell], catalog, emulation):
            bench.protocols[resolved] = Protocol.from_dict(
                {**protocol.to_dict(), **fields}, source=f"{cell} protocol")
    done = results.done_cells()
    pending = [c for c in cells if cell_id(**c.as_dict()) not in done]
    if not pending:
        console.print(f"run {run_id}: all {len(cells)} cells already measured")
        return {}
    console.print(f"emulation: {emulation.method}"
                  + (f" ({escape(emulation.reason)})" if emulation.reason else ""))
    for c in pending:
        if c.threads and c.threads > bench.host_cores:
            console.print(f"[yellow]warning:[/] {escape(cell_id(**c.as_dict()))}: {c.threads} "
                          f"threads on a {bench.host_cores}-core host (oversubscribed: "
                          "recorded as such)")
    order = {id(c): i for i, c in enumerate(pending)}
    pending.sort(key=lambda c: (c.device != "host", c.device, not c.native, order[id(c)]))
    counts: dict[str, int] = {}
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("measuring", total=len(pending))
            lock = threading.Lock()  # lanes finish cells from their own threads

            def finish(rec: dict) -> None:
                with lock:
                    counts[rec["status"]] = counts.get(rec["status"], 0) + 1
                progress.advance(task)
                lat = (rec.get("metrics") or {}).get("latency") or {}
                figure = f"p50 {lat['p50']:.1f} ms" if lat else (rec.get("error") or "")[:80]
                emu = rec.get("emulation") or {}
                if emu.get("achieved_slowdown"):
                    figure += (f"  x{emu['achieved_slowdown']:.2f} "
                               f"(target {emu['target_slowdown']:.2f})")
                load = rec.get("load") or {}
                if load.get("busy"):
                    why = [f"{load['other_cores']:.2f} cores"] \
                        if load.get("other_cores") is not None else []
                    if load.get("concurrent_cells"):
                        why.append(f"{load['concurrent_cells']} concurrent cell(s)")
                    figure += f"  BUSY host ({', '.join(why) or 'load unknown'})"
                progress.console.print(escape(
                    f"  {rec['status']:11} {rec['cell_id']}  {figure}"))

            def checked(cell: Cell) -> Artifact | None:
                artifact = artifacts[(cell.model, cell.variant)]
                problem = verify_artifact(artifact)
                if problem:
                    finish(bench.record(cell, "failed", artifact, error=problem,
                                        started=now()))
                    return None
                return artifact

            _run_cells(bench, pending, checked, finish, catalog, store)
    finally:
        if own_emulation:
            emulation.close()
    return counts


def resolve_threads(cells: list[Cell], catalog: dict, emulation) -> list[Cell]:
    """Browser cells get their WASM thread count: min(phone cores, host cores), the host's
    cores on the host (so host and phone cells compare at the same threads), 1 under the
    DevTools fallback. GPU cells have none."""
    import dataclasses

    host_cores = os.cpu_count() or 1
    out = []
    for c in cells:
        if not c.native and c.threads is None and not runner_for(c.runtime).gpu:
            profile = catalog.get(c.device)
            cores = host_cores if profile is None or profile.is_host else profile.cores
            if profile is not None and profile.endpoint:  # a real device: its own default
                out.append(c)
                continue
            c = dataclasses.replace(c, threads=emulation.browser_threads(cores, host_cores))
        out.append(c)
    return list(dict.fromkeys(out))  # a rule's explicit threads may equal the resolved ones


def _run_cells(bench: Bench, cells, checked, finish, catalog, store) -> None:
    from edge.farm.runners.browser import BrowserSession, host_benchmark_index, resolve_browser
    from edge.farm.runners.server import LoopbackServer
    from edge.farm.runners.web_runtime import harness_dir, node_modules, require_web_runtime

    browser_cells = [c for c in cells if not c.native]
    emulated = [c for c in cells if c.device != "host" and catalog.get(c.device) is not None
                and catalog[c.device].emulated]
    local, remote = split_lanes(cells, catalog)
    if not browser_cells and not emulated:
        where = Where()
        _host_index_only(bench, store)
        measure_noise(bench, cells, where)
        with RemoteLanes(bench, remote, checked, finish, measure_cell, None):
            _measure_all(bench, local, where, checked, finish, catalog)
        return
    require_web_runtime()
    bench.data_dir.mkdir(parents=True, exist_ok=True)
    roots = {"harness": harness_dir(), "node_modules": node_modules(),
             "artifacts": Path(store.root), "data": bench.data_dir}
    info = resolve_browser()
    root_group = bench.emulation.controller
    with LoopbackServer(roots) as server, BrowserSession(info, root=root_group) as session:
        session.place(None)
        bench.host_index, bench.host_index_pages = host_benchmark_index(session, server.url)
        bench.console.print(f"host benchmark index: {bench.host_index:g} (median of "
                            f"{len(bench.host_index_pages)} pages: "
                            f"{', '.join(f'{v:g}' for v in bench.host_index_pages)})")
        where = Where(session, server.url)
        measure_noise(bench, cells, where)
        for name, p in catalog.items():
            cal = p.slowdown(bench.host_index)
            bench.targets[name] = cal.factor
            if cal.warning and any(c.device == name for c in cells):
                bench.console.print(f"[yellow]warning:[/] {escape(cal.warning)}")
        # the real devices' lanes start once the host's index and noise are taken
        with RemoteLanes(bench, remote, checked, finish, measure_cell, server.url, info):
            _measure_all(bench, local, where, checked, finish, catalog)


def _host_index_only(bench: Bench, store) -> None:
    """A run without browser cells still measures the host's benchmark index in a page (the
    phone estimates' index evidence needs it), when a browser and the web runtime are there;
    otherwise it says why and the run goes on without it."""
    from edge.farm.runners.browser import BrowserSession, host_benchmark_index, resolve_browser
    from edge.farm.runners.server import LoopbackServer
    from edge.farm.runners.web_runtime import harness_dir, node_modules, require_web_runtime

    try:
        require_web_runtime()
        bench.data_dir.mkdir(parents=True, exist_ok=True)
        roots = {"harness": harness_dir(), "node_modules": node_modules(),
                 "artifacts": Path(store.root), "data": bench.data_dir}
        with LoopbackServer(roots) as server, BrowserSession(resolve_browser()) as session:
            # one page: the index here is evidence for the phones, no throttle is set by it
            bench.host_index, bench.host_index_pages = host_benchmark_index(
                session, server.url, repeats=3, pages=1)
    except Exception as exc:  # noqa: BLE001 - the index is evidence, not a measurement
        bench.console.print(f"[yellow]note:[/] no host benchmark index ({escape(str(exc))}): "
                            "phones without published figures get no estimate")
        return
    bench.console.print(f"host benchmark index: {bench.host_index:g} (median of "
                        f"{len(bench.host_index_pages)} pages)")


def _measure_all(bench: Bench, cells: list[Cell], where: Where, checked, finish,
                 catalog: dict) -> None:
    """Every cell, in order; a comparison group (`edge.farm.scheduling.interleaved`) where its
    first cell comes."""
    groups = comparison_groups(cells, catalog, bench.emulation, alone=bench.alone)
    group_of = {c: i for i, g in enumerate(groups) for c in g}
    done: set[int] = set()
    for cell in cells:
        index = group_of.get(cell)
        if index is not None:
            if index not in done:
                done.add(index)
                with _in_flight(bench):
                    measure_group(bench, groups[index], where, checked, finish, measure_cell)
            continue
        artifact = checked(cell)
        if artifact is None:
            continue
        with _in_flight(bench):
            rec = measure_cell(bench, cell, artifact, where)
        finish(rec)
        time.sleep(0.05)


@contextlib.contextmanager
def _in_flight(bench: Bench):
    """A cell or comparison group of the local lane in flight (`Schedule`)."""
    if bench.schedule is None:
        yield
        return
    bench.schedule.begin()
    try:
        yield
    finally:
        bench.schedule.end()


def summary_table(records: list[dict]) -> Table:
    """One row per record: p50 with its 95 % interval, p90 where enough runs support it, the
    emulation's achieved against target slowdown (`!` off target), `busy` when other processes
    competed for the CPU, `~` when the spread is wide."""
    table = Table(title="measurements (emulated phones are estimates)")
    for col in ("model", "variant", "runtime", "device", "status", "load ms", "first ms",
                "p50 ms", "95% CI", "p90 ms", "slowdown", "fidelity"):
        table.add_column(col, no_wrap=True,
                         justify="right" if "ms" in col or col == "slowdown" else "left")
    for r in records:
        m = r.get("metrics") or {}
        lat = m.get("latency") or {}
        fid = (m.get("fidelity") or {}).get("status", "-")
        device = r["device"] + (f" t{r['threads']}" if r.get("threads") else "") + (
            " (emulated)" if r.get("emulated") and r["device"] != "host" else "")

        def fmt(v):
            return "-" if v is None else f"{v:.1f}"

        load = m.get("load_ms")
        first = m.get("first_inference_ms", m.get("first_invoke_ms"))
        wide = " ~" if lat.get("wide") else ""
        ci = lat.get("ci95")
        ci_text = f"{ci[0]:.1f}-{ci[1]:.1f}" if ci else "-"
        emu = r.get("emulation") or {}
        slow = "-"
        if emu:
            got = emu.get("achieved_slowdown")
            slow = (f"{got:.2f}" if got is not None else "?") + \
                f"/{emu.get('target_slowdown', 0):.2f}" + ("!" if emu.get("off_target") else "")
        status = r["status"] + (" busy" if (r.get("load") or {}).get("busy") else "")
        table.add_row(escape(r["model"]), r["variant"], r["runtime"], escape(device),
                      status, fmt(load), fmt(first), fmt(lat.get("p50")) + wide, ci_text,
                      fmt(lat.get("p90")), slow, fid)
    return table
