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
from edge.farm.matrix import GPU_RUNTIMES, Cell, Matrix
from edge.validate.metrics import METRICS, judge
from edge.validate.run import current_thresholds
from edge.variants import GPU_NOT_EMULATED, NATIVE_NEEDS_CGROUP, explain_failure


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


def failure_status(cell: Cell, error: str | None) -> tuple[str, dict | None]:
    """("unsupported", the known issue) when the error matches the signature of a known issue
    of the cell's variant and runtime; else ("failed", None): a new failure is never hidden
    behind an old note."""
    issue = explain_failure(cell.variant, cell.runtime, error)
    if issue is None:
        return "failed", None
    return "unsupported", {"variant": issue.variant, "runtime": issue.runtime,
                           "reason": issue.reason, "signature": issue.signature}


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


#: Milliseconds of work per timed block of a calibration or paired measurement.
PROBE_MS = 200
#: Fresh pages (and worker processes) in which a run measures its own noise.
NOISE_REPEATS = 4
#: Alternating (unthrottled, throttled) block pairs of an emulated cell's paired slowdown.
PAIRS = 3

#: Outputs bigger than this per image are not sent back from the page (DeepLab ade20k at 257²
#: is 40 MB of float32 per image): fidelity then uses fewer images.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024


class Bench:
    """Runs the cells of one run directory."""

    def __init__(self, matrix: Matrix, artifacts: dict[tuple[str, str], Artifact], store: Store,
                 results, run_id: str, protocol, catalog: dict, host: dict, console,
                 emulation=None, noise_repeats: int = 0):
        from edge.farm.emulation import Emulation

        self.matrix, self.artifacts, self.store = matrix, artifacts, store
        self.results, self.run_id, self.protocol = results, run_id, protocol
        self.catalog, self.host, self.console = catalog, host, console
        self.emulation = emulation or Emulation("none", None, "not chosen")
        self.data_dir = results.path.parent / "data"
        self.host_cores = os.cpu_count() or 1
        self.targets: dict[str, float] = {}  # device -> target slowdown (benchmark index)
        self.calibrations: dict[tuple, object] = {}  # (device, runtime, threads) -> Calibration
        self.groups: dict[str, object] = {}  # device/kind -> CpuGroup
        self.host_index: float | None = None
        self.paired: dict[Cell, dict | str] = {}  # cell -> its paired slowdown measurement
        self.noise: dict[str, dict] = {}  # "browser" | "native" -> the run's between-run spread
        self.noise_repeats = noise_repeats  # fresh pages/workers of the noise probe (< 2: none)

    # -- records ----------------------------------------------------------------------------

    def record(self, cell: Cell, status: str, artifact: Artifact | None, metrics=None,
               error=None, started=None, extra=None) -> dict:
        from edge.results.store import make_record

        profile = self.catalog.get(cell.device)
        emulated = bool(profile and profile.emulated and not profile.is_host)
        extra = {"started": started, "finished": _now(), "emulated": emulated,
                 "device_label": profile.label if profile else cell.device, **(extra or {})}
        if status in ("failed", "unsupported"):
            # `unsupported` only where a known issue's error signature matches: one place.
            status, issue = failure_status(cell, error)
            if issue:
                extra["known_issue"] = issue
        if emulated and "emulation" not in extra:
            extra["emulation"] = self.emulation_field(cell, metrics, status)
            if self.host_index is not None:
                cal = profile.slowdown(self.host_index)
                extra["calibration"] = {"host_index": cal.host_index,
                                        "target_index": cal.target_index, "factor": cal.factor,
                                        "clamped": cal.clamped, "warning": cal.warning}
        kind = "native" if cell.native else "browser"
        if kind in self.noise and "noise" not in extra:
            extra["noise"] = self.noise[kind]
        if cell.threads and cell.threads > self.host_cores:
            extra["oversubscribed"] = (f"{cell.threads} threads on a host with "
                                       f"{self.host_cores} cores: the figure measures the "
                                       f"host's scheduler as much as the model")
        rec = make_record(cell=cell.as_dict(), status=status, run_id=self.run_id,
                          artifact_sha256=artifact.manifest["sha256"] if artifact else None,
                          metrics=metrics or {}, error=error, host=self.host, extra=extra)
        self.results.append(rec)
        return rec

    def emulation_field(self, cell: Cell, metrics, status: str) -> dict:
        """The record's ``emulation``: method, target, what the calibration workload achieved,
        what the cell achieved in paired blocks, and its ratio to the host cell."""
        from edge.farm.emulation import emulation_record

        threads = cell.threads or 1
        target = self.targets.get(cell.device, 1.0)
        vs_host = None
        lat = (metrics or {}).get("latency") or {}
        if status == "ok" and lat.get("p50"):
            host_p50 = self.host_p50(cell)
            if host_p50:
                vs_host = lat["p50"] / host_p50
        paired = self.paired.pop(cell, None)
        cal = self.calibrations.get((cell.device, cell.runtime, threads))
        notes = []
        if vs_host is None and status == "ok":
            notes.append("no host cell of the same model, variant, runtime and threads")
        if isinstance(paired, str):
            notes.append(f"paired measurement failed: {paired}")
            paired = None
        if self.emulation.reason and not self.emulation.all_threads:
            notes.append(f"fallback: {self.emulation.reason}")
        return emulation_record(self.emulation.method, target, threads,
                                achieved=paired["ratio"] if paired else None,
                                calibration=cal, note="; ".join(notes) or None,
                                vs_host=vs_host, paired=paired)

    def measure_paired(self, cell: Cell, set_throttle, time_runs, probe_n) -> None:
        """The cell's own slowdown, throttled against unthrottled blocks of its model in the
        same page or worker (`paired_slowdown`); kept for its record."""
        from edge.farm.emulation import paired_slowdown

        try:
            ratio, free, slow = paired_slowdown(set_throttle, lambda: time_runs(probe_n),
                                                PAIRS)
            self.paired[cell] = {"ratio": round(ratio, 4), "unthrottled_ms": round(free, 3),
                                 "throttled_ms": round(slow, 3), "pairs": PAIRS,
                                 "runs_per_block": probe_n}
        except Exception as exc:  # noqa: BLE001 - recorded as a note, the timings stand
            self.paired[cell] = f"{type(exc).__name__}: {exc}"

    def host_p50(self, cell: Cell) -> float | None:
        """p50 of the host's ok record of the same model, variant, runtime and threads."""
        from edge.results.store import cell_id

        want = cell_id(cell.model, cell.variant, cell.runtime, "host", cell.threads)
        for rec in self.results.records():
            if rec.get("cell_id") == want and rec.get("status") == "ok":
                return ((rec.get("metrics") or {}).get("latency") or {}).get("p50")
        return None

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

    # -- emulation ----------------------------------------------------------------------------

    def group(self, device: str, kind: str):
        """The device's cgroup for `kind` ("browser" or "native"); None without cgroups."""
        if self.emulation.controller is None:
            return None
        key = f"{device}-{kind}"
        if key not in self.groups:
            self.groups[key] = self.emulation.controller.group(key)
        return self.groups[key]

    def calibrated(self, cell: Cell, group) -> bool:
        """Set the group to the quota calibrated for the cell's device, runtime and threads;
        False when there is none yet."""
        cal = self.calibrations.get((cell.device, cell.runtime, cell.threads or 1))
        if cal is None:
            return False
        group.set_quota(cal.quota_us, cal.period_us)
        return True

    def calibrate(self, cell: Cell, time_runs, workload: str, group):
        """Calibrate the group's quota so that the calibration workload (same runtime and
        thread count as the cell) runs `target` times slower than unthrottled; keep it for the
        device's later cells of that runtime and thread count."""
        from edge.farm.emulation import calibrate_quota

        target = self.targets.get(cell.device, 1.0)
        self.console.print(f"  calibrating {cell.device} {cell.runtime} t{cell.threads or 1}: "
                           f"target slowdown {target:.2f} on {escape(workload)}")
        cal = calibrate_quota(group, time_runs, target, cell.threads or 1, workload=workload)
        self.calibrations[(cell.device, cell.runtime, cell.threads or 1)] = cal
        steps = ", ".join(f"{s['quota_us']}->{s['achieved']:.2f}" for s in cal.steps)
        self.console.print(f"    base {cal.base_ms:.1f} ms; quota -> slowdown: {steps}; kept "
                           f"{cal.quota_us} us / {cal.period_us} us (x{cal.achieved:.2f})"
                           + ("" if cal.converged else ", did not converge"))
        return cal

    def calibration_artifact(self, cell: Cell) -> Artifact:
        """The calibration workload of a runtime: the run's MobileNetV2 float32 variant of the
        cell's format (the field's baseline), else the cell's own artifact."""
        fmt = self.artifacts[(cell.model, cell.variant)].manifest["format"]
        variant = "tfjs-fp32" if fmt == "tfjs" else "tflite-fp32"
        for (model, v), artifact in sorted(self.artifacts.items()):
            if v == variant and model.split(":")[0] == "mobilenet_v2":
                return artifact
        return self.artifacts[(cell.model, cell.variant)]

    # -- the run's noise ------------------------------------------------------------------------

    def measure_noise(self, cells, session=None, server_url=None):
        """How much one cell moves between fresh pages (or worker processes) on this host, now:
        the calibration workload measured `repeats` times on the host, each in a fresh page or
        worker, 20 runs after a steady warm-up. The relative standard deviation of those
        medians is the run's noise: two cells measured apart are only told apart beyond it
        (`edge.stats.noise_margin`)."""
        from edge.farm.tflite_runner import TimingWorker

        repeats = self.noise_repeats
        if repeats < 2:
            return

        def spread(medians: list[float], workload: str, what: str) -> dict:
            mean = float(np.mean(medians))
            cv = float(np.std(medians, ddof=1) / mean) if len(medians) > 1 and mean else None
            return {"between_cv": None if cv is None else round(cv, 4), "repeats": len(medians),
                    "medians_ms": [round(m, 3) for m in medians], "workload": workload,
                    "between": what}

        native = next((c for c in cells if c.runtime == "litert"), None)
        if native is not None:
            art = self.calibration_artifact(native)
            medians = []
            for _ in range(repeats):
                with TimingWorker(art.main_file, threads=native.threads or 1,
                                  protocol=self.protocol.to_dict()) as worker:
                    medians.append(float(np.median(worker.time(20))))
            self.noise["native"] = spread(medians, _workload_name(art), "worker processes")
        browser = next((c for c in cells if c.runtime == "tfjs-wasm"), None)
        if browser is not None and session is not None:
            from edge.farm.browser import open_page

            art = self.calibration_artifact(browser)
            profile = self.catalog["host"] if "host" in self.catalog else None
            threads = max(c.threads or 1 for c in cells if c.runtime == "tfjs-wasm"
                          and c.device == "host") if any(
                c.runtime == "tfjs-wasm" and c.device == "host" for c in cells) else 1
            medians = []
            for _ in range(repeats):
                context, page, _ = open_page(session, server_url, profile, 1.0,
                                             timeout_s=self.protocol.timeout_s,
                                             cores=max(self.host_cores, 2 * threads))
                try:
                    config = self.harness_config(
                        Cell(browser.model, art.manifest["variant"]["name"], "tfjs-wasm",
                             "host", threads), art, profile)
                    page.evaluate("cfg => edgeHarness.prepare(cfg)",
                                  {**config, "returnOutputs": 0})
                    medians.append(float(np.median(
                        page.evaluate("n => edgeHarness.timeRuns(n)", 20))))
                    page.evaluate("() => edgeHarness.release()")
                finally:
                    context.close()
            self.noise["browser"] = spread(medians, _workload_name(art), "browser pages")
        for kind, noise in self.noise.items():
            cv = noise["between_cv"]
            self.console.print(f"noise ({kind}): the same cell in {noise['repeats']} fresh "
                               f"{noise['between']}: medians "
                               f"{', '.join(f'{m:.1f}' for m in noise['medians_ms'])} ms"
                               + ("" if cv is None else f" (±{cv:.0%} relative SD)"))

    # -- native TFLite --------------------------------------------------------------------------

    def run_native(self, cell: Cell, artifact: Artifact) -> dict:
        from edge.farm.emulation import quota_setter
        from edge.farm.load import LoadMeter
        from edge.farm.protocol import summarize
        from edge.farm.tflite_runner import TimingWorker, run_tflite_cell

        started = _now()
        m = artifact.manifest["model"]
        extra = self._artifact_extra(artifact)
        profile = self.catalog.get(cell.device)
        group = None
        if profile is not None and profile.emulated and not profile.is_host:
            group = self.group(cell.device, "native")
            if group is None:
                return self.record(cell, "unsupported", artifact, error=NATIVE_NEEDS_CGROUP,
                                   started=started, extra=extra)
            if not self.calibrated(cell, group):
                cal_art = self.calibration_artifact(cell)
                try:
                    with TimingWorker(cal_art.main_file, runtime=cell.runtime,
                                      threads=cell.threads or 1, cgroup_procs=group.procs_file,
                                      protocol=self.protocol.to_dict()) as worker:
                        self.calibrate(cell, lambda: worker.time(_probe_runs(worker)),
                                       _workload_name(cal_art), group)
                except Exception as exc:  # noqa: BLE001 - recorded with the cell
                    return self.record(cell, "failed", artifact, started=started, extra=extra,
                                       error=f"emulation calibration failed: {exc}")
        children = _child_pids()
        meter = LoadMeter.start()
        try:
            run = run_tflite_cell(
                artifact.main_file, runtime=cell.runtime, threads=cell.threads or 1,
                protocol=self.protocol.to_dict(), images=self._eval_images(artifact),
                mean=tuple(m["mean"]), std=tuple(m["std"]),
                return_outputs=self._return_outputs(artifact), timeout_s=self.protocol.timeout_s,
                cgroup_procs=group.procs_file if group is not None else None)
        except BaseException:
            # A SIGINT/SIGTERM that lands while the worker is being started interrupts Popen
            # after the fork: the runner has no handle to kill it, and the worker (a session of
            # its own) would measure on, orphaned. Kill whatever this call started.
            _kill_children_except(children)
            raise
        extra["load"] = meter.stop()
        if run.status != "ok":
            return self.record(cell, run.status, artifact, metrics=run.metrics,
                               error=run.error, started=started, extra=extra)
        if group is not None:
            quota = group.quota_us
            try:
                with TimingWorker(artifact.main_file, runtime=cell.runtime,
                                  threads=cell.threads or 1, cgroup_procs=group.procs_file,
                                  protocol=self.protocol.to_dict()) as worker:
                    self.measure_paired(cell, quota_setter(group, quota), worker.time,
                                        _probe_runs(worker))
            except Exception as exc:  # noqa: BLE001 - a note on the record
                self.paired[cell] = f"{type(exc).__name__}: {exc}"
            group.set_quota(quota)
        metrics = dict(run.metrics)
        metrics["latency"] = summarize(metrics.pop("samples_ms"),
                                       warmup_samples=metrics.get("warmup_ms"),
                                       steady=metrics.get("steady"))
        metrics["memory"] = {"peak_rss_bytes": metrics.get("peak_rss_bytes"),
                             "memory_metric": "worker-peak-rss"}
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
            "protocol": self.protocol.to_js(),
            # The cell's thread count: min(phone cores, host cores) (or 1 under the DevTools
            # fallback), the same on the host and the phones it is compared with.
            "wasmThreads": cell.threads,
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

    def _page_options(self, cell: Cell, profile) -> dict:
        """How open_page emulates the profile for this cell: DevTools CPU rate (fallback only),
        the hardwareConcurrency override (TF.js WASM uses min(threads, cores / 2) threads)."""
        emulated = profile.emulated and not profile.is_host
        rate = 1.0
        if emulated and not self.emulation.all_threads:
            rate = self.targets.get(cell.device, 1.0)
        cores = int(profile.cores) if emulated else self.host_cores
        if cell.threads:
            cores = max(cores, 2 * int(cell.threads))
        return {"factor": rate, "cores": cores}

    def run_browser(self, cell: Cell, artifact: Artifact, session, server_url: str) -> dict:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        from edge.farm.browser import (
            HarnessError,
            HarnessTimeout,
            RendererSampler,
            cdp_metrics,
            open_page,
            run_harness,
        )
        from edge.farm.load import LoadMeter
        from edge.farm.protocol import summarize

        profile = self.catalog[cell.device]
        started = _now()
        extra = {**self._artifact_extra(artifact),
                 "download_s_estimated": round(
                     profile.network.download_seconds(artifact.manifest["gzip_bytes"]), 3),
                 "network": profile.network.name}
        emulated = profile.emulated and not profile.is_host
        if emulated and cell.runtime in GPU_RUNTIMES:
            return self.record(cell, "unsupported", artifact, started=started, extra=extra,
                               error=GPU_NOT_EMULATED)
        options = self._page_options(cell, profile)
        group = self.group(cell.device, "browser") if emulated else None
        session.place(group)
        context = None
        meter = None
        try:
            if group is not None and not self.calibrated(cell, group):
                cal_art = self.calibration_artifact(cell)
                context, page, _ = open_page(session, server_url, profile, options["factor"],
                                             timeout_s=self.protocol.timeout_s,
                                             cores=options["cores"])
                page.evaluate("cfg => edgeHarness.prepare(cfg)",
                              self.harness_config(cell, cal_art, profile))
                self.calibrate(cell, lambda: page.evaluate(
                    "n => edgeHarness.timeRuns(n)", _probe_runs_page(page)),
                    _workload_name(cal_art), group)
                page.evaluate("() => edgeHarness.release()")
                context.close()
                context = None
            meter = LoadMeter.start()
            context, page, cdp = open_page(session, server_url, profile, options["factor"],
                                           timeout_s=self.protocol.timeout_s,
                                           cores=options["cores"])
            with RendererSampler() as sampler:
                result = run_harness(page, self.harness_config(cell, artifact, profile),
                                     self.protocol.timeout_s)
            extra["load"] = meter.stop()
            memory = {**_browser_memory(result.get("memory") or {}), **cdp_metrics(cdp),
                      **sampler.summary()}
            if emulated and not result.get("error"):
                _paired_in_page(self, cell, page, cdp, group, options["factor"],
                                    self.harness_config(cell, artifact, profile))
        except (PlaywrightTimeout, HarnessTimeout):
            if meter is not None:
                extra["load"] = meter.stop()
            return self.record(cell, "timeout", artifact, started=started, extra=extra,
                               error=f"no result within {self.protocol.timeout_s:.0f} s")
        except (PlaywrightError, HarnessError) as exc:
            if meter is not None:
                extra["load"] = meter.stop()
            return self.record(cell, "failed", artifact, started=started, extra=extra,
                               error=f"browser: {str(exc).strip().splitlines()[0]}")
        finally:
            if context is not None:
                try:
                    context.close()
                except Exception:  # noqa: BLE001 - the page or browser may be gone
                    pass
        facts = result.get("facts") or {}
        metrics = {"load_ms": result.get("loadMs"),
                   "first_inference_ms": result.get("firstInferenceMs"),
                   "warmup_ms": result.get("warmupMs"), "memory": memory,
                   "backend": {"name": result.get("backend"), **facts},
                   "tfjs_version": result.get("tfjsVersion"), "pse": result.get("pse"),
                   "stop_reason": result.get("stopReason"),
                   "page": {"cpu_throttling_rate": options["factor"],
                            "hardware_concurrency": options["cores"]}}
        if cell.runtime in GPU_RUNTIMES:
            extra["gpu"] = gpu_field(cell.runtime, facts)
        if result.get("error"):
            return self.record(cell, "failed", artifact, metrics=metrics,
                               error=result["error"], started=started, extra=extra)
        samples = result.get("samplesMs") or []
        if not samples:
            return self.record(cell, "failed", artifact, metrics=metrics, started=started,
                               extra=extra, error="harness returned no timed runs")
        metrics["latency"] = summarize(samples, warmup_samples=result.get("warmupMs"),
                                       steady=result.get("steady"))
        metrics["fidelity"] = safe_fidelity(decode_outputs(result.get("outputs")), artifact,
                                            self.store)
        return self.record(cell, "ok", artifact, metrics=metrics, started=started, extra=extra)


