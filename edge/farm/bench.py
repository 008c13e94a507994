"""Measure a matrix: every cell in a fresh worker (TFLite) or a fresh browser context (TF.js,
tfjs-tflite), one JSON Lines record per cell, appended and fsynced as soon as it is measured.

Interrupting a run loses nothing already written; `resume` finishes the missing cells of a run
without duplicating any. A cell that cannot run is a record (`failed`, `timeout`,
`unsupported` with the error text), never a crash of the matrix.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edge.convert.cache import Store, sha256_file
from edge.convert.reference import load_reference_outputs
from edge.convert.variants import KNOWN_ISSUES
from edge.errors import EdgeError
from edge.farm.matrix import Cell, Matrix
from edge.validate.metrics import METRICS, judge
from edge.validate.run import current_thresholds


@dataclass
class Artifact:
    key: str
    dir: Path
    manifest: dict

    @property
    def main_file(self) -> Path:
        return self.dir / self.manifest["files"][0]["path"]


def verify_artifact(artifact: Artifact) -> str | None:
    """None when every file matches its manifest sha256, else what is wrong."""
    for entry in artifact.manifest["files"]:
        path = artifact.dir / entry["path"]
        if not path.exists():
            return f"artifact corrupt: missing file {entry['path']}"
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            return f"artifact corrupt: {entry['path']} does not match its sha256"
    return None


def known_issue(variant: str, runtime: str) -> str | None:
    for issue in KNOWN_ISSUES:
        if issue.matches(variant, runtime):
            return issue.reason
    return None


def fidelity_of(outputs: list[np.ndarray], artifact: Artifact, store: Store) -> dict | None:
    """Task metrics of the outputs a runtime returned against the float32 reference's."""
    ref = artifact.manifest.get("reference")
    if not outputs or ref is None:
        return None
    _, ref_out = load_reference_outputs(store.path("references", ref["key"]))
    k = min(len(outputs), len(ref_out))
    got = np.concatenate([o.reshape((1, *ref_out.shape[1:])) for o in outputs[:k]])
    task = artifact.manifest["model"]["task"]
    figures = METRICS[task](ref_out[:k], got)
    status, reasons = judge(figures, current_thresholds(artifact.manifest),
                            artifact.manifest["quantization"])
    return {"status": status, "figures": figures, "reasons": reasons, "images": k}


def decode_outputs(items: list[dict] | None) -> list[np.ndarray]:
    """The first output of each returned image, in image order (little-endian float32)."""
    first = sorted((o for o in items or [] if o.get("output", 0) == 0),
                   key=lambda o: o.get("image", 0))
    return [np.frombuffer(base64.b64decode(o["b64"]), "<f4").reshape(o["shape"]) for o in first]


def safe_fidelity(outputs: list[np.ndarray], artifact: Artifact, store: Store) -> dict | None:
    """Fidelity, or the error that prevented it: never a reason to lose the cell's timings."""
    try:
        return fidelity_of(outputs, artifact, store)
    except Exception as exc:  # noqa: BLE001 - recorded with the cell
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


#: Outputs bigger than this per image are not sent back from the page (DeepLab ade20k at 257²
#: is 40 MB of float32 per image): fidelity then uses fewer images.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024


