"""`edge calibrate` against a stand-in device: this host under a CPU quota, measured on one
thread where the host runs two, so its speed against the host is not one factor (thread scaling
differs by model). Calibrated on one model, the estimate must predict another model measured
directly on the stand-in."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edge.estimate import catalog_phones, load_calibrations, make_estimator
from edge.farm.emulation.cgroups import EmulationUnavailable, detect_cgroup
from edge.farm.emulation.devices import DEFAULT_CATALOG

STAND_IN = """
[profiles.standin]
label = "Stand-in device (this host under a CPU quota, one thread)"
tier = "mid"
descriptor = "Pixel 5"
cpu_slowdown = 3.0
cores = 2
network = "none"
memory_class = 4
emulated = true
"""


@pytest.fixture
def stand_in_catalog(tmp_path) -> Path:
    try:
        detect_cgroup().close()
    except EmulationUnavailable as exc:
        pytest.skip(f"CPU bandwidth control not writable here: {exc}")
    path = tmp_path / "catalog.toml"
    path.write_text(DEFAULT_CATALOG.read_text(encoding="utf-8") + STAND_IN, encoding="utf-8")
    return path


#: The reference set and a model outside it (a few ms per run on one thread: a CPU quota
#: throttles a run only when it is longer than the quota's budget per period, 1 ms at least,
#: so tiny models would not slow down).
REFERENCE = ("mobilenet_v2:size=160,alpha=1.0", "efficientnet_b0:size=160,width=1.0,depth=1.0")
OTHER = "efficientnet_lite0:size=160,width=1.0,depth=1.0"


def _p50(record) -> float:
    return record["metrics"]["latency"]["p50"]


@pytest.mark.slow
@pytest.mark.browser
def test_calibrate_a_stand_in_then_predict_a_model_outside_the_reference_set(
        stand_in_catalog, tmp_path):
    from edge import workflow
    from edge.farm.scheduling.matrix import Matrix
    from edge.results.store import ResultStore

    out = tmp_path / "device_calibrations.toml"
    build_dir = tmp_path / "build"
    other = OTHER
    entries = workflow.calibrate(
        "standin", catalog=stand_in_catalog, models=list(REFERENCE),
        variants=["tflite-fp32"], runtimes=["litert"], device_threads=1, tiny=True,
        build_dir=build_dir, reports_dir=tmp_path / "reports", out=out, jobs=2)
    assert len(entries) == 2
    for entry in load_calibrations(out):
        assert (entry["phone"], entry["runtime"], entry["threads"], entry["host_threads"]) == (
            "standin", "litert", 1, 2)
        assert entry["date"] and entry["run_id"] and entry["litert_version"]
        # a third of the host's speed on one thread, against the host on two: slower
        assert entry["phone_ms"] > 1.2 * entry["host_ms"]

    # Another model, measured directly on the stand-in and on the host
    targets = workflow.model_targets([other], tiny=True, variants=["tflite-fp32"])
    workflow.build(targets, build_dir)
    slug = targets[0].slug
    rules = [{"models": [slug], "variants": ["tflite-fp32"],
              "runtimes": ["litert"], "devices": ["host"], "interleave": False},
             {"models": [slug], "variants": ["tflite-fp32"],
              "runtimes": ["litert"], "devices": ["standin"], "threads": [1],
              "interleave": False}]
    matrix = Matrix(path=Path("stand-in check"), models=[other],
                    variants=["tflite-fp32"], build_dir=build_dir,
                    devices=["host", "standin"], reports_dir=tmp_path / "reports", rules=rules)
    run_dir = workflow.measure(matrix, tiny=True, catalog=str(stand_in_catalog))
    records = [r for r in ResultStore(run_dir).records() if r["status"] == "ok"]
    host = next(r for r in records if r["device"] == "host")
    direct = next(r for r in records if r["device"] == "standin")

    estimator = make_estimator([host], [], catalog_phones(stand_in_catalog),
                               load_calibrations(out))
    factor = estimator.factor("standin", "native", "float@mt")
    assert factor.level == "device" and factor.n == 2
    predicted = _p50(host) * factor.value
    error = predicted / _p50(direct)
    print(f"stand-in: {factor.note}; factor {factor.value:.2f} "
          f"[{factor.lo:.2f}, {factor.hi:.2f}], predicted "
          f"{predicted:.3f} ms, measured {_p50(direct):.3f} ms, error x{error:.2f}")
    # The stand-in's own speed moves between runs (each run calibrates its quota afresh, and
    # the host drifts), so one direct measurement against the stated interval is the
    # benchmark's business (benchmarks/estimator.py --stand-in, coverage over several models).
    # Here: the calibrated factor predicts the other model within x2 (seen: x0.70 to x1.32 on
    # this host), where the profile's own 3x slowdown, blind to one thread against two, is
    # about x0.45 off.
    assert abs(math.log(error)) < math.log(2.0), (
        f"{other} on the stand-in: measured {_p50(direct):.3f} ms, predicted "
        f"{predicted:.3f} ms (error x{error:.2f})")
