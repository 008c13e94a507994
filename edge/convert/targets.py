"""What gets built: a garden configuration or a user's model file, as one picklable record.

`Target`s cross process boundaries (conversion workers), so they hold plain data only; the
garden spec is resolved again from the registry inside the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.convert.cache import sha256_tree, tool_versions
from edge.errors import ModelFileError, SpecError
from edge.garden.base import TASKS, ModelConfig, Preprocessing
from edge.variants import BUILDABLE_VARIANTS, DEFAULT_VARIANTS, RECIPE_VARIANTS

#: The batch the reference SavedModel of a Keras model is exported with (`reference.py`).
#: Runtimes that need static shapes (LiteRT.js) reject the -1 batch Keras exports by default,
#: and every variant inherits its signature from the reference; part of the reference's key.
EXPORT_BATCH = 1

USER_KINDS = {".keras": "keras", ".h5": "keras", ".tflite": "tflite"}

#: Options a user's model argument can carry after its path (`PATH:task=...,size=HxW`): the
#: settings of `edge build --model PATH` that the artifacts' keys depend on.
USER_OPTIONS = {"task": "--task", "size": "--input-size", "mean": "--mean", "std": "--std",
                "images": "--images", "eval_data": "--eval-data"}


@dataclass(frozen=True)
class Target:
    slug: str
    kind: str  # garden | keras | saved_model | tflite
    source: str  # garden model name, or the model file's path
    task: str
    input_size: tuple[int, int]
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    mean: tuple[float, ...] = (127.5, 127.5, 127.5)
    std: tuple[float, ...] = (127.5, 127.5, 127.5)
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    seed: int = 0
    weights: str | None = None
    images: str | None = None
    source_sha256: str = ""
    #: A garden model trained on its synthetic task before export (`edge.garden.training`).
    trained: bool = False
    #: A labelled folder (`--eval-data`): calibration, fidelity and task accuracy come from it.
    eval_data: str | None = None

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, *self.input_size, 3)

    def config(self) -> ModelConfig:
        from edge.garden import get_spec

        return get_spec(self.source).resolve(self.params)

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        return Preprocessing(tuple(self.mean), tuple(self.std)).apply(images)

    def labelled(self):
        """The user's labelled data, loaded and split (`edge.garden.labelled`), or None."""
        if not self.eval_data:
            return None
        from edge.garden import labelled

        labels = self.config().labels if self.kind == "garden" else None
        return labelled.load(self.eval_data, self.task, self.input_size, labels)

    def eval_images(self) -> np.ndarray:
        """The fidelity inputs (compared with the float32 reference's outputs): the accuracy
        part of --eval-data, a folder of the user's images, or the task's synthetic set."""
        from edge.garden.datasets import evaluation_set, load_image_folder
        from edge.garden.labelled import FIDELITY_MAX
        from edge.garden.training import FIDELITY_SEED

        if self.eval_data:
            return self.labelled().holdout.images[:FIDELITY_MAX]
        if self.images:
            return load_image_folder(self.images, self.input_size)
        return evaluation_set(self.task, self.input_size, seed=FIDELITY_SEED).images

    def calibration_images(self) -> np.ndarray:
        """The int8 representative dataset: the calibration part of --eval-data, the user's
        --images folder, or synthetic images from the training distribution (their own seed,
        never the fidelity or held-out images)."""
        from edge.garden.datasets import evaluation_set, load_image_folder
        from edge.garden.training import CALIBRATION_IMAGES, CALIBRATION_SEED

        if self.eval_data:
            return self.labelled().calibration.images
        if self.images:
            return load_image_folder(self.images, self.input_size)
        return evaluation_set(self.task, self.input_size, n=CALIBRATION_IMAGES,
                              seed=CALIBRATION_SEED).images

    def calibration_source(self) -> str:
        from edge.garden.training import CALIBRATION_SEED

        if self.eval_data:
            return f"--eval-data {self.eval_data} (calibration part)"
        if self.images:
            return f"--images {self.images}"
        return f"synthetic {self.task} images, training distribution, seed {CALIBRATION_SEED}"

    def holdout(self):
        """(labelled held-out set, where it comes from) for task accuracy, or None: the
        accuracy part of --eval-data, or for a trained garden model the synthetic held-out
        set. An untrained model, or a user's model without labels, has no accuracy."""
        from edge.garden.datasets import evaluation_set
        from edge.garden.training import HOLDOUT_IMAGES, HOLDOUT_SEED

        if not self.holdout_expected():
            return None
        if self.eval_data:
            data = self.labelled()
            return data.holdout, f"--eval-data {self.eval_data} ({len(data.holdout)} images " \
                "not used for calibration)"
        return (evaluation_set(self.task, self.input_size, n=HOLDOUT_IMAGES, seed=HOLDOUT_SEED),
                f"synthetic held-out set ({HOLDOUT_IMAGES} images, seed {HOLDOUT_SEED})")

    def fidelity_labels(self):
        """The labels of the fidelity inputs (`eval_images`), where they have any: what a
        runtime's returned outputs are scored against (a few images: a diagnostic)."""
        from edge.accuracy import truth_of
        from edge.garden.datasets import evaluation_set
        from edge.garden.labelled import FIDELITY_MAX
        from edge.garden.training import FIDELITY_SEED

        if self.eval_data:
            truth = truth_of(self.labelled().holdout)
            return truth[:FIDELITY_MAX]
        if self.kind == "garden" and self.trained and not self.images:
            return truth_of(evaluation_set(self.task, self.input_size, seed=FIDELITY_SEED))
        return None

    def holdout_expected(self) -> bool:
        """Whether the target has labelled held-out images (`holdout`), without making them."""
        return bool(self.eval_data) or (self.kind == "garden" and self.trained)

    def training_key(self) -> str | None:
        """The cache key of the trained weights this target's reference loads, or None."""
        if self.kind != "garden" or not self.trained or self.weights:
            return None
        from edge.convert.cache import hash_key
        from edge.garden.training import schedule_for, training_material

        config = self.config()
        return hash_key(training_material(config, schedule_for(config)))

    def reference_material(self, eval_fingerprint: str) -> dict:
        versions = tool_versions()
        material = {
            "kind": self.kind, "task": self.task, "input_size": list(self.input_size),
            "mean": list(self.mean), "std": list(self.std), "seed": self.seed,
            "eval": eval_fingerprint,
            "tools": {k: versions[k] for k in ("tensorflow", "keras")},
        }
        if self.eval_data:
            material["eval_data"] = sha256_tree(Path(self.eval_data))
        elif not self.images:
            from edge.garden.training import (
                CALIBRATION_IMAGES,
                CALIBRATION_SEED,
                HOLDOUT_IMAGES,
                HOLDOUT_SEED,
            )
            material["calibration"] = [CALIBRATION_IMAGES, CALIBRATION_SEED]
            if self.holdout_expected():
                material["holdout"] = [HOLDOUT_IMAGES, HOLDOUT_SEED]
        training = self.training_key()
        if training:
            material["training"] = training
        if self.kind in ("garden", "keras"):  # exported here (reference.py), static batch
            material["export_batch"] = EXPORT_BATCH
        if self.kind == "garden":
            material["model"] = self.config().key_material()
            material["weights"] = sha256_tree(Path(self.weights)) if self.weights else None
        else:
            material["source_sha256"] = self.source_sha256
        return material


