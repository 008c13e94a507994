"""The float32 reference: the Keras model (or the user's SavedModel), exported once as a
SavedModel that every variant converts from, plus its outputs on the evaluation inputs. For a
user's float `.tflite`, the reference is that file's own outputs (in LiteRT), which its recipe
variants are checked against."""

from __future__ import annotations

import functools
import shutil
import time
from pathlib import Path

import numpy as np

from edge.convert.targets import EXPORT_BATCH, Target
from edge.garden.training import calibrate_batchnorm

#: The evaluation images and the reference's outputs on them, uncompressed `.npy` files that
#: are memory-mapped when read: a fidelity check reads only the images it compares (DeepLab
#: ade20k's outputs are 40 MB per image, 0.6 GB in all, and float noise does not compress).
REFERENCE_IMAGES = "images.npy"
REFERENCE_OUTPUTS = "outputs.npy"


def output_file(i: int) -> str:
    """The file of the reference's output `i` (the first keeps its old name)."""
    return REFERENCE_OUTPUTS if i == 0 else f"outputs-{i}.npy"


def natural_key(name: str) -> list:
    """Sort key that puts output_2 before output_10."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]

#: The single compressed file that earlier builds wrote; still read.
LEGACY_REFERENCE_OUTPUTS = "reference.npz"
SAVED_MODEL = "saved_model"
#: Calibration images whose batch statistics become a trained model's batch-norm statistics at
#: the export size (one forward pass; DeepLab at 257 x 257 holds them all in memory at once).
BN_IMAGES = 32


def load_reference_model(target: Target, eval_inputs: np.ndarray, trained: Path | None = None):
    """The Keras model for a garden or Keras target: trained weights (batch-norm statistics
    measured again at the export size on calibration images), a weights file, or random
    weights with batch-norm statistics calibrated on the evaluation inputs."""
    import keras

    if target.kind == "garden" and trained is not None:
        from edge.garden.training import load_trained_model

        calibration = target.preprocess(target.calibration_images()[:BN_IMAGES])
        return load_trained_model(target.config(), trained, calibration)
    if target.kind == "garden":
        model = target.config().build_keras(target.seed)
        if target.weights:
            model.load_weights(target.weights)
        else:
            calibrate_batchnorm(model, eval_inputs)
        return model
    return keras.models.load_model(target.source, compile=False)


def count_flops(model, input_shape) -> int | None:
    """FLOPs of one inference (a multiply-add counts 2), from TF's profiler on the frozen graph."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    try:
        fn = tf.function(lambda x: model(x, training=False))
        concrete = fn.get_concrete_function(tf.TensorSpec(input_shape, tf.float32))
        frozen = convert_variables_to_constants_v2(concrete)
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        info = tf.compat.v1.profiler.profile(graph=frozen.graph,
                                             run_meta=tf.compat.v1.RunMetadata(),
                                             cmd="op", options=opts)
        return int(info.total_float_ops)
    except Exception:  # noqa: BLE001 - FLOPs are informative; never fail a build on them
        return None


def build_reference(target: Target, staged: Path, eval_images: np.ndarray,
                    trained: Path | None = None) -> dict:
    """Export the reference SavedModel and outputs into `staged`, and the float32 model's task
    accuracy on the held-out set where there are labels; return manifest fields."""
    started = time.perf_counter()
    inputs = target.preprocess(eval_images)
    sm_dir = staged / SAVED_MODEL
    params, flops = None, None
    if target.kind == "tflite":
        n_outputs = len(tflite_output_order(Path(target.source)))
    elif target.kind == "saved_model":
        shutil.copytree(target.source, sm_dir)
        n_outputs = signature_outputs(sm_dir)
    else:
        model = load_reference_model(target, inputs, trained)
        export_reference(model, sm_dir, target.input_shape)
        params = int(model.count_params())
        flops = count_flops(model, target.input_shape)
        n_outputs = len(model.outputs)
    # The reference outputs come from the exported graph, the very thing every variant is
    # converted from. (Keras 3 eager calls can disagree with the traced graph: in the PSENet FPN
    # one batch-norm layer used batch statistics eagerly despite training=False.)
    if target.kind == "tflite":
        named = tflite_named_outputs(Path(target.source), inputs)
    else:
        named = saved_model_named_outputs(sm_dir, inputs)
    names = list(named)
    outputs = named[names[0]]
    np.save(staged / REFERENCE_IMAGES, np.ascontiguousarray(eval_images))
    for i, name in enumerate(names):
        np.save(staged / output_file(i), np.ascontiguousarray(named[name], dtype=np.float32))
    accuracy = None
    if target.holdout_expected():
        run = (tflite_runner(Path(target.source)) if target.kind == "tflite"
               else saved_model_runner(sm_dir))
        accuracy = reference_accuracy(target, staged, run)
    return {
        "accuracy": accuracy,
        "target": target.slug,
        "task": target.task,
        "input_shape": list(target.input_shape),
        "output_shape": [1, *outputs.shape[1:]],
        "outputs": n_outputs,
        # Every output, in the order of their names; the first is the task's (its metrics and
        # the headline), all are compared (edge.validate.run).
        "output_names": names,
        "output_shapes": [[1, *named[n].shape[1:]] for n in names],
        "params": params,
        "flops": flops,
        "eval_images": int(len(eval_images)),
        "build_seconds": round(time.perf_counter() - started, 3),
    }


