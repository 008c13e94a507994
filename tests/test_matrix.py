"""The matrix file: checks that name the file, key and allowed values; cell expansion."""

from __future__ import annotations

import pytest

from edge.errors import EdgeError
from edge.farm.runners.table import GPU_RUNTIMES
from edge.farm.scheduling.matrix import default_matrix_path, load_matrix, shipped_matrix

DEVICES = ["host", "moto_g4", "pixel_5", "pixel_7", "pixel_2", "pixel_4"]
SLUGS = ["mobilenet_v2", "efficientnet_b0", "efficientnet_lite0", "deeplab_v3",
         "deeplab_v3:head=cityscapes", "deeplab_v3:head=ade20k", "psenet"]


def write(tmp_path, text):
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


def test_default_matrix_covers_every_family_variant_and_runtime():
    from edge.variants import DEFAULT_VARIANTS, RECIPE_VARIANTS, RUNTIMES

    matrix = load_matrix(shipped_matrix(), device_names=DEVICES)
    cells = matrix.cells("default", SLUGS)
    assert {c.model for c in cells} == set(SLUGS)
    assert {c.variant for c in cells} >= set(DEFAULT_VARIANTS)
    # The GPU runtimes measure the host's GPU (here SwiftShader, software), not a phone's; the
    # ONNX runtimes run the ONNX variants; tflite-runtime and tfjs-tflite (tflite-web) are the
    # legacy runtimes, litert-compiled the Interpreter's kernels behind another API: in --preset
    # full only; a phone over adb (benchmark-model) only where a catalog profile names one
    assert {c.runtime for c in cells} == set(RUNTIMES) - {
        "tfjs-webgl", "tfjs-webgpu", "litertjs-webgpu", "onnxruntime", "ort-wasm",
        "ort-webgpu", "tflite-runtime", "tflite-web", "litert-compiled", "benchmark-model"}
    assert {"tfjs-webgl", "tfjs-webgpu", "litertjs-webgpu", "tflite-runtime", "tflite-web",
            "litert-compiled"} <= {c.runtime for c in matrix.cells("full", SLUGS)}
    # ai-edge-quantizer's recipe variants are built for every model and measured on the baseline
    assert set(RECIPE_VARIANTS) <= set(matrix.variants)
    assert {c.variant for c in cells if c.variant in RECIPE_VARIANTS} == set(RECIPE_VARIANTS)
    # LiteRT.js runs every model's float32, float16 and full int8 .tflite on the host, and
    # MobileNetV2's dynamic-range one (its slow path in WASM)
    litertjs = {(c.model, c.variant) for c in cells
                if c.runtime == "litertjs-wasm" and c.device == "host"}
    assert litertjs == {(m, v) for m in SLUGS for v in (
        "tflite-fp32", "tflite-fp16", "tflite-int8-full")} | {
        ("mobilenet_v2", "tflite-int8-dynamic")}
    assert len({c.device for c in cells}) >= 3
    assert len(set(cells)) == len(cells)
    assert all(c.threads for c in cells if c.native)
    # never more threads than a 2-core host has
    assert max(c.threads or 1 for c in cells) <= 2
    # no GPU backend on an emulated phone: the host's GPU is not a phone's
    assert all(c.device == "host" for c in cells if c.runtime in GPU_RUNTIMES)
    assert all(c.threads is None for c in cells if c.runtime in GPU_RUNTIMES)
    # every emulated cell has a host cell at the same threads to be compared with
    host = {(c.model, c.variant, c.runtime, c.threads) for c in cells if c.device == "host"}
    phones = [c for c in cells if c.device != "host"]
    assert phones and all((c.model, c.variant, c.runtime, c.threads) in host for c in phones)
    # phones' warm latency is estimated from the host's cells (edge/estimate.py): the emulated
    # phones measure cold start and memory in the browser, one calibrated throttle each, alone
    assert {c.device for c in phones} == {"moto_g4", "pixel_5", "pixel_7"}
    assert not [c for c in phones if c.native]
    alone = set(matrix.alone_cells("default", SLUGS))
    assert all(c in alone for c in phones)
    # rules shorten only the caps of cells measured alone (never the floors: min_runs and
    # min_seconds stay the run's), and a throttled page gets longer to settle than the host's
    protocols = matrix.cell_protocols("default", SLUGS)
    assert set(phones) <= set(protocols) and len(alone & set(protocols)) > len(phones)
    assert all(set(p) <= {"max_warmup_seconds", "max_seconds"} for p in protocols.values())
    host_warmup = max(p["max_warmup_seconds"] for c, p in protocols.items()
                      if c.device == "host" and c in alone)
    assert all(protocols[c]["max_warmup_seconds"] > host_warmup for c in phones)
    # published phone figures on one thread pair with one-thread host cells
    assert {(c.model, c.variant) for c in cells if c.runtime == "litert" and c.threads == 1} \
        >= {("mobilenet_v2", "tflite-fp32"), ("mobilenet_v2", "tflite-int8-full")}


def test_a_rule_protocol_is_checked_and_names_its_rule(tmp_path):
    head = """
[build]
models = ["mobilenet_v2"]
variants = ["tflite-fp32"]
[[bench.cells]]
runtimes = ["litert"]
[[bench.cells]]
runtimes = ["litert"]
variants = ["tflite-fp32"]
"""
    bad = write(tmp_path, head + "protocol = { min_runs = 3, max_secs = 1.0 }\n")
    with pytest.raises(EdgeError, match=r"m\.toml: \[\[bench\.cells\]\] #2 protocol.*max_secs"):
        load_matrix(bad, device_names=DEVICES)
    bad = write(tmp_path, head + "protocol = { min_runs = 0 }\n")
    with pytest.raises(EdgeError, match=r"#2 protocol.*min_runs"):
        load_matrix(bad, device_names=DEVICES)
    ok = load_matrix(write(tmp_path, head + "protocol = { min_runs = 3 }\n"),
                     device_names=DEVICES)
    (cell,) = ok.cells("default", ["mobilenet_v2"])
    assert ok.cell_protocols("default", ["mobilenet_v2"]) == {cell: {"min_runs": 3}}
    assert ok.cell_protocols("full", ["mobilenet_v2"]) == {}


