"""A failure is `unsupported` only when its error matches the signature of a known issue of its
variant and runtime; the same pair failing otherwise stays `failed` with its full error."""

from __future__ import annotations

import fnmatch

import pytest

from edge.farm.cells import failure_status
from edge.farm.scheduling.matrix import Cell
from edge.variants import (
    GPU_NOT_EMULATED,
    KNOWN_ISSUES,
    NATIVE_NEEDS_CGROUP,
    RUNTIMES,
    VARIANTS,
    explain_failure,
)

#: One real error text per known issue (as the runtimes print them), by issue index.
MATCHING = {
    0: "Error: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An older "
       "version of this builtin might be supported.",
    1: "RuntimeError: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An "
       "older version of this builtin might be supported. Are you using an old TFLite binary "
       "with a newer model?",
    2: "tflite-runtime environment not found: run `nox -s device_matrix` or set "
       "EDGE_TFLITE_RUNTIME_PYTHON",
    3: "backend webgpu unavailable: setBackend returned false; requestAdapter() returned null",
    4: "backend webgl unavailable: setBackend returned false",
    5: GPU_NOT_EMULATED,
    6: NATIVE_NEEDS_CGROUP,
    7: "TensorBuffer ranked tensor type Float32[1, 224, 224, 3] does not match expected ranked "
       "tensor type Float32[-1, 224, 224, 3] (at DefaultErrorReporter (http://127.0.0.1:36701/"
       "node_modules/@litertjs/core/wasm/litert_wasm_threaded_internal.js:8270:9))",
    8: "RuntimeError: /tensorflow/tensorflow/lite/kernels/dequantize.cc:58 op_context.input->"
       "type == kTfLiteUInt8 || op_context.input->type == kTfLiteInt8 || op_context.input->type"
       " == kTfLiteInt16 || op_context.input->type == kTfLiteFloat16 was not true.Node number 0 "
       "(DEQUANTIZE) failed to prepare.Failed to apply the default TensorFlow Lite delegate "
       "indexed at 0.",
    9: "Asyncify is not defined (at __asyncjs__ReadBufferDataJs (http://127.0.0.1:43199/"
       "node_modules/@litertjs/core/wasm/litert_wasm_threaded_internal.js:8302:3))",
    10: "Can't create a session. ERROR_CODE: 1, ERROR_MESSAGE: shader_helper.cc:416 "
        "GenerateSourceCode Program Transpose requires f16 but the device does not support it. "
        "(at S (http://127.0.0.1:38123/node_modules/onnxruntime-web/dist/ort.webgpu.min.mjs:6:"
        "26300))",
}
#: A new failure of the same pair: must stay `failed`.
OTHER = "RuntimeError: tensorflow/lite/kernels/conv.cc:351 input->dims->size != 4 (3 != 4)"


def _pair(issue) -> tuple[str, str]:
    """A concrete (variant, runtime) the issue covers: the variant's format runs there."""
    for runtime in RUNTIMES:
        if not fnmatch.fnmatchcase(runtime, issue.runtime):
            continue
        for variant, spec in VARIANTS.items():
            if fnmatch.fnmatchcase(variant, issue.variant) and spec.format == RUNTIMES[runtime]:
                return variant, runtime
    raise AssertionError(f"no variant/runtime pair for {issue}")


def test_every_known_issue_has_a_test_error():
    assert set(MATCHING) == set(range(len(KNOWN_ISSUES)))


@pytest.mark.parametrize("index", range(len(KNOWN_ISSUES)))
def test_known_issue_matches_only_its_signature(index):
    issue = KNOWN_ISSUES[index]
    variant, runtime = _pair(issue)
    cell = Cell("mobilenet_v2", variant, runtime, "host", 2)
    status, found = failure_status(cell, MATCHING[index])
    assert status == "unsupported" and found["signature"] == issue.signature
    assert explain_failure(variant, runtime, MATCHING[index]) is not None
    # the same pair failing with another error is a new failure, not the old note
    assert failure_status(cell, OTHER) == ("failed", None)
    assert failure_status(cell, None) == ("failed", None)


def test_a_signature_does_not_explain_another_pair():
    # FULLY_CONNECTED v12 is known for tfjs-tflite and tflite-runtime, not for LiteRT
    error = MATCHING[0]
    assert failure_status(Cell("m", "tflite-int8-dynamic", "litert", "host", 2), error) == (
        "failed", None)
    assert failure_status(Cell("m", "tflite-fp32", "tflite-web", "host", 2), error) == (
        "failed", None)