def export_reference(model, sm_dir: Path, input_shape) -> None:
    """Export the Keras model as a SavedModel whose signature has a static batch of
    `EXPORT_BATCH` (Keras's default is a -1 batch)."""
    import tensorflow as tf

    shape = [EXPORT_BATCH, *list(input_shape)[1:]]
    model.export(str(sm_dir), verbose=False,
                 input_signature=[tf.TensorSpec(shape, tf.float32)])


def signature_outputs(sm_dir: Path) -> int:
    """How many outputs the SavedModel's serving signature has."""
    import tensorflow as tf

    return len(tf.saved_model.load(str(sm_dir)).signatures["serving_default"].structured_outputs)


def saved_model_outputs(sm_dir: Path, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    """The SavedModel's (first) output on `inputs`, `batch` images a call, or as many as its
    signature takes when its batch is static (the exported reference: one)."""
    return saved_model_runner(sm_dir, batch)(inputs)


def saved_model_named_outputs(sm_dir: Path, inputs: np.ndarray,
                              batch: int = 8) -> dict[str, np.ndarray]:
    """Every output of the SavedModel's serving signature on `inputs`, by name, in the order of
    their names (`natural_key`)."""
    return saved_model_runner(sm_dir, batch, every_output=True)(inputs)


def saved_model_runner(sm_dir: Path, batch: int = 8, every_output: bool = False):
    """A function from inputs to the SavedModel's first output (by name), or to all of them as
    a dict when `every_output`; loaded once."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(sm_dir)).signatures["serving_default"]
    ((name, spec),) = fn.structured_input_signature[1].items()
    static = spec.shape.rank and spec.shape[0]
    step = int(static) if static else batch
    names = sorted(fn.structured_outputs, key=natural_key)

    def run_all(inputs: np.ndarray) -> dict[str, np.ndarray]:
        parts = [fn(**{name: tf.constant(inputs[i:i + step])})
                 for i in range(0, len(inputs), step)]
        return {n: np.concatenate([p[n].numpy() for p in parts]) for n in names}

    if every_output:
        return run_all
    return lambda inputs: run_all(inputs)[names[0]]


def tflite_runner(path: Path):
    return lambda inputs: tflite_outputs(path, inputs)[0]


def reference_accuracy(target: Target, staged: Path, run) -> dict:
    """The float32 model's task accuracy on the target's held-out set: the set, its labels and
    the per-image counts are stored beside the reference (variants are compared on the same
    images); returns the manifest's summary."""
    from edge import accuracy as acc

    holdout, source = target.holdout()
    truth = acc.truth_of(holdout)
    fidelity = target.fidelity_labels()
    if fidelity is not None:
        acc.save_truth(staged / acc.FIDELITY_TRUTH_FILE, target.task, fidelity)
    classes = acc.segmentation_classes(truth) if target.task == "segmentation" else None
    started = time.perf_counter()
    stats = acc.holdout_stats(target.task, run, holdout.images, truth, target.preprocess,
                              classes)
    acc.save_holdout(staged, holdout)
    np.save(staged / acc.HOLDOUT_STATS_FILE, stats)
    lo, hi = acc.bootstrap_interval(target.task, stats)
    return {"metric": acc.METRIC_NAME[target.task], "value": acc.figure(target.task, stats),
            "interval": [lo, hi], "images": len(holdout), "data": source,
            "classes": None if classes is None else [int(c) for c in classes],
            "seconds": round(time.perf_counter() - started, 1)}


def tflite_output_order(path_or_interpreter) -> list[tuple[str, dict]]:
    """A `.tflite` model's outputs as (name, tensor detail), in the order of their names: the
    names of its one signature where it has one (a model converted from a SavedModel keeps
    the SavedModel's output names, whatever order the converter gave the tensors), else the
    tensors' own names in the model's order."""
    interp = path_or_interpreter
    if isinstance(interp, str | Path):
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(interp))
    details = interp.get_output_details()
    by_index = {d["index"]: d for d in details}
    try:
        signatures = interp.get_signature_list()
        if len(signatures) == 1:
            runner = interp.get_signature_runner(next(iter(signatures)))
            named = {n: d["index"] for n, d in runner.get_output_details().items()}
            if len(named) == len(details) and set(named.values()) == set(by_index):
                return [(n, by_index[named[n]]) for n in sorted(named, key=natural_key)]
    except (ValueError, RuntimeError, KeyError):
        pass
    return [(d["name"], d) for d in details]


