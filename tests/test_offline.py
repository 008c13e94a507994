"""Every runtime loads and runs with the network cut off.

`edge bench` runs in a network namespace of its own (Linux `unshare --net`) whose only interface
is loopback: the browser, its runtimes' `.wasm` files, the native workers and the loopback server
have no route anywhere else, so a runtime that fetched anything from outside (a CDN, a model hub)
would fail its cell. One tiny MobileNetV2 cell per runtime, on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from edge.variants import RUNTIMES, explain_failure

pytestmark = [pytest.mark.slow, pytest.mark.browser]

#: Runtimes measured on the host (the adb one runs on a phone).
HOST_RUNTIMES = tuple(r for r in RUNTIMES if r != "benchmark-model")
VARIANT_OF_FORMAT = {"tflite": "tflite-fp32", "tfjs": "tfjs-fp32", "onnx": "onnx-fp32"}

#: Brings the namespace's loopback interface up (SIOCGIFFLAGS/SIOCSIFFLAGS, IFF_UP), prints the
#: namespace's interfaces, then runs the rest of argv.
_LOOPBACK_UP = """
import fcntl, os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, struct.pack("16sh", b"lo", 0))[:18])[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 1))
print("interfaces:", ",".join(sorted(name for _, name in socket.if_nameindex())), flush=True)
os.execv(sys.argv[1], sys.argv[1:])
"""


def _unshare() -> list[str]:
    """The command prefix that gives a process a network namespace of its own."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: no network namespace to cut off")
    prefix = ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    probe = subprocess.run(prefix + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")
    return prefix


MATRIX = """\
[build]
models = ["mobilenet_v2"]
variants = {variants}
build_dir = "{build}"

[bench]
devices = ["host"]
protocol = "smoke"
fidelity_images = 2
reports_dir = "{reports}"

[[bench.cells]]
runtimes = {runtimes}
devices = ["host"]
"""


def test_every_runtime_runs_with_only_loopback(tmp_path):
    from edge import workflow
    from edge.convert.targets import garden_target
    from edge.garden import REGISTRY

    prefix = _unshare()
    spec = REGISTRY["mobilenet_v2"]
    variants = sorted(VARIANT_OF_FORMAT.values())
    build = tmp_path / "build"
    target = garden_target(spec.resolve(spec.tiny), variants=tuple(variants))
    summary = workflow.build([target], build, jobs=2)
    workflow.validate(workflow.artifact_keys(summary), build)
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(MATRIX.format(variants=json.dumps(variants), build=build,
                                    reports=tmp_path / "reports",
                                    runtimes=json.dumps(list(HOST_RUNTIMES))))

    proc = subprocess.run(prefix + [sys.executable, "-c", _LOOPBACK_UP, sys.executable, "-m",
                                    "edge", "bench", "--tiny", "--matrix", str(matrix)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "interfaces: lo\n" in proc.stdout, proc.stdout[:500]

    (results,) = [p for p in (tmp_path / "reports").glob("*/results.jsonl")
                  if p.parent.name != "latest"]  # reports/latest links to the run
    records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    by_runtime = {r["runtime"]: r for r in records}
    assert sorted(by_runtime) == sorted(HOST_RUNTIMES)
    for runtime, rec in by_runtime.items():
        assert rec["variant"] == VARIANT_OF_FORMAT[RUNTIMES[runtime]]
        if rec["status"] == "unsupported":  # only the legacy runtime, only without its env
            assert runtime == "tflite-runtime", rec
            assert "tflite-runtime environment not found" in rec["error"], rec
            assert explain_failure(rec["variant"], runtime, rec["error"]) is not None
            continue
        assert rec["status"] == "ok", (runtime, rec.get("error"))
        assert rec["metrics"]["latency"]["n"] >= 1
        fidelity = rec["metrics"].get("fidelity") or {}
        assert fidelity.get("images") == 2, (runtime, fidelity)
    # the runtimes that must run everywhere this test runs: all but the legacy tflite-runtime,
    # which needs an environment of its own (NumPy < 2)
    assert all(by_runtime[r]["status"] == "ok" for r in HOST_RUNTIMES if r != "tflite-runtime")
