"""Fidelity metrics and the pass/warn/fail judgement."""

from __future__ import annotations

import numpy as np
import pytest

from edge.garden.base import DEFAULT_THRESHOLDS
from edge.validate import metrics


def test_classification_identical_and_perturbed():
    rng = np.random.default_rng(0)
    ref = rng.random((20, 10)).astype(np.float32)
    same = metrics.classification(ref, ref.copy())
    assert same["top1_agreement"] == 1.0 and same["snr_db"] == float("inf")
    swapped = ref.copy()
    swapped[:5] = swapped[:5, ::-1]  # reverse the ranking of five rows
    figures = metrics.classification(ref, swapped)
    assert figures["top1_agreement"] == pytest.approx(0.75)
    assert figures["snr_db"] < 20


def test_snr_of_known_noise():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=100_000)
    noisy = ref + rng.normal(scale=0.1, size=ref.shape)  # signal/noise power 100 -> 20 dB
    assert metrics.snr_db(ref, noisy) == pytest.approx(20.0, abs=0.2)


def test_segmentation_metrics():
    ref = np.zeros((1, 4, 4, 3), np.float32)
    ref[0, :, :2, 1] = 1  # left half class 1, right half class 0
    var = ref.copy()
    assert metrics.segmentation(ref, var)["mean_iou"] == 1.0
    var[0, :, 1, 1] = 0  # a column of class 1 becomes class 0
    figures = metrics.segmentation(ref, var)
    assert figures["pixel_agreement"] == pytest.approx(0.75)
    # class 1: 4/8 ; class 0: 8/12
    assert figures["mean_iou"] == pytest.approx((0.5 + 8 / 12) / 2)


def test_text_metric_refuses_to_score_nothing():
    empty = np.zeros((2, 32, 32, 3), np.float32)
    figures = metrics.text_detection(empty, empty)
    assert figures["box_f1"] is None and figures["kernel_iou"] is None
    assert "no boxes" in figures["note"] or "empty" in figures["note"]


def test_text_metric_on_boxes():
    maps = np.zeros((1, 64, 64, 2), np.float32)
    maps[0, 10:20, 5:40, 0] = 1.0
    maps[0, 12:18, 8:37, 1] = 1.0
    figures = metrics.text_detection(maps, maps.copy())
    assert figures["box_f1"] == 1.0 and figures["kernel_iou"] == 1.0
    shifted = np.roll(maps, 30, axis=1)
    assert metrics.text_detection(maps, shifted)["box_f1"] == 0.0


def test_judge_levels_and_precision_classes():
    th = DEFAULT_THRESHOLDS["classification"]
    good = {"top1_agreement": 1.0, "top5_agreement": 1.0, "snr_db": 50.0}
    assert metrics.judge(good, th, "fp32") == ("pass", [])
    meh = {**good, "top1_agreement": 0.9}
    assert metrics.judge(meh, th, "fp16")[0] == "warn"
    assert metrics.judge(meh, th, "int8-full")[0] == "pass"  # looser for integer variants
    bad = {**good, "snr_db": 3.0}
    status, reasons = metrics.judge(bad, th, "int8-full")
    assert status == "fail" and any("snr_db" in r for r in reasons)
    assert metrics.judge({}, th, "fp32")[0] == "n/a"


def test_snr_and_mean_iou_match_their_definitions_on_a_large_batch():
    """The chunked float64 sums and the confusion-matrix IoU give the textbook figures on a
    batch larger than one chunk (a segmentation batch is hundreds of MB)."""
    import numpy as np

    from edge.validate.metrics import _CHUNK, mean_iou, snr_db

    rng = np.random.default_rng(3)
    ref = rng.normal(2.0, 1.0, size=(_CHUNK + 12345, 5)).astype(np.float32)
    var = ref + rng.normal(0, 0.05, size=ref.shape).astype(np.float32)
    r64, v64 = ref.astype(np.float64), var.astype(np.float64)
    want = 10 * np.log10(np.sum((r64 - r64.mean()) ** 2) / np.sum((r64 - v64) ** 2))
    assert snr_db(ref, var) == pytest.approx(want, rel=1e-9)
    a, b = ref.argmax(-1), var.argmax(-1)
    b[:1000] = 7  # a class only the variant predicts
    classes = np.union1d(a, b)
    ious = [np.sum((a == c) & (b == c)) / np.sum((a == c) | (b == c)) for c in classes]
    assert mean_iou(a, b) == pytest.approx(float(np.mean(ious)), rel=1e-12)
