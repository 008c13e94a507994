"""Recipe variants: ai-edge-quantizer recipes applied to the float32 .tflite, with the real
quantizer and the real LiteRT Interpreter, on the tiny garden MobileNetV2 and on a user's own
float .tflite."""

from __future__ import annotations

from importlib import metadata

import pytest

from edge import workflow
from edge.convert import pipeline
from edge.convert.cache import Store
from edge.convert.targets import garden_target, user_target
from edge.errors import SpecError
from edge.garden import REGISTRY
from edge.variants import ONNX_VARIANTS, RECIPE_BASE, RECIPE_VARIANTS, get_variant

BITS = {"tflite-aiq-int8-weight": 8, "tflite-aiq-int8-dynamic": 8, "tflite-aiq-int4-weight": 4}


def _target(variants=(RECIPE_BASE, *RECIPE_VARIANTS)):
    spec = REGISTRY["mobilenet_v2"]
    return garden_target(spec.resolve(spec.tiny), variants=variants)


def test_the_default_matrix_builds_the_recipe_variants_and_full_measures_them_everywhere():
    from edge.farm.scheduling.matrix import load_matrix

    matrix = load_matrix()
    assert set(RECIPE_VARIANTS) <= set(matrix.variants)
    default = workflow.run_settings(matrix, preset="default", run_id="x")
    assert default.variants == list(matrix.variants)
    full = workflow.run_settings(matrix, preset="full", run_id="x")
    assert full.variants == [*matrix.variants, *ONNX_VARIANTS]
    slugs = [t.slug for t in full.targets()]
    cells = workflow.dataclasses.replace(matrix, variants=full.variants).cells("full", slugs)
    assert {(c.variant, c.runtime) for c in cells if c.variant in RECIPE_VARIANTS} >= {
        (v, "litert") for v in RECIPE_VARIANTS}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    build_dir = tmp_path_factory.mktemp("build")
    summary = workflow.build([_target()], build_dir, jobs=1)
    assert not summary.failures, [o.error for o in summary.failures]
    keys = workflow.artifact_keys(summary)
    fidelity = {f.variant: f for f in workflow.validate(keys, build_dir)}
    store = Store(build_dir)
    manifests = {store.read("artifacts", k)["variant"]["name"]: store.read("artifacts", k)
                 for k in keys}
    return {"build_dir": build_dir, "store": store, "keys": keys, "fidelity": fidelity,
            "manifests": manifests}


@pytest.mark.slow
def test_each_recipe_variant_builds_with_its_recipe_in_the_manifest(built):
    fp32 = built["manifests"][RECIPE_BASE]
    for name in RECIPE_VARIANTS:
        m = built["manifests"][name]
        recipe = m["recipe"]
        assert recipe["name"] == get_variant(name).recipe
        assert recipe["quantizer"] == metadata.version("ai-edge-quantizer")
        (rule,) = recipe["config"]
        weights = rule["op_config"]["weight_tensor_config"]
        assert weights["num_bits"] == BITS[name] and weights["granularity"] == "CHANNELWISE"
        assert rule["op_config"]["compute_precision"] == (
            "INTEGER" if "dynamic" in name else "FLOAT")
        # Built from the float32 .tflite artifact, named by key and content hash.
        assert m["base"] == {"variant": RECIPE_BASE, "key": fp32["key"],
                             "sha256": fp32["sha256"]}
        assert m["quantization"] == get_variant(name).quantization


@pytest.mark.slow
def test_recipe_variants_are_smaller_than_float32(built):
    fp32 = built["manifests"][RECIPE_BASE]["bytes"]
    ratio = {n: built["manifests"][n]["bytes"] / fp32 for n in RECIPE_VARIANTS}
    # Observed on the tiny MobileNetV2: 0.333, 0.330 and 0.243 (the float ops, biases and the
    # flatbuffer's structure are not quantized, so the ratio stays above 1/4 and 1/8).
    assert ratio["tflite-aiq-int8-weight"] < 0.36
    assert ratio["tflite-aiq-int8-dynamic"] < 0.36
    assert ratio["tflite-aiq-int4-weight"] < 0.26
    assert ratio["tflite-aiq-int4-weight"] < 0.8 * ratio["tflite-aiq-int8-weight"]


@pytest.mark.slow
def test_recipe_variants_run_in_litert_and_agree_with_float32(built):
    fid = built["fidelity"]
    assert fid[RECIPE_BASE].status == "pass"
    for name in RECIPE_VARIANTS:
        assert fid[name].status != "error", fid[name].reasons  # the Interpreter ran it
        assert fid[name].runtime.startswith("litert ")
        assert fid[name].figures["top5_agreement"] >= 0.9, (name, fid[name].figures)
        # recorded in the manifest, as every variant's fidelity is
        assert built["store"].read("artifacts", built["manifests"][name]["key"])[
            "fidelity"]["status"] == fid[name].status
    # Observed on the tiny (random-weight, 6-class) model: SNR 7.2, 3.7 and -0.8 dB.
    snr = {n: fid[n].figures["snr_db"] for n in RECIPE_VARIANTS}
    assert snr["tflite-aiq-int8-weight"] > 5.0
    assert fid["tflite-aiq-int8-weight"].figures["top1_agreement"] >= 0.75
    assert snr["tflite-aiq-int8-dynamic"] > 2.0
    assert snr["tflite-aiq-int8-weight"] > snr["tflite-aiq-int4-weight"] + 3.0