def test_rules_may_name_browser_threads_and_native_devices(tmp_path):
    path = write(tmp_path, """
[build]
models = ["mobilenet_v2"]
variants = ["tflite-fp32", "tfjs-fp32"]
[bench]
devices = ["host", "pixel_4"]
[[bench.cells]]
runtimes = ["tfjs-wasm", "tfjs-webgl"]
devices = ["pixel_4"]
threads = [1]
[[bench.cells]]
runtimes = ["litert"]
devices = ["pixel_4"]
""")
    cells = load_matrix(path, device_names=DEVICES).cells("default", ["mobilenet_v2"])
    got = {(c.runtime, c.device, c.threads) for c in cells}
    assert got == {("tfjs-wasm", "pixel_4", 1), ("tfjs-webgl", "pixel_4", None),
                   ("litert", "pixel_4", 2)}


def test_full_preset_never_oversubscribes(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    matrix = load_matrix(shipped_matrix(), device_names=DEVICES)
    assert {c.threads for c in matrix.cells("full", SLUGS)} == {1, 2, None}


def test_presets():
    matrix = load_matrix(shipped_matrix(), device_names=DEVICES)
    full = matrix.cells("full", SLUGS)
    default = matrix.cells("default", SLUGS)
    assert set(default) <= set(full) and len(full) > len(default)
    smoke = matrix.cells("smoke", SLUGS)
    assert {c.model for c in smoke} == {"mobilenet_v2"} and 0 < len(smoke) <= 4
    with pytest.raises(EdgeError, match="valid presets: default, full, smoke"):
        matrix.cells("huge", SLUGS)


@pytest.mark.parametrize("text,message", [
    ("[build]\nmodels = 'mobilenet_v2'\n", r"\[build\] models must be list"),
    ("[build]\nmodels = []\ncolour = 1\n", r"unknown key 'colour'; allowed: models"),
    ("[build]\njobs = 0\n", "jobs must be at least 1"),
    ("[build]\nvariants = ['tflite-int9']\n", "unknown variant 'tflite-int9'; allowed: "),
    ("[build]\n[bench]\ndevices = ['nokia_3310']\n", "unknown device 'nokia_3310'; allowed: host"),
    ("[build]\n[bench]\nthreads = [-1]\n", "threads must be integers >= 1"),
    ("[build]\n[[bench.cells]]\nruntimes = ['tfjs-cpu']\n",
     r"\[\[bench.cells\]\] #1 runtimes: unknown runtime 'tfjs-cpu'"),
    ("[build]\n[[bench.cells]]\nmodel = ['x']\n", "unknown key 'model'; allowed: models"),
    ("[build]\n[bench]\nfidelity_images = -2\n", "fidelity_images must be >= 0"),
    ("[bild]\n", "unknown table"),
    ("[build\n", "not valid TOML"),
])
def test_bad_matrix_files_name_file_key_and_allowed_values(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(EdgeError, match=message) as exc:
        load_matrix(path, device_names=DEVICES)
    assert str(path) in str(exc.value)


def test_missing_matrix_file(tmp_path):
    with pytest.raises(EdgeError, match="matrix file not found"):
        load_matrix(tmp_path / "none.toml")


def test_the_matrix_file_is_the_given_one_else_the_local_one_else_the_shipped_one(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = shipped_matrix()
    assert shipped.is_file() and shipped.parent.name == "data"
    assert default_matrix_path() == shipped
    assert load_matrix().path == shipped
    local = write(tmp_path, "[build]\nmodels = [\"psenet\"]\n").rename(
        tmp_path / "device_matrix.toml")
    assert default_matrix_path().resolve() == local
    assert load_matrix().models == ["psenet"]
    other = write(tmp_path, "[build]\nmodels = [\"deeplab_v3\"]\n")
    assert default_matrix_path(other) == other
    assert load_matrix(other).models == ["deeplab_v3"]


def test_interleave_false_rules_give_cells_measured_alone_unless_another_rule_interleaves(
        tmp_path):
    path = write(tmp_path, """
[build]
models = ["mobilenet_v2", "psenet"]
variants = ["tflite-fp32", "tflite-fp16"]
[[bench.cells]]
runtimes = ["litert"]
models = ["mobilenet_v2"]
[[bench.cells]]
runtimes = ["litert"]
interleave = false
""")
    matrix = load_matrix(path, device_names=DEVICES)
    slugs = ["mobilenet_v2", "psenet"]
    assert len(matrix.cells("default", slugs)) == 4
    assert {(c.model, c.variant) for c in matrix.alone_cells("default", slugs)} == {
        ("psenet", "tflite-fp32"), ("psenet", "tflite-fp16")}
    # the full preset's cross product has no rules to say so: every group is interleaved
    assert matrix.alone_cells("full", slugs) == frozenset()
    bad = write(tmp_path, "[build]\n[[bench.cells]]\nruntimes = ['litert']\ninterleave = 'no'\n")
    with pytest.raises(EdgeError, match=r"#1\] interleave must be bool, got str"):
        load_matrix(bad, device_names=DEVICES)

