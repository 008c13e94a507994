"""PSENet post-processing: progressive scale expansion of text kernels into boxes.

Works on any model's output: ``kernel_maps`` is a float array shaped ``(H, W, n)``
(channels-last sigmoid maps) where channel 0 is the largest kernel (the full text
region) and channel ``n - 1`` the smallest. Pure NumPy + OpenCV.

Conventions:

* Connectivity is 4 everywhere: seed components of the smallest kernel are 4-connected
  components (as in the reference PSENet code), and expansion moves to 4-neighbours.
* Box coordinates are continuous image coordinates ``(x, y)``: map pixel ``(row, col)``
  covers ``[col, col + 1) x [row, row + 1)``, then x is multiplied by ``scale[0]`` and y by
  ``scale[1]``.
* The browser twin ``edge/data/web/pse.js`` gives the same label maps and regions and, at scale
  1, the same rectangles, reported in its own convention (centre, sides, angle of the long
  side) and computed exactly, while cv2.minAreaRect works in float32 with an angle range and
  corner order that vary between OpenCV versions. Boxes are therefore compared as corner sets
  within a small tolerance (tests/test_pse.py); where a region has several smallest rectangles
  the two may pick different ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "TextBox",
    "binarize",
    "box_f1",
    "box_iou",
    "detect",
    "kernel_iou",
    "min_area_boxes",
    "progressive_scale_expansion",
]

NO_REF_NOTE = "reference has no boxes"
NO_PRED_NOTE = "no predicted boxes"


@dataclass(frozen=True, eq=False)
class TextBox:
    """One detected text region.

    ``points``: (4, 2) float32 corners ``(x, y)`` in image coordinates (read-only),
    ``area``: region size in map pixels, ``score``: mean score over the region,
    ``label``: the region's label in the PSE label map.
    """

    points: np.ndarray
    area: int
    score: float
    label: int


def _check_maps(maps: np.ndarray, name: str) -> np.ndarray:
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.shape[-1] < 1:
        raise ValueError(f"{name} must be shaped (H, W, n) with n >= 1, got {maps.shape}")
    return maps


def binarize(kernel_maps: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Threshold ``(H, W, n)`` maps (``> threshold``); kernels 1..n-1 are masked by kernel 0."""
    maps = _check_maps(kernel_maps, "kernel_maps")
    kernels = maps > threshold
    kernels[..., 1:] &= kernels[..., :1]
    return kernels


