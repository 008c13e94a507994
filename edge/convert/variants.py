"""The variant vocabulary, as data.

Two quantization vocabularies, not one: TFLite post-training quantization (fp32, fp16, int8
dynamic-range, int8 full-integer with a representative dataset) and TF.js weight quantization
(none, float16, uint16, uint8). Which runtime can run which variant, and the combinations known to
fail with current converters, are written down here with their reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.errors import SpecError


@dataclass(frozen=True)
class Variant:
    name: str
    format: str  # "tflite" | "tfjs"
    quantization: str
    description: str
    options: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def needs_representative_data(self) -> bool:
        return self.quantization == "int8-full"

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
    Variant("tflite-as-is", "tflite", "as-is", "a user's .tflite file, measured unchanged"),
    Variant("tfjs-fp32", "tfjs", "none", "TF.js graph model, float32 weights"),
    Variant("tfjs-fp16", "tfjs", "float16", "TF.js graph model, float16 weight quantization"),
    Variant("tfjs-uint16", "tfjs", "uint16", "TF.js graph model, uint16 affine weights"),
    Variant("tfjs-uint8", "tfjs", "uint8", "TF.js graph model, uint8 affine weights"),
]

VARIANTS: dict[str, Variant] = {v.name: v for v in _ALL}

#: What a plain `edge build` produces: every quantization of both formats once.
DEFAULT_VARIANTS: tuple[str, ...] = (
    "tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8-full",
    "tfjs-fp32", "tfjs-fp16", "tfjs-uint16", "tfjs-uint8",
)

#: Every variant a model given as Keras or SavedModel can be built in.
BUILDABLE_VARIANTS: tuple[str, ...] = tuple(v.name for v in _ALL if v.quantization != "as-is")

#: Runtime -> the artifact format it executes.
RUNTIMES: dict[str, str] = {
    "litert": "tflite",
    "tflite-runtime": "tflite",
    "tflite-web": "tflite",
    "tfjs-wasm": "tfjs",
    "tfjs-webgl": "tfjs",
    "tfjs-webgpu": "tfjs",
}


@dataclass(frozen=True)
class KnownIssue:
    """A variant × runtime combination known not to work, with the reason (`*` matches any)."""

    variant: str
    runtime: str
    reason: str

    def matches(self, variant: str, runtime: str) -> bool:
        return self.variant in ("*", variant) and self.runtime in ("*", runtime)


#: Incompatibilities of the toolchain itself, true for every model.
KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue("tflite-int8-dynamic", "tflite-web",
               "tfjs-tflite rejects dynamic-range models with a dense layer (classifiers) from "
               "current TensorFlow: Didn't find op for builtin opcode 'FULLY_CONNECTED' "
               "version '12'"),
    KnownIssue("tflite-int8-dynamic", "tflite-runtime",
               "tflite-runtime 2.14 rejects dynamic-range models with a dense layer from "
               "TensorFlow 2.19: Didn't find op for builtin opcode 'FULLY_CONNECTED' "
               "version '12'"),
)


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
