"""Label names and colormaps for the model heads in the garden.

Everything here is plain data (tuples and read-only uint8 arrays) so it can be imported
anywhere without pulling in a framework.
"""

from __future__ import annotations

import numpy as np

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross")
"""Classes of the synthetic shape datasets (see `edge.garden.datasets`)."""

PASCAL_LABELS: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

CITYSCAPES_LABELS: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip

# "background" followed by the 150 classes of the MIT SceneParsing benchmark (objectInfo150).
ADE20K_LABELS: tuple[str, ...] = (
    "background",
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp",
    "bathtub", "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers",
    "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river",
    "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


CITYSCAPES_COLORMAP: np.ndarray = _frozen(
    np.array(
        [
            (128, 64, 128),  # road
            (244, 35, 232),  # sidewalk
            (70, 70, 70),  # building
            (102, 102, 156),  # wall
            (190, 153, 153),  # fence
            (153, 153, 153),  # pole
            (250, 170, 30),  # traffic light
            (220, 220, 0),  # traffic sign
            (107, 142, 35),  # vegetation
            (152, 251, 152),  # terrain
            (70, 130, 180),  # sky
            (220, 20, 60),  # person
            (255, 0, 0),  # rider
            (0, 0, 142),  # car
            (0, 0, 70),  # truck
            (0, 60, 100),  # bus
            (0, 80, 100),  # train
            (0, 0, 230),  # motorcycle
            (119, 11, 32),  # bicycle
        ],
        dtype=np.uint8,
    )
)
"""Official Cityscapes colours of the 19 train classes, in `CITYSCAPES_LABELS` order."""


def pascal_colormap(n: int = 256) -> np.ndarray:
    """Return the standard PASCAL VOC colormap (bit-interleaved label index) as (n, 3) uint8."""
    if n < 0:
        raise ValueError(f"colormap size must be >= 0, got {n}")
    colormap = np.zeros((n, 3), dtype=np.int64)
    index = np.arange(n, dtype=np.int64)
    for shift in range(7, -1, -1):
        for channel in range(3):
            colormap[:, channel] |= ((index >> channel) & 1) << shift
        index >>= 3
    return colormap.astype(np.uint8)


HEADS: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
    "pascal": (PASCAL_LABELS, _frozen(pascal_colormap(len(PASCAL_LABELS)))),
    "cityscapes": (CITYSCAPES_LABELS, CITYSCAPES_COLORMAP),
    "ade20k": (ADE20K_LABELS, _frozen(pascal_colormap(len(ADE20K_LABELS)))),
}
"""Segmentation head name -> (label names, (n, 3) uint8 colormap)."""


def colorize(mask: np.ndarray, colormap: np.ndarray) -> np.ndarray:
    """Map an (H, W) integer label mask to an (H, W, 3) uint8 image through `colormap`."""
    mask = np.asarray(mask)
    colormap = np.asarray(colormap)
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"mask must be a 2-D integer array, got {mask.dtype} {mask.shape}")
    if colormap.ndim != 2 or colormap.shape[1] != 3:
        raise ValueError(f"colormap must have shape (n, 3), got {colormap.shape}")
    if mask.size and (mask.min() < 0 or mask.max() >= len(colormap)):
        raise ValueError(
            f"mask values span [{mask.min()}, {mask.max()}] but the colormap has "
            f"{len(colormap)} entries"
        )
    return colormap.astype(np.uint8, copy=False)[mask]


def classification_labels(n: int) -> list[str]:
    """Names for an n-way classifier: the shape classes when n matches, else "class i"."""
    if n < 0:
        raise ValueError(f"number of classes must be >= 0, got {n}")
    if n == len(SHAPE_CLASSES):
        return list(SHAPE_CLASSES)
    return [f"class {i}" for i in range(n)]
