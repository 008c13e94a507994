"""The variant vocabulary, as data.

Two quantization vocabularies, not one: TFLite post-training quantization (fp32, fp16, int8
dynamic-range, int8 full-integer with a representative dataset) and TF.js weight quantization
(none, float16, uint16, uint8). Beside them, recipe variants: ai-edge-quantizer recipes applied to
the float32 `.tflite` (int8 weight-only, int8 dynamic-range, int4 weight-only), each named by the
recipe it applies. And ONNX variants, converted from the same float32 reference by tf2onnx:
float32, float16 (weights and activations, float32 input/output) and int8 static QDQ quantization
(ONNX Runtime's quantizer, calibrated on the same images as the TFLite int8 variants). Which
runtime can run which variant, and the combinations known to fail with current converters, are
written down here with their reasons.

A leaf module (it imports only `edge.errors`): the garden, conversion, the farm, the report and the
command line all speak this vocabulary, and none of them owns it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from edge.errors import SpecError


@dataclass(frozen=True)
class Variant:
    name: str
    format: str  # "tflite" | "tfjs" | "onnx"
    quantization: str
    description: str
    options: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def needs_representative_data(self) -> bool:
        return self.quantization in ("int8-full", "int8-qdq")

    @property
    def recipe(self) -> str | None:
        """The ai-edge-quantizer recipe (a function of `ai_edge_quantizer.recipe`) this variant
        applies to the float32 `.tflite`, or None for a converter variant."""
        return self.options.get("recipe")

    def key_material(self) -> dict:
        return {"name": self.name, "format": self.format, "quantization": self.quantization,
                "options": dict(sorted(self.options.items()))}


_ALL = [
    Variant("tflite-fp32", "tflite", "fp32", "TFLite, float32 weights and activations"),
    Variant("tflite-fp16", "tflite", "fp16", "TFLite, float16 weights (dequantized at load)"),
    Variant("tflite-int8-dynamic", "tflite", "int8-dynamic",
            "TFLite, int8 weights, float activations (dynamic-range quantization)"),
    Variant("tflite-int8-full", "tflite", "int8-full",
            "TFLite, full-integer int8 with int8 input/output (representative dataset)",
            {"io": "int8"}),
    Variant("tflite-int8-full-uint8io", "tflite", "int8-full",
            "TFLite, full-integer int8 with uint8 input/output (representative dataset)",
            {"io": "uint8"}),
    Variant("tflite-aiq-int8-weight", "tflite", "aiq-int8-weight",
            "TFLite float32 quantized by ai-edge-quantizer: int8 per-channel weights, "
            "dequantized to float at run time", {"recipe": "weight_only_wi8_afp32"}),
    Variant("tflite-aiq-int8-dynamic", "tflite", "aiq-int8-dynamic",
            "TFLite float32 quantized by ai-edge-quantizer: int8 per-channel weights, "
            "activations quantized on the fly (dynamic range)", {"recipe": "dynamic_wi8_afp32"}),
    Variant("tflite-aiq-int4-weight", "tflite", "aiq-int4-weight",
            "TFLite float32 quantized by ai-edge-quantizer: int4 per-channel weights, "
            "dequantized to float at run time", {"recipe": "weight_only_wi4_afp32"}),
    Variant("tflite-as-is", "tflite", "as-is", "a user's .tflite file, measured unchanged"),
    Variant("tfjs-fp32", "tfjs", "none", "TF.js graph model, float32 weights"),
    Variant("tfjs-fp16", "tfjs", "float16", "TF.js graph model, float16 weight quantization"),
    Variant("tfjs-uint16", "tfjs", "uint16", "TF.js graph model, uint16 affine weights"),
    Variant("tfjs-uint8", "tfjs", "uint8", "TF.js graph model, uint8 affine weights"),
    Variant("onnx-fp32", "onnx", "fp32", "ONNX (tf2onnx), float32 weights and activations"),
    Variant("onnx-fp16", "onnx", "fp16",
            "ONNX, float16 weights and activations, float32 input/output (onnxconverter-common)"),
    Variant("onnx-int8", "onnx", "int8-qdq",
            "ONNX, int8 weights (per channel) and activations in QDQ form (ONNX Runtime's static "
            "quantization, calibrated on the TFLite int8 variants' images), float32 "
            "input/output"),
]

VARIANTS: dict[str, Variant] = {v.name: v for v in _ALL}

#: What a plain `edge build` produces: every quantization of both formats once.
DEFAULT_VARIANTS: tuple[str, ...] = (
    "tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8-full",
    "tfjs-fp32", "tfjs-fp16", "tfjs-uint16", "tfjs-uint8",
)

#: The ai-edge-quantizer recipe variants, built from the float32 `.tflite` (a garden or Keras
#: model's `tflite-fp32` artifact, or a user's own float `.tflite`).
RECIPE_VARIANTS: tuple[str, ...] = tuple(v.name for v in _ALL if v.recipe)

#: The variant a recipe variant quantizes, for a model not given as a `.tflite` file.
RECIPE_BASE = "tflite-fp32"

#: The ONNX variants: built for `--preset full` and on request, not by a plain `edge build`.
ONNX_VARIANTS: tuple[str, ...] = tuple(v.name for v in _ALL if v.format == "onnx")

#: Every variant a model given as Keras or SavedModel can be built in.
BUILDABLE_VARIANTS: tuple[str, ...] = tuple(v.name for v in _ALL if v.quantization != "as-is")

#: Runtime -> the artifact format it executes.
RUNTIMES: dict[str, str] = {
    "litert": "tflite",
    "litert-compiled": "tflite",
    "tflite-runtime": "tflite",
    "tflite-web": "tflite",
    "litertjs-wasm": "tflite",
    "litertjs-webgpu": "tflite",
    "tfjs-wasm": "tfjs",
    "tfjs-webgl": "tfjs",
    "tfjs-webgpu": "tfjs",
    "benchmark-model": "tflite",  # the TFLite benchmark tool on a phone over adb
    "onnxruntime": "onnx",
    "ort-wasm": "onnx",
    "ort-webgpu": "onnx",
}


@dataclass(frozen=True)
class KnownIssue:
    """A variant × runtime combination known not to work, the reason, and the error signature
    that identifies it (a regular expression searched in the error text). A failure is recorded
    ``unsupported`` only when its error matches the signature of an issue of its combination:
    any other error of the same combination is a new failure and stays ``failed``. Variant and
    runtime are shell-style patterns (``*`` matches any)."""

    variant: str
    runtime: str
    reason: str
    signature: str

    def matches(self, variant: str, runtime: str, error: str | None = None) -> bool:
        """The combination matches; with `error`, the error matches the signature too."""
        if not (fnmatch.fnmatchcase(variant, self.variant)
                and fnmatch.fnmatchcase(runtime, self.runtime)):
            return False
        return error is None or re.search(self.signature, error) is not None


FULLY_CONNECTED_V12 = r"Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'"
#: The error of a GPU backend cell on an emulated phone (see `KNOWN_ISSUES`).
GPU_NOT_EMULATED = ("GPU backends are not emulated: this host's WebGL/WebGPU is not a phone's "
                    "GPU; measure GPU variants on a real device (a profile with an endpoint)")
#: The error of a native cell on an emulated phone where CPU bandwidth control is unavailable.
NATIVE_NEEDS_CGROUP = ("native cells on an emulated phone need CPU bandwidth control (a "
                       "writable cgroup), which is unavailable here")

#: Incompatibilities of the toolchain itself, true for every model.
KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue("tflite-int8-dynamic", "tflite-web",
               "tfjs-tflite rejects dynamic-range models with a dense layer (classifiers) from "
               "current TensorFlow: Didn't find op for builtin opcode 'FULLY_CONNECTED' "
               "version '12'", FULLY_CONNECTED_V12),
    KnownIssue("tflite-int8-dynamic", "tflite-runtime",
               "tflite-runtime 2.14 rejects dynamic-range models with a dense layer from "
               "TensorFlow 2.19: Didn't find op for builtin opcode 'FULLY_CONNECTED' "
               "version '12'", FULLY_CONNECTED_V12),
    KnownIssue("*", "tflite-runtime",
               "tflite-runtime 2.14 needs NumPy < 2 and Python <= 3.11: its own environment, "
               "made by the nox sessions where it installs",
               r"tflite-runtime environment not found"),
    KnownIssue("*", "*-webgpu", "no WebGPU adapter in this browser (no GPU, or WebGPU "
               "disabled)", r"backend webgpu unavailable"),
    KnownIssue("*", "tfjs-webgl", "no WebGL context in this browser",
               r"backend webgl unavailable"),
    KnownIssue("*", "*-webg*", "GPU backends are not emulated: the host's GPU (often "
               "SwiftShader, a software rasterizer) is not a phone's", r"^GPU backends are not "
               r"emulated"),
    KnownIssue("*", "*", "native cells on an emulated phone need CPU bandwidth control "
               "(cgroup), unavailable here", r"^native cells on an emulated phone need CPU "
               r"bandwidth control"),
    KnownIssue("tflite-*", "litertjs-*", "LiteRT.js needs static input shapes: this model's "
               "input has a dynamic (-1) dimension, e.g. a SavedModel or .tflite exported "
               "without a fixed batch (edge exports its own references with a batch of 1)",
               r"does not match expected ranked tensor type \w+\[[^\]]*-1"),
    KnownIssue("tflite-aiq-int4-*", "tflite-runtime",
               "tflite-runtime 2.14's DEQUANTIZE takes uint8, int8, int16 and float16 inputs, "
               "not the int4 weights of ai-edge-quantizer's int4 recipes",
               r"dequantize\.cc:\d+ op_context\.input->type == kTfLiteUInt8 [^\n]*"
               r"\(DEQUANTIZE\) failed to prepare"),
    KnownIssue("tflite-int8-full*", "litertjs-webgpu",
               "LiteRT.js 2.5.3 on WebGPU: reading an int8 output buffer back from the GPU "
               "needs Asyncify, which its threaded WASM build lacks (float-I/O models read "
               "back fine)",
               r"Asyncify is not defined"),
    KnownIssue("onnx-fp16", "ort-webgpu",
               "ONNX Runtime Web's WebGPU kernels for a float16 model need the adapter's "
               "shader-f16 feature, which this adapter lacks (SwiftShader has none)",
               r"requires f16 but the device does not support it"),
)


def explain_failure(variant: str, runtime: str, error: str | None,
                    issues: tuple[KnownIssue, ...] = KNOWN_ISSUES) -> KnownIssue | None:
    """The known issue whose combination and error signature match this failure, else None."""
    if not error:
        return None
    for issue in issues:
        if issue.matches(variant, runtime, error):
            return issue
    return None


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise SpecError(
            f"unknown variant {name!r}; valid variants: {', '.join(VARIANTS)}"
        ) from None


def runtime_format(runtime: str) -> str:
    try:
        return RUNTIMES[runtime]
    except KeyError:
        raise SpecError(
            f"unknown runtime {runtime!r}; valid runtimes: {', '.join(RUNTIMES)}"
        ) from None
