"""ONNX variants (tf2onnx, float16, int8 QDQ) of the tiny MobileNetV2: built and cached like every
artifact, validated against the float32 reference in ONNX Runtime, and measured by the native
`onnxruntime` runtime in its worker process."""

from __future__ import annotations

import numpy as np
import pytest

from edge.convert.cache import Store
from edge.convert.pipeline import artifacts_for
from edge.farm.scheduling.matrix import Cell
from edge.variants import ONNX_VARIANTS
from tests.harness_page import run_page

pytestmark = pytest.mark.slow

#: Largest |web - native| output difference of ONNX Runtime Web against native ONNX Runtime on
#: the same model and images (softmax probabilities; seen: 8e-6, 5e-6 and 0.078, about one
#: step of the int8 output's quantization), and the share of images whose top-1 agrees (seen:
#: 32/32, 32/32, 31/32: the int8 kernels of the two builds differ).
TOLERANCE_WEB_VS_NATIVE = {"onnx-fp32": 2e-5, "onnx-fp16": 1e-4, "onnx-int8": 0.1}
TOP1_WEB_VS_NATIVE = {"onnx-fp32": 1.0, "onnx-fp16": 1.0, "onnx-int8": 0.9}


@pytest.fixture(scope="module")
def onnx_build(tmp_path_factory):
    """The tiny MobileNetV2 in every ONNX variant, built and validated (only what this module
    needs), then built a second time."""
    from edge import workflow
    from edge.convert.targets import garden_target
    from edge.garden import REGISTRY

    spec = REGISTRY["mobilenet_v2"]
    build_dir = tmp_path_factory.mktemp("build")
    target = garden_target(spec.resolve(spec.tiny), variants=ONNX_VARIANTS)
    first = workflow.build([target], build_dir, jobs=2)
    keys = workflow.artifact_keys(first)
    fidelity = {f.variant: f for f in workflow.validate(keys, build_dir)}
    second = workflow.build([target], build_dir, jobs=2)
    store = Store(build_dir)
    artifacts = {v: a for (_, v), a in artifacts_for([target], store).items()}
    return {"build_dir": build_dir, "targets": [target], "first": first, "second": second,
            "fidelity": fidelity, "artifacts": artifacts, "store": store}


def _reference(onnx_build):
    from edge.convert.reference import load_reference_outputs

    artifact = onnx_build["artifacts"]["onnx-fp32"]
    ref = artifact.manifest["reference"]["key"]
    return load_reference_outputs(onnx_build["store"].path("references", ref))


def test_every_onnx_variant_builds_then_comes_from_the_cache(onnx_build):
    first = {o.job.variant: o for o in onnx_build["first"].outcomes if o.job.kind == "artifact"}
    assert set(first) == set(ONNX_VARIANTS)
    for variant, outcome in first.items():
        assert outcome.status == "built", (variant, outcome.error)
    second = [o for o in onnx_build["second"].outcomes if o.job.kind == "artifact"]
    assert {o.status for o in second} == {"cached"}
    assert onnx_build["second"].converted == 0


def test_onnx_manifests_name_the_model_its_converters_and_its_ops(onnx_build):
    for variant, artifact in onnx_build["artifacts"].items():
        m = artifact.manifest
        assert m["format"] == "onnx" and m["variant"]["name"] == variant
        assert [f["path"] for f in m["files"]] == ["model.onnx"]
        assert (artifact.dir / "model.onnx").stat().st_size == m["bytes"]
        assert m["tools"]["tf2onnx"] == "1.17.0" and m["tools"]["onnxruntime"] != "missing"
        # the reference's static batch of 1 survives the conversion, NHWC as exported
        assert m["io"]["inputs"][0]["shape"] == m["model"]["input_shape"]
        assert m["io"]["inputs"][0]["shape"][0] == 1
        # every variant keeps float32 input and output
        assert m["io"]["inputs"][0]["dtype"] == m["io"]["outputs"][0]["dtype"] == "float32"
        assert m["op_count"] > 0
    ops = {v: a.manifest["ops"] for v, a in onnx_build["artifacts"].items()}
    assert "Conv" in ops["onnx-fp32"]
    assert "QuantizeLinear" not in ops["onnx-fp32"] and "Cast" in ops["onnx-fp16"]
    assert ops["onnx-int8"]["QuantizeLinear"] > 0 and ops["onnx-int8"]["DequantizeLinear"] > 0


def test_float16_is_smaller_than_float32_and_int8_smaller_still(onnx_build):
    size = {v: a.manifest["bytes"] for v, a in onnx_build["artifacts"].items()}
    assert size["onnx-fp16"] < 0.6 * size["onnx-fp32"], size
    # int8 weights, but ~250 QuantizeLinear/DequantizeLinear nodes and their scales beside them
    assert size["onnx-int8"] < size["onnx-fp16"] and size["onnx-int8"] < 0.45 * size["onnx-fp32"], \
        size


