"""Every garden model builds in every variant, loads in its runtime and matches the reference.

Generated from the registry: a model added to the garden is covered here without a new test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.convert.cache import Store, sha256_file
from edge.garden import REGISTRY
from tests.conftest import tiny_variants

pytestmark = pytest.mark.slow

CASES = [(name, v) for name in sorted(REGISTRY) for v in tiny_variants(name)]


def _artifact(tiny_garden, name, variant):
    for o in tiny_garden["summary"].outcomes:
        if o.job.kind == "artifact" and o.job.target.source == name and o.job.variant == variant:
            return o
    raise AssertionError(f"no build outcome for {name} {variant}")


def test_nothing_failed(tiny_garden):
    summary = tiny_garden["summary"]
    assert not summary.failures, [f"{o.job.label}: {o.error}" for o in summary.failures]
    assert summary.converted == len(CASES) + len(REGISTRY)


@pytest.mark.parametrize("name,variant", CASES)
def test_variant_builds_loads_and_matches_reference(tiny_garden, name, variant):
    outcome = _artifact(tiny_garden, name, variant)
    assert outcome.status == "built", outcome.error
    store = Store(tiny_garden["build_dir"])
    manifest = store.read("artifacts", outcome.job.key)
    root = store.path("artifacts", outcome.job.key)
    # manifest: files with sizes and hashes that match what is on disk
    for entry in manifest["files"]:
        path = root / entry["path"]
        assert path.stat().st_size == entry["bytes"] > 0
        assert sha256_file(path) == entry["sha256"]
        assert 0 < entry["gzip_bytes"] <= entry["bytes"] * 1.01 + 64
    assert manifest["op_count"] == sum(manifest["ops"].values()) > 0
    assert manifest["reference"]["params"] > 0 and manifest["reference"]["flops"] > 0
    assert manifest["tools"]["tensorflow"] != "missing"

    config = REGISTRY[name].resolve(REGISTRY[name].tiny)
    if manifest["format"] == "tflite":
        _check_tflite(root / "model.tflite", manifest, config)
        fid = tiny_garden["fidelity"][(config.slug, variant)]
        _check_fidelity(fid, manifest, config)
    else:
        _check_tfjs(root, manifest)


def _check_tflite(path, manifest, config):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert tuple(inp["shape"]) == config.input_shape
    interp.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    interp.invoke()
    assert interp.get_tensor(out["index"]).shape[0] == 1
    want = {"int8-full": np.dtype(np.uint8 if manifest["variant"]["options"].get("io") == "uint8"
                                  else np.int8)}.get(manifest["quantization"], np.float32)
    assert np.dtype(inp["dtype"]) == want
    # No training-mode batch norm leaked into the graph (it would make state ops appear).
    assert not {"ASSIGN_VARIABLE", "VAR_HANDLE"} & set(manifest["ops"])


def _check_fidelity(fid, manifest, config):
    assert manifest["fidelity"]["status"] == fid.status
    assert fid.status in ("pass", "warn", "fail"), fid.reasons
    figures = fid.figures
    q = manifest["quantization"]
    if q == "fp32":
        assert fid.status == "pass", fid.reasons
    elif q == "fp16":
        assert fid.status != "fail", fid.reasons
    # every variant is far better than chance, whatever its verdict
    if config.task == "classification":
        assert figures["top1_agreement"] > 2 / len(config.labels)
        assert figures["snr_db"] > 0
    elif config.task == "segmentation":
        assert figures["pixel_agreement"] > 0.3
    else:
        assert figures["kernel_iou"] > 0.3


def _check_tfjs(root, manifest):
    model = json.loads((root / "model.json").read_text())
    assert model["format"] == "graph-model"
    assert model["modelTopology"]["node"]
    weights = [w for group in model["weightsManifest"] for w in group["weights"]]
    shard_bytes = sum((root / p).stat().st_size
                      for group in model["weightsManifest"] for p in group["paths"])
    q = manifest["quantization"]
    quantized = [w for w in weights if "quantization" in w]
    if q == "none":
        assert not quantized
    else:
        assert quantized and all(w["quantization"]["dtype"] == q for w in quantized)
    floats = sum(int(np.prod(w["shape"])) for w in weights if w["dtype"] == "float32")
    per_value = {"none": 4, "float16": 2, "uint16": 2, "uint8": 1}[q]
    # the shards hold the float weights at the quantized width (plus int32 shape constants)
    assert shard_bytes >= floats * per_value
    assert shard_bytes < floats * per_value * 1.05 + 4096


def test_fidelity_is_recorded_for_every_tflite_variant(tiny_garden):
    tflite = [k for k in tiny_garden["fidelity"] if k[1].startswith("tflite")]
    assert len(tflite) == sum(v.startswith("tflite") for _, v in CASES)


def test_second_build_converts_nothing(tiny_garden):
    from edge import workflow

    summary = workflow.build(tiny_garden["targets"], tiny_garden["build_dir"], jobs=2)
    assert summary.converted == 0 and not summary.failures
    assert summary.count("cached") == len(summary.outcomes) == len(CASES) + len(REGISTRY)


def test_cli_validate_uses_the_cache_and_reports_every_failure(tiny_garden, capsys):
    from edge.cli import main

    build_dir = str(tiny_garden["build_dir"])
    with pytest.raises(SystemExit) as exc:
        main(["validate", "--tiny", "--build-dir", build_dir, "--allow-fail",
              "--variants", "tflite-fp32", "mobilenet_v2"])
    assert exc.value.code in (0, None)
    assert "tflite-fp32" in capsys.readouterr().out
