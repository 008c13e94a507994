"""A user's labelled data (`edge build --eval-data DIR`): loading, checking, splitting.

Layouts, by task:

- classification: one folder per class, `DIR/<class>/<image>`. Classes map to output indices by
  the model's label names when they include every folder name, else in sorted folder order.
- segmentation: `DIR/images/<name>.<ext>` and `DIR/masks/<name>.png`, a single-channel image of
  class indices (the model's output channels), same size as its image.
- text_detection: `DIR/images/<name>.<ext>` and `DIR/boxes/<name>.txt`, one word per line as
  `x1,y1,x2,y2,x3,y3,x4,y4[,text]` (ICDAR 2015 style, pixel coordinates of the image file).

Every image is resized to the model's input size (masks with nearest-neighbour, boxes scaled).
The set is split by a fixed order (a hash of each file name): the first `CALIBRATION_FRACTION`
(at least one image, at most `CALIBRATION_MAX`) for int8 calibration, the rest for task accuracy
and fidelity; no image is in both.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edge.errors import EvalDataError
from edge.garden.datasets import IMAGE_SUFFIXES, EvalSet

CALIBRATION_FRACTION = 0.2
CALIBRATION_MAX = 100
#: Images compared with the float32 reference's outputs (the rest count for accuracy only).
FIDELITY_MAX = 32


@dataclass(frozen=True)
class LabelledData:
    source: str
    calibration: EvalSet
    holdout: EvalSet
    classes: tuple[str, ...] = ()


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_image(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    try:
        with Image.open(path) as opened:
            picture = ImageOps.exif_transpose(opened).convert("RGB")
            original = picture.size  # (W, H)
            picture = picture.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise EvalDataError(f"{path}: not a readable image ({exc})") from None
    return np.asarray(picture, np.uint8), original


def _order(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())


def _split(n: int) -> int:
    """How many of n images go to calibration."""
    if n < 2:
        raise EvalDataError(f"labelled data needs at least 2 images (one for calibration, one "
                            f"for accuracy), got {n}")
    return min(CALIBRATION_MAX, max(1, int(n * CALIBRATION_FRACTION)), n - 1)


def load(folder: str | Path, task: str, size: tuple[int, int],
         labels: list[str] | None = None) -> LabelledData:
    """Load and split a labelled folder for `task` at input `size` (H, W); errors name the
    file or folder at fault. The arrays are read-only and shared: a process that asks again
    for the same folder, task, size and labels gets the same sets without reading it again."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalDataError(f"--eval-data: folder not found: {folder}")
    return _load(folder.resolve(), task, tuple(size), tuple(labels) if labels else None)


@functools.lru_cache(maxsize=4)
def _load(folder: Path, task: str, size: tuple[int, int],
          labels: tuple[str, ...] | None) -> LabelledData:
    loader = {"classification": _classification, "segmentation": _segmentation,
              "text_detection": _text}[task]
    return loader(folder, size, list(labels) if labels else None)


def _classification(folder, size, labels) -> LabelledData:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise EvalDataError(f"{folder}: classification data needs one folder per class (at "
                            f"least two), found {len(classes)}")
    by_name = labels and set(classes) <= set(labels)
    index = {c: (labels.index(c) if by_name else i) for i, c in enumerate(classes)}
    files = []
    for c in classes:
        found = _images_in(folder / c)
        if not found:
            raise EvalDataError(f"{folder / c}: no image ({', '.join(IMAGE_SUFFIXES)})")
        files += [(p, index[c]) for p in found]
    ordered = _order([p for p, _ in files])
    label_of = dict(files)
    k = _split(len(ordered))

    def make(paths):
        images = np.stack([_read_image(p, size)[0] for p in paths])
        return EvalSet("classification", images,
                       labels=np.array([label_of[p] for p in paths], np.int64))

    return LabelledData(str(folder), make(ordered[:k]), make(ordered[k:]), tuple(classes))


def _pairs(folder: Path, label_dir: str, suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
    images_dir, labels_dir = folder / "images", folder / label_dir
    for d in (images_dir, labels_dir):
        if not d.is_dir():
            raise EvalDataError(f"{folder}: expected the folders images/ and {label_dir}/; "
                                f"{d.name}/ is missing")
    pairs = []
    for image in _images_in(images_dir):
        label = next((labels_dir / (image.stem + s) for s in suffixes
                      if (labels_dir / (image.stem + s)).is_file()), None)
        if label is None:
            raise EvalDataError(f"{image}: no label file {label_dir}/{image.stem}"
                                f"{suffixes[0]}")
        pairs.append((image, label))
    if not pairs:
        raise EvalDataError(f"{images_dir}: no image ({', '.join(IMAGE_SUFFIXES)})")
    return pairs


def _segmentation(folder, size, labels) -> LabelledData:
    pairs = dict(_pairs(folder, "masks", (".png",)))
    ordered = _order(list(pairs))
    k = _split(len(ordered))

    def mask(path: Path, image_size: tuple[int, int]) -> np.ndarray:
        try:
            with Image.open(path) as opened:
                if opened.mode not in ("L", "P", "I", "I;16"):
                    raise EvalDataError(f"{path}: a mask must be a single-channel image of "
                                        f"class indices, got mode {opened.mode}")
                if opened.size != image_size:
                    raise EvalDataError(f"{path}: mask is {opened.size[0]}x{opened.size[1]}, "
                                        f"its image {image_size[0]}x{image_size[1]}")
                m = opened.resize((size[1], size[0]), Image.Resampling.NEAREST)
                values = np.asarray(m).astype(np.int64)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise EvalDataError(f"{path}: not a readable mask ({exc})") from None
        if labels and values.max(initial=0) >= len(labels):
            raise EvalDataError(f"{path}: class index {int(values.max())} but the model has "
                                f"{len(labels)} classes")
        return values.astype(np.uint8 if values.max(initial=0) < 256 else np.int32)

    def make(paths):
        images, masks = [], []
        for p in paths:
            image, original = _read_image(p, size)
            images.append(image)
            masks.append(mask(pairs[p], original))
        return EvalSet("segmentation", np.stack(images), masks=np.stack(masks))

    return LabelledData(str(folder), make(ordered[:k]), make(ordered[k:]))


def read_boxes(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Word quadrilaterals of one box file: ((k, 4, 2) float32, words)."""
    quads, words = [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().split(",")
        try:
            coords = [float(v) for v in fields[:8]]
            if len(coords) != 8:
                raise ValueError
        except ValueError:
            raise EvalDataError(f"{path}:{number}: expected x1,y1,x2,y2,x3,y3,x4,y4[,text], "
                                f"got {line.strip()!r}") from None
        quads.append(np.array(coords, np.float32).reshape(4, 2))
        words.append(",".join(fields[8:]))
    return (np.stack(quads) if quads else np.zeros((0, 4, 2), np.float32)), tuple(words)


def _text(folder, size, labels) -> LabelledData:
    pairs = dict(_pairs(folder, "boxes", (".txt",)))
    ordered = _order(list(pairs))
    k = _split(len(ordered))

    def make(paths):
        images, boxes, words = [], [], []
        for p in paths:
            image, (w, h) = _read_image(p, size)
            quads, names = read_boxes(pairs[p])
            scale = np.array([size[1] / w, size[0] / h], np.float32)
            images.append(image)
            boxes.append(quads * scale)
            words.append(names)
        return EvalSet("text_detection", np.stack(images), boxes=tuple(boxes),
                       words=tuple(words))

    return LabelledData(str(folder), make(ordered[:k]), make(ordered[k:]))