class Bench:
    """Runs the cells of one run directory."""

    def __init__(self, matrix: Matrix, artifacts: dict[tuple[str, str], Artifact], store: Store,
                 results, run_id: str, protocol, catalog: dict, host: dict, console):
        self.matrix, self.artifacts, self.store = matrix, artifacts, store
        self.results, self.run_id, self.protocol = results, run_id, protocol
        self.catalog, self.host, self.console = catalog, host, console
        self.data_dir = results.path.parent / "data"

    # -- records ----------------------------------------------------------------------------

    def record(self, cell: Cell, status: str, artifact: Artifact | None, metrics=None,
               error=None, started=None, extra=None) -> dict:
        from edge.results.store import make_record

        profile = self.catalog.get(cell.device)
        emulated = bool(profile and profile.emulated and not profile.is_host)
        extra = {"started": started, "finished": _now(), "emulated": emulated,
                 "device_label": profile.label if profile else cell.device, **(extra or {})}
        rec = make_record(cell=cell.as_dict(), status=status, run_id=self.run_id,
                          artifact_sha256=artifact.manifest["sha256"] if artifact else None,
                          metrics=metrics or {}, error=error, host=self.host, extra=extra)
        self.results.append(rec)
        return rec

    def _artifact_extra(self, artifact: Artifact) -> dict:
        m = artifact.manifest
        return {"format": m["format"], "quantization": m["quantization"], "bytes": m["bytes"],
                "gzip_bytes": m["gzip_bytes"], "task": m["model"]["task"]}

    def _eval_images(self, artifact: Artifact) -> np.ndarray | None:
        ref = artifact.manifest.get("reference")
        if ref is None:
            return None
        images, _ = load_reference_outputs(self.store.path("references", ref["key"]))
        return images

    # -- native TFLite --------------------------------------------------------------------------

    def run_native(self, cell: Cell, artifact: Artifact) -> dict:
        from edge.farm.protocol import summarize
        from edge.farm.tflite_runner import run_tflite_cell

        started = _now()
        m = artifact.manifest["model"]
        children = _child_pids()
        try:
            run = run_tflite_cell(
                artifact.main_file, runtime=cell.runtime, threads=cell.threads or 1,
                protocol=self.protocol.to_dict(), images=self._eval_images(artifact),
                mean=tuple(m["mean"]), std=tuple(m["std"]),
                return_outputs=self._return_outputs(artifact), timeout_s=self.protocol.timeout_s)
        except BaseException:
            # A SIGINT/SIGTERM that lands while the worker is being started interrupts Popen
            # after the fork: the runner has no handle to kill it, and the worker (a session of
            # its own) would measure on, orphaned. Kill whatever this call started.
            _kill_children_except(children)
            raise
        extra = self._artifact_extra(artifact)
        if run.status != "ok":
            status = run.status
            if status == "failed" and known_issue(cell.variant, cell.runtime):
                status = "unsupported"
            return self.record(cell, status, artifact, metrics=run.metrics, error=run.error,
                               started=started, extra=extra)
        metrics = dict(run.metrics)
        metrics["latency"] = summarize(metrics.pop("samples_ms"))
        metrics["fidelity"] = safe_fidelity(run.outputs, artifact, self.store)
        return self.record(cell, "ok", artifact, metrics=metrics, started=started, extra=extra)

    # -- browser ----------------------------------------------------------------------------

    def harness_config(self, cell: Cell, artifact: Artifact, profile) -> dict:
        m = artifact.manifest
        url_dir = f"/artifacts/artifacts/{artifact.dir.name}"
        io = (m.get("io") or {}).get("inputs", [{}])[0] if m["format"] == "tflite" else {}
        out_io = (m.get("io") or {}).get("outputs", [{}])[0] if m["format"] == "tflite" else {}
        config = {
            "runtime": cell.runtime,
            "modelUrl": f"{url_dir}/{m['files'][0]['path']}",
            "input": {"shape": m["model"]["input_shape"], "dtype": io.get("dtype", "float32"),
                      "mean": m["model"]["mean"], "std": m["model"]["std"],
                      "scale": io.get("scale"), "zeroPoint": io.get("zero_point")},
            "output": {"scale": out_io.get("scale"), "zeroPoint": out_io.get("zero_point")}
            if out_io.get("dtype") in ("int8", "uint8") else None,
            "returnOutputs": self._return_outputs(artifact),
            "loadTimeoutMs": self.protocol.timeout_s * 1000,
            "protocol": {"warmup": self.protocol.warmup, "minRuns": self.protocol.min_runs,
                         "minSeconds": self.protocol.min_seconds,
                         "maxRuns": self.protocol.max_runs,
                         "maxSeconds": self.protocol.max_seconds},
            # TF.js uses hardwareConcurrency/2 threads; never more than this host has cores,
            # or oversubscribed threads would measure the host's scheduler, not the phone.
            "wasmThreads": max(1, min(int(profile.cores) // 2, os.cpu_count() or 1))
            if profile else None,
        }
        images = self._eval_images(artifact)
        if images is not None:
            ref_key = m["reference"]["key"]
            path = self.data_dir / f"{ref_key[:20]}.bin"
            if not path.exists():
                self.data_dir.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(np.ascontiguousarray(images, np.uint8).tobytes())
                tmp.replace(path)
            config["imagesUrl"] = f"/data/{path.name}"
        if m["model"]["task"] == "text_detection" and m.get("reference"):
            out_shape = self.store.read("references", m["reference"]["key"])["output_shape"]
            config["pse"] = {"kernels": int(out_shape[-1]), "threshold": 0.5, "minArea": 10}
        return config

    def _return_outputs(self, artifact: Artifact) -> int:
        ref = artifact.manifest.get("reference")
        if ref is None:
            return 0
        shape = self.store.read("references", ref["key"])["output_shape"]
        per_image = 4 * int(np.prod(shape))
        return min(self.matrix.fidelity_images, max(0, MAX_OUTPUT_BYTES // per_image))

    def run_browser(self, cell: Cell, artifact: Artifact, session, server_url: str,
                    calibration) -> dict:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        from edge.farm.browser import (
            HarnessError,
            HarnessTimeout,
            cdp_metrics,
            open_page,
            renderer_memory,
            run_harness,
        )
        from edge.farm.protocol import summarize

        profile = self.catalog[cell.device]
        started = _now()
        extra = {**self._artifact_extra(artifact),
                 "calibration": _calibration_dict(calibration),
                 "download_s_estimated": round(
                     profile.network.download_seconds(artifact.manifest["gzip_bytes"]), 3),
                 "network": profile.network.name}
        context = None
        try:
            context, page, cdp = open_page(session, server_url, profile,
                                           calibration.factor if calibration else 1.0,
                                           timeout_s=self.protocol.timeout_s)
            result = run_harness(page, self.harness_config(cell, artifact, profile),
                                 self.protocol.timeout_s)
            memory = {**(result.get("memory") or {}), **cdp_metrics(cdp), **renderer_memory()}
        except (PlaywrightTimeout, HarnessTimeout):
            return self.record(cell, "timeout", artifact, started=started, extra=extra,
                               error=f"no result within {self.protocol.timeout_s:.0f} s")
        except (PlaywrightError, HarnessError) as exc:
            return self.record(cell, "failed", artifact, started=started, extra=extra,
                               error=f"browser: {str(exc).strip().splitlines()[0]}")
        finally:
            if context is not None:
                try:
                    context.close()
                except Exception:  # noqa: BLE001 - the page or browser may be gone
                    pass
        metrics = {"load_ms": result.get("loadMs"),
                   "first_inference_ms": result.get("firstInferenceMs"),
                   "warmup_ms": result.get("warmupMs"), "memory": memory,
                   "backend": {"name": result.get("backend"), **(result.get("facts") or {})},
                   "tfjs_version": result.get("tfjsVersion"), "pse": result.get("pse")}
        if result.get("error"):
            status = "unsupported" if result.get("unsupported") or known_issue(
                cell.variant, cell.runtime) else "failed"
            return self.record(cell, status, artifact, metrics=metrics, error=result["error"],
                               started=started, extra=extra)
        samples = result.get("samplesMs") or []
        if not samples:
            return self.record(cell, "failed", artifact, metrics=metrics, started=started,
                               extra=extra, error="harness returned no timed runs")
        metrics["latency"] = summarize(samples)
        metrics["fidelity"] = safe_fidelity(decode_outputs(result.get("outputs")), artifact,
                                            self.store)
        return self.record(cell, "ok", artifact, metrics=metrics, started=started, extra=extra)


def _child_pids() -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process().children()}
    except psutil.Error:
        return set()


def _kill_children_except(keep: set[int]) -> None:
    import psutil

    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for proc in children:
        if proc.pid in keep:
            continue
        try:
            proc.kill()
            proc.wait(timeout=5)
        except (psutil.Error, psutil.TimeoutExpired):
            pass


def _calibration_dict(cal) -> dict | None:
    if cal is None:
        return None
    return {"host_index": cal.host_index, "target_index": cal.target_index,
            "factor": cal.factor, "clamped": cal.clamped, "warning": cal.warning}


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def run_matrix(matrix: Matrix, cells: list[Cell], artifacts: dict, store: Store, results,
               run_id: str, protocol, catalog: dict, console) -> dict:
    """Measure every cell not yet in `results`; returns counts by status."""
    from edge.results.store import cell_id, host_metadata

    host = host_metadata()
    bench = Bench(matrix, artifacts, store, results, run_id, protocol, catalog, host, console)
    done = results.done_cells()
    pending = [c for c in cells if cell_id(**c.as_dict()) not in done]
    if not pending:
        console.print(f"run {run_id}: all {len(cells)} cells already measured")
        return {}
    counts: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("measuring", total=len(pending))

        def finish(rec: dict) -> None:
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
            progress.advance(task)
            lat = (rec.get("metrics") or {}).get("latency") or {}
            figure = f"p50 {lat['p50']:.1f} ms" if lat else (rec.get("error") or "")[:80]
            progress.console.print(escape(
                f"  {rec['status']:11} {rec['cell_id']}  {figure}"))

        def checked(cell: Cell) -> Artifact | None:
            artifact = artifacts[(cell.model, cell.variant)]
            problem = verify_artifact(artifact)
            if problem:
                finish(bench.record(cell, "failed", artifact, error=problem, started=_now()))
                return None
            return artifact

        for cell in [c for c in pending if c.native]:
            artifact = checked(cell)
            if artifact is not None:
                finish(bench.run_native(cell, artifact))
        browser_cells = [c for c in pending if not c.native]
        if browser_cells:
            _run_browser_cells(bench, browser_cells, checked, finish, catalog, store)
    return counts


def _run_browser_cells(bench: Bench, cells, checked, finish, catalog, store) -> None:
    from edge.farm.browser import (
        WEB_DIR,
        BrowserSession,
        ensure_web_runtime,
        host_benchmark_index,
        resolve_browser,
    )
    from edge.farm.server import LoopbackServer

    ensure_web_runtime()
    bench.data_dir.mkdir(parents=True, exist_ok=True)
    roots = {"harness": WEB_DIR, "node_modules": WEB_DIR / "node_modules",
             "artifacts": Path(store.root), "data": bench.data_dir}
    info = resolve_browser()
    with LoopbackServer(roots) as server, BrowserSession(info) as session:
        host_index = host_benchmark_index(session, server.url)
        calibrations = {name: p.slowdown(host_index) for name, p in catalog.items()}
        for name, cal in calibrations.items():
            if cal.warning and any(c.device == name for c in cells):
                bench.console.print(f"[yellow]warning:[/] {escape(cal.warning)}")
        for cell in cells:
            artifact = checked(cell)
            if artifact is None:
                continue
            finish(bench.run_browser(cell, artifact, session, server.url,
                                     calibrations.get(cell.device)))
            time.sleep(0.05)


def summary_table(records: list[dict]) -> Table:
    table = Table(title="measurements (emulated phones are estimates)")
    for col in ("model", "variant", "runtime", "device", "status", "load ms", "first ms",
                "p50 ms", "p90 ms", "fidelity"):
        table.add_column(col, no_wrap=True, justify="right" if "ms" in col else "left")
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
        table.add_row(escape(r["model"]), r["variant"], r["runtime"], escape(device),
                      r["status"], fmt(load), fmt(first), fmt(lat.get("p50")) + wide,
                      fmt(lat.get("p90")), fid)
    return table


def artifacts_for(targets, store: Store, needed=None) -> dict[tuple[str, str], Artifact]:
    """The built artifacts of the targets (only the `needed` (slug, variant) pairs if given)."""
    from edge.convert import pipeline

    plan = pipeline.plan(targets, store)
    jobs = [j for j in plan.artifacts
            if needed is None or (j.target.slug, j.variant) in needed]
    missing = [j.label for j in jobs if not j.cached]
    if missing:
        raise EdgeError(f"not built yet (run `edge build` first): {', '.join(missing)}")
    return {(j.target.slug, j.variant): Artifact(j.key, store.path("artifacts", j.key),
                                                  store.read("artifacts", j.key))
            for j in jobs}