def _paired_in_page(bench: Bench, cell: Cell, page, cdp, group, rate: float,
                    config: dict) -> None:
    """An emulated browser cell's own slowdown: its model again in the same page, timed in
    alternating unthrottled and throttled blocks (the group's quota, or DevTools' rate)."""
    from edge.farm.emulation import quota_setter

    try:
        page.evaluate("cfg => edgeHarness.prepare(cfg)", {**config, "returnOutputs": 0})
    except Exception as exc:  # noqa: BLE001 - a note on the record
        bench.paired[cell] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        return
    if group is not None:
        set_throttle = quota_setter(group, group.quota_us)
    else:
        def set_throttle(on: bool) -> None:
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": rate if on else 1.0})
    try:
        bench.measure_paired(cell, set_throttle,
                             lambda n: page.evaluate("n => edgeHarness.timeRuns(n)", n),
                             _probe_runs_page(page))
    finally:
        set_throttle(True)
        try:
            page.evaluate("() => edgeHarness.release()")
        except Exception:  # noqa: BLE001 - the page is closed next anyway
            pass


def _browser_memory(page_memory: dict) -> dict:
    """The page's memory figures under names that say what they are."""
    out = dict(page_memory)
    for old in ("tfPeakBytes", "wasmHeapBytes"):  # superseded names
        out.pop(old, None)
    if "wasmHeapCapacityBytes" in out:
        out["wasm_heap_capacity_bytes"] = out.pop("wasmHeapCapacityBytes")
    return out


