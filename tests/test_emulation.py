"""CPU emulation: bandwidth control slows every thread, calibration hits its target, the
fallback is labelled, and competing load is seen."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from edge.farm.emulation.calibration import (
    calibrate_quota,
    emulation_record,
    off_target,
    paired_slowdown,
    quota_setter,
)
from edge.farm.emulation.cgroups import CGROUP_V1, CGROUP_V2, EmulationUnavailable, detect_cgroup
from edge.farm.emulation.methods import DEVTOOLS, choose_emulation
from edge.farm.protocol.load import LoadMeter

#: A process that answers each stdin line with the ms of one chunk of pure-Python work.
CHUNK = textwrap.dedent("""
    import sys, time
    print("ready", flush=True)
    for line in sys.stdin:
        t0 = time.perf_counter()
        x = 0
        for i in range(400000):
            x += i * i
        print((time.perf_counter() - t0) * 1e3, flush=True)
""")


def _cgroup_or_skip():
    try:
        return detect_cgroup()
    except EmulationUnavailable as exc:
        pytest.skip(f"CPU bandwidth control not writable here: {exc} (the fallback is tested "
                    "separately)")


class Spinner:
    """`threads` processes in `group`, each doing one chunk per request, all at once: the
    time of a request is that of the slowest, as for a thread pool's parallel work."""

    def __init__(self, group=None, threads: int = 1):
        self.procs = [subprocess.Popen([sys.executable, "-c", CHUNK], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
                      for _ in range(threads)]
        for proc in self.procs:
            if group is not None:
                group.add(proc.pid)
            assert proc.stdout.readline().strip() == "ready"

    def time(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            for proc in self.procs:
                proc.stdin.write("go\n")
                proc.stdin.flush()
            for proc in self.procs:
                proc.stdout.readline()
            out.append((time.perf_counter() - t0) * 1e3)
        return out

    def close(self):
        for proc in self.procs:
            proc.stdin.close()
            proc.wait(timeout=10)


def test_detection_names_its_method():
    emulation = choose_emulation()
    try:
        assert emulation.method in (CGROUP_V1, CGROUP_V2, DEVTOOLS)
        if emulation.method == DEVTOOLS:
            assert emulation.reason and not emulation.all_threads
        else:
            assert emulation.all_threads and emulation.browser_threads(8, 2) == 2
    finally:
        emulation.close()


def test_forced_fallback_is_labelled_and_single_threaded(monkeypatch):
    monkeypatch.setenv("EDGE_EMULATION", "devtools")
    emulation = choose_emulation()
    assert emulation.method == DEVTOOLS and emulation.controller is None
    assert "EDGE_EMULATION=devtools" in emulation.reason
    # The DevTools throttle slows the page's main thread only: one thread, whatever the phone.
    assert emulation.browser_threads(8, 2) == 1
    monkeypatch.setenv("EDGE_EMULATION", "bogus")
    with pytest.raises(ValueError, match="EDGE_EMULATION"):
        choose_emulation()


def test_quota_slows_every_thread_of_the_group():
    """Two busy processes under a quota of 2 CPUs / 3: the work takes about 3x longer (a slower
    run, not a recorded factor; unthrottled and throttled blocks alternate, so the host's drift
    cancels)."""
    controller = _cgroup_or_skip()
    group = controller.group("test-threads")
    spinner = Spinner(group, threads=2)
    try:
        group.set_slowdown(3.0, threads=2)
        ratio, free, slow = paired_slowdown(quota_setter(group, group.quota_us),
                                            lambda: spinner.time(5), pairs=3)
        assert group.throttled_periods() > 0
    finally:
        spinner.close()
        controller.close()
    assert ratio > 2.0, (ratio, free, slow)


def test_calibration_reaches_its_target_and_the_group_is_removed():
    controller = _cgroup_or_skip()
    group = controller.group("test-calibrate")
    spinner = Spinner(group, threads=1)
    try:
        cal = calibrate_quota(group, lambda: spinner.time(5), 2.5, threads=1,
                              workload="spinner")
        check, _, _ = paired_slowdown(quota_setter(group, cal.quota_us),
                                      lambda: spinner.time(5), pairs=3)
    finally:
        spinner.close()
        controller.close()
    assert cal.steps and cal.quota_us is not None
    # Within 20 %: on a shared 2-core host one calibration step's paired blocks move by 15 %
    # and more between steps (one calibration ended at 2.88 for 2.5 after 6 steps).
    assert abs(cal.achieved / 2.5 - 1) < 0.2, cal.as_dict()
    assert 1.8 < check < 3.4, (check, cal.as_dict())  # the calibrated quota holds afterwards
    assert not group.path.exists()


def test_emulation_record_flags_off_target_cells():
    rec = emulation_record(CGROUP_V1, 3.0, 2, achieved=2.4)
    assert rec["off_target"] and rec["method"] == CGROUP_V1 and rec["threads"] == 2
    assert not emulation_record(CGROUP_V1, 3.0, 2, achieved=3.3)["off_target"]
    assert not off_target(None, 3.0)


def test_a_busy_loop_beside_the_measurement_is_seen_as_competing_load():
    import psutil

    # A loop that is not ours: its parent exits at once, so it is nobody's child here.
    starter = ("import subprocess, sys\n"
               "p = subprocess.Popen([sys.executable, '-c', 'import time\\nt = time.time()\\n"
               "while time.time() - t < 5: pass'], start_new_session=True,\n"
               "    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
               "print(p.pid)")
    out = subprocess.run([sys.executable, "-c", starter], check=True, capture_output=True,
                         text=True).stdout
    loop = psutil.Process(int(out.split()[0]))
    assert loop.pid not in [p.pid for p in psutil.Process().children(recursive=True)]
    time.sleep(0.3)
    cpu0 = sum(loop.cpu_times()[:2])
    meter = LoadMeter.start()
    time.sleep(1.5)
    load = meter.stop()
    cpu1 = sum(loop.cpu_times()[:2])
    loop.kill()
    assert load["busy"] and load["other_cores"] > 0.5, load
    # Everything the loop took during the window is counted as others' CPU time.
    assert load["other_cpu_s"] >= 0.8 * (cpu1 - cpu0), (load, cpu1 - cpu0)


def test_our_own_work_is_not_competing_load():
    from edge.farm.protocol.load import process_cpu_s

    meter = LoadMeter.start()
    proc = subprocess.Popen([sys.executable, "-c", "import time\n"
                             "while time.process_time() < 1.0: pass"])
    proc.wait()
    load = meter.stop()
    # The child's CPU second is ours; what others took is whatever the rest of /proc shows.
    assert load["other_cpu_s"] < 0.6, load
    assert proc.pid not in (process_cpu_s() or {})  # it exited: nothing left to misattribute


def _foreign_busy_loop(seconds: float):
    """A busy loop that is not ours (its parent exits at once); returns its psutil.Process."""
    import psutil

    starter = ("import subprocess, sys\n"
               "p = subprocess.Popen([sys.executable, '-c', 'import time\\nt = time.time()\\n"
               f"while time.time() - t < {seconds}: pass'], start_new_session=True,\n"
               "    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
               "print(p.pid)")
    out = subprocess.run([sys.executable, "-c", starter], check=True, capture_output=True,
                         text=True).stdout
    return psutil.Process(int(out.split()[0]))


@pytest.mark.slow
def test_a_cell_measured_beside_a_busy_loop_is_flagged(tiny_garden, tmp_path):
    """A real native cell, measured while another process spins: its record says busy, and
    the run's self-check fails with that cell named."""
    from rich.console import Console

    from edge.convert.cache import Store
    from edge.convert.pipeline import artifacts_for
    from edge.farm.emulation.devices import load_catalog
    from edge.farm.protocol.protocol import Protocol
    from edge.farm.scheduling.matrix import Cell, Matrix
    from edge.farm.scheduling.run import run_matrix
    from edge.results.checks import self_checks
    from edge.results.store import ResultStore

    build_dir = tiny_garden["build_dir"]
    slug = next(t.slug for t in tiny_garden["targets"] if t.source == "mobilenet_v2")
    cell = Cell(slug, "tflite-fp32", "litert", "host", 1)
    store = Store(build_dir)
    artifacts = artifacts_for(tiny_garden["targets"], store, {(cell.model, cell.variant)})
    results = ResultStore(tmp_path / "run")
    # Enough timed time for the meter to see the loop: at least 2 s of runs.
    protocol = Protocol(warmup=1, max_warmup=5, min_runs=10, min_seconds=2.0,
                        max_seconds=3.0, target_ci=0.0, timeout_s=60)
    loop = _foreign_busy_loop(20)
    try:
        run_matrix(Matrix(path=tmp_path / "m.toml", models=[], variants=[],
                          build_dir=build_dir, fidelity_images=0),
                   [cell], artifacts, store, results, "busy", protocol, load_catalog(),
                   Console(quiet=True), noise_repeats=0)
    finally:
        loop.kill()
    (rec,) = results.records()
    assert rec["status"] == "ok", rec["error"]
    assert rec["load"]["busy"] is True and rec["load"]["other_cores"] > 0.5, rec["load"]
    check = {c["name"]: c for c in self_checks([rec])}["competing-load"]
    assert check["status"] == "fail" and rec["cell_id"].split("|")[0] in check["details"][0]
