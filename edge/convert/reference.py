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
        outputs, n_outputs = tflite_outputs(Path(target.source), inputs)
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
    if target.kind != "tflite":
        outputs = saved_model_outputs(sm_dir, inputs)
    np.save(staged / REFERENCE_IMAGES, np.ascontiguousarray(eval_images))
    np.save(staged / REFERENCE_OUTPUTS, np.ascontiguousarray(outputs, dtype=np.float32))
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
        "outputs": n_outputs,  # the reference outputs hold the first; fidelity needs one
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
    """The SavedModel's outputs on `inputs`, `batch` images a call, or as many as its signature
    takes when its batch is static (the exported reference: one)."""
    return saved_model_runner(sm_dir, batch)(inputs)


def saved_model_runner(sm_dir: Path, batch: int = 8):
    """A function from inputs to the SavedModel's (first) outputs, loaded once."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(sm_dir)).signatures["serving_default"]
    ((name, spec),) = fn.structured_input_signature[1].items()
    static = spec.shape.rank and spec.shape[0]
    step = int(static) if static else batch

    def run(inputs: np.ndarray) -> np.ndarray:
        return np.concatenate([
            next(iter(fn(**{name: tf.constant(inputs[i:i + step])}).values())).numpy()
            for i in range(0, len(inputs), step)
        ])

    return run


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


def tflite_outputs(path: Path, inputs: np.ndarray) -> tuple[np.ndarray, int]:
    """A float `.tflite` model's first output on `inputs` in LiteRT, one image per invoke, and
    how many outputs it has (the reference holds the first, as for a SavedModel)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    (inp,), outs = interp.get_input_details(), interp.get_output_details()
    if not outs:
        raise ValueError(f"{path}: the model has no outputs")
    for detail in (inp, *outs):
        if np.dtype(detail["dtype"]) != np.float32:
            raise ValueError(f"{path}: not a float model ({detail['name']} is "
                             f"{np.dtype(detail['dtype']).name}); recipe variants quantize a "
                             "float32 .tflite")
    results = []
    for i in range(len(inputs)):
        interp.set_tensor(inp["index"], inputs[i:i + 1].astype(np.float32))
        interp.invoke()
        results.append(interp.get_tensor(outs[0]["index"]).copy())
    return np.concatenate(results), len(outs)


def load_reference_outputs(ref_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation images and the reference's outputs, read-only; memory-mapped (nothing is
    read until used) except in a reference built before they were stored uncompressed."""
    ref_dir = Path(ref_dir)
    if (ref_dir / REFERENCE_OUTPUTS).exists():
        return (np.load(ref_dir / REFERENCE_IMAGES, mmap_mode="r"),
                np.load(ref_dir / REFERENCE_OUTPUTS, mmap_mode="r"))
    return _legacy_outputs(str(ref_dir / LEGACY_REFERENCE_OUTPUTS),
                           (ref_dir / LEGACY_REFERENCE_OUTPUTS).stat().st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _legacy_outputs(path: str, _mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """A compressed reference, the last one kept in memory: the cells and variants of one model
    check against the same outputs."""
    with np.load(path) as data:
        images, outputs = data["images"], data["outputs"]
    images.setflags(write=False)
    outputs.setflags(write=False)
    return images, outputs
