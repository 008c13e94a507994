"""LiteRT.js (@litertjs/core) in real Chromium: every TFLite variant of the tiny MobileNetV2
runs in its WASM build with outputs checked against the float32 reference, and the page loads
it with every non-loopback request cut off."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.convert.cache import Store
from edge.convert.pipeline import artifacts_for
from edge.farm.scheduling.matrix import Cell
from tests.harness_page import run_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TFLITE = ("tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8-full",
          "tflite-int8-full-uint8io")


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """The tiny MobileNetV2 in every TFLite variant (built here: only what this module needs)."""
    from edge import workflow
    from edge.convert.targets import garden_target
    from edge.garden import REGISTRY

    spec = REGISTRY["mobilenet_v2"]
    build_dir = tmp_path_factory.mktemp("build")
    target = garden_target(spec.resolve(spec.tiny), variants=TFLITE)
    workflow.build([target], build_dir, jobs=2)
    return {"build_dir": build_dir, "targets": [target]}


@pytest.fixture(scope="module")
def measured(mobilenet, tmp_path_factory):
    from edge.farm.emulation.methods import choose_emulation
    from tests.test_browser import _measure

    def cells(slug):
        return [Cell(slug["mobilenet_v2"], v, "litertjs-wasm", "host") for v in TFLITE]

    emulation = choose_emulation()
    try:
        yield _measure(mobilenet, tmp_path_factory, cells, emulation)
    finally:
        emulation.close()


@pytest.mark.parametrize("variant", TFLITE)
def test_every_tflite_variant_runs_in_litertjs_wasm(measured, variant):
    rec = measured[f"litertjs-wasm|{variant}|host"]
    assert rec["status"] == "ok", rec["error"]
    m = rec["metrics"]
    assert m["backend"]["name"] == "litertjs-wasm"
    lat = m["latency"]
    assert lat["n"] >= 5 and 0 < lat["min"] <= lat["p50"] <= lat["max"]
    assert m["load_ms"] > 0 and m["first_inference_ms"] > 0
    assert m["memory"]["leakedTensors"] == 0  # every LiteRT tensor the harness made was deleted
    fid = m["fidelity"]
    assert fid["images"] > 0 and fid["status"] in ("pass", "warn", "fail"), fid
    if variant == "tflite-fp32":
        assert fid["status"] == "pass", fid["reasons"]


def test_litertjs_records_its_build_threads_and_simd(measured):
    rec = measured["litertjs-wasm|tflite-fp32|host"]
    facts = rec["metrics"]["backend"]
    lite = facts["litert"]
    assert lite["loaded"] is True and lite["version"].startswith("2.5.")
    assert lite["accelerator"] == "wasm"
    assert facts["crossOriginIsolated"] is True and lite["build"] == "threaded"
    assert lite["threadsConfigured"] == rec["threads"]
    assert facts["wasm"]["simd"] is True and lite["relaxedSimd"] is True


def _page_run(mobilenet, variant, tmp_path, images=None, guard=None, then=None):
    """One harness run of `variant` in LiteRT.js WASM on a fresh page (`guard`: a Playwright
    route handler for every request; `then(page, config)`: called after the run, its answer
    returned as the result's "then"); returns the harness's result and the artifact."""
    store = Store(mobilenet["build_dir"])
    (artifact,) = [a for (_, v), a in artifacts_for(mobilenet["targets"], store).items()
                   if v == variant]
    m = artifact.manifest
    io = m["io"]["inputs"][0]
    out = m["io"]["outputs"][0]
    config = {"runtime": "litertjs-wasm",
              "modelUrl": f"/artifacts/artifacts/{artifact.dir.name}/{m['files'][0]['path']}",
              "input": {"shape": m["model"]["input_shape"], "dtype": io["dtype"],
                        "mean": m["model"]["mean"], "std": m["model"]["std"],
                        "scale": io["scale"], "zeroPoint": io["zero_point"]},
              "output": {"scale": out["scale"], "zeroPoint": out["zero_point"]}
              if out["dtype"] in ("int8", "uint8") else None,
              "returnOutputs": 1, "wasmThreads": 1,
              "protocol": {"warmup": 1, "max_warmup": 3, "min_runs": 3, "max_runs": 5,
                           "min_seconds": 0}}
    result = run_page(store.root, config, tmp_path, images=images, guard=guard, then=then)
    return result, artifact


def test_litertjs_loads_with_the_network_cut_off(mobilenet, tmp_path):
    """Every request the page makes is to the loopback server: anything else is aborted and
    listed, and LiteRT.js still loads, compiles and runs the model."""
    from urllib.parse import urlparse

    blocked, served = [], []

    def guard(route):
        url = route.request.url
        if urlparse(url).hostname == "127.0.0.1":
            served.append(url)
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    result, _ = _page_run(mobilenet, "tflite-fp32", tmp_path, guard=guard)
    assert result["error"] is None
    assert len(result["samplesMs"]) >= 3 and result["outputs"]
    assert blocked == []
    assert any("/node_modules/@litertjs/core/wasm/" in u and u.endswith(".wasm")
               for u in served), served


#: CPU features that make native LiteRT (XNNPack) pick other kernels than its WASM build does.
KERNEL_FEATURES = ("avx512_vnni", "avx_vnni", "avx512_bf16", "avx512f", "avx512bw", "avx512vl",
                   "amx_int8", "avx2", "fma", "f16c", "sse4_1")


def host_cpu_features(cpuinfo: str | None = None) -> list[str]:
    """The `KERNEL_FEATURES` among the host's CPU flags (/proc/cpuinfo), in that order."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.partition(":")[2].split())
    return [f for f in KERNEL_FEATURES if f in flags]


#: float32's machine epsilon and float16's.
EPS32, EPS16 = 2.0 ** -23, 2.0 ** -10


def agreement_tolerance(quantization: str, want, output_scale: float) -> dict:
    """How close LiteRT.js's outputs must be to native LiteRT's for a variant, from what its
    quantization lets two correct kernels differ by (the outputs' magnitude `want`; the int8
    output's scale, 0 for float outputs):

    - fp32: 1024 float32 ulps of the output's magnitude, relative and absolute: the two
      runtimes sum in other orders and fuse multiply-adds differently over the network's depth;
    - fp16: float16's epsilon: a runtime may compute a float16 model in float16;
    - int8-full: one step of the int8 output (both requantize exact integer sums; their
      rounding may differ by one step), and the same top-1 class;
    - int8-dynamic: each quantized op's float input is quantized to int8 at run time, with
      parameters and rounding of the kernel's own (per tensor or per row; AVX-512 VNNI, AVX2
      and WASM SIMD kernels differ), so two runtimes agree to a few int8 steps of the outputs'
      range, not to float precision: 4 steps (1.6 % of the range), and, as fidelity judges
      integer variants, the same top-1 class on every image.
    """
    import numpy as np

    magnitude = float(np.max(np.abs(want)))
    if quantization == "fp32":
        tol = 1024 * EPS32
        return {"atol": tol * magnitude, "rtol": tol, "top1": False,
                "basis": "1024 float32 ulps"}
    if quantization == "fp16":
        return {"atol": EPS16 * magnitude, "rtol": EPS16, "top1": False,
                "basis": "float16 epsilon"}
    if quantization == "int8-full":
        return {"atol": 1.01 * output_scale, "rtol": 0.0, "top1": True,
                "basis": f"one int8 output step ({output_scale:g})"}
    if quantization == "int8-dynamic":
        step = max(magnitude, float(np.max(want) - np.min(want))) / 255
        return {"atol": 4 * step, "rtol": 0.0, "top1": True,
                "basis": f"4 int8 steps of the outputs' range ({step:.3g} each)"}
    raise ValueError(f"no agreement tolerance for quantization {quantization!r}")


def test_host_cpu_features_reads_the_flags():
    info = "processor\t: 0\nflags\t\t: fpu sse4_1 avx2 fma avx512f avx512_vnni\n"
    assert host_cpu_features(info) == ["avx512_vnni", "avx512f", "avx2", "fma", "sse4_1"]
    assert host_cpu_features("Features\t: fp asimd asimddp\n") == []


def test_agreement_tolerance_follows_the_quantization():
    import numpy as np

    want = np.array([[0.1, 0.9], [0.6, 0.4]], np.float32)
    fp32, fp16 = agreement_tolerance("fp32", want, 0.0), agreement_tolerance("fp16", want, 0.0)
    dynamic = agreement_tolerance("int8-dynamic", want, 0.0)
    full = agreement_tolerance("int8-full", want, 1 / 256)
    assert fp32["rtol"] < fp16["rtol"] < 1e-3 and fp32["atol"] < fp16["atol"]
    assert full["atol"] == pytest.approx(1.01 / 256) and full["top1"]
    assert dynamic["atol"] == pytest.approx(4 * 0.9 / 255) and dynamic["top1"]
    with pytest.raises(ValueError, match="as-is"):
        agreement_tolerance("as-is", want, 0.0)


@pytest.mark.parametrize("variant", ["tflite-fp32", "tflite-fp16", "tflite-int8-full",
                                     "tflite-int8-full-uint8io", "tflite-int8-dynamic"])
def test_litertjs_outputs_agree_with_litert_natively(mobilenet, tmp_path, variant):
    """The page's (dequantized) outputs are the native Interpreter's on the same images, within
    what the variant's quantization lets two correct kernels differ by (`agreement_tolerance`):
    the int8-I/O model's bindings path included, input quantization and all."""
    import base64

    import numpy as np

    from edge.garden.base import Preprocessing
    from edge.validate.metrics import snr_db
    from edge.validate.run import run_tflite

    rng = np.random.default_rng(7)
    target = mobilenet["targets"][0]
    images = rng.integers(0, 256, (3, *target.input_size, 3), dtype=np.uint8)
    result, artifact = _page_run(mobilenet, variant, tmp_path, images=images)
    assert result["error"] is None, result["error"]
    got = np.stack([np.frombuffer(base64.b64decode(o["b64"]), np.float32).reshape(o["shape"])
                    for o in result["outputs"]])[:, 0]
    inputs = Preprocessing(tuple(target.mean), tuple(target.std)).apply(images)
    want = run_tflite(artifact.main_file, inputs, threads=1)
    scale = artifact.manifest["io"]["outputs"][0]["scale"] or 0.0
    quantization = artifact.manifest["variant"]["quantization"]
    tol = agreement_tolerance(quantization, want, scale)
    where = (f"{variant} ({quantization}), tolerance {tol['basis']}: atol {tol['atol']:.3g}, "
             f"rtol {tol['rtol']:.3g}; max abs difference {np.max(np.abs(got - want)):.3g}, "
             f"SNR {snr_db(want, got):.1f} dB; native LiteRT on a host with CPU features "
             f"{', '.join(host_cpu_features()) or '(none read)'}, LiteRT.js on WASM SIMD")
    if tol["top1"]:
        assert np.array_equal(got.argmax(-1), want.argmax(-1)), \
            f"top-1 classes differ: {got.argmax(-1)} against {want.argmax(-1)}; {where}"
    np.testing.assert_allclose(got, want, atol=tol["atol"], rtol=tol["rtol"], err_msg=where)


def test_litertjs_calibration_workload(mobilenet, tmp_path):
    """prepare / timeRuns / release (the emulation's calibration and paired blocks) work for
    LiteRT.js, the int8-I/O model included."""

    def calibrate(page, config):
        prepared = page.evaluate("cfg => edgeHarness.prepare(cfg)", config)
        samples = page.evaluate("n => edgeHarness.timeRuns(n)", 4)
        page.evaluate("() => edgeHarness.release()")
        return {"prepared": prepared, "samples": samples}

    result, _ = _page_run(mobilenet, "tflite-int8-full", tmp_path, then=calibrate)
    assert result["error"] is None, result["error"]
    then = result["then"]
    assert then["prepared"]["backend"] == "litertjs-wasm"
    assert len(then["samples"]) == 4 and all(s > 0 for s in then["samples"])


@pytest.fixture(scope="module")
def measured_webgpu(mobilenet, tmp_path_factory):
    from edge.farm.emulation.methods import choose_emulation
    from tests.test_browser import _measure

    def cells(slug):
        return [Cell(slug["mobilenet_v2"], v, "litertjs-webgpu", "host")
                for v in ("tflite-fp32", "tflite-fp16", "tflite-int8-full")]

    emulation = choose_emulation()
    try:
        yield _measure(mobilenet, tmp_path_factory, cells, emulation)
    finally:
        emulation.close()


def test_litertjs_webgpu_runs_on_the_adapter_it_names(measured_webgpu):
    """LiteRT.js's WebGPU accelerator: float-I/O variants run on the page's WebGPU adapter, its
    outputs pass the fidelity check, and the record names the adapter and whether it is the
    host's software one. Without an adapter the cell is `unsupported` (never a silent CPU
    run); an int8-I/O model is `unsupported` through its known issue."""
    from edge.variants import explain_failure

    fp32 = measured_webgpu["litertjs-webgpu|tflite-fp32|host"]
    adapter = fp32["metrics"]["backend"]["webgpu"] if fp32["status"] == "ok" else None
    if fp32["status"] != "ok":
        assert fp32["status"] == "unsupported", fp32["error"]
        assert fp32["error"].startswith("backend webgpu unavailable"), fp32["error"]
        return
    assert adapter["available"] is True
    for variant in ("tflite-fp32", "tflite-fp16"):
        rec = measured_webgpu[f"litertjs-webgpu|{variant}|host"]
        assert rec["status"] == "ok", rec["error"]
        assert rec["metrics"]["backend"]["litert"]["accelerator"] == "webgpu"
        assert rec["threads"] is None  # a GPU cell has no CPU thread count
        gpu = rec["gpu"]
        assert gpu["renderer"]
        assert gpu["software"] == (bool(adapter.get("isFallbackAdapter"))
                                   or "swiftshader" in gpu["renderer"].lower())
        # the same labels as the reference; the values agree less closely than on the CPU (an
        # output SNR of about 25 dB here, as float16 arithmetic gives): pass or warn, never fail
        fidelity = rec["metrics"]["fidelity"]
        assert fidelity["status"] in ("pass", "warn"), fidelity
        assert fidelity["figures"]["top1_agreement"] == 1.0, fidelity
    int8 = measured_webgpu["litertjs-webgpu|tflite-int8-full|host"]
    if int8["status"] != "ok":
        assert int8["status"] == "unsupported", int8["error"]
        assert explain_failure("tflite-int8-full", "litertjs-webgpu", int8["error"]) is not None
