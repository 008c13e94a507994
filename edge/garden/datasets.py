"""Deterministic synthetic evaluation sets, generated in code.

The sets serve as the int8 representative dataset, as inputs for fidelity checks against the
float32 reference, and as browser inputs. The same arguments give byte-identical arrays:
all randomness comes from ``np.random.default_rng(seed)``, drawing uses integer coordinates,
pixel arithmetic is integer (or exactly rounded float) math, and text uses the font that
Pillow ships (``ImageFont.load_default(size=...)``, basic layout), so results only depend on
the numpy/Pillow versions, never on time or machine.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from edge.garden.labels import SHAPE_CLASSES

__all__ = [
    "IMAGE_SUFFIXES",
    "SHAPE_CLASSES",
    "TASKS",
    "WORDS",
    "EvalSet",
    "classification_set",
    "evaluation_set",
    "load_image_folder",
    "segmentation_set",
    "text_set",
]

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

WORDS: tuple[str, ...] = (
    "the", "and", "for", "you", "not", "with", "that", "this", "from", "have",
    "time", "year", "people", "way", "day", "man", "thing", "woman", "life", "child",
    "world", "school", "state", "family", "group", "country", "problem", "hand", "part", "place",
    "case", "week", "company", "system", "program", "question", "work", "number", "night", "point",
    "home", "water", "room", "mother", "area", "money", "story", "fact", "month", "lot",
    "right", "study", "book", "eye", "job", "word", "business", "issue", "side", "kind",
)  # fmt: skip
"""Built-in word list of the text set (60 common English words)."""

_MIN_SIDE = 16


@dataclass(frozen=True, eq=False)
class EvalSet:
    """A synthetic (or loaded) evaluation set; arrays are read-only.

    ``labels`` index `SHAPE_CLASSES` (classification); ``masks`` hold 0 for background and
    1 + shape class index (segmentation); ``boxes`` hold per image a (k, 4, 2) float32 array
    of word quadrilaterals as (x, y) points, clockwise from the word's top-left corner, in
    pixel-edge coordinates (the image spans [0, W] x [0, H]); ``words`` the matching strings.
    """

    task: str
    images: np.ndarray
    labels: np.ndarray | None = None
    masks: np.ndarray | None = None
    boxes: tuple[np.ndarray, ...] | None = None
    words: tuple[tuple[str, ...], ...] | None = None
    #: (N, 2) int (x, y) centre of each image's shape (classification sets).
    centres: np.ndarray | None = None

    def __post_init__(self) -> None:
        images = self.images
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"images must be (N, H, W, 3) uint8, got {images.dtype} {images.shape}"
            )
        n = len(images)
        if self.labels is not None and self.labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {self.labels.shape}")
        if self.masks is not None and self.masks.shape != images.shape[:3]:
            raise ValueError(f"masks must have shape {images.shape[:3]}, got {self.masks.shape}")
        if self.boxes is not None and len(self.boxes) != n:
            raise ValueError(f"boxes must hold {n} arrays, got {len(self.boxes)}")
        if self.words is not None and len(self.words) != n:
            raise ValueError(f"words must hold {n} tuples, got {len(self.words)}")
        for array in (images, self.labels, self.masks, *(self.boxes or ())):
            if array is not None:
                array.setflags(write=False)

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> str:
        """Return a sha256 hex digest of the task, image shape and image bytes (a cache key)."""
        digest = hashlib.sha256()
        digest.update(self.task.encode())
        digest.update(repr(tuple(self.images.shape)).encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        return digest.hexdigest()


# --------------------------------------------------------------------------- helpers


def _check_size(size: tuple[int, int], minimum: int = _MIN_SIDE) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if height < minimum or width < minimum:
        raise ValueError(f"size must be at least {minimum}x{minimum}, got {size!r}")
    return height, width


def _check_n(n: int) -> int:
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return int(n)


def _hsv(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> tuple:
    """Random RGB colour (ints) from a hue and saturation/value ranges."""
    hue = rng.random()
    s = sat[0] + (sat[1] - sat[0]) * rng.random()
    v = val[0] + (val[1] - val[0]) * rng.random()
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, s, v))


def _noise(rng: np.random.Generator, shape: tuple[int, ...], amplitude: int) -> np.ndarray:
    """Integer, roughly bell-shaped noise in [-2a, 2a] (sum of two uniforms)."""
    low, high = -amplitude, amplitude + 1
    return rng.integers(low, high, shape, dtype=np.int16) + rng.integers(
        low, high, shape, dtype=np.int16
    )


def _background(
    rng: np.random.Generator, height: int, width: int, *, noise: int, lines: tuple[int, int]
) -> np.ndarray:
    """Textured background: two-colour gradient, low-frequency blotches, noise, lines."""
    base = int(rng.integers(60, 200))
    c0 = np.array([base + int(rng.integers(-35, 36)) for _ in range(3)], dtype=np.float64)
    c1 = np.clip(c0 + rng.integers(-70, 71, 3), 0, 255)
    theta = 2 * math.pi * rng.random()
    ys = np.arange(height, dtype=np.float64)[:, None]
    xs = np.arange(width, dtype=np.float64)[None, :]
    proj = xs * math.cos(theta) + ys * math.sin(theta)
    t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1.0)
    image = np.rint(c0 + (c1 - c0) * t[..., None]).astype(np.int16)

    grid = rng.integers(0, 2 * noise + 1, (4, 4, 3), dtype=np.uint8)
    blotches = np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.BILINEAR))
    image += blotches.astype(np.int16) - noise
    image += _noise(rng, (height, width, 1), noise // 3 + 1)
    image += _noise(rng, (height, width, 3), noise // 4 + 1)

    pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(lines[0], lines[1] + 1))):
        x0, x1 = (int(v) for v in rng.integers(0, width, 2))
        y0, y1 = (int(v) for v in rng.integers(0, height, 2))
        shade = int(rng.integers(-60, 61))
        colour = tuple(int(np.clip(c + shade, 0, 255)) for c in c0)
        thickest = max(1, min(3, min(height, width) // 64))
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, thickest + 1)))
    return np.asarray(pil).copy()


def _polygon(kind: str, cx: int, cy: int, r: int, angle: float) -> list[tuple[int, int]]:
    """Integer vertices of a polygonal shape of radius r centred at (cx, cy), rotated."""
    if kind == "square":
        a = 0.8
        unit = [(-a, -a), (a, -a), (a, a), (-a, a)]
    elif kind == "triangle":
        unit = [(math.cos(math.radians(d)), math.sin(math.radians(d))) for d in (-90, 30, 150)]
    elif kind == "star":
        unit = []
        for i in range(10):
            rad = 1.0 if i % 2 == 0 else 0.45
            d = math.radians(-90 + 36 * i)
            unit.append((rad * math.cos(d), rad * math.sin(d)))
    elif kind == "cross":
        w = 0.3
        unit = [
            (-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w),
            (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w),
        ]  # fmt: skip
    else:
        raise ValueError(f"not a polygonal shape: {kind!r}")
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + round(r * (x * c - y * s)), cy + round(r * (x * s + y * c))) for x, y in unit]


def _shape_mask(
    kind: str, cx: int, cy: int, r: int, angle: float, size: tuple[int, int]
) -> np.ndarray:
    """Boolean (H, W) mask of one shape."""
    height, width = size
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=255, width=max(2, round(0.4 * r)))
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=255)
    return np.asarray(canvas) > 0


def _shape_colour(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A vivid colour that stands out from the image under ``mask``."""
    under = image[mask].mean(axis=0) if mask.any() else np.full(3, 128.0)
    for _ in range(16):
        colour = np.array(_hsv(rng, (0.55, 1.0), (0.45, 1.0)), dtype=np.int16)
        if np.abs(colour - under).sum() >= 150:
            break
    return colour