def tflite_named_outputs(path: Path, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of a float `.tflite` model on `inputs` in LiteRT, one image per invoke, by
    name in the order of `tflite_output_order`."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    inp, order = interp.get_input_details()[0], tflite_output_order(interp)
    if not order:
        raise ValueError(f"{path}: the model has no outputs")
    for detail in (inp, *(d for _, d in order)):
        if np.dtype(detail["dtype"]) != np.float32:
            raise ValueError(f"{path}: not a float model ({detail['name']} is "
                             f"{np.dtype(detail['dtype']).name}); recipe variants quantize a "
                             "float32 .tflite")
    results: dict[str, list] = {name: [] for name, _ in order}
    for i in range(len(inputs)):
        interp.set_tensor(inp["index"], inputs[i:i + 1].astype(np.float32))
        interp.invoke()
        for name, detail in order:
            results[name].append(interp.get_tensor(detail["index"]).copy())
    return {name: np.concatenate(parts) for name, parts in results.items()}


def tflite_outputs(path: Path, inputs: np.ndarray) -> tuple[np.ndarray, int]:
    """A float `.tflite` model's first output (`tflite_output_order`) on `inputs` in LiteRT,
    and how many outputs it has."""
    named = tflite_named_outputs(path, inputs)
    return next(iter(named.values())), len(named)


def load_reference_outputs(ref_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation images and the reference's outputs, read-only; memory-mapped (nothing is
    read until used) except in a reference built before they were stored uncompressed."""
    ref_dir = Path(ref_dir)
    if (ref_dir / REFERENCE_OUTPUTS).exists():
        return (np.load(ref_dir / REFERENCE_IMAGES, mmap_mode="r"),
                np.load(ref_dir / REFERENCE_OUTPUTS, mmap_mode="r"))
    return _legacy_outputs(str(ref_dir / LEGACY_REFERENCE_OUTPUTS),
                           (ref_dir / LEGACY_REFERENCE_OUTPUTS).stat().st_mtime_ns)


def load_reference_output_list(ref_dir: Path, count: int) -> list[np.ndarray] | None:
    """The reference's `count` outputs (memory-mapped, in `output_names` order), or None for a
    reference built before every output was kept."""
    ref_dir = Path(ref_dir)
    files = [ref_dir / output_file(i) for i in range(count)]
    if not all(f.exists() for f in files):
        return None
    return [np.load(f, mmap_mode="r") for f in files]


@functools.lru_cache(maxsize=1)
def _legacy_outputs(path: str, _mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """A compressed reference, the last one kept in memory: the cells and variants of one model
    check against the same outputs."""
    with np.load(path) as data:
        images, outputs = data["images"], data["outputs"]
    images.setflags(write=False)
    outputs.setflags(write=False)
    return images, outputs
