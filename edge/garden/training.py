"""Training the garden on its synthetic tasks before export.

Each garden model learns the task its evaluation sets already label: the classifiers the shape
classes, DeepLab the per-pixel shape masks, PSENet the text kernels of the word boxes. Training
runs at a reduced resolution (the exported model keeps its architecture and input size: the
weights of a convolutional network do not depend on the input size), on synthetic images from
their own seed, apart from the held-out, calibration and fidelity sets. After loading, the
batch-norm statistics are measured again at the export resolution on the calibration images.

Class spaces: background is class 0 of every head and synthetic shape k is class k + 1, so a
synthetic mask is already in each head's class space. DeepLab's heads share one trained network:
it is trained with the pascal head, and another head takes its trained class channels and fills
its other classes with the trained non-shape channels in turn (their logits stay low).

The schedule is seeded and part of the cache key; the trained weights are an artifact like any
other, so a second build trains nothing.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Seeds of the synthetic sets: fidelity inputs (0), held-out accuracy (1), int8 calibration
#: (2), training (1000). Distinct seeds give distinct images.
FIDELITY_SEED, HOLDOUT_SEED, CALIBRATION_SEED, TRAINING_SEED = 0, 1, 2, 1000
#: Images of the synthetic held-out set (task accuracy) and of the calibration set (int8
#: representative dataset, batch-norm statistics at the export resolution).
HOLDOUT_IMAGES = 200
CALIBRATION_IMAGES = 64

#: What a trained garden model should reach in float32 on the held-out set, per task (top-1,
#: mean IoU, box F1 at IoU 0.5); the build prints the figure beside it, met or not.
ACCURACY_TARGETS = {"classification": 0.90, "segmentation": 0.70, "text_detection": 0.80}

WEIGHTS_FILE = "weights.npz"
#: The head DeepLab is trained with; the other heads are derived from it.
TRAIN_HEAD = "pascal"


@dataclass(frozen=True)
class Schedule:
    """How a model is trained: on crops of `scale` times the input size taken from images at
    the full input size (so objects keep the size they have at export; a classification crop
    holds the shape's centre), `images` images, `epochs` passes."""

    scale: float
    images: int
    epochs: int
    batch: int = 8
    learning_rate: float = 1e-3
    seed: int = TRAINING_SEED

    def to_dict(self) -> dict:
        return asdict(self)


#: The default schedule per task, sized to train the default garden in about six minutes on a
#: 2-core host (`benchmarks/bench_training.py` prints the time and held-out accuracy).
SCHEDULES: dict[str, Schedule] = {
    "classification": Schedule(scale=0.625, images=1024, epochs=1),
    "segmentation": Schedule(scale=0.5, images=768, epochs=1),
    "text_detection": Schedule(scale=0.5, images=512, epochs=1),
}


#: The schedule of a model in its tiny test configuration (seconds, not minutes).
TINY_SCHEDULE = Schedule(scale=1.0, images=64, epochs=3)


def schedule_for(config) -> Schedule:
    """The training schedule of a model configuration: its task's, or the tiny one."""
    tiny = config.spec.tiny
    if tiny and all(config.params.get(k) == v for k, v in tiny.items()):
        return TINY_SCHEDULE
    return SCHEDULES[config.task]


def train_params(config, schedule: Schedule) -> dict:
    """The parameters of the model that is trained: the reduced size (honouring the size
    parameter's limits) and, for segmentation, the training head."""
    size_param = next(p for p in config.spec.params if p.name == "size")
    size = max(int(size_param.minimum or 1), round(config.params["size"] * schedule.scale))
    if size_param.multiple_of:
        size = max(size_param.multiple_of, size - size % size_param.multiple_of)
    params = {**config.params, "size": size}
    if config.task == "segmentation":
        params["head"] = TRAIN_HEAD
    return params


def training_material(config, schedule: Schedule) -> dict:
    """What the trained weights depend on (their cache key): the model as trained (DeepLab's
    heads share it), the schedule, and this module's and the data generator's source."""
    from edge.garden import datasets

    material = config.key_material()
    params = dict(material["params"])
    if config.task == "segmentation":
        params.pop("head", None)
    return {"model": config.spec.name, "params": params, "source": material["source"],
            "schedule": schedule.to_dict(),
            "training": _source_hash(sys.modules[__name__], datasets)}


def _source_hash(*modules) -> str:
    import hashlib

    h = hashlib.sha256()
    for module in modules:
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()


# -- labels as training targets ---------------------------------------------------------------

def kernel_maps(boxes, size: tuple[int, int], kernels: int, min_scale: float) -> np.ndarray:
    """PSENet training targets of one image: (H, W, kernels) float32, channel i the word
    quadrilaterals shrunk about their centroid to scale 1 - (1 - min_scale) * i / (kernels - 1)
    (channel 0 the full word, the last the smallest kernel)."""
    import cv2

    height, width = size
    maps = np.zeros((height, width, kernels), np.uint8)
    for i in range(kernels):
        ratio = 1.0 - (1.0 - min_scale) * i / max(kernels - 1, 1)
        channel = np.zeros((height, width), np.uint8)
        for quad in boxes:
            quad = np.asarray(quad, np.float64)
            centre = quad.mean(axis=0)
            shrunk = centre + (quad - centre) * ratio
            cv2.fillPoly(channel, [np.round(shrunk - 0.5).astype(np.int32)], 1)
        maps[..., i] = channel
    return maps.astype(np.float32)


def crops(task: str, data, size: tuple[int, int], params: dict,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training inputs and targets: one `size` crop per full-size image (the whole image when
    they are the same size). A classification crop is placed at random among those that hold
    the shape's centre with a margin; segmentation and text crops anywhere."""
    from edge.garden.psenet import MIN_KERNEL_SCALE

    n, height, width = data.images.shape[:3]
    ch, cw = size
    images = np.empty((n, ch, cw, 3), np.uint8)
    targets = []
    for i in range(n):
        if task == "classification" and data.centres is not None:
            cx, cy = (int(v) for v in data.centres[i])
            y0 = _around(rng, cy, ch, height)
            x0 = _around(rng, cx, cw, width)
        else:
            y0 = int(rng.integers(0, height - ch + 1))
            x0 = int(rng.integers(0, width - cw + 1))
        images[i] = data.images[i, y0:y0 + ch, x0:x0 + cw]
        if task == "classification":
            targets.append(data.labels[i])
        elif task == "segmentation":
            targets.append(data.masks[i, y0:y0 + ch, x0:x0 + cw].astype(np.int64))
        else:
            maps = kernel_maps(data.boxes[i], (height, width), params["kernels"],
                               MIN_KERNEL_SCALE)
            targets.append(maps[y0:y0 + ch, x0:x0 + cw])
    return images, np.stack(targets) if task != "classification" else np.asarray(targets,
                                                                                  np.int64)


def _around(rng: np.random.Generator, centre: int, crop: int, full: int) -> int:
    """A crop's start along one axis, at random among those keeping `centre` a quarter of the
    crop away from its edges."""
    margin = crop // 4
    low = max(0, centre + margin - crop)
    high = max(low, min(full - crop, centre - margin))
    return int(rng.integers(low, high + 1))


def _dice_loss(y_true, y_pred):
    import keras.ops as K

    inter = K.sum(y_true * y_pred, axis=(1, 2))
    union = K.sum(y_true * y_true, axis=(1, 2)) + K.sum(y_pred * y_pred, axis=(1, 2))
    return K.mean(1.0 - (2.0 * inter + 1.0) / (union + 1.0), axis=-1)


def _loss(task: str):
    import keras

    if task == "classification":
        return keras.losses.SparseCategoricalCrossentropy()
    if task == "segmentation":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return _dice_loss


# -- training -----------------------------------------------------------------------------------

def train(config, schedule: Schedule | None = None,
          on_epoch: Callable[[int, int, dict], None] | None = None):
    """Train `config`'s model on its synthetic task; returns (Keras model at the training size,
    facts: seconds, training size, final loss)."""
    import keras

    from edge.garden.datasets import evaluation_set

    schedule = schedule or schedule_for(config)
    started = time.perf_counter()
    params = train_params(config, schedule)
    model = config.spec.build_fn(params, schedule.seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9  # short schedules: moving statistics that keep up
    size = (params["size"], params["size"])
    data = evaluation_set(config.task, config.input_size, n=schedule.images, seed=schedule.seed)
    images, y = crops(config.task, data, size, params, np.random.default_rng(schedule.seed))
    x = config.spec.preprocessing.apply(images)
    model.compile(optimizer=keras.optimizers.Adam(schedule.learning_rate),
                  loss=_loss(config.task))

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if on_epoch:
                on_epoch(epoch + 1, schedule.epochs, dict(logs or {}))

    history = model.fit(x, y, batch_size=schedule.batch, epochs=schedule.epochs, shuffle=True,
                        verbose=0, callbacks=[Report()])
    facts = {"seconds": round(time.perf_counter() - started, 1), "train_size": list(size),
             "loss": round(float(history.history["loss"][-1]), 4),
             "losses": [round(float(v), 4) for v in history.history["loss"]],
             "schedule": schedule.to_dict(), "images": int(len(x))}
    return model, facts


def save_weights(model, path: Path) -> None:
    """Every layer's weights by layer name (input-size independent), as one .npz."""
    arrays = {}
    for layer in model._flatten_layers(include_self=False):
        for i, w in enumerate(layer.weights):
            arrays[f"{layer.name}/{i}"] = np.asarray(w.numpy())
    np.savez(path, **arrays)


def load_weights(model, path: Path, head_classes: int | None = None) -> int:
    """Set `model`'s weights from `save_weights`'s file, layer by layer; a segmentation
    classifier of another head is derived from the trained one (module docstring). Returns
    the layers set; raises when a layer has no trained weights."""
    with np.load(path) as data:
        stored = {k: data[k] for k in data.files}
    count = 0
    for layer in model._flatten_layers(include_self=False):
        if not layer.weights:
            continue
        values = [stored.get(f"{layer.name}/{i}") for i in range(len(layer.weights))]
        if any(v is None for v in values):
            raise ValueError(f"trained weights {path} have nothing for layer {layer.name!r}")
        if any(v.shape != tuple(w.shape) for v, w in zip(values, layer.weights, strict=True)):
            values = [_map_classes(v, tuple(w.shape)) for v, w in
                      zip(values, layer.weights, strict=True)]
        layer.set_weights(values)
        count += 1
    return count


def _map_classes(value: np.ndarray, shape: tuple) -> np.ndarray:
    """A classifier weight of the training head, re-shaped to another head's class count: the
    shape classes keep their channels (background 0, shapes 1..6), every other class takes the
    trained channels of the training head's non-shape classes in turn."""
    from edge.garden.labels import SHAPE_CLASSES

    trained = value.shape[-1]
    wanted = shape[-1]
    if value.shape[:-1] != shape[:-1]:
        raise ValueError(f"cannot map trained weights of shape {value.shape} to {shape}")
    keep = len(SHAPE_CLASSES) + 1
    others = list(range(keep, trained)) or [0]
    index = [c if c < keep else others[(c - keep) % len(others)] for c in range(wanted)]
    return value[..., index]


def calibrate_batchnorm(model, inputs: np.ndarray) -> int:
    """Set every BatchNormalization layer's moving statistics to those of `inputs`.

    Random-weight models with default statistics (mean 0, variance 1) give degenerate outputs
    (every image the same class). One forward pass in training mode with momentum 0 replaces the
    moving mean and variance by the batch statistics, layer after layer in topological order,
    which is exactly what inference with the new statistics sees. Returns the layers calibrated.
    """
    import keras

    bns = [layer for layer in model._flatten_layers() if isinstance(
        layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(inputs, training=True)
    for layer, momentum in zip(bns, saved, strict=True):
        layer.momentum = momentum
    return len(bns)


def load_trained_model(config, weights_dir: Path, calibration: np.ndarray):
    """The full-size Keras model with trained weights, batch-norm statistics measured at the
    export size on the (preprocessed) calibration images."""
    model = config.build_keras(0)
    load_weights(model, Path(weights_dir) / WEIGHTS_FILE)
    calibrate_batchnorm(model, calibration)
    return model