def garden_target(config: ModelConfig, *, seed: int = 0, weights: str | None = None,
                  images: str | None = None, variants: tuple[str, ...] | None = None,
                  trained: bool = False, eval_data: str | None = None) -> Target:
    spec = config.spec
    if weights is not None and not Path(weights).is_file():
        raise ModelFileError(f"weights file not found: {weights}")
    chosen = tuple(variants) if variants else tuple(
        v for v in DEFAULT_VARIANTS if v in spec.variants)
    unsupported = [v for v in chosen if v not in spec.variants]
    if unsupported:
        raise SpecError(
            f"{config.slug}: variant(s) {', '.join(unsupported)} not supported; "
            f"supported: {', '.join(spec.variants)}"
        )
    return Target(
        slug=config.slug, kind="garden", source=spec.name, task=spec.task,
        input_size=config.input_size, params=dict(config.params),
        mean=spec.preprocessing.mean, std=spec.preprocessing.std, variants=chosen, seed=seed,
        weights=str(Path(weights).resolve()) if weights else None,
        images=str(Path(images).resolve()) if images else None,
        trained=trained and not weights,
        eval_data=str(Path(eval_data).resolve()) if eval_data else None,
    )


def user_kind(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return "saved_model"
        raise ModelFileError(f"{path}: a directory but not a SavedModel (no saved_model.pb)")
    kind = USER_KINDS.get(path.suffix.lower())
    if kind is None:
        raise ModelFileError(
            f"{path}: unknown model format {path.suffix!r}; "
            "expected a .keras or .h5 file, a SavedModel directory, or a .tflite file"
        )
    return kind


def user_target(path: str | Path, *, task: str | None = None,
                input_size: tuple[int, int] | None = None, images: str | None = None,
                mean: float = 127.5, std: float = 127.5,
                variants: tuple[str, ...] | None = None,
                eval_data: str | None = None) -> Target:
    """A target for the user's own model; missing task/input size are read from the model."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    kind = user_kind(path)
    if task is not None and task not in TASKS:
        raise SpecError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if images is not None and not Path(images).is_dir():
        raise ModelFileError(f"image folder not found: {images}")
    if eval_data is not None and not Path(eval_data).is_dir():
        raise ModelFileError(f"--eval-data: folder not found: {eval_data}")
    ins, outs = inspect_model(path, kind)
    check_io(path, ins, outs)
    in_shape, out_shape = ins[0], outs[0]
    if input_size is None:
        if in_shape[1] is None or in_shape[2] is None or min(in_shape[1:3]) < 1:
            raise SpecError(
                f"{path}: the model's input size is not fixed {in_shape}; pass --input-size HxW "
                "(in a matrix file: PATH:size=HxW)"
            )
        input_size = (int(in_shape[1]), int(in_shape[2]))
    if task is None:
        task = infer_task(out_shape)
        if task is None:
            raise SpecError(f"{path}: cannot infer the task from output shape {out_shape}; "
                            f"pass --task ({', '.join(TASKS)}; in a matrix file: PATH:task=...)")
    if kind == "tflite":
        allowed = ("tflite-as-is", *RECIPE_VARIANTS)
        if variants and set(variants) - set(allowed):
            raise SpecError(
                f"{path}: a .tflite file can only be measured as TFLite (variant tflite-as-is) "
                f"or quantized by ai-edge-quantizer recipes ({', '.join(RECIPE_VARIANTS)}); "
                "TF.js and other quantizations need the Keras model or SavedModel it came from"
            )
        is_float = float_tflite(path)
        if variants and set(variants) & set(RECIPE_VARIANTS) and not is_float:
            raise SpecError(f"{path}: recipe variants quantize a float32 .tflite that LiteRT "
                            "runs, and this model is already quantized or has an op LiteRT has "
                            "no kernel for; measure it as tflite-as-is")
        chosen = tuple(variants) if variants else (
            allowed if is_float else ("tflite-as-is",))
    else:
        chosen = tuple(variants) if variants else DEFAULT_VARIANTS
        for v in chosen:
            if v not in BUILDABLE_VARIANTS:
                raise SpecError(f"unknown variant {v!r} for a Keras or SavedModel model; "
                                f"valid variants: {', '.join(BUILDABLE_VARIANTS)}")
    return Target(
        slug=path.stem if path.is_file() else path.name, kind=kind, source=str(path.resolve()),
        task=task, input_size=input_size, mean=(mean,) * 3, std=(std,) * 3, variants=chosen,
        images=None if eval_data else (str(Path(images).resolve()) if images else None),
        source_sha256=sha256_tree(path),
        eval_data=str(Path(eval_data).resolve()) if eval_data else None,
    )


def float_tflite(path: Path) -> bool:
    """Whether a .tflite model is float (float32 input and output, no quantized tensor) and
    runs in LiteRT (no op without a kernel, e.g. a custom op): what a recipe variant quantizes
    and is checked against."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    try:
        interp.allocate_tensors()
    except RuntimeError:  # e.g. "Encountered unresolved custom op": measured as-is only
        return False
    io = interp.get_input_details() + interp.get_output_details()
    if any(np.dtype(d["dtype"]) != np.float32 for d in io):
        return False
    return not any(np.dtype(d["dtype"]) in (np.int8, np.uint8, np.int16)
                   or d["quantization"][0] != 0.0 for d in interp.get_tensor_details())


def check_io(path: Path, ins: list[tuple], outs: list[tuple]) -> None:
    """`SpecError` unless the model takes one image, (1 or any batch, H, W, 3), and has at
    least one output: edge feeds every model one preprocessed RGB image."""
    if len(ins) != 1:
        raise SpecError(f"{path}: the model has {len(ins)} inputs; edge measures models with one "
                        "image input (batch, height, width, 3)")
    shape = ins[0]
    if len(shape) != 4 or shape[3] != 3:
        raise SpecError(f"{path}: the model's input has shape {shape}; edge measures models with "
                        "one RGB image input (batch, height, width, 3)")
    if not outs:
        raise SpecError(f"{path}: the model has no outputs")


def infer_task(out_shape) -> str | None:
    if out_shape is None:
        return None
    if len(out_shape) == 2:
        return "classification"
    if len(out_shape) == 4:
        return "segmentation"
    return None


def inspect_model(path: Path, kind: str) -> tuple[list[tuple], list[tuple]]:
    """(input shapes, output shapes) of a user's model; a file that does not load raises
    ModelFileError."""
    def shape(s) -> tuple:
        return tuple(None if d is None else int(d) for d in s)

    try:
        if kind == "tflite":
            from ai_edge_litert.interpreter import Interpreter

            interp = Interpreter(model_path=str(path))
            return ([shape(d["shape"]) for d in interp.get_input_details()],
                    [shape(d["shape"]) for d in interp.get_output_details()])
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if kind == "keras":
            import keras

            model = keras.models.load_model(path, compile=False)
            return ([shape(t.shape) for t in model.inputs],
                    [shape(t.shape) for t in model.outputs])
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        fn = loaded.signatures["serving_default"]
        return ([shape(s.shape) for s in fn.structured_input_signature[1].values()],
                [shape(o.shape) for o in fn.structured_outputs.values()])
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure means a bad file for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: cannot load as {kind}: {first}") from None


# -- a user's model as a model argument (`edge bench --model`, a matrix's [build] models) -----

def split_model_arg(text: str) -> tuple[str, str]:
    """(head, options) of a model argument: `PATH:key=value,...` or `NAME:key=value,...`."""
    head, sep, tail = str(text).rpartition(":")
    if sep and "=" in tail and head:
        return head, tail
    return str(text), ""


def is_model_path(text: str) -> bool:
    """Whether a model argument names a user's model file or SavedModel directory rather than a
    garden model (garden names are plain identifiers: no path separator, no file suffix)."""
    head = Path(split_model_arg(text)[0])
    return ("/" in str(head) or "\\" in str(head) or head.suffix.lower() in USER_KINDS
            or (head / "saved_model.pb").is_file())


def user_model_arg(path: str | Path, *, task: str | None = None,
                   input_size: tuple[int, int] | None = None, mean: float = 127.5,
                   std: float = 127.5, images: str | Path | None = None,
                   eval_data: str | Path | None = None) -> str:
    """The model argument of a user's model (absolute path) with the settings that differ from
    the defaults, e.g. `/home/me/selfie.keras:task=segmentation,size=256x256`."""
    options = {"task": task,
               "size": f"{input_size[0]}x{input_size[1]}" if input_size else None,
               "mean": None if mean == 127.5 else f"{mean:g}",
               "std": None if std == 127.5 else f"{std:g}",
               "images": str(Path(images).resolve()) if images else None,
               "eval_data": str(Path(eval_data).resolve()) if eval_data else None}
    tail = ",".join(f"{k}={v}" for k, v in options.items() if v is not None)
    return str(Path(path).resolve()) + (f":{tail}" if tail else "")


def parse_user_model_arg(text: str) -> tuple[Path, dict]:
    """(path, user_target keyword arguments) of `PATH[:task=...,size=HxW,mean=M,std=S,
    images=DIR,eval_data=DIR]`; errors name the argument and the allowed keys."""
    head, tail = split_model_arg(text)
    kwargs: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in tail.split(","))):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in USER_OPTIONS:
            raise SpecError(f"{text}: unknown option {key!r} of a model file; allowed: "
                            f"{', '.join(USER_OPTIONS)} (as PATH:task=...,size=HxW)")
        try:
            if key == "size":
                h, _, w = value.lower().partition("x")
                kwargs["input_size"] = (int(h), int(w or h))
            elif key in ("mean", "std"):
                kwargs[key] = float(value)
            else:
                kwargs[key] = value
        except ValueError:
            raise SpecError(f"{text}: {key}={value!r} is not a valid value "
                            f"(like {USER_OPTIONS[key]})") from None
    return Path(head), kwargs


def user_model_target(text: str, variants: tuple[str, ...] | None = None) -> Target:
    """The target of a user's model argument (`parse_user_model_arg`), measured in `variants`
    where it can be: a .tflite file as itself (tflite-as-is), a Keras file or SavedModel in the
    buildable ones among them (every default variant when none is)."""
    path, kwargs = parse_user_model_arg(text)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if user_kind(path) == "tflite":
        variants = None
    elif variants:
        variants = tuple(v for v in variants if v in BUILDABLE_VARIANTS) or None
    return user_target(path, variants=variants, **kwargs)
