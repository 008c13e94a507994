"""TFLite variants from the reference SavedModel (post-training quantization)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from edge.variants import Variant

MODEL_FILE = "model.tflite"


def _configure(converter, variant: Variant, rep_inputs: np.ndarray):
    import tensorflow as tf

    q = variant.quantization
    if q == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if q == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif q == "int8-full":
        def representative():
            for i in range(len(rep_inputs)):
                yield [rep_inputs[i:i + 1]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = tf.uint8 if variant.options.get("io") == "uint8" else tf.int8
        converter.inference_input_type = io
        converter.inference_output_type = io
    elif q != "int8-dynamic":
        raise ValueError(f"unknown TFLite quantization {q!r}")


def build_tflite(variant: Variant, source: Path, rep_inputs: np.ndarray, out_dir: Path) -> dict:
    """Convert `source` (a SavedModel directory, or a .tflite copied as is) into out_dir."""
    if variant.quantization == "as-is":
        shutil.copyfile(source, out_dir / MODEL_FILE)
    else:
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_saved_model(str(source))
        _configure(converter, variant, rep_inputs)
        (out_dir / MODEL_FILE).write_bytes(converter.convert())
    return {"files": [MODEL_FILE], "ops": tflite_ops(out_dir / MODEL_FILE),
            "io": tflite_io(out_dir / MODEL_FILE)}


def tflite_ops(path: Path) -> dict[str, int]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    return dict(sorted(Counter(op["op_name"] for op in interp._get_ops_details()).items()))


def tflite_io(path: Path) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))

    def describe(d):
        scale, zero = d["quantization"]
        return {"name": d["name"], "shape": [int(s) for s in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name, "scale": float(scale), "zero_point": int(zero)}

    return {"inputs": [describe(d) for d in interp.get_input_details()],
            "outputs": [describe(d) for d in interp.get_output_details()]}
