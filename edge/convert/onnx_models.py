"""ONNX variants from the reference SavedModel: tf2onnx, then float16 or int8 QDQ.

Every variant starts from tf2onnx's conversion of the SavedModel's serving signature (run as
``python -m tf2onnx.convert`` in a child process: its C++ and Python logging stay out of the build
worker's, and its error comes back as the failure). ``onnx-fp16`` converts weights and
activations to float16 with onnxconverter-common, input and output kept float32;
``onnx-int8`` is ONNX Runtime's static quantization in QDQ form (int8 weights per channel, int8
activations), calibrated (min/max) on the same preprocessed images as the TFLite int8 variants.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from edge.variants import Variant

MODEL_FILE = "model.onnx"
#: The ONNX opset tf2onnx converts to (ONNX Runtime 1.2x runs up to 21 and more).
OPSET = 17
#: How long one tf2onnx conversion may take.
CONVERT_TIMEOUT_S = 1800
#: ONNX tensor element types -> NumPy dtype names (those a converted vision model uses).
ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool",
               10: "float16", 11: "float64"}


class ConversionError(RuntimeError):
    """tf2onnx did not convert the model; the message is its error."""


def build_onnx(variant: Variant, source: Path, rep_inputs: np.ndarray, out_dir: Path) -> dict:
    """Convert the SavedModel `source` into `out_dir/model.onnx` in `variant`'s precision."""
    target = out_dir / MODEL_FILE
    q = variant.quantization
    if q == "fp32":
        tf2onnx_convert(source, target)
    else:
        fp32 = out_dir / "fp32.onnx"
        tf2onnx_convert(source, fp32)
        if q == "fp16":
            to_float16(fp32, target)
        elif q == "int8-qdq":
            quantize_qdq(fp32, target, rep_inputs)
        else:
            raise ValueError(f"unknown ONNX quantization {q!r}")
        fp32.unlink()
    return {"files": [MODEL_FILE], "ops": onnx_ops(target), "io": onnx_io(target)}


def tf2onnx_convert(saved_model: Path, output: Path) -> None:
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model),
           "--signature_def", "serving_default", "--opset", str(OPSET), "--output", str(output)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"tf2onnx did not finish within {CONVERT_TIMEOUT_S} s") from None
    if proc.returncode != 0 or not output.exists():
        raise ConversionError(f"tf2onnx failed (exit code {proc.returncode}): "
                              f"{converter_error(proc.stderr)}")


def converter_error(stderr: str) -> str:
    """The converter's error out of its log: the last exception line of a traceback, else the
    last ERROR line, else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception)\b.*:", line):
            return line
    for line in reversed(lines):
        if " ERROR " in line or line.startswith("ERROR"):
            return line
    return lines[-1] if lines else "no output"


def to_float16(source: Path, output: Path) -> None:
    import onnx
    from onnxconverter_common import float16

    model = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(output))


def quantize_qdq(source: Path, output: Path, rep_inputs: np.ndarray) -> None:
    """Static int8 QDQ quantization of `source`, calibrated on `rep_inputs` (float32, N images,
    preprocessed as the model expects), one image per calibration run."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if len(rep_inputs) == 0:
        raise ValueError("int8 calibration needs at least one image")
    name = onnx.load(str(source)).graph.input[0].name

    class Images(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: rep_inputs[i:i + 1].astype(np.float32)}
                                 for i in range(len(rep_inputs))])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(source), str(output), Images(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True, calibrate_method=CalibrationMethod.MinMax)


def onnx_ops(path: Path) -> dict[str, int]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return dict(sorted(Counter(node.op_type for node in graph.node).items()))


def onnx_io(path: Path) -> dict:
    """Inputs and outputs in the shape of `edge.convert.tflite.tflite_io` (no quantization:
    scale 0); a symbolic dimension reads 1 (edge exports its references with a batch of 1)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}

    def describe(value):
        tensor = value.type.tensor_type
        shape = [int(d.dim_value) if d.HasField("dim_value") else 1 for d in tensor.shape.dim]
        return {"name": value.name, "shape": shape,
                "dtype": ONNX_DTYPES.get(tensor.elem_type, str(tensor.elem_type)),
                "scale": 0.0, "zero_point": 0}

    return {"inputs": [describe(v) for v in graph.input if v.name not in initializers],
            "outputs": [describe(v) for v in graph.output]}


def run_onnx(model_path: Path, inputs: np.ndarray, threads: int = 2) -> np.ndarray:
    """Outputs (the first output) of an ONNX model in ONNX Runtime's CPU execution provider for
    a batch of float inputs, one image per run."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    first = session.get_outputs()[0].name
    return np.concatenate([session.run([first], {name: inputs[i:i + 1].astype(np.float32)})[0]
                           for i in range(len(inputs))]).astype(np.float32)


def run_onnx_named(model_path: Path, inputs: np.ndarray,
                   threads: int = 2) -> dict[str, np.ndarray]:
    """Every output of an ONNX model on `inputs` by name (tf2onnx keeps the SavedModel
    signature's output names), in the order of their names."""
    import onnxruntime as ort

    from edge.convert.reference import natural_key

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    names = sorted((o.name for o in session.get_outputs()), key=natural_key)
    runs = [session.run(names, {name: inputs[i:i + 1].astype(np.float32)})
            for i in range(len(inputs))]
    return {n: np.concatenate([r[j] for r in runs]).astype(np.float32)
            for j, n in enumerate(names)}
