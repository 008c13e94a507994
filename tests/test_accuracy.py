"""Task accuracy against labels: per-image counts, figures, the paired bootstrap of a drop and
the verdict as a fraction of float32."""

from __future__ import annotations

import numpy as np
import pytest

from edge import accuracy as acc


def _onehot(labels, classes=6):
    out = np.full((len(labels), classes), 0.01, np.float32)
    out[np.arange(len(labels)), labels] = 0.95
    return out


def test_classification_counts_and_figure():
    truth = np.array([0, 1, 2, 3, 4, 5, 0, 1])
    pred = np.array([0, 1, 2, 3, 4, 5, 2, 2])
    stats = acc.image_stats("classification", _onehot(pred), truth)
    assert stats.tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert acc.figure("classification", stats) == pytest.approx(0.75)


def test_segmentation_miou_over_present_classes_only():
    truth = np.zeros((2, 4, 4), np.uint8)
    truth[:, :2] = 3  # classes present: 0 and 3
    logits = np.zeros((2, 4, 4, 21), np.float32)
    logits[..., 0] = 1
    logits[0, :2, :, 3] = 2  # image 0 right, image 1 predicts background everywhere
    classes = acc.segmentation_classes(truth)
    assert classes.tolist() == [0, 3]
    stats = acc.image_stats("segmentation", logits, truth, classes)
    # class 0: tp 16, fp 8 (image 1's top half), fn 0; class 3: tp 8, fp 0, fn 8
    assert stats.sum(axis=0).tolist() == [[16, 8, 0], [8, 0, 8]]
    assert acc.figure("segmentation", stats) == pytest.approx((16 / 24 + 8 / 16) / 2)


def test_text_f1_matches_boxes_at_iou_half():
    maps = np.zeros((1, 64, 64, 3), np.float32)
    maps[0, 10:20, 10:40, :] = 0.9  # one word region, every kernel
    word = np.array([[10, 10], [40, 10], [40, 20], [10, 20]], np.float32)
    far = word + 30
    stats = acc.image_stats("text_detection", maps, [np.stack([word, far])])
    assert stats.tolist() == [[1, 1, 2]]  # matched, predicted, labelled
    assert acc.figure("text_detection", stats) == pytest.approx(2 / 3)


def test_identical_outputs_drop_nothing_and_pass():
    rng = np.random.default_rng(0)
    stats = (rng.random(200) < 0.8).astype(np.int64)
    result = acc.compare("classification", stats, stats, "synthetic")
    assert result.drop == 0 and result.drop_interval == (0.0, 0.0)
    assert result.verdict == "pass" and result.images == 200


def test_a_real_drop_fails_and_its_interval_excludes_zero():
    rng = np.random.default_rng(1)
    reference = (rng.random(200) < 0.9).astype(np.int64)
    variant = reference.copy()
    variant[np.flatnonzero(reference)[:20]] = 0  # 20 images lost: 10 points
    result = acc.compare("classification", variant, reference, "synthetic")
    assert result.drop == pytest.approx(0.10)
    lo, hi = result.drop_interval
    assert 0 < lo < 0.10 < hi
    assert result.verdict == "fail"
    assert "needs 98%" in result.reason()


def test_the_fraction_decides_not_the_absolute_drop():
    reference = np.array([1] * 100 + [0] * 100)  # 0.50
    variant = reference.copy()
    variant[:1] = 0  # 0.495: keeps 99 %
    assert acc.compare("classification", variant, reference, "x").verdict == "pass"
    variant[:3] = 0  # 0.485: keeps 97 %
    assert acc.compare("classification", variant, reference, "x").verdict == "fail"


def test_truth_round_trips_for_every_task(tmp_path):
    boxes = [np.ones((2, 4, 2), np.float32), np.zeros((0, 4, 2), np.float32)]
    for task, truth in (("classification", np.array([1, 2])),
                        ("segmentation", np.ones((2, 3, 3), np.uint8)),
                        ("text_detection", boxes)):
        acc.save_truth(tmp_path / f"{task}.npz", task, truth)
        back = acc.load_truth(tmp_path / f"{task}.npz")
        if task == "text_detection":
            assert [b.shape for b in back] == [(2, 4, 2), (0, 4, 2)]
        else:
            assert np.array_equal(back, truth)