def test_onnx_variants_are_validated_in_onnxruntime_against_float32(onnx_build):
    fid = onnx_build["fidelity"]
    assert set(fid) == set(ONNX_VARIANTS)
    for variant, f in fid.items():
        assert f.runtime.startswith("onnxruntime "), (variant, f.runtime)
        assert f.status in ("pass", "warn", "fail"), (variant, f.reasons)
    assert fid["onnx-fp32"].status == "pass", fid["onnx-fp32"].reasons
    assert fid["onnx-fp32"].figures["top1_agreement"] == 1.0
    assert fid["onnx-fp32"].figures["snr_db"] > 80
    # float16 activations (not only weights, as in tflite-fp16): about 25 dB on the tiny
    # random-weight model, a warning against the float thresholds
    assert fid["onnx-fp16"].status in ("pass", "warn"), fid["onnx-fp16"].reasons
    assert 20 < fid["onnx-fp16"].figures["snr_db"] < fid["onnx-fp32"].figures["snr_db"]
    assert fid["onnx-fp16"].figures["top1_agreement"] >= 0.9
    # int8 activations on random weights: top-5 still agrees, the output SNR is near 0 dB
    assert fid["onnx-int8"].figures["top5_agreement"] >= 0.9
    assert fid["onnx-int8"].figures["snr_db"] < fid["onnx-fp16"].figures["snr_db"]
    # the figures are stored in the manifest, keyed by the runtime that made them
    stored = onnx_build["store"].read("artifacts", onnx_build["artifacts"]["onnx-int8"].key)
    assert stored["fidelity"]["runtime"] == fid["onnx-int8"].runtime


def test_onnxruntime_worker_outputs_agree_with_the_float32_reference(onnx_build):
    from edge.farm.runners.tflite_runner import run_tflite_cell

    images, ref_out = _reference(onnx_build)
    artifact = onnx_build["artifacts"]["onnx-fp32"]
    m = artifact.manifest["model"]
    run = run_tflite_cell(artifact.main_file, runtime="onnxruntime", threads=2, images=images,
                          mean=m["mean"], std=m["std"], return_outputs=len(images),
                          protocol={"warmup": 1, "max_warmup": 5, "min_runs": 5,
                                    "max_runs": 20, "min_seconds": 0.0})
    assert run.status == "ok", run.error
    assert run.metrics["api"] == "inference_session"
    assert run.metrics["providers"] == ["CPUExecutionProvider"]
    assert run.metrics["intra_op_threads"] == 2 and run.metrics["threads"] == 2
    assert run.metrics["runtime_version"] and run.metrics["inputs_source"] == "images"
    assert 5 <= len(run.metrics["samples_ms"]) <= 20
    assert len(run.outputs) == len(images)
    got = np.concatenate(run.outputs)
    assert got.shape == ref_out.shape
    # seen: 6e-6 (softmax probabilities)
    assert np.abs(got - ref_out).max() < 2e-5
    assert (got.argmax(-1) == ref_out.argmax(-1)).all()


def test_onnxruntime_cells_are_measured_with_threads_and_fidelity(onnx_build, tmp_path_factory):
    from edge.farm.emulation.methods import choose_emulation
    from tests.test_browser import _measure

    def cells(slug):
        return [Cell(slug["mobilenet_v2"], v, "onnxruntime", "host", 2) for v in ONNX_VARIANTS]

    emulation = choose_emulation()
    try:
        records = _measure(onnx_build, tmp_path_factory, cells, emulation)
    finally:
        emulation.close()
    for variant in ONNX_VARIANTS:
        rec = records[f"onnxruntime|{variant}|host"]
        assert rec["status"] == "ok", rec["error"]
        m = rec["metrics"]
        assert rec["threads"] == 2 and m["intra_op_threads"] == 2
        lat = m["latency"]
        assert lat["n"] >= 5 and 0 < lat["min"] <= lat["p50"] <= lat["max"]
        assert m["fidelity"]["images"] > 0
        assert m["fidelity"]["status"] in ("pass", "warn", "fail"), m["fidelity"]
    assert records["onnxruntime|onnx-fp32|host"]["metrics"]["fidelity"]["status"] == "pass"


def test_a_model_tf2onnx_cannot_convert_fails_with_the_converters_error(tmp_path):
    from edge.convert.onnx_models import ConversionError, build_onnx
    from edge.variants import get_variant

    broken = tmp_path / "saved_model"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConversionError, match=r"^tf2onnx failed \(exit code [1-9]\d*\): \S"):
        build_onnx(get_variant("onnx-fp32"), broken, np.zeros((1, 8, 8, 3), np.float32), out)
    assert not (out / "model.onnx").exists()


