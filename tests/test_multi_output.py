"""Fidelity for every output of a multi-output model: figures per output (SNR, largest error,
the task's metrics for the task's output), the worst output driving the verdict.

The models are real and made here: a Keras model with three heads of different shapes (class
probabilities, landmark coordinates, a small score map), built through the user-model pipeline
as a `.keras` file (its variants converted from the exported SavedModel) and as a float
`.tflite` (ai-edge-quantizer recipe variants checked against the file's own outputs).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.validate.metrics import compare_outputs, match_outputs, worst_status

SIZE = 24
THRESHOLDS = {"top1_agreement": {"float": (0.97, 0.85), "quantized": (0.80, 0.60)}}
OUTPUT_THRESHOLDS = {"snr_db": {"float": (35.0, 20.0), "quantized": (12.0, 6.0)}}


def _heads(n: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, 5)) * 3
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    landmarks = rng.standard_normal((n, 6, 2)).astype(np.float32)
    return probabilities.astype(np.float32), landmarks


def test_the_worst_output_drives_the_verdict():
    probabilities, landmarks = _heads()
    noisy = landmarks + np.random.default_rng(1).standard_normal(landmarks.shape) * 0.8
    per_output = compare_outputs("classification", ["output_0", "output_1"],
                                 [probabilities, landmarks], [probabilities, noisy],
                                 THRESHOLDS, "fp32", OUTPUT_THRESHOLDS)
    first, second = per_output
    assert first["role"] == "classification" and first["status"] == "pass"
    assert first["figures"]["top1_agreement"] == 1.0 and first["figures"]["max_abs_error"] == 0
    assert second["role"] == "output" and second["status"] == "fail"
    assert second["figures"]["snr_db"] < 20 and second["figures"]["max_abs_error"] > 1
    assert second["shape"] == [1, 6, 2]
    assert worst_status(o["status"] for o in per_output) == "fail"
    assert worst_status(["pass", "n/a", "warn"]) == "warn"


def test_outputs_are_matched_by_name_then_shape_then_order():
    names, shapes = ["output_0", "output_1"], [(5,), (6, 2)]
    assert match_outputs(names, shapes, {"output_1": (6, 2), "output_0": (5,)}) == (
        names, "name")
    assert match_outputs(names, shapes, {"Identity_1": (5,), "Identity": (6, 2)}) == (
        ["Identity_1", "Identity"], "shape")
    assert match_outputs(["a", "b"], [(5,), (5,)], {"x": (5,), "y": (5,)}) == (["x", "y"],
                                                                               "order")
    with pytest.raises(ValueError, match="1 outputs"):
        match_outputs(names, shapes, {"x": (5,)})


def _three_heads(keras):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    features = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    classes = keras.layers.Dense(4, activation="softmax", name="classes")(pooled)
    landmarks = keras.layers.Reshape((5, 2), name="landmarks")(keras.layers.Dense(10)(pooled))
    scores = keras.layers.Conv2D(2, 1, activation="sigmoid", name="scores")(features)
    return keras.Model(inputs, [classes, landmarks, scores])


@pytest.fixture(scope="module")
def three_heads(tmp_path_factory):
    import keras
    import tensorflow as tf

    root = tmp_path_factory.mktemp("multi-output")
    model = _three_heads(keras)
    model.save(root / "three_heads.keras")
    (root / "three_heads.tflite").write_bytes(
        tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return root


def _manifests(build: Path) -> dict[str, dict]:
    out = {}
    for path in (build / "artifacts").glob("*/manifest.json"):
        manifest = json.loads(path.read_text())
        out[manifest["variant"]["name"]] = manifest
    return out


def _check_per_output(fidelity: dict) -> None:
    outputs = fidelity["outputs"]
    assert [o["shape"][1:] for o in outputs] == [[4], [5, 2], [6, 6, 2]], outputs
    assert [o["role"] for o in outputs] == ["classification", "output", "output"]
    for o in outputs:
        assert o["status"] in ("pass", "warn", "fail") and o["figures"]["snr_db"] is not None
        assert o["figures"]["max_abs_error"] >= 0
    assert fidelity["status"] == worst_status(o["status"] for o in outputs)
    assert fidelity["figures"]["top1_agreement"] == outputs[0]["figures"]["top1_agreement"]


@pytest.mark.slow
def test_a_multi_output_keras_model_gets_figures_per_output(three_heads, tmp_path,
                                                            monkeypatch):
    from edge.convert.cache import Store
    from edge.convert.targets import user_target
    from edge.validate import run as validate_run
    from edge.workflow import build_step

    build = tmp_path / "build"
    target = user_target(three_heads / "three_heads.keras", task="classification",
                         variants=("tflite-fp32", "tflite-int8-full"))
    result = build_step([target], build)
    assert len(result.fidelity) == 2
    manifests = _manifests(build)
    for name in ("tflite-fp32", "tflite-int8-full"):
        _check_per_output(manifests[name]["fidelity"])
    fp32 = manifests["tflite-fp32"]["fidelity"]
    assert fp32["status"] == "pass", fp32
    assert all(o["figures"]["snr_db"] > 60 for o in fp32["outputs"]), fp32["outputs"]
    reference = Store(build).read("references", manifests["tflite-fp32"]["reference"]["key"])
    assert reference["outputs"] == 3 and len(reference["output_names"]) == 3

    # The same float32 variant with its landmarks disturbed: the other outputs stay perfect, the
    # disturbed one fails, and so does the variant.
    real = validate_run.run_model_named

    def disturbed(fmt, path, inputs):
        outputs = real(fmt, path, inputs)
        for name, array in outputs.items():
            if array.shape[1:] == (5, 2):
                rng = np.random.default_rng(0)
                outputs[name] = array + rng.standard_normal(array.shape).astype(np.float32)
        return outputs

    monkeypatch.setattr(validate_run, "run_model_named", disturbed)
    fid = validate_run.validate_artifact(Store(build), manifests["tflite-fp32"]["key"],
                                         force=True)
    by_shape = {tuple(o["shape"][1:]): o for o in fid.outputs}
    assert by_shape[(4,)]["status"] == by_shape[(6, 6, 2)]["status"] == "pass"
    assert by_shape[(5, 2)]["status"] == "fail"
    assert fid.status == "fail"
    assert any(r.startswith(by_shape[(5, 2)]["name"]) and "snr_db" in r for r in fid.reasons)
    stored = Store(build).read("artifacts", manifests["tflite-fp32"]["key"])["fidelity"]
    assert stored["status"] == "fail" and len(stored["outputs"]) == 3


@pytest.mark.slow
def test_a_multi_output_tflite_gets_figures_per_output(three_heads, tmp_path):
    from edge.convert.targets import user_target
    from edge.workflow import build_step

    build = tmp_path / "build"
    target = user_target(three_heads / "three_heads.tflite", task="classification",
                         variants=("tflite-as-is", "tflite-aiq-int8-weight"))
    build_step([target], build)
    manifest = _manifests(build)["tflite-aiq-int8-weight"]
    _check_per_output(manifest["fidelity"])
    assert manifest["fidelity"]["status"] in ("pass", "warn"), manifest["fidelity"]