def progressive_scale_expansion(kernels_bool: np.ndarray, min_kernel_area: int = 5) -> np.ndarray:
    """Label text instances by expanding the smallest kernel's components outwards.

    All kernels are first restricted to kernel 0 (a no-op for :func:`binarize` output).
    Seeds are the 4-connected components of kernel ``n - 1``; components with fewer than
    ``min_kernel_area`` pixels are dropped and the rest are numbered 1..K in raster order
    of their first pixel. Expansion then runs breadth-first
    through kernels ``n - 2 .. 0``: an unlabelled pixel of kernel ``i`` that is 4-adjacent
    to a labelled pixel takes that label, one BFS layer at a time (first come, first
    served). When several labels reach a pixel in the same layer, the smallest label wins.
    Returns an int32 ``(H, W)`` label map, 0 = background; every label lies inside kernel 0.
    """
    kernels = _check_maps(kernels_bool, "kernels_bool").astype(bool)
    kernels &= kernels[..., :1]
    h, w, _ = kernels.shape
    seed = np.ascontiguousarray(kernels[..., -1], dtype=np.uint8)
    n_cc, cc, stats, _ = cv2.connectedComponentsWithStats(seed, connectivity=4, ltype=cv2.CV_32S)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_kernel_area
    keep[0] = False
    relabel = np.zeros(n_cc, dtype=np.int32)
    relabel[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    labels = relabel[cc].ravel()

    for i in range(kernels.shape[-1] - 2, -1, -1):
        _expand_into(labels, kernels[..., i], h, w)
    return labels.reshape(h, w)


def _expand_into(labels: np.ndarray, kernel: np.ndarray, h: int, w: int) -> None:
    """Grow flat ``labels`` in place into ``kernel`` pixels, BFS layer by layer (4-adjacency).

    Free pixels whose 4-connected component of (free | labelled) holds a single label are
    filled in one step (no other label can reach them); layered BFS runs only where labels
    compete, which gives the same result as running it everywhere.
    """
    labelled = labels > 0
    free = kernel.ravel() & ~labelled
    if not free.any():
        return
    region = (free | labelled).reshape(h, w).astype(np.uint8)
    n_comp, comp = cv2.connectedComponents(region, connectivity=4, ltype=cv2.CV_32S)
    comp = comp.ravel()
    seeds = np.flatnonzero(labelled)
    seed_comp, seed_lab = comp[seeds], labels[seeds]
    lo = np.full(n_comp, np.iinfo(np.int32).max, dtype=np.int32)
    hi = np.zeros(n_comp, dtype=np.int32)
    np.minimum.at(lo, seed_comp, seed_lab)
    np.maximum.at(hi, seed_comp, seed_lab)
    single = lo == hi
    fill = free & single[comp]
    labels[fill] = lo[comp[fill]]
    free &= ~fill

    frontier = seeds[hi[seed_comp] > lo[seed_comp]]  # seeds in contested components
    while frontier.size:
        row, col = np.divmod(frontier, w)
        up, down, left, right = row > 0, row < h - 1, col > 0, col < w - 1
        src = np.concatenate([frontier[up], frontier[down], frontier[left], frontier[right]])
        dst = np.concatenate(
            [frontier[up] - w, frontier[down] + w, frontier[left] - 1, frontier[right] + 1]
        )
        ok = free[dst]
        dst, lab = dst[ok], labels[src[ok]]
        if dst.size == 0:
            break
        order = np.lexsort((lab, dst))  # by pixel, then smallest label first
        dst, lab = dst[order], lab[order]
        first = np.ones(dst.size, dtype=bool)
        first[1:] = dst[1:] != dst[:-1]
        dst, lab = dst[first], lab[first]
        labels[dst] = lab
        free[dst] = False
        frontier = dst


_PIXEL_CORNERS = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32)


