"""The native runner: .tflite and .onnx cells in a fresh worker process each (`tflite_runner`,
which runs `tflite_worker.py`), LiteRT and ONNX Runtime under this process's Python and
tflite-runtime under its own environment's. On an emulated phone the worker runs in the device's
cgroup, calibrated first."""

from __future__ import annotations

import contextlib

import numpy as np

from edge.farm.cells import PROBE_MS, now, safe_fidelity, workload_name
from edge.farm.runners.base import Runner, Where
from edge.variants import NATIVE_NEEDS_CGROUP


class NativeRunner(Runner):
    kind = "native"
    native = True
    noise_runtime = "litert"
    noise_between = "worker processes"
    interleaves = True

    @contextlib.contextmanager
    def timing(self, bench, cell, artifact, where: Where, group):
        from edge.farm.runners.tflite_runner import TimingWorker

        if where.session is not None:
            where.session.place(None)  # the local browser's group is not the worker's
        children = _child_pids()
        try:
            worker = TimingWorker(artifact.main_file, runtime=cell.runtime,
                                  threads=cell.threads or 1,
                                  cgroup_procs=group.procs_file if group is not None else None,
                                  protocol=bench.protocol.to_dict(),
                                  timeout_s=bench.protocol.timeout_s)
        except BaseException:
            # Interrupted inside Popen, after the fork: no handle to the worker (see `run`).
            _kill_children_except(children)
            raise
        with worker:
            yield worker.time

    def run(self, bench, cell, artifact, where: Where) -> dict:
        from edge.farm.emulation.calibration import quota_setter
        from edge.farm.protocol.load import LoadMeter
        from edge.farm.protocol.protocol import summarize
        from edge.farm.runners.tflite_runner import TimingWorker, run_tflite_cell

        if where.session is not None:
            where.session.place(None)  # the local browser's group is not the worker's
        started = now()
        m = artifact.manifest["model"]
        extra = bench.artifact_extra(artifact)
        profile = bench.catalog.get(cell.device)
        if getattr(profile, "adb", None):
            return bench.record(cell, "failed", artifact, started=started, extra=extra,
                                error=f"runtime {cell.runtime} runs on this machine, not on "
                                      f"the phone of profile {cell.device!r}: measure it there "
                                      f"with runtime benchmark-model (adb)")
        group = None
        if profile is not None and profile.emulated and not profile.is_host:
            group = bench.group(cell.device, "native")
            if group is None:
                return bench.record(cell, "unsupported", artifact, error=NATIVE_NEEDS_CGROUP,
                                    started=started, extra=extra)
            if not bench.calibrated(cell, group):
                cal_art = bench.calibration_artifact(cell)
                try:
                    with TimingWorker(cal_art.main_file, runtime=cell.runtime,
                                      threads=cell.threads or 1, cgroup_procs=group.procs_file,
                                      protocol=bench.protocol.to_dict()) as worker:
                        bench.calibrate(cell, lambda: worker.time(_probe_runs(worker)),
                                        workload_name(cal_art), group)
                except Exception as exc:  # noqa: BLE001 - recorded with the cell
                    return bench.record(cell, "failed", artifact, started=started, extra=extra,
                                        error=f"emulation calibration failed: {exc}")
        children = _child_pids()
        meter = LoadMeter.start()
        try:
            run = run_tflite_cell(
                artifact.main_file, runtime=cell.runtime, threads=cell.threads or 1,
                protocol=bench.cell_protocol.to_dict(), images=bench.eval_images(artifact),
                mean=tuple(m["mean"]), std=tuple(m["std"]),
                return_outputs=bench.return_outputs(artifact),
                timeout_s=bench.protocol.timeout_s,
                cgroup_procs=group.procs_file if group is not None else None)
        except BaseException:
            # A SIGINT/SIGTERM that lands while the worker is being started interrupts Popen
            # after the fork: the runner has no handle to kill it, and the worker (a session of
            # its own) would measure on, orphaned. Kill whatever this call started.
            _kill_children_except(children)
            raise
        extra["load"] = meter.stop()
        if run.status != "ok":
            return bench.record(cell, run.status, artifact, metrics=run.metrics,
                                error=run.error, started=started, extra=extra)
        if group is not None and bench.held is None:
            quota = group.quota_us
            try:
                with TimingWorker(artifact.main_file, runtime=cell.runtime,
                                  threads=cell.threads or 1, cgroup_procs=group.procs_file,
                                  protocol=bench.protocol.to_dict()) as worker:
                    bench.measure_paired(cell, quota_setter(group, quota), worker.time,
                                         _probe_runs(worker))
            except Exception as exc:  # noqa: BLE001 - a note on the record
                bench.paired[cell] = f"{type(exc).__name__}: {exc}"
            group.set_quota(quota)
        metrics = dict(run.metrics)
        metrics["latency"] = summarize(metrics.pop("samples_ms"),
                                       warmup_samples=metrics.get("warmup_ms"),
                                       steady=metrics.get("steady"))
        metrics["memory"] = {"peak_rss_bytes": metrics.get("peak_rss_bytes"),
                             "memory_metric": "worker-peak-rss"}
        metrics["fidelity"] = safe_fidelity(run.outputs, artifact, bench.store)
        return bench.record(cell, "ok", artifact, metrics=metrics, started=started, extra=extra)

    def noise_medians(self, bench, cell, cells, where: Where, repeats: int):
        from edge.farm.runners.tflite_runner import TimingWorker

        art = bench.calibration_artifact(cell)
        medians = []
        for _ in range(repeats):
            with TimingWorker(art.main_file, runtime=cell.runtime, threads=cell.threads or 1,
                              protocol=bench.protocol.to_dict()) as worker:
                medians.append(float(np.median(worker.time(20))))
        return medians, art


def _probe_runs(worker) -> int:
    """Runs per calibration probe: about 0.2 s of work, 5 to 30 runs."""
    if not hasattr(worker, "_probe_n"):
        first = worker.time(3)
        worker._probe_n = max(5, min(30, round(PROBE_MS / max(0.5, float(np.median(first))))))
    return worker._probe_n


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