def gpu_field(runtime: str, facts: dict) -> dict:
    """The renderer a GPU cell ran on, and whether it is software (the host's rasterizer)."""
    if runtime == "tfjs-webgpu":
        adapter = facts.get("webgpu") or {}
        renderer = " ".join(str(adapter.get(k)) for k in ("vendor", "architecture",
                                                          "description") if adapter.get(k))
        software = bool(adapter.get("isFallbackAdapter")) or "swiftshader" in renderer.lower()
        return {"renderer": renderer or None, "software": software}
    gl = facts.get("webgl") or {}
    renderer = gl.get("renderer")
    text = f"{renderer or ''} {gl.get('vendor') or ''}".lower()
    software = any(s in text for s in ("swiftshader", "llvmpipe", "software"))
    return {"renderer": renderer, "software": software}


def _workload_name(artifact: Artifact) -> str:
    m = artifact.manifest
    return f"{m.get('target') or m['model']['source']} {m['variant']['name']}"


def _probe_runs(worker) -> int:
    """Runs per calibration probe: about 0.2 s of work, 5 to 30 runs."""
    if not hasattr(worker, "_probe_n"):
        first = worker.time(3)
        worker._probe_n = max(5, min(30, round(PROBE_MS / max(0.5, float(np.median(first))))))
    return worker._probe_n


