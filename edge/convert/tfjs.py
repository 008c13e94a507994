"""TF.js graph-model variants from the reference SavedModel (weight quantization)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from edge.variants import Variant

MODEL_JSON = "model.json"


def build_tfjs(variant: Variant, source: Path, rep_inputs: np.ndarray, out_dir: Path) -> dict:
    # The converter imports tensorflow_decision_forests, whose welcome banner imports IPython
    # whenever stdout is not a terminal file descriptor (pytest, notebooks, pipes).
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    from tensorflowjs.converters import tf_saved_model_conversion_v2 as converter

    q = variant.quantization
    dtype_map = None if q == "none" else {q: "*"}
    converter.convert_tf_saved_model(str(source), str(out_dir),
                                     quantization_dtype_map=dtype_map)
    model = json.loads((out_dir / MODEL_JSON).read_text())
    files = [MODEL_JSON] + [p for group in model["weightsManifest"] for p in group["paths"]]
    return {"files": files, "ops": tfjs_ops(model)}


def tfjs_ops(model: dict) -> dict[str, int]:
    topology = model.get("modelTopology", {})
    nodes = list(topology.get("node", []))
    for fn in topology.get("library", {}).get("function", []):
        nodes.extend(fn.get("nodeDef", []))
    counts = Counter(n["op"] for n in nodes if n.get("op") not in ("Const", "Placeholder"))
    return dict(sorted(counts.items()))