def _paint(
    image: np.ndarray, mask: np.ndarray, colour: np.ndarray, rng: np.random.Generator
) -> None:
    """Fill ``mask`` of an int16 image with ``colour`` plus a gentle vertical shading."""
    height = image.shape[0]
    ramp = np.arange(height, dtype=np.int64) * int(rng.integers(-30, 31)) // height
    shade = ramp.astype(np.int16)[:, None]
    filled = colour[None, None, :] + shade[..., None]
    image[mask] = np.broadcast_to(filled, image.shape)[mask]


def _finish(image: np.ndarray, rng: np.random.Generator, amplitude: int = 3) -> np.ndarray:
    image = image.astype(np.int16) + _noise(rng, image.shape, amplitude)
    return np.clip(image, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- shape sets


def classification_set(n: int = 32, size: tuple[int, int] = (224, 224), seed: int = 0) -> EvalSet:
    """One coloured shape per image on a textured background; labels index SHAPE_CLASSES."""
    n = _check_n(n)
    height, width = _check_size(size)
    rng = np.random.default_rng(seed)
    side = min(height, width)
    labels = rng.permutation(np.arange(n) % len(SHAPE_CLASSES)).astype(np.int64)
    images = np.empty((n, height, width, 3), dtype=np.uint8)
    centres = np.empty((n, 2), dtype=np.int64)
    for i, label in enumerate(labels):
        image = _background(rng, height, width, noise=10, lines=(1, 4)).astype(np.int16)
        r = int(rng.integers(max(4, round(0.18 * side)), max(5, round(0.38 * side)) + 1))
        cx = int(rng.integers(r + 1, max(r + 2, width - r - 1)))
        cy = int(rng.integers(r + 1, max(r + 2, height - r - 1)))
        angle = 2 * math.pi * rng.random()
        mask = _shape_mask(SHAPE_CLASSES[label], cx, cy, r, angle, (height, width))
        _paint(image, mask, _shape_colour(rng, image, mask), rng)
        images[i] = _finish(image, rng)
        centres[i] = (cx, cy)
    return EvalSet(task="classification", images=images, labels=labels, centres=centres)


def segmentation_set(n: int = 16, size: tuple[int, int] = (257, 257), seed: int = 0) -> EvalSet:
    """Scenes of 2-5 overlapping shapes on textured backgrounds, with per-pixel masks."""
    n = _check_n(n)
    height, width = _check_size(size)
    rng = np.random.default_rng(seed)
    side = min(height, width)
    images = np.empty((n, height, width, 3), dtype=np.uint8)
    masks = np.zeros((n, height, width), dtype=np.uint8)
    for i in range(n):
        image = _background(rng, height, width, noise=10, lines=(1, 4)).astype(np.int16)
        for _ in range(int(rng.integers(2, 6))):
            label = int(rng.integers(len(SHAPE_CLASSES)))
            r = int(rng.integers(max(3, round(0.1 * side)), max(4, round(0.28 * side)) + 1))
            cx = int(rng.integers(r // 2, width - r // 2))
            cy = int(rng.integers(r // 2, height - r // 2))
            angle = 2 * math.pi * rng.random()
            mask = _shape_mask(SHAPE_CLASSES[label], cx, cy, r, angle, (height, width))
            _paint(image, mask, _shape_colour(rng, image, mask), rng)
            masks[i][mask] = label + 1
        images[i] = _finish(image, rng)
    return EvalSet(task="segmentation", images=images, masks=masks)


# --------------------------------------------------------------------------- text set


@functools.lru_cache(maxsize=64)
def _pil_font(px: int) -> ImageFont.FreeTypeFont | None:
    """Pillow's bundled scalable font at ``px``, or None when this Pillow lacks it."""
    try:
        font = ImageFont.load_default(size=px)
    except (TypeError, OSError, ImportError):
        return None
    return font if isinstance(font, ImageFont.FreeTypeFont) else None


def _tight(canvas: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(canvas)
    if len(ys) == 0:
        return canvas[:1, :1]
    return canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


@functools.lru_cache(maxsize=2048)
def _render_word(word: str, px: int) -> np.ndarray:
    """Tight (h, w) uint8 coverage of ``word`` rendered at font size ``px``."""
    font = _pil_font(px)
    pad = 2
    if font is not None:
        left, top, right, bottom = font.getbbox(word)
        canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
        ImageDraw.Draw(canvas).text((pad - left, pad - top), word, font=font, fill=255)
        ink = np.asarray(canvas)
    else:  # Pillow without FreeType: OpenCV's Hershey font.
        import cv2

        face, scale = cv2.FONT_HERSHEY_SIMPLEX, px / 30.0
        thickness = max(1, round(px / 14))
        (w, h), baseline = cv2.getTextSize(word, face, scale, thickness)
        ink = np.zeros((h + baseline + 2 * pad + thickness, w + 2 * pad + thickness), np.uint8)
        cv2.putText(ink, word, (pad, pad + h), face, scale, 255, thickness, cv2.LINE_AA)
    ink = _tight(ink).copy()
    ink.setflags(write=False)
    return ink


def _rotation(cx: float, cy: float, degrees: float) -> tuple[np.ndarray, tuple]:
    """Forward 2x3 matrix of a visual counter-clockwise rotation about (cx, cy), and the
    coefficients of its inverse in Pillow's AFFINE convention (output -> input)."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    forward = np.array([[c, s, cx - c * cx - s * cy], [-s, c, cy + s * cx - c * cy]])
    inverse = (c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy)
    return forward, inverse


def _case(rng: np.random.Generator, word: str) -> str:
    style = rng.random()
    return word.upper() if style < 0.2 else word.title() if style < 0.5 else word


def _font_range(height: int, width: int) -> tuple[int, int]:
    high = max(8, min(48, min(height, width) // 5))
    return max(8, min(18, high)), high


def _place_word(
    rng: np.random.Generator, occupied: np.ndarray, shrink: bool
) -> tuple[str, np.ndarray, tuple[int, int], float, np.ndarray] | None:
    """Try to place one word; return (word, ink, top-left, angle, quad) or None."""
    height, width = occupied.shape
    low, high = _font_range(height, width)
    short = sorted(WORDS, key=len)[:10]
    for attempt in range(12):
        # The first word of an image must fit: later attempts shrink towards a short,
        # lower-case, upright word at the smallest font size.
        late, last = shrink and attempt >= 6, shrink and attempt >= 9
        px = int(rng.integers(low, high + 1))
        pool = WORDS
        if late:
            px = low if min(height, width) >= 24 else 6
            fits = [w for w in short if max(_render_word(w, px).shape) + 6 < min(height, width)]
            pool = fits or short
        word = pool[int(rng.integers(len(pool)))]
        word = word if last else _case(rng, word)
        angle = 0.0 if last else float(rng.uniform(-20.0, 20.0))
        ink = _render_word(word, px)
        h, w = ink.shape
        a = math.radians(angle)
        ex = (abs(math.cos(a)) * w + abs(math.sin(a)) * h) / 2 + 2
        ey = (abs(math.sin(a)) * w + abs(math.cos(a)) * h) / 2 + 2
        if 2 * ex >= width or 2 * ey >= height:
            continue
        cx = float(rng.uniform(ex, width - ex))
        cy = float(rng.uniform(ey, height - ey))
        x0, y0 = round(cx - w / 2), round(cy - h / 2)
        forward, _ = _rotation(x0 + w / 2, y0 + h / 2, angle)
        corners = np.array([[x0, y0, 1], [x0 + w, y0, 1], [x0 + w, y0 + h, 1], [x0, y0 + h, 1]])
        quad = (corners @ forward.T).astype(np.float32)
        if quad.min() < 0 or quad[:, 0].max() > width or quad[:, 1].max() > height:
            continue
        bx0, by0 = (max(0, math.floor(v) - 3) for v in quad.min(axis=0))
        bx1, by1 = math.ceil(quad[:, 0].max()) + 3, math.ceil(quad[:, 1].max()) + 3
        if occupied[by0:by1, bx0:bx1].any():
            continue
        occupied[by0:by1, bx0:bx1] = True
        return word, ink, (x0, y0), angle, quad
    return None


def _text_colour(rng: np.random.Generator, background_luma: float) -> np.ndarray:
    if background_luma > 118:
        return np.array(_hsv(rng, (0.0, 0.9), (0.0, 0.25)), dtype=np.int32)
    return np.array(_hsv(rng, (0.0, 0.5), (0.88, 1.0)), dtype=np.int32)


def text_set(n: int = 12, size: tuple[int, int] = (320, 320), seed: int = 0) -> EvalSet:
    """1-4 words per image at varied sizes and small rotations, with word quadrilaterals."""
    n = _check_n(n)
    height, width = _check_size(size)
    rng = np.random.default_rng(seed)
    images = np.empty((n, height, width, 3), dtype=np.uint8)
    all_boxes: list[np.ndarray] = []
    all_words: list[tuple[str, ...]] = []
    for i in range(n):
        image = _background(rng, height, width, noise=6, lines=(0, 3)).astype(np.int32)
        occupied = np.zeros((height, width), dtype=bool)
        quads: list[np.ndarray] = []
        words: list[str] = []
        for k in range(int(rng.integers(1, 5))):
            placed = _place_word(rng, occupied, shrink=k == 0)
            if placed is None:
                continue
            word, ink, (x0, y0), angle, quad = placed
            h, w = ink.shape
            layer = Image.new("L", (width, height), 0)
            layer.paste(Image.fromarray(ink), (x0, y0))
            _, inverse = _rotation(x0 + w / 2, y0 + h / 2, angle)
            alpha = np.asarray(
                layer.transform(
                    (width, height), Image.Transform.AFFINE, inverse, Image.Resampling.BILINEAR
                )
            ).astype(np.int32)[..., None]
            region = image[max(0, y0) : y0 + h, max(0, x0) : x0 + w]
            luma = float(region.mean()) if region.size else 128.0
            colour = _text_colour(rng, luma)
            image = (image * (255 - alpha) + colour * alpha + 127) // 255
            quads.append(quad)
            words.append(word)
        if not quads:
            raise ValueError(f"size {size!r} is too small to render any word")
        images[i] = _finish(image, rng, amplitude=2)
        all_boxes.append(np.stack(quads).astype(np.float32))
        all_words.append(tuple(words))
    return EvalSet(
        task="text_detection", images=images, boxes=tuple(all_boxes), words=tuple(all_words)
    )


# --------------------------------------------------------------------------- dispatch


_GENERATORS: dict[str, Callable[..., EvalSet]] = {
    "classification": classification_set,
    "segmentation": segmentation_set,
    "text_detection": text_set,
}
TASKS: tuple[str, ...] = tuple(_GENERATORS)


def evaluation_set(
    task: str, size: tuple[int, int], n: int | None = None, seed: int = 0
) -> EvalSet:
    """Synthetic evaluation set for ``task`` at ``size`` (H, W); n=None uses the default."""
    try:
        generator = _GENERATORS[task]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown task {task!r}; valid tasks: {', '.join(sorted(_GENERATORS))}"
        ) from None
    if n is None:
        return generator(size=size, seed=seed)
    return generator(n=n, size=size, seed=seed)


# --------------------------------------------------------------------------- real images


def load_image_folder(
    path: str | Path, size: tuple[int, int], limit: int | None = None
) -> np.ndarray:
    """Load the images of a folder (sorted by name) as (N, H, W, 3) uint8, resized bilinearly.

    Unreadable files are skipped with a warning; a missing folder raises FileNotFoundError
    and a folder without any readable image raises ValueError.
    """
    folder = Path(path)
    height, width = _check_size(size, minimum=1)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found (or not a folder): {folder}")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    images: list[np.ndarray] = []
    for file in files:
        if limit is not None and len(images) >= limit:
            break
        try:
            with Image.open(file) as opened:
                picture = ImageOps.exif_transpose(opened).convert("RGB")
                picture = picture.resize((width, height), Image.Resampling.BILINEAR)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
            warnings.warn(f"skipping unreadable image {file}: {error}", stacklevel=2)
            continue
        images.append(np.asarray(picture, dtype=np.uint8))
    if not images:
        raise ValueError(f"no readable image ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return np.stack(images)