def test_a_runtime_scores_its_returned_outputs_against_the_fidelity_labels(tmp_path):
    from edge.farm.cells import runtime_accuracy

    truth = np.array([0, 1, 2, 3])
    acc.save_truth(tmp_path / acc.FIDELITY_TRUTH_FILE, "classification", truth)
    reference = _onehot(np.array([0, 1, 2, 0]))  # float32: 3 of 4
    runtime = _onehot(np.array([0, 1, 5, 0]))  # this runtime: 2 of 4
    result = runtime_accuracy(runtime, reference, tmp_path, "classification")
    assert result["value"] == 0.5 and result["reference"] == 0.75
    assert result["drop"] == pytest.approx(0.25) and result["images"] == 4
    assert result["verdict"] == "fail"
    # No labels stored with the reference (an untrained model): nothing to score.
    assert runtime_accuracy(runtime, reference, tmp_path / "none", "classification") is None


def test_the_report_shows_host_and_runtime_accuracy_and_the_calibration_set():
    from edge.report.html import _accuracy_section
    from edge.report.table import tidy

    host = acc.compare("classification", np.array([1] * 91 + [0] * 109),
                       np.array([1] * 92 + [0] * 108), "synthetic held-out set").to_dict()
    runtime = acc.compare("classification", np.array([1, 1, 0, 1]), np.array([1, 1, 1, 1]),
                          "fidelity images (labelled)").to_dict()
    record = {"run_id": "r", "cell_id": "c", "model": "mobilenet_v2",
              "variant": "tflite-int8-full", "runtime": "litertjs-wasm", "device": "host",
              "status": "ok", "task": "classification", "host_accuracy": host,
              "calibration": {"source": "synthetic, seed 2", "images": 64},
              "metrics": {"fidelity": {"status": "pass", "accuracy": runtime}}}
    df = tidy([record])
    row = df.iloc[0]
    assert row["host_accuracy"] == 0.455 and row["accuracy_verdict"] == "pass"
    assert row["accuracy"] == 0.75 and row["accuracy_images"] == 4
    assert row["calibration"] == "synthetic, seed 2 (64 images)"
    html = _accuracy_section(df)
    assert "Task accuracy" in html and "0.455 (float32 0.460" in html
    assert "litertjs-wasm on host: 0.750" in html and "n = 4" in html
    assert "synthetic, seed 2 (64 images)" in html
    assert _accuracy_section(tidy([{**record, "host_accuracy": None,
                                    "metrics": {}}])) == ""


def test_no_verdict_when_float32_scores_nothing():
    zero = np.zeros((50, 3), np.int64)
    zero[:, 2] = 1  # one labelled box per image, nothing found or matched
    result = acc.compare("text_detection", zero, zero, "synthetic")
    assert result.reference == 0 and result.verdict == "n/a"
    assert "no verdict" in result.reason()


def test_the_picker_says_when_its_pick_fails_the_accuracy_verdict():
    from edge.report.pick import format_pick

    row = {"variant": "tflite-int8-full", "runtime": "litert", "threads": 2, "p90_ms": 9.4,
           "size_mb": 3.59, "fidelity": 1.0, "host_accuracy": 0.28, "host_accuracy_ref": 0.29,
           "accuracy_metric": "top1", "accuracy_verdict": "fail"}
    text = format_pick({"device": "pixel_5", "model": "m", "best": row, "why": "fastest",
                        "runnersUp": [{**row, "accuracy_verdict": "pass",
                                       "host_accuracy": 0.29}]})
    assert ("accuracy (fails its accuracy verdict): top1 0.280 on the host (fail, keeps 96.6% "
            "of float32)") in text
    assert "top1 0.290 on the host (pass, keeps 100.0% of float32)" in text
