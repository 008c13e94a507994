"""The registry and the Keras models, generated from the registry with tiny configurations."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import SpecError
from edge.garden import DEFAULT_GARDEN, REGISTRY, get_spec, resolve
from edge.garden.base import TASKS, parse_model_arg
from edge.garden.datasets import evaluation_set

SPECS = sorted(REGISTRY)


def test_every_family_is_registered():
    assert set(REGISTRY) == {"mobilenet_v2", "efficientnet_b0", "efficientnet_lite0",
                             "deeplab_v3", "psenet"}
    assert {resolve(m).name for m in DEFAULT_GARDEN} == set(REGISTRY)


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_complete(name):
    spec = REGISTRY[name]
    assert spec.task in TASKS
    assert spec.tiny, f"{name} has no tiny test configuration"
    tiny = spec.resolve(spec.tiny)
    assert tiny.input_size[0] <= 96
    assert spec.variants and spec.metric_thresholds()
    assert spec.output
    assert len(tiny.labels) >= 1


def test_deeplab_heads_have_their_label_sets():
    sizes = {h: len(resolve(f"deeplab_v3:head={h}").labels)
             for h in ("pascal", "cityscapes", "ade20k")}
    assert sizes == {"pascal": 21, "cityscapes": 19, "ade20k": 151}
    cmap = get_spec("deeplab_v3").colormap_fn({"head": "cityscapes"})
    assert cmap.shape == (19, 3) and tuple(cmap[0]) == (128, 64, 128)


@pytest.mark.parametrize("text,message", [
    ("nosuch", "garden models: mobilenet_v2"),
    ("deeplab_v3:bogus=1", "valid parameters: head, size"),
    ("deeplab_v3:head=coco", "not one of: pascal, cityscapes, ade20k"),
    ("mobilenet_v2:size=abc", "must be int"),
    ("mobilenet_v2:size=8", "below the minimum"),
    ("psenet:size=100", "multiple of 32"),
    ("mobilenet_v2:size", "NAME:key=value"),
])
def test_bad_model_arguments_name_the_problem(text, message):
    with pytest.raises(SpecError, match=message):
        resolve(text)


def test_parse_and_slug():
    assert parse_model_arg("deeplab_v3:head=ade20k, size=129") == (
        "deeplab_v3", {"head": "ade20k", "size": "129"})
    assert resolve("deeplab_v3").slug == "deeplab_v3"
    assert resolve("deeplab_v3:size=129,head=ade20k").slug == "deeplab_v3:head=ade20k,size=129"


def _expected_shape(config):
    h, w = config.input_size
    p = config.params
    return {
        "classification": (1, p.get("classes", 0)),
        "segmentation": (1, h, w, len(config.labels)),
        "text_detection": (1, h, w, p.get("kernels", 0)),
    }[config.task]


@pytest.mark.parametrize("name", SPECS)
def test_tiny_model_builds_calibrates_and_traces_for_inference(name):
    import tensorflow as tf

    from edge.garden.training import calibrate_batchnorm

    spec = REGISTRY[name]
    config = spec.resolve(spec.tiny)
    model = config.build_keras(seed=0)
    assert tuple(model.output.shape[1:]) == _expected_shape(config)[1:]

    images = evaluation_set(config.task, config.input_size).images
    inputs = spec.preprocessing.apply(images)
    assert calibrate_batchnorm(model, inputs) > 0
    fn = tf.function(lambda x: model(x))
    graph = fn.get_concrete_function(tf.TensorSpec(config.input_shape, tf.float32)).graph
    training_ops = [op.name for op in graph.get_operations() if "moments" in op.name]
    assert not training_ops, f"batch norm traced in training mode: {training_ops[:3]}"

    out = np.concatenate([fn(tf.constant(inputs[i:i + 1])).numpy() for i in range(8)])
    # Calibrated random weights must not be degenerate: outputs differ across inputs.
    if config.task == "classification":
        assert len(set(out.argmax(-1))) > 1, "every image got the same top-1 class"
    elif config.task == "segmentation":
        masks = out.argmax(-1)
        assert len(np.unique(masks)) > 1 and not all((m == masks[0]).all() for m in masks[1:])
    else:
        assert out.std(axis=0).mean() > 1e-3 and 0.0 <= out.min() and out.max() <= 1.0


def test_seed_makes_weights_reproducible():
    spec = REGISTRY["mobilenet_v2"]
    config = spec.resolve(spec.tiny)
    a = config.build_keras(seed=1).get_weights()
    b = config.build_keras(seed=1).get_weights()
    c = config.build_keras(seed=2).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
