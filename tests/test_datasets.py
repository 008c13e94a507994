"""Tests of the synthetic evaluation sets and the label/colormap data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from edge.garden import datasets
from edge.garden.datasets import (
    SHAPE_CLASSES,
    TASKS,
    WORDS,
    EvalSet,
    classification_set,
    evaluation_set,
    load_image_folder,
    segmentation_set,
    text_set,
)
from edge.garden.labels import (
    ADE20K_LABELS,
    CITYSCAPES_COLORMAP,
    CITYSCAPES_LABELS,
    HEADS,
    PASCAL_LABELS,
    classification_labels,
    colorize,
    pascal_colormap,
)

SMALL_SIZES = [(32, 32), (65, 65), (96, 96), (48, 80), (80, 40)]


def _same(a: EvalSet, b: EvalSet) -> bool:
    if a.task != b.task or not np.array_equal(a.images, b.images):
        return False
    for x, y in ((a.labels, b.labels), (a.masks, b.masks)):
        if (x is None) != (y is None) or (x is not None and not np.array_equal(x, y)):
            return False
    if (a.boxes is None) != (b.boxes is None) or a.words != b.words:
        return False
    return a.boxes is None or all(
        np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes, strict=True)
    )


@pytest.fixture(scope="module")
def default_sets() -> dict[str, EvalSet]:
    sizes = {"classification": (224, 224), "segmentation": (257, 257), "text_detection": (320, 320)}
    return {task: evaluation_set(task, size) for task, size in sizes.items()}


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("task", TASKS)
def test_same_arguments_give_identical_sets(task: str) -> None:
    a = evaluation_set(task, (96, 80), n=6, seed=7)
    b = evaluation_set(task, (96, 80), n=6, seed=7)
    assert _same(a, b)
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize("task", TASKS)
def test_different_seed_differs(task: str) -> None:
    a = evaluation_set(task, (96, 80), n=6, seed=0)
    b = evaluation_set(task, (96, 80), n=6, seed=1)
    assert not np.array_equal(a.images, b.images)
    assert a.fingerprint() != b.fingerprint()


def test_fingerprint_is_sha256_and_keys_on_task_and_shape() -> None:
    image = np.zeros((2, 8, 8, 3), np.uint8)
    fp = EvalSet("classification", image).fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp == EvalSet("classification", image.copy()).fingerprint()
    assert fp != EvalSet("segmentation", image).fingerprint()
    assert fp != EvalSet("classification", image.reshape(2, 4, 16, 3)).fingerprint()
    flipped = image.copy()
    flipped[1, 3, 3, 0] = 1
    assert fp != EvalSet("classification", flipped).fingerprint()


def test_default_set_fingerprints_differ(default_sets: dict[str, EvalSet]) -> None:
    fingerprints = {s.fingerprint() for s in default_sets.values()}
    assert len(fingerprints) == 3


# --------------------------------------------------------------------------- shapes


def test_default_shapes_and_dtypes(default_sets: dict[str, EvalSet]) -> None:
    cls, seg, txt = (default_sets[t] for t in TASKS)
    assert cls.images.shape == (32, 224, 224, 3) and cls.images.dtype == np.uint8
    assert cls.labels is not None and cls.labels.shape == (32,)
    assert np.issubdtype(cls.labels.dtype, np.integer)
    assert cls.masks is None and cls.boxes is None and cls.words is None
    assert seg.images.shape == (16, 257, 257, 3) and seg.images.dtype == np.uint8
    assert seg.masks is not None and seg.masks.shape == (16, 257, 257)
    assert seg.masks.dtype == np.uint8 and seg.labels is None
    assert txt.images.shape == (12, 320, 320, 3) and txt.images.dtype == np.uint8
    assert txt.boxes is not None and txt.words is not None
    assert len(txt.boxes) == len(txt.words) == 12
    assert [s.task for s in (cls, seg, txt)] == list(TASKS)
    assert len(cls) == 32


@pytest.mark.parametrize("size", SMALL_SIZES)
@pytest.mark.parametrize("task", TASKS)
def test_small_and_non_square_sizes(task: str, size: tuple[int, int]) -> None:
    result = evaluation_set(task, size, n=5)
    assert result.images.shape == (5, *size, 3)
    if result.masks is not None:
        assert result.masks.shape == (5, *size)
        assert all(m.any() for m in result.masks)
    if result.boxes is not None:
        _check_boxes(result, size)


def test_arrays_are_read_only(default_sets: dict[str, EvalSet]) -> None:
    with pytest.raises(ValueError):
        default_sets["classification"].images[0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        default_sets["segmentation"].masks[0, 0, 0] = 1  # type: ignore[index]


def test_n_override_and_validation() -> None:
    assert len(evaluation_set("classification", (32, 32), n=3)) == 3
    with pytest.raises(ValueError):
        classification_set(n=0)
    with pytest.raises(ValueError):
        segmentation_set(size=(8, 8))


def test_unknown_task_names_valid_tasks() -> None:
    with pytest.raises(ValueError) as error:
        evaluation_set("depth", (64, 64))
    for task in TASKS:
        assert task in str(error.value)


# --------------------------------------------------------------------------- content


def test_classification_labels_are_balanced(default_sets: dict[str, EvalSet]) -> None:
    labels = default_sets["classification"].labels
    assert labels is not None
    counts = np.bincount(labels, minlength=len(SHAPE_CLASSES))
    assert len(counts) == len(SHAPE_CLASSES) and counts.min() >= 32 // len(SHAPE_CLASSES)


def test_images_are_not_flat(default_sets: dict[str, EvalSet]) -> None:
    for result in default_sets.values():
        assert all(image.std() > 5 for image in result.images)


def test_masks_consistent_with_images(default_sets: dict[str, EvalSet]) -> None:
    seg = default_sets["segmentation"]
    assert seg.masks is not None
    masks = seg.masks
    assert all((m > 0).any() for m in masks)
    assert masks.max() <= len(SHAPE_CLASSES)
    assert len(np.unique(masks[masks > 0])) > 1
    # Colour jumps where the label changes and is smooth inside a label region.
    images = seg.images.astype(np.int32)
    step = np.abs(images[:, :, 1:] - images[:, :, :-1]).sum(axis=-1)
    same = masks[:, :, 1:] == masks[:, :, :-1]
    assert step[~same].mean() > 4 * step[same].mean()


def _check_boxes(result: EvalSet, size: tuple[int, int]) -> None:
    height, width = size
    assert result.boxes is not None and result.words is not None
    for quads, words in zip(result.boxes, result.words, strict=True):
        assert quads.dtype == np.float32 and quads.ndim == 3 and quads.shape[1:] == (4, 2)
        assert 1 <= len(words) == len(quads) <= 4
        assert all(word.lower() in WORDS for word in words)
        assert quads[..., 0].min() >= 0 and quads[..., 0].max() <= width
        assert quads[..., 1].min() >= 0 and quads[..., 1].max() <= height
        for quad in quads:
            x, y = quad[:, 0].astype(np.float64), quad[:, 1].astype(np.float64)
            area = 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
            assert area > 0  # clockwise on screen (y down), from the top-left corner
            top = math.degrees(math.atan2(y[1] - y[0], x[1] - x[0]))
            assert -20.5 <= top <= 20.5


def test_text_boxes_inside_and_words_everywhere(default_sets: dict[str, EvalSet]) -> None:
    txt = default_sets["text_detection"]
    _check_boxes(txt, (320, 320))
    heights = [np.linalg.norm(q[3] - q[0]) for quads in txt.boxes or () for q in quads]
    assert min(heights) >= 8 and max(heights) <= 48


def test_text_ink_lies_inside_boxes(default_sets: dict[str, EvalSet]) -> None:
    # Every box holds legible, contrasting strokes.
    txt = default_sets["text_detection"]
    assert txt.boxes is not None
    for image, quads in zip(txt.images, txt.boxes, strict=True):
        inside = Image.new("L", image.shape[1::-1], 0)
        draw = ImageDraw.Draw(inside)
        for quad in quads:
            draw.polygon([tuple(p) for p in quad.tolist()], fill=1, outline=1)
        inside_mask = np.asarray(inside).astype(bool)
        grey = image.astype(np.int32).sum(axis=-1)
        step = np.abs(grey[:, 1:] - grey[:, :-1])
        inside_step = step[inside_mask[:, 1:] & inside_mask[:, :-1]]
        assert inside_step.max() > 150


@pytest.fixture
def hershey_text(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    datasets._render_word.cache_clear()
    monkeypatch.setattr(datasets, "_pil_font", lambda px: None)
    yield
    datasets._render_word.cache_clear()


@pytest.mark.usefixtures("hershey_text")
def test_text_falls_back_to_hershey_font() -> None:
    result = text_set(n=4, size=(96, 128), seed=2)
    _check_boxes(result, (96, 128))


def test_bundled_font_is_available() -> None:
    assert datasets._pil_font(20) is not None


# --------------------------------------------------------------------------- labels


def test_label_counts() -> None:
    assert len(PASCAL_LABELS) == 21 and PASCAL_LABELS[0] == "background"
    assert PASCAL_LABELS[-1] == "tvmonitor"
    assert len(CITYSCAPES_LABELS) == 19 and CITYSCAPES_LABELS[0] == "road"
    assert CITYSCAPES_LABELS[-1] == "bicycle"
    assert len(ADE20K_LABELS) == 151 and ADE20K_LABELS[:3] == ("background", "wall", "building")
    assert ADE20K_LABELS[-1] == "flag"
    for labels in (PASCAL_LABELS, CITYSCAPES_LABELS, ADE20K_LABELS):
        assert len(set(labels)) == len(labels)


def test_heads_match_label_counts() -> None:
    assert set(HEADS) == {"pascal", "cityscapes", "ade20k"}
    for labels, colormap in HEADS.values():
        assert colormap.shape == (len(labels), 3) and colormap.dtype == np.uint8
        assert len({tuple(c) for c in colormap.tolist()}) == len(labels)


def test_pascal_colormap() -> None:
    colormap = pascal_colormap(256)
    assert colormap.shape == (256, 3) and colormap.dtype == np.uint8
    assert len({tuple(c) for c in colormap.tolist()}) == 256
    assert colormap[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert colormap[15].tolist() == [192, 128, 128]  # person
    assert np.array_equal(pascal_colormap(21), colormap[:21])


def test_cityscapes_colormap() -> None:
    assert CITYSCAPES_COLORMAP.shape == (19, 3)
    assert CITYSCAPES_COLORMAP[0].tolist() == [128, 64, 128]
    assert CITYSCAPES_COLORMAP[1].tolist() == [244, 35, 232]
    assert CITYSCAPES_COLORMAP[-1].tolist() == [119, 11, 32]


def test_colorize() -> None:
    mask = np.array([[0, 1], [2, 20]])
    colormap = HEADS["pascal"][1]
    image = colorize(mask, colormap)
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    assert image[0, 1].tolist() == [128, 0, 0] and image[1, 1].tolist() == colormap[20].tolist()
    with pytest.raises(ValueError):
        colorize(np.array([[21]]), colormap)
    with pytest.raises(ValueError):
        colorize(np.zeros((2, 2, 2), np.int64), colormap)


def test_classification_labels() -> None:
    assert classification_labels(len(SHAPE_CLASSES)) == list(SHAPE_CLASSES)
    assert classification_labels(3) == ["class 0", "class 1", "class 2"]
    assert len(classification_labels(1000)) == 1000
    assert datasets.SHAPE_CLASSES == ("circle", "square", "triangle", "star", "ring", "cross")


# --------------------------------------------------------------------------- image folders


def _write_images(folder: Path) -> None:
    colours = {"b.png": (0, 255, 0), "a.jpg": (255, 0, 0), "c.BMP": (0, 0, 255)}
    for name, colour in colours.items():
        Image.new("RGB", (40, 30), colour).save(folder / name)
    Image.new("L", (10, 10), 200).save(folder / "d.webp")
    Image.new("RGBA", (12, 12), (10, 20, 30, 40)).save(folder / "e.png")
    (folder / "bad.jpeg").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("ignored")


def test_load_image_folder(tmp_path: Path) -> None:
    _write_images(tmp_path)
    with pytest.warns(UserWarning, match="bad.jpeg"):
        images = load_image_folder(tmp_path, (16, 24))
    assert images.shape == (5, 16, 24, 3) and images.dtype == np.uint8
    # Sorted by name: a.jpg (red), b.png (green), c.BMP (blue), d.webp (grey), e.png.
    assert np.argmax(images[0].reshape(-1, 3).mean(axis=0)) == 0
    assert images[1, 8, 12].tolist() == [0, 255, 0]
    assert images[2, 8, 12].tolist() == [0, 0, 255]
    assert images[3, 8, 12].tolist() == [200, 200, 200]
    assert images[4, 8, 12].tolist() == [10, 20, 30]


def test_load_image_folder_limit(tmp_path: Path) -> None:
    _write_images(tmp_path)
    images = load_image_folder(str(tmp_path), (8, 8), limit=2)
    assert images.shape == (2, 8, 8, 3)


def test_load_image_folder_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match="missing"):
        load_image_folder(missing, (8, 8))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_image_folder(empty, (8, 8))
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(UserWarning, match="x.png"), pytest.raises(ValueError, match="only_bad"):
        load_image_folder(only_bad, (8, 8))
