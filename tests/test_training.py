"""Training the garden: targets from labels, weights that move between input sizes and heads,
and a trained tiny model that learns, is cached, and scores its variants on held-out labels."""

from __future__ import annotations

import numpy as np
import pytest

from edge.garden import REGISTRY, resolve
from edge.garden.labels import SHAPE_CLASSES
from edge.garden.training import (
    SCHEDULES,
    TINY_SCHEDULE,
    _map_classes,
    kernel_maps,
    schedule_for,
    train_params,
    training_material,
)


def test_kernel_maps_shrink_from_the_word_to_the_smallest_kernel():
    quad = np.array([[10, 10], [50, 10], [50, 30], [10, 30]], np.float32)
    maps = kernel_maps([quad], (64, 64), kernels=4, min_scale=0.4)
    areas = maps.sum(axis=(0, 1))
    assert maps.shape == (64, 64, 4) and set(np.unique(maps)) == {0.0, 1.0}
    assert areas[0] == pytest.approx(40 * 20, rel=0.1)
    assert all(a > b for a, b in zip(areas[:-1], areas[1:], strict=True))  # nested kernels
    assert areas[-1] == pytest.approx(0.4 * 0.4 * 40 * 20, rel=0.25)
    assert (maps[..., -1] <= maps[..., 0]).all()


def test_training_resolution_keeps_the_size_parameter_valid():
    psenet = resolve("psenet")
    params = train_params(psenet, SCHEDULES["text_detection"])
    assert params["size"] == 160 and params["size"] % 32 == 0
    deeplab = resolve("deeplab_v3:head=ade20k")
    assert train_params(deeplab, SCHEDULES["segmentation"])["head"] == "pascal"


def test_deeplab_heads_share_one_training_and_tiny_configs_a_tiny_schedule():
    pascal, ade = resolve("deeplab_v3:head=pascal"), resolve("deeplab_v3:head=ade20k")
    schedule = schedule_for(pascal)
    assert training_material(pascal, schedule) == training_material(ade, schedule)
    tiny = REGISTRY["mobilenet_v2"].resolve(REGISTRY["mobilenet_v2"].tiny)
    assert schedule_for(tiny) == TINY_SCHEDULE
    assert schedule_for(resolve("mobilenet_v2")) == SCHEDULES["classification"]


def test_another_head_keeps_the_shape_channels_and_fills_the_rest_from_trained_ones():
    trained = np.arange(21, dtype=np.float32)  # bias of a 21-class (pascal) classifier
    mapped = _map_classes(trained, (151,))
    keep = len(SHAPE_CLASSES) + 1
    assert mapped[:keep].tolist() == list(range(keep))
    assert set(mapped[keep:].tolist()) == set(range(keep, 21))
    with pytest.raises(ValueError, match="cannot map"):
        _map_classes(np.zeros((3, 21)), (4, 151))


@pytest.mark.slow
def test_a_trained_tiny_build_learns_scores_its_variants_and_trains_once(tmp_path):
    from edge import workflow
    from edge.convert.cache import Store

    targets = workflow.garden_targets(["mobilenet_v2"], tiny=True, trained=True,
                                      variants=["tflite-fp32", "tflite-int8-full"])
    first = workflow.build_step(targets, tmp_path)
    assert not first.summary.failures, [o.error for o in first.summary.failures]
    training = [o for o in first.summary.outcomes if o.job.kind == "training"]
    assert [o.status for o in training] == ["built"]
    facts = training[0].manifest
    assert len(facts["losses"]) == 3 and facts["losses"][-1] < facts["losses"][0]  # it learns
    store = Store(tmp_path)
    ref = store.read("references", next(o.job.key for o in first.summary.outcomes
                                        if o.job.kind == "reference"))
    assert ref["accuracy"]["images"] == 200 and ref["training"]["key"] == training[0].job.key
    by_variant = {f.variant: f for f in first.fidelity}
    for name, fid in by_variant.items():
        assert fid.accuracy is not None and fid.accuracy["images"] == 200, name
        assert fid.status == fid.accuracy["verdict"]
    # The float32 TFLite variant scores as the float32 model on the same images.
    assert abs(by_variant["tflite-fp32"].accuracy["drop"]) <= 0.01
    int8 = store.read("artifacts", next(o.job.key for o in first.summary.outcomes
                                        if o.job.variant == "tflite-int8-full"))
    assert int8["calibration"]["images"] == 64
    assert "seed 2" in int8["calibration"]["source"]
    second = workflow.build(targets, tmp_path)
    assert second.converted == 0
    assert workflow.training_line(second).startswith("training: nothing to train")


def test_crops_keep_the_scale_and_the_classification_shape():
    from edge.garden.datasets import classification_set, segmentation_set
    from edge.garden.training import crops

    rng = np.random.default_rng(0)
    data = classification_set(n=24, size=(96, 96), seed=3)
    images, labels = crops("classification", data, (60, 60), {}, rng)
    assert images.shape == (24, 60, 60, 3) and labels.tolist() == data.labels.tolist()
    for crop, full, (cx, cy) in zip(images, data.images, data.centres, strict=True):
        # the crop is a window of the full image (same scale), holding the shape's centre
        hits = [(y, x) for y in range(0, 37) for x in range(0, 37)
                if np.array_equal(full[y:y + 60, x:x + 60], crop)]
        assert any(y <= cy < y + 60 and x <= cx < x + 60 for y, x in hits)
    seg = segmentation_set(n=4, size=(64, 64), seed=1)
    images, masks = crops("segmentation", seg, (32, 32), {}, rng)
    assert images.shape == (4, 32, 32, 3) and masks.shape == (4, 32, 32)
    for crop, mask, full, full_mask in zip(images, masks, seg.images, seg.masks, strict=True):
        (y, x), = [(y, x) for y in range(33) for x in range(33)
                   if np.array_equal(full[y:y + 32, x:x + 32], crop)][:1]
        assert np.array_equal(full_mask[y:y + 32, x:x + 32], mask)