def test_onnx_variants_and_runtime_are_in_the_full_preset_only():
    from edge.farm.scheduling.matrix import load_matrix, shipped_matrix
    from edge.variants import DEFAULT_VARIANTS
    from edge.workflow import _scope

    matrix = load_matrix(shipped_matrix())
    assert not set(ONNX_VARIANTS) & set(DEFAULT_VARIANTS)
    assert not set(ONNX_VARIANTS) & set(matrix.variants)
    default = matrix.cells("default")
    assert not any(c.runtime == "onnxruntime" or c.variant.startswith("onnx-") for c in default)
    models, variants = _scope(matrix, "full", False)
    assert set(ONNX_VARIANTS) <= set(variants)
    import dataclasses

    full = dataclasses.replace(matrix, variants=variants).cells("full")
    onnx_cells = {(c.variant, c.runtime) for c in full if c.variant.startswith("onnx-")}
    assert {(v, "onnxruntime") for v in ONNX_VARIANTS} <= onnx_cells
    assert all(r in ("onnxruntime", "ort-wasm", "ort-webgpu") for _, r in onnx_cells)


# -- ONNX Runtime Web (ort-wasm) in real Chromium ---------------------------------------------

def _measured_in(runtime, onnx_build, tmp_path_factory):
    """Every ONNX variant measured in `runtime` on the host (a fixture's body)."""
    from edge.farm.emulation.methods import choose_emulation
    from tests.test_browser import _measure

    def cells(slug):
        return [Cell(slug["mobilenet_v2"], v, runtime, "host") for v in ONNX_VARIANTS]

    emulation = choose_emulation()
    try:
        yield _measure(onnx_build, tmp_path_factory, cells, emulation)
    finally:
        emulation.close()


@pytest.fixture(scope="module")
def web_measured(onnx_build, tmp_path_factory):
    yield from _measured_in("ort-wasm", onnx_build, tmp_path_factory)


@pytest.mark.browser
@pytest.mark.parametrize("variant", ONNX_VARIANTS)
def test_every_onnx_variant_runs_in_ort_wasm(web_measured, variant):
    rec = web_measured[f"ort-wasm|{variant}|host"]
    assert rec["status"] == "ok", rec["error"]
    m = rec["metrics"]
    assert m["backend"]["name"] == "ort-wasm"
    lat = m["latency"]
    assert lat["n"] >= 5 and 0 < lat["min"] <= lat["p50"] <= lat["max"]
    assert m["load_ms"] > 0 and m["first_inference_ms"] > 0
    assert m["memory"]["leakedTensors"] == 0  # every tensor the harness made was disposed
    fid = m["fidelity"]
    assert fid["images"] > 0 and fid["status"] in ("pass", "warn", "fail"), fid
    if variant == "onnx-fp32":
        assert fid["status"] == "pass", fid["reasons"]


@pytest.mark.browser
def test_ort_wasm_records_its_version_threads_and_simd(web_measured):
    rec = web_measured["ort-wasm|onnx-fp32|host"]
    facts = rec["metrics"]["backend"]
    ort = facts["ort"]
    assert ort["loaded"] is True and ort["version"] == "1.30.0"
    assert ort["executionProvider"] == "wasm" and ort["proxy"] is False
    assert rec["threads"] >= 1
    assert ort["threadsConfigured"] == rec["threads"] == ort["threadsEffective"]
    assert facts["crossOriginIsolated"] is True and facts["wasm"]["simd"] is True
    assert ort["wasmFiles"] == ["ort-wasm-simd-threaded.wasm"]


@pytest.fixture(scope="module")
def webgpu_measured(onnx_build, tmp_path_factory):
    yield from _measured_in("ort-webgpu", onnx_build, tmp_path_factory)


@pytest.mark.browser
def test_ort_webgpu_runs_on_the_adapter_it_names(webgpu_measured):
    """ONNX Runtime Web's WebGPU execution provider: the record names the adapter and whether
    it is the host's software one; the float32 model's outputs pass the fidelity check; a
    float16 model on an adapter without shader-f16 is `unsupported` through its known issue.
    Without an adapter every cell is `unsupported` (never a silent CPU run)."""
    from edge.variants import explain_failure

    fp32 = webgpu_measured["ort-webgpu|onnx-fp32|host"]
    if fp32["status"] != "ok":
        assert fp32["status"] == "unsupported", fp32["error"]
        assert fp32["error"].startswith("backend webgpu unavailable"), fp32["error"]
        return
    facts = fp32["metrics"]["backend"]
    adapter = facts["webgpu"]
    assert adapter["available"] is True
    assert facts["ort"]["executionProvider"] == "webgpu" and facts["ort"]["version"] == "1.30.0"
    assert fp32["threads"] is None
    gpu = fp32["gpu"]
    assert gpu["renderer"]
    assert gpu["software"] == (bool(adapter.get("isFallbackAdapter"))
                               or "swiftshader" in gpu["renderer"].lower())
    assert fp32["metrics"]["fidelity"]["status"] == "pass", fp32["metrics"]["fidelity"]
    for variant in ("onnx-fp16", "onnx-int8"):
        rec = webgpu_measured[f"ort-webgpu|{variant}|host"]
        if rec["status"] != "ok":
            assert rec["status"] == "unsupported", rec["error"]
            assert explain_failure(variant, "ort-webgpu", rec["error"]) is not None


