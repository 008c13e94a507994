"""Bring your own model: a Keras file, a SavedModel directory, a .tflite file."""

from __future__ import annotations

import numpy as np
import pytest

from edge import workflow
from edge.convert.cache import Store
from edge.convert.targets import user_target
from edge.errors import SpecError
from edge.variants import RECIPE_VARIANTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def user_keras(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    root = tmp_path_factory.mktemp("user")
    model.save(root / "clf.keras")
    model.export(str(root / "clf_saved_model"), verbose=False)
    return root


def _build(target, build_dir):
    summary = workflow.build([target], build_dir, jobs=1)
    assert not summary.failures, [o.error for o in summary.failures]
    keys = workflow.artifact_keys(summary)
    return summary, keys, workflow.validate(keys, build_dir)


def test_keras_file_infers_task_and_size_and_builds(user_keras, tmp_path):
    target = user_target(user_keras / "clf.keras", variants=("tflite-fp32", "tfjs-fp16"))
    assert target.task == "classification" and target.input_size == (48, 48)
    _, keys, fidelity = _build(target, tmp_path)
    by_variant = {f.variant: f for f in fidelity}
    assert by_variant["tflite-fp32"].status == "pass"
    assert by_variant["tfjs-fp16"].status == "n/a"
    manifest = Store(tmp_path).read("artifacts", keys[0])
    assert manifest["model"]["kind"] == "keras" and manifest["reference"]["params"] > 0


def test_saved_model_directory_with_user_images(user_keras, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(
            images / f"{i}.png")
    target = user_target(user_keras / "clf_saved_model", task="classification",
                         images=str(images), variants=("tflite-fp32", "tflite-int8-full"))
    _, _, fidelity = _build(target, tmp_path / "build")
    assert {f.variant: f.status for f in fidelity}["tflite-fp32"] == "pass"
    assert all(f.figures for f in fidelity)


def test_tflite_file_is_measured_as_tflite_only(user_keras, tmp_path):
    first = user_target(user_keras / "clf.keras", variants=("tflite-fp32",))
    _, keys, _ = _build(first, tmp_path / "a")
    tflite = Store(tmp_path / "a").path("artifacts", keys[0]) / "model.tflite"

    with pytest.raises(SpecError, match="can only be measured as TFLite"):
        user_target(tflite, variants=("tfjs-fp32",))
    assert user_target(tflite).variants == ("tflite-as-is", *RECIPE_VARIANTS)
    target = user_target(tflite, variants=("tflite-as-is",))
    assert target.variants == ("tflite-as-is",) and target.task == "classification"
    _, keys, fidelity = _build(target, tmp_path / "b")
    assert fidelity[0].status == "n/a" and "no float32 reference" in fidelity[0].reasons[0]
    manifest = Store(tmp_path / "b").read("artifacts", keys[0])
    assert manifest["sha256"] and manifest["ops"]