@pytest.mark.slow
def test_second_build_converts_nothing(built):
    store = built["store"]
    assert pipeline.plan([_target()], store).to_convert == 0
    summary = workflow.build([_target()], built["build_dir"], jobs=1)
    assert {o.status for o in summary.outcomes} == {"cached"}


@pytest.mark.slow
def test_recipe_variant_alone_builds_its_float32_base_as_a_prerequisite(built):
    store = built["store"]
    jobs = pipeline.plan([_target(("tflite-aiq-int4-weight",))], store).artifacts
    base = [j for j in jobs if j.prerequisite]
    assert [j.variant for j in base] == [RECIPE_BASE] and base[0].cached
    (recipe,) = [j for j in jobs if not j.prerequisite]
    assert recipe.cached and recipe.base_key == base[0].key
    # The measured artifacts of the target are its own variants, not the prerequisite.
    assert [j.variant for j in pipeline.built_jobs([_target(("tflite-aiq-int4-weight",))],
                                                   store)] == ["tflite-aiq-int4-weight"]


@pytest.mark.slow
def test_users_float_tflite_gets_the_recipe_variants_checked_against_itself(built, tmp_path):
    fp32 = built["manifests"][RECIPE_BASE]
    tflite = built["store"].path("artifacts", fp32["key"]) / "model.tflite"
    target = user_target(tflite)
    assert target.variants == ("tflite-as-is", *RECIPE_VARIANTS)
    summary = workflow.build([target], tmp_path, jobs=1)
    assert not summary.failures, [o.error for o in summary.failures]
    keys = workflow.artifact_keys(summary)
    fidelity = {f.variant: f for f in workflow.validate(keys, tmp_path)}
    assert fidelity["tflite-as-is"].status == "n/a"  # measured unchanged, nothing to compare
    store = Store(tmp_path)
    for name in RECIPE_VARIANTS:
        assert fidelity[name].status != "n/a" and fidelity[name].figures, name
        assert fidelity[name].figures["top5_agreement"] >= 0.9
        m = store.read("artifacts", next(k for k in keys
                                         if store.read("artifacts", k)["variant"]["name"] == name))
        assert m["base"]["variant"] == "tflite-as-is"
        assert m["base"]["sha256"] == fp32["files"][0]["sha256"]
        # The quantizer is deterministic: the same float model gives the same bytes.
        assert m["files"][0]["sha256"] == built["manifests"][name]["files"][0]["sha256"]
    assert workflow.build([target], tmp_path, jobs=1).outcomes[-1].status == "cached"


@pytest.mark.slow
def test_an_already_quantized_tflite_gets_no_recipe_variants(built):
    int8 = built["manifests"]["tflite-aiq-int8-dynamic"]
    tflite = built["store"].path("artifacts", int8["key"]) / "model.tflite"
    assert user_target(tflite).variants == ("tflite-as-is",)
    with pytest.raises(SpecError, match="already quantized"):
        user_target(tflite, variants=("tflite-aiq-int4-weight",))


QUICK = {"warmup": 2, "max_warmup": 2, "min_runs": 5, "min_seconds": 0.0, "max_runs": 20,
         "target_ci": 10.0}


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["litert", "litert-compiled"])
def test_recipe_variants_are_measured_natively(built, runtime):
    from edge.farm.runners.tflite_runner import run_tflite_cell

    for name in RECIPE_VARIANTS:
        path = built["store"].path("artifacts", built["manifests"][name]["key"]) / "model.tflite"
        run = run_tflite_cell(path, runtime=runtime, protocol=QUICK)
        assert run.status == "ok", (name, run.error, run.stderr_tail)


@pytest.mark.slow
def test_tflite_runtime_rejects_int4_weights_as_a_known_issue(built):
    from edge.farm.runners.tflite_runner import run_tflite_cell, tflite_runtime_python
    from edge.variants import explain_failure

    if tflite_runtime_python() is None:
        pytest.skip("needs the tflite-runtime environment (made by `nox -s device_matrix`)")
    path = built["store"].path(
        "artifacts", built["manifests"]["tflite-aiq-int4-weight"]["key"]) / "model.tflite"
    run = run_tflite_cell(path, runtime="tflite-runtime", protocol=QUICK)
    if not run.metrics.get("runtime_version", "").startswith("2.14"):
        pytest.skip(f"tflite-runtime {run.metrics.get('runtime_version')}, not 2.14")
    assert run.status == "failed"
    issue = explain_failure("tflite-aiq-int4-weight", "tflite-runtime", run.error)
    assert issue is not None and "DEQUANTIZE" in issue.reason, run.error
    # Its int8 siblings run there.
    for name in ("tflite-aiq-int8-weight", "tflite-aiq-int8-dynamic"):
        path = built["store"].path("artifacts", built["manifests"][name]["key"]) / "model.tflite"
        assert run_tflite_cell(path, runtime="tflite-runtime", protocol=QUICK).status == "ok"