def min_area_boxes(
    labels: np.ndarray,
    score_map: np.ndarray | None = None,
    min_area: int = 10,
    min_score: float = 0.0,
    scale: Sequence[float] = (1.0, 1.0),
) -> list[TextBox]:
    """Minimum-area rotated box (cv2.minAreaRect) of every labelled region, by label.

    Regions with fewer than ``min_area`` pixels or mean ``score_map`` below ``min_score``
    are dropped (score is 1.0 without a score map). The box encloses the region's pixel
    squares; ``scale = (sx, sy)`` multiplies x and y.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    if score_map is not None and np.shape(score_map) != labels.shape:
        raise ValueError(f"score_map shape {np.shape(score_map)} != labels shape {labels.shape}")
    flat = labels.ravel().astype(np.int64)
    idx = np.flatnonzero(flat > 0)
    if idx.size == 0:
        return []
    lab = flat[idx]
    n_lab = int(lab.max()) + 1
    counts = np.bincount(lab, minlength=n_lab)
    if score_map is None:
        scores = np.ones(n_lab)
    else:
        weights = np.asarray(score_map, dtype=np.float64).ravel()[idx]
        sums = np.bincount(lab, weights=weights, minlength=n_lab)
        scores = sums / np.maximum(counts, 1)
    order = np.argsort(lab, kind="stable")
    idx, lab = idx[order], lab[order]
    starts = np.searchsorted(lab, np.arange(n_lab))
    sxy = np.asarray(scale, dtype=np.float32).reshape(2)
    width = labels.shape[1]

    boxes: list[TextBox] = []
    for k in range(1, n_lab):
        area = int(counts[k])
        score = float(scores[k])
        if area == 0 or area < min_area or score < min_score:
            continue
        pix = idx[starts[k] : starts[k] + area]
        centres = np.stack([pix % width, pix // width], axis=1).astype(np.float32)
        hull = cv2.convexHull(centres).reshape(-1, 2)
        corners = (hull[:, None, :] + _PIXEL_CORNERS[None]).reshape(-1, 2)
        points = cv2.boxPoints(cv2.minAreaRect(corners)).astype(np.float32) * sxy
        points.setflags(write=False)
        boxes.append(TextBox(points=points, area=area, score=score, label=k))
    return boxes


def detect(
    kernel_maps: np.ndarray,
    threshold: float = 0.5,
    min_kernel_area: int = 5,
    min_area: int = 10,
    min_score: float = 0.0,
    scale: Sequence[float] = (1.0, 1.0),
) -> list[TextBox]:
    """Full PSENet post-processing: binarize, expand, box; score map is channel 0."""
    maps = _check_maps(kernel_maps, "kernel_maps")
    labels = progressive_scale_expansion(binarize(maps, threshold), min_kernel_area)
    return min_area_boxes(labels, maps[..., 0], min_area, min_score, scale)


def _as_quad(points: np.ndarray) -> np.ndarray:
    quad = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    if quad.shape[0] < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {quad.shape[0]}")
    return np.ascontiguousarray(quad)


def box_iou(a_points: np.ndarray, b_points: np.ndarray) -> float:
    """IoU of two convex polygons given as (N, 2) points (cv2.intersectConvexConvex)."""
    a, b = _as_quad(a_points), _as_quad(b_points)
    area_a = abs(float(cv2.contourArea(a)))
    area_b = abs(float(cv2.contourArea(b)))
    if area_a <= 0.0 or area_b <= 0.0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(a, b)
    inter = min(max(float(inter), 0.0), area_a, area_b)
    union = area_a + area_b - inter
    return float(min(inter / union, 1.0)) if union > 0.0 else 0.0


def box_f1(
    pred: Sequence[TextBox], ref: Sequence[TextBox], iou_threshold: float = 0.5
) -> dict[str, float | int | str | None]:
    """Precision/recall/F1 of ``pred`` against ``ref`` with greedy one-to-one matching.

    Pairs with IoU >= ``iou_threshold`` are matched in order of descending IoU (ties by
    pred then ref index). Keys: precision, recall, f1, matched, n_pred, n_ref, note.
    Undefined ratios are None: an empty ``ref`` never yields a score (note says so); an
    empty ``pred`` against a non-empty ``ref`` gives recall 0.0, f1 0.0, precision None.
    """
    n_pred, n_ref = len(pred), len(ref)
    pairs = []
    for i, p in enumerate(pred):
        for j, r in enumerate(ref):
            iou = box_iou(p.points, r.points)
            if iou >= iou_threshold:
                pairs.append((-iou, i, j))
    pairs.sort()
    used_p: set[int] = set()
    used_r: set[int] = set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_r:
            used_p.add(i)
            used_r.add(j)
    matched = len(used_p)

    result: dict[str, float | int | str | None] = {
        "precision": None,
        "recall": None,
        "f1": None,
        "matched": matched,
        "n_pred": n_pred,
        "n_ref": n_ref,
        "note": None,
    }
    if n_ref == 0:
        result["precision"] = 0.0 if n_pred else None
        result["note"] = NO_REF_NOTE
        return result
    recall = matched / n_ref
    result["recall"] = recall
    if n_pred == 0:
        result["f1"] = 0.0
        result["note"] = NO_PRED_NOTE
        return result
    precision = matched / n_pred
    result["precision"] = precision
    total = precision + recall
    result["f1"] = 2.0 * precision * recall / total if total > 0.0 else 0.0
    return result


def kernel_iou(a_maps: np.ndarray, b_maps: np.ndarray, threshold: float = 0.5) -> float | None:
    """Mean over kernels of the IoU of the binarized (masked) maps.

    Kernels empty in both are skipped; None when every kernel is empty in both.
    """
    a = binarize(a_maps, threshold)
    b = binarize(b_maps, threshold)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    inter = (a & b).sum(axis=(0, 1))
    union = (a | b).sum(axis=(0, 1))
    valid = union > 0
    if not valid.any():
        return None
    return float(np.mean(inter[valid] / union[valid]))
