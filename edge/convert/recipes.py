"""Recipe variants: an ai-edge-quantizer recipe applied to a float32 `.tflite`.

The quantizer works on TFLite flatbuffers, not on SavedModels, so these variants are built from
the float32 `.tflite` (the `tflite-fp32` artifact, or a user's own float `.tflite`). The recipe
itself, as the quantizer expands it (per op: bits, granularity, symmetry, compute precision),
goes into the artifact's manifest.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from edge.convert.tflite import MODEL_FILE, tflite_io, tflite_ops
from edge.variants import Variant


def quantizer_version() -> str:
    try:
        return metadata.version("ai-edge-quantizer")
    except metadata.PackageNotFoundError:
        return "missing"


def load_recipe(name: str) -> list[dict]:
    """The quantizer's recipe `name` (a function of `ai_edge_quantizer.recipe`) as plain JSON."""
    from ai_edge_quantizer import recipe as recipes

    make = getattr(recipes, name, None)
    if make is None or not callable(make):
        raise ValueError(f"ai-edge-quantizer {quantizer_version()} has no recipe {name!r}")
    # The recipe holds str-valued enums: a JSON round trip makes it plain data.
    return json.loads(json.dumps(make()))


def build_recipe(variant: Variant, source: Path, out_dir: Path) -> dict:
    """Quantize the float32 `.tflite` at `source` with the variant's recipe into out_dir."""
    from ai_edge_quantizer import quantizer

    if variant.recipe is None:
        raise ValueError(f"{variant.name} is not a recipe variant")
    recipe = load_recipe(variant.recipe)
    q = quantizer.Quantizer(Path(source).read_bytes(), recipe)
    result = q.quantize(enable_progress_bar=False, enable_progress_report=False)
    (out_dir / MODEL_FILE).write_bytes(bytes(result.quantized_model))
    return {"files": [MODEL_FILE], "ops": tflite_ops(out_dir / MODEL_FILE),
            "io": tflite_io(out_dir / MODEL_FILE),
            "recipe": {"name": variant.recipe, "quantizer": quantizer_version(),
                       "config": recipe}}