def _ort_page_run(onnx_build, variant, tmp_path, images=None, guard=None, threads=1):
    """One harness run of `variant` in ONNX Runtime Web on a fresh page (`guard`: a Playwright
    route handler for every request); returns the harness's result."""
    store = onnx_build["store"]
    artifact = onnx_build["artifacts"][variant]
    m = artifact.manifest
    config = {"runtime": "ort-wasm",
              "modelUrl": f"/artifacts/artifacts/{artifact.dir.name}/{m['files'][0]['path']}",
              "input": {"shape": m["model"]["input_shape"], "dtype": "float32",
                        "mean": m["model"]["mean"], "std": m["model"]["std"]},
              "output": None, "returnOutputs": 1, "wasmThreads": threads,
              "protocol": {"warmup": 1, "max_warmup": 3, "min_runs": 3, "max_runs": 5,
                           "min_seconds": 0}}
    return run_page(store.root, config, tmp_path, images=images, guard=guard)


@pytest.mark.browser
@pytest.mark.parametrize("variant", ONNX_VARIANTS)
def test_ort_wasm_outputs_agree_with_native_onnxruntime(onnx_build, variant, tmp_path):
    from edge.convert.onnx_models import run_onnx
    from edge.farm.cells import decode_outputs
    from edge.garden.base import Preprocessing

    images, ref_out = _reference(onnx_build)
    artifact = onnx_build["artifacts"][variant]
    m = artifact.manifest["model"]
    result = _ort_page_run(onnx_build, variant, tmp_path, images=images, threads=2)
    assert result["error"] is None
    web = np.concatenate(decode_outputs(result["outputs"])).reshape(ref_out.shape)
    native = run_onnx(artifact.main_file,
                      Preprocessing(tuple(m["mean"]), tuple(m["std"])).apply(images))
    native = native.reshape(ref_out.shape)
    tolerance = TOLERANCE_WEB_VS_NATIVE[variant]
    if variant == "onnx-int8":
        # int8 QDQ kernels differ between WASM and a native CPU (VNNI, u8s8 saturation), so the
        # two need not agree with each other; each must be as close to float32 as the other
        from tests.test_litertjs import host_cpu_features

        ref = ref_out.astype(np.float32)
        err_web, err_native = np.abs(web - ref).mean(), np.abs(native - ref).mean()
        assert err_web <= 2 * err_native + tolerance / 10, (
            f"onnx-int8: mean error against float32 {err_web:.4f} in WASM, {err_native:.4f} "
            f"natively (host CPU features: {', '.join(host_cpu_features()) or 'none read'})")
        return
    assert np.abs(web - native).max() < tolerance, np.abs(web - native).max()
    # Top-1 agreement means something only where the native top-1 leads the runner-up by more
    # than twice the error the outputs may carry: int8 QDQ kernels differ between WASM and a
    # native CPU with VNNI, and the tiny random-weight model's classes are nearly tied.
    top2 = np.sort(native, axis=-1)[..., -2:]
    decided = (top2[..., 1] - top2[..., 0]) > 2 * tolerance
    agree = web.argmax(-1) == native.argmax(-1)
    assert agree[decided].mean() >= TOP1_WEB_VS_NATIVE[variant] if decided.any() else True, (
        f"{variant}: top-1 agreement {agree[decided].mean():.2f} on {int(decided.sum())} "
        f"images whose margin exceeds {2 * tolerance:g}")


@pytest.mark.browser
def test_ort_wasm_loads_with_the_network_cut_off(onnx_build, tmp_path):
    """Every request the page makes is to the loopback server: anything else is aborted and
    listed, and ONNX Runtime Web still loads its WASM and runs the model."""
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

    result = _ort_page_run(onnx_build, "onnx-fp32", tmp_path, guard=guard, threads=2)
    assert result["error"] is None
    assert len(result["samplesMs"]) >= 3 and result["outputs"]
    assert blocked == []
    assert any("/node_modules/onnxruntime-web/dist/" in u and u.endswith(".wasm")
               for u in served), served
