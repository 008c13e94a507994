"""Tests for edge.pse (PSENet post-processing) on hand-made kernel maps."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge.pse import (
    TextBox,
    binarize,
    box_f1,
    box_iou,
    detect,
    kernel_iou,
    min_area_boxes,
    progressive_scale_expansion,
)

HI, LO = 0.9, 0.1


def to_maps(kernels: np.ndarray) -> np.ndarray:
    """Bool (H, W, n) kernels -> float 'sigmoid' maps."""
    return np.where(kernels, HI, LO).astype(np.float32)


def rect_points(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


def rect_box(x0: float, y0: float, x1: float, y1: float, label: int = 1) -> TextBox:
    area = int((x1 - x0) * (y1 - y0))
    return TextBox(points=rect_points(x0, y0, x1, y1), area=area, score=1.0, label=label)


def touching_blobs(right_inner_col: int = 27) -> np.ndarray:
    """Two words whose full regions merge but whose inner kernels are separate.

    Kernel 0: one rectangle rows 10-19, cols 5-44. Kernel 1: rows 12-17, cols 7-22 (left)
    and cols ``right_inner_col``-42 (right). Kernel 2: rows 14-15, cols 9-18 and 31-40.
    """
    k = np.zeros((30, 50, 3), dtype=bool)
    k[10:20, 5:45, 0] = True
    k[12:18, 7:23, 1] = True
    k[12:18, right_inner_col:43, 1] = True
    k[14:16, 9:19, 2] = True
    k[14:16, 31:41, 2] = True
    return k


# ---------------------------------------------------------------- binarize


def test_binarize_masks_smaller_kernels_by_text_region() -> None:
    maps = np.full((4, 4, 3), LO, dtype=np.float32)
    maps[:2, :, 0] = HI  # text region: top half
    maps[:, :, 2] = HI  # smallest kernel everywhere, incl. outside the text region
    maps[1, 1, 1] = 0.5  # exactly at threshold -> off (strict >)
    b = binarize(maps)
    assert b.dtype == bool and b.shape == (4, 4, 3)
    assert b[..., 2].sum() == 8 and not b[2:, :, 2].any()
    assert not b[..., 1].any()
    with pytest.raises(ValueError):
        binarize(np.zeros((4, 4)))


# ---------------------------------------------------------------- PSE


def test_touching_text_regions_are_separated_by_kernels() -> None:
    kernels = touching_blobs()
    # Connected components of the text region alone would merge both words.
    n_cc, _ = cv2.connectedComponents(kernels[..., 0].astype(np.uint8), connectivity=4)
    assert n_cc - 1 == 1

    labels = progressive_scale_expansion(binarize(to_maps(kernels)))
    assert labels.dtype == np.int32 and labels.shape == (30, 50)
    assert set(np.unique(labels)) == {0, 1, 2}
    # Every text pixel is labelled; fronts meet half-way between the inner kernels.
    assert np.array_equal(labels > 0, kernels[..., 0])
    assert np.all(labels[10:20, 5:25] == 1)
    assert np.all(labels[10:20, 25:45] == 2)


def test_same_layer_conflict_goes_to_smallest_label() -> None:
    # Inner kernels end at col 22 and start at col 26: col 24 is reached by both at layer 2.
    labels = progressive_scale_expansion(touching_blobs(right_inner_col=26))
    assert np.all(labels[12:18, 23:25] == 1)
    assert np.all(labels[12:18, 25] == 2)


def test_expansion_stays_inside_largest_kernel() -> None:
    k = np.zeros((20, 20, 3), dtype=bool)
    k[5:15, 5:15, 0] = True
    k[3:17, 3:17, 1] = True  # middle kernel spills outside the text region
    k[8:12, 8:12, 2] = True
    k[0:3, 0:20, 0] = True  # a text area with no seed: must stay unlabelled
    for kernels in (k, binarize(to_maps(k))):
        labels = progressive_scale_expansion(kernels)
        assert np.array_equal(labels > 0, np.pad(np.ones((10, 10), bool), 5))
        assert labels[4, 4] == 0 and labels[1, 10] == 0


def test_small_seed_components_are_dropped() -> None:
    k = np.zeros((20, 40, 2), dtype=bool)
    k[2:10, 2:12, 0] = True
    k[2:10, 22:32, 0] = True
    k[5:7, 5:7, 1] = True  # 4 px seed
    k[5:7, 25:28, 1] = True  # 6 px seed
    labels = progressive_scale_expansion(k, min_kernel_area=5)
    assert labels.max() == 1
    assert not labels[:, :15].any()
    assert np.all(labels[2:10, 22:32] == 1)
    labels = progressive_scale_expansion(k, min_kernel_area=4)
    assert labels.max() == 2
    assert np.all(labels[2:10, 2:12] == 1) and np.all(labels[2:10, 22:32] == 2)


def test_seed_components_use_4_connectivity() -> None:
    k = np.zeros((10, 10, 1), dtype=bool)
    k[2:5, 2:5, 0] = True
    k[5:8, 5:8, 0] = True  # touches the first block only diagonally
    labels = progressive_scale_expansion(k)
    assert labels.max() == 2
    assert labels[4, 4] != labels[5, 5]


# ---------------------------------------------------------------- boxes


def test_axis_aligned_box_corners_area_and_score() -> None:
    labels = np.zeros((40, 60), dtype=np.int32)
    labels[10:20, 20:50] = 3
    score = np.zeros((40, 60), dtype=np.float32)
    score[10:20, 20:50] = 0.8
    (box,) = min_area_boxes(labels, score)
    assert box.label == 3 and box.area == 300
    assert box.score == pytest.approx(0.8)
    assert box.points.shape == (4, 2) and box.points.dtype == np.float32
    got = sorted(map(tuple, box.points.tolist()))
    want = sorted([(20.0, 10.0), (50.0, 10.0), (50.0, 20.0), (20.0, 20.0)])
    assert np.allclose(got, want, atol=1.0)
    assert not box.points.flags.writeable


def test_scale_multiplies_x_and_y() -> None:
    labels = np.zeros((40, 60), dtype=np.int32)
    labels[10:20, 20:50] = 1
    (box,) = min_area_boxes(labels, scale=(4.0, 2.0))
    xs, ys = box.points[:, 0], box.points[:, 1]
    assert xs.min() == pytest.approx(80.0, abs=4.0) and xs.max() == pytest.approx(200.0, abs=4.0)
    assert ys.min() == pytest.approx(20.0, abs=2.0) and ys.max() == pytest.approx(40.0, abs=2.0)
    assert box.area == 300  # area stays in map pixels


def test_rotated_rectangle_gives_rotated_box() -> None:
    src = cv2.boxPoints(((100.0, 100.0), (80.0, 24.0), 30.0))
    labels = np.zeros((200, 200), dtype=np.uint8)
    cv2.fillPoly(labels, [np.round(src).astype(np.int32)], 1)
    (box,) = min_area_boxes(labels.astype(np.int32))
    assert abs(cv2.contourArea(box.points)) == pytest.approx(80 * 24, rel=0.10)

    def long_edge_angle(pts: np.ndarray) -> float:
        edges = np.roll(pts, -1, axis=0) - pts
        e = edges[np.argmax(np.hypot(edges[:, 0], edges[:, 1]))]
        return math.degrees(math.atan2(float(e[1]), float(e[0]))) % 180.0

    diff = abs(long_edge_angle(box.points) - long_edge_angle(src)) % 180.0
    assert min(diff, 180.0 - diff) < 3.0
    assert 10.0 < long_edge_angle(box.points) % 90.0 < 80.0  # genuinely not axis-aligned


def test_min_area_and_min_score_filter_regions() -> None:
    labels = np.zeros((30, 30), dtype=np.int32)
    labels[0:3, 0:3] = 1  # 9 px
    labels[10:20, 10:20] = 2  # 100 px, low score
    labels[22:28, 0:10] = 3  # 60 px
    score = np.full((30, 30), 0.9, dtype=np.float32)
    score[10:20, 10:20] = 0.2
    assert [b.label for b in min_area_boxes(labels, score, min_area=10)] == [2, 3]
    assert [b.label for b in min_area_boxes(labels, score, min_area=9, min_score=0.5)] == [1, 3]
    assert [b.score for b in min_area_boxes(labels, min_area=1)] == [1.0, 1.0, 1.0]
    assert min_area_boxes(np.zeros((5, 5), np.int32)) == []


def test_detect_end_to_end() -> None:
    maps = to_maps(touching_blobs())
    boxes = detect(maps)
    assert [b.label for b in boxes] == [1, 2]
    assert [b.area for b in boxes] == [200, 200]
    assert all(b.score == pytest.approx(HI) for b in boxes)
    left = sorted(map(tuple, boxes[0].points.tolist()))
    assert np.allclose(left, sorted([(5, 10), (25, 10), (25, 20), (5, 20)]), atol=1.0)
    assert detect(maps, min_score=0.95) == []
    assert detect(maps, min_kernel_area=21) == []


# ---------------------------------------------------------------- box_iou


def test_box_iou() -> None:
    a = rect_points(0, 0, 10, 10)
    assert box_iou(a, a) == pytest.approx(1.0)
    assert box_iou(a, a[::-1]) == pytest.approx(1.0)  # orientation does not matter
    assert box_iou(a, rect_points(20, 20, 30, 30)) == 0.0
    assert box_iou(a, rect_points(10, 0, 20, 10)) == 0.0  # shared edge only
    assert box_iou(a, rect_points(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou(a, rect_points(0, 0, 5, 10)) == pytest.approx(0.5)
    rot = cv2.boxPoints(((50.0, 50.0), (40.0, 10.0), 37.0))
    assert box_iou(rot, rot) == pytest.approx(1.0, abs=1e-6)
    assert box_iou(rot, rot + 100.0) == 0.0


# ---------------------------------------------------------------- box_f1


def test_box_f1_perfect_and_partial() -> None:
    ref = [rect_box(0, 0, 10, 10), rect_box(20, 0, 30, 10)]
    r = box_f1(ref, ref)
    assert (r["precision"], r["recall"], r["f1"], r["matched"]) == (1.0, 1.0, 1.0, 2)

    pred = [rect_box(0, 0, 10, 10), rect_box(50, 50, 60, 60)]
    r = box_f1(pred, ref[:1])
    assert r["precision"] == 0.5 and r["recall"] == 1.0
    assert r["f1"] == pytest.approx(2 / 3)
    assert (r["n_pred"], r["n_ref"]) == (2, 1)

    r = box_f1([rect_box(5, 0, 15, 10)], ref[:1])  # IoU 1/3 < 0.5
    assert r["matched"] == 0 and r["f1"] == 0.0
    assert box_f1([rect_box(5, 0, 15, 10)], ref[:1], iou_threshold=0.3)["matched"] == 1


def test_box_f1_is_one_to_one() -> None:
    ref = [rect_box(0, 0, 10, 10)]
    pred = [rect_box(0, 0, 10, 10), rect_box(0, 0, 10, 9)]
    r = box_f1(pred, ref)
    assert r["matched"] == 1 and r["precision"] == 0.5 and r["recall"] == 1.0


def test_box_f1_matches_by_descending_iou() -> None:
    # p1 overlaps both refs (IoU 2/3 each); p2 overlaps only r1 (IoU 0.9). Taking p1-r1
    # first would leave p2 unmatched; descending-IoU greedy matches both.
    r1, r2 = rect_box(0, 0, 10, 10), rect_box(4, 0, 14, 10)
    p1, p2 = rect_box(2, 0, 12, 10), rect_box(0, 0, 10, 9)
    r = box_f1([p1, p2], [r1, r2])
    assert r["matched"] == 2 and r["f1"] == 1.0


def test_box_f1_empty_cases_never_score_from_nothing() -> None:
    r = box_f1([], [])
    assert r["f1"] is None and r["precision"] is None and r["recall"] is None
    assert r["note"] == "reference has no boxes"
    assert (r["matched"], r["n_pred"], r["n_ref"]) == (0, 0, 0)

    r = box_f1([rect_box(0, 0, 10, 10)], [])
    assert r["precision"] == 0.0 and r["recall"] is None and r["f1"] is None
    assert r["note"] == "reference has no boxes"

    r = box_f1([], [rect_box(0, 0, 10, 10)])
    assert r["precision"] is None and r["recall"] == 0.0 and r["f1"] == 0.0
    assert r["note"] != "reference has no boxes"


# ---------------------------------------------------------------- kernel_iou


def test_kernel_iou() -> None:
    k = np.zeros((10, 10, 2), dtype=bool)
    k[0:4, 0:10, 0] = True
    k[1:3, 2:8, 1] = True
    a = to_maps(k)
    assert kernel_iou(a, a) == pytest.approx(1.0)

    k2 = k.copy()
    k2[0:4, 5:10, 0] = False  # kernel 0 IoU 0.5; kernel 1 masked to cols 2-4 -> 6/12
    assert kernel_iou(a, to_maps(k2)) == pytest.approx((0.5 + 0.5) / 2)

    # Kernel 1 empty in both is skipped, not counted as 0 or 1.
    k3, k4 = k.copy(), k.copy()
    k3[..., 1] = False
    k4[..., 1] = False
    k4[0:4, 5:10, 0] = False
    assert kernel_iou(to_maps(k3), to_maps(k4)) == pytest.approx(0.5)

    # Smaller-kernel pixels outside the text region are masked away before comparing.
    k5 = k.copy()
    k5[6:9, :, 1] = True
    assert kernel_iou(a, to_maps(k5)) == pytest.approx(1.0)

    empty = np.zeros((10, 10, 2), dtype=np.float32)
    assert kernel_iou(empty, empty) is None
    with pytest.raises(ValueError):
        kernel_iou(a, a[:5])