def _probe_runs_page(page) -> int:
    n = getattr(page, "_edge_probe_n", None)
    if n is None:
        first = page.evaluate("n => edgeHarness.timeRuns(n)", 3)
        n = max(5, min(30, round(PROBE_MS / max(0.5, float(np.median(first))))))
        page._edge_probe_n = n
    return n


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


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def run_matrix(matrix: Matrix, cells: list[Cell], artifacts: dict, store: Store, results,
               run_id: str, protocol, catalog: dict, console, emulation=None,
               noise_repeats: int = NOISE_REPEATS) -> dict:
    """Measure every cell not yet in `results`; returns counts by status.

    Host cells run first (the emulated cells' achieved slowdown is their p50 against the host's
    same cell), then each device's native and browser cells. Each cell records the competing
    load measured during it."""
    from edge.farm.emulation import choose_emulation
    from edge.results.store import cell_id, host_metadata

    host = host_metadata()
    own_emulation = emulation is None
    emulation = emulation or choose_emulation()
    bench = Bench(matrix, artifacts, store, results, run_id, protocol, catalog, host, console,
                  emulation=emulation, noise_repeats=noise_repeats)
    cells = resolve_threads(cells, catalog, emulation)
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

            def finish(rec: dict) -> None:
                counts[rec["status"]] = counts.get(rec["status"], 0) + 1
                progress.advance(task)
                lat = (rec.get("metrics") or {}).get("latency") or {}
                figure = f"p50 {lat['p50']:.1f} ms" if lat else (rec.get("error") or "")[:80]
                emu = rec.get("emulation") or {}
                if emu.get("achieved_slowdown"):
                    figure += (f"  x{emu['achieved_slowdown']:.2f} "
                               f"(target {emu['target_slowdown']:.2f})")
                if (rec.get("load") or {}).get("busy"):
                    figure += f"  BUSY host ({rec['load']['other_cores']:.2f} cores)"
                progress.console.print(escape(
                    f"  {rec['status']:11} {rec['cell_id']}  {figure}"))

            def checked(cell: Cell) -> Artifact | None:
                artifact = artifacts[(cell.model, cell.variant)]
                problem = verify_artifact(artifact)
                if problem:
                    finish(bench.record(cell, "failed", artifact, error=problem,
                                        started=_now()))
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
        if not c.native and c.threads is None and c.runtime not in GPU_RUNTIMES:
            profile = catalog.get(c.device)
            cores = host_cores if profile is None or profile.is_host else profile.cores
            if profile is not None and profile.endpoint:  # a real device: its own default
                out.append(c)
                continue
            c = dataclasses.replace(c, threads=emulation.browser_threads(cores, host_cores))
        out.append(c)
    return list(dict.fromkeys(out))  # a rule's explicit threads may equal the resolved ones


def _run_cells(bench: Bench, cells, checked, finish, catalog, store) -> None:
    from edge.farm.browser import (
        WEB_DIR,
        BrowserSession,
        host_benchmark_index,
        require_web_runtime,
        resolve_browser,
    )
    from edge.farm.server import LoopbackServer

    browser_cells = [c for c in cells if not c.native]
    emulated = [c for c in cells if c.device != "host" and catalog.get(c.device) is not None
                and catalog[c.device].emulated]
    if not browser_cells and not emulated:
        bench.measure_noise(cells)
        for cell in cells:
            artifact = checked(cell)
            if artifact is not None:
                finish(bench.run_native(cell, artifact))
        return
    require_web_runtime()
    bench.data_dir.mkdir(parents=True, exist_ok=True)
    roots = {"harness": WEB_DIR, "node_modules": WEB_DIR / "node_modules",
             "artifacts": Path(store.root), "data": bench.data_dir}
    info = resolve_browser()
    root_group = bench.emulation.controller
    with LoopbackServer(roots) as server, BrowserSession(info, root=root_group) as session:
        session.place(None)
        bench.host_index = host_benchmark_index(session, server.url)
        bench.measure_noise(cells, session, server.url)
        for name, p in catalog.items():
            cal = p.slowdown(bench.host_index)
            bench.targets[name] = cal.factor
            if cal.warning and any(c.device == name for c in cells):
                bench.console.print(f"[yellow]warning:[/] {escape(cal.warning)}")
        for cell in cells:
            artifact = checked(cell)
            if artifact is None:
                continue
            if cell.native:
                session.place(None)
                finish(bench.run_native(cell, artifact))
            else:
                finish(bench.run_browser(cell, artifact, session, server.url))
            time.sleep(0.05)


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
