"""Native TFLite on a phone over adb (runtime `benchmark-model`): the benchmark tool's flags for a
protocol, its published output parsed, and a whole cell run through the runner against a
stand-in `adb`.

The parser's fixtures (tests/fixtures/benchmark_model/) are published output of the TFLite
benchmark tool, each with its source and version in its header. The stand-in `adb` is a small
script first on PATH: it records its arguments and replays output text (the benchmark fixtures;
for getprop and dumpsys, tests/fixtures/adb/, typed from the documented formats), so the tests
check the commands edge sends and what it reads back; no phone is measured here.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from edge.farm.runners.adb import (
    INSTALL_ADB,
    Adb,
    AdbRunner,
    parse_dumpsys_battery,
    parse_getprop,
    parse_thermal,
)
from edge.farm.runners.base import Where
from edge.farm.runners.benchmark_model import (
    BenchmarkOutputError,
    benchmark_flags,
    parse_output,
    read_memory,
)
from edge.farm.runners.table import runner_for

FIXTURES = Path(__file__).parent / "fixtures"
SERIAL = "R5CT12ABCDE"
TCP = "192.168.1.20:5555"


def body(path: Path) -> str:
    """A fixture's text after its header (the lines up to ``# ---``)."""
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("# ---\n")
    assert sep and head.startswith("# "), f"{path.name}: no '# ---' header"
    return rest


def bm(name: str) -> str:
    return body(FIXTURES / "benchmark_model" / name)


# -- the parser, on published output ----------------------------------------------------------


def test_every_fixture_names_its_source_and_tool():
    for path in sorted((FIXTURES / "benchmark_model").glob("*.txt")):
        head = path.read_text(encoding="utf-8").partition("# ---\n")[0]
        assert "# source: https://github.com/" in head, path.name
        assert "# tool: " in head and "# text: verbatim" in head, path.name


def test_tflite_1x_android_output():
    out = parse_output(bm("tflite_r1_android_yuenshome_issue77.txt"))
    assert out.form == "stats-lines"
    assert out.warmup.requested_runs == 4 and out.warmup.count == 7
    assert out.warmup.stats == {"count": 7, "first": 127425, "curr": 66709, "min": 66709,
                                "max": 127425, "avg": 76605.9, "std": 20944}
    assert out.inference.requested_runs == 10
    assert out.inference.stats == {"count": 15, "first": 66753, "curr": 66800, "min": 66699,
                                   "max": 66838, "avg": 66767.6, "std": 39}
    # "Average inference timings in us: Warmup: 76605.9, Init: 9933, no stats: 66767.6"
    assert (out.warmup_avg_us, out.init_us, out.inference_avg_us) == (76605.9, 9933, 66767.6)
    assert out.first_us is None
    lat = out.latency_ms()
    assert lat["n"] == 15 and lat["warmup_runs"] == 7
    assert lat["mean"] == pytest.approx(66.7676) and lat["std"] == pytest.approx(0.039)
    assert lat["min"] == pytest.approx(66.699) and lat["max"] == pytest.approx(66.838)
    assert lat["p50"] == pytest.approx(66.7676) and lat["p50_from"] == "mean"  # no median
    assert lat["init_ms"] == pytest.approx(9.933)
    assert out.memory()["overall_delta_mb"] is None  # that version printed no memory


def test_tflite_2019_output():
    out = parse_output(bm("tflite_2019_zedboard.txt"))
    assert out.warmup.requested_runs == 1 and out.warmup.count == 2
    assert out.warmup.stats["avg"] == 395037 and out.warmup.stats["std"] == 1537
    assert out.inference.requested_runs == 50
    assert out.inference.stats == {"count": 50, "first": 390368, "curr": 390936, "min": 389982,
                                   "max": 417669, "avg": 394183, "std": 4373}
    assert (out.warmup_avg_us, out.init_us, out.inference_avg_us) == (395037, 18764, 394183)
    lat = out.latency_ms()
    assert lat["p50"] == pytest.approx(394.183) and lat["n"] == 50
    assert lat["cv"] == pytest.approx(4373 / 394183)
    assert lat["wide"] is False


def test_tflite_2020_output_with_memory_and_an_operator_profile():
    text = bm("tflite_2020_iccd_peak_memory.txt")
    out = parse_output(text)
    assert out.warmup.stats == {"count": 52, "first": 20253, "curr": 8948, "min": 8433,
                                "max": 20253, "avg": 9578.96, "std": 1543}
    assert out.inference.stats == {"count": 109, "first": 9287, "curr": 8845, "min": 7923,
                                   "max": 10217, "avg": 9076.21, "std": 418}
    # "Inference timings in us: Init: 330, First inference: 20253, Warmup (avg): 9578.96, ..."
    assert (out.init_us, out.first_us, out.warmup_avg_us, out.inference_avg_us) == (
        330, 20253, 9578.96, 9076.21)
    # "Peak memory footprint (MB): init=5.04297 overall=39.2188"
    assert (out.memory_init_mb, out.memory_overall_mb) == (5.04297, 39.2188)
    memory = out.memory()
    assert memory["peak_rss_bytes"] is None  # a delta, not a peak RSS
    assert memory["memory_metric"] == "benchmark_model-footprint-delta"
    # the profiler's "Timings (microseconds): count=1 curr=62" is not a phase
    assert "Timings (microseconds): count=1 curr=62" in text
    assert out.latency_ms()["n"] == 109
    lat = out.latency_ms()
    assert lat["first_ms"] == pytest.approx(20.253) and lat["warmup_mean_ms"] == pytest.approx(
        9.57896)


def test_litert_2_results_block():
    out = parse_output(bm("litert_2_1_5_mobile_app_open_issue1134.txt"))
    assert out.form == "litert2-summary"
    assert out.init_us == pytest.approx(23744.73e3) and out.first_us == pytest.approx(7441.04e3)
    assert out.warmup.count == 1 and out.warmup_avg_us == pytest.approx(7441.04e3)
    assert out.inference.count == 10
    lat = out.latency_ms()
    assert lat["mean"] == pytest.approx(7430.20) and lat["min"] == pytest.approx(7416.40)
    assert lat["max"] == pytest.approx(7448.86) and lat["std"] == pytest.approx(9.92)
    assert lat["n"] == 10 and lat["warmup_runs"] == 1 and lat["init_ms"] == pytest.approx(
        23744.73)
    assert (out.memory_init_mb, out.memory_overall_mb, out.memory_peak_mb) == (
        6391.74, 6391.74, None)


def test_memory_delta_lines_of_tflite_2_13():
    text = bm("tflite_2_13_android_memory_issue75029.txt")
    # the last line wins; the reporter's notes after the figures are ignored
    assert read_memory(text) == {"init": 25.0977, "overall": 757.574, "peak": None}
    assert read_memory(text.splitlines()[0]) == {"init": 224.859, "overall": 260.609,
                                                 "peak": None}
    with pytest.raises(BenchmarkOutputError, match="no timed runs"):
        parse_output(text)  # memory lines alone are no benchmark


def test_a_failed_run_quotes_its_error():
    text = ("INFO: STARTING!\nINFO: Graph: [/data/local/tmp/edge/x.tflite]\n"
            "ERROR: Could not open '/data/local/tmp/edge/x.tflite'.\n"
            "ERROR: Benchmarking failed.\n")
    with pytest.raises(BenchmarkOutputError, match=r"Could not open '/data/local/tmp/edge/x"):
        parse_output(text)


# -- the command line a protocol makes -------------------------------------------------------


def test_flags_for_a_protocol():
    from edge.farm.protocol.protocol import PRESETS

    proto = PRESETS["smoke"].to_dict()
    assert benchmark_flags("/data/local/tmp/edge/m.tflite", 4, proto) == [
        "--graph=/data/local/tmp/edge/m.tflite", "--num_threads=4",
        f"--warmup_runs={proto['warmup']}", "--warmup_min_secs=0",
        f"--num_runs={proto['min_runs']}", f"--min_secs={proto['min_seconds']:g}",
        f"--max_secs={proto['max_seconds']:g}", "--use_xnnpack=true"]
    full = PRESETS["full"].to_dict()
    flags = benchmark_flags("m.tflite", 1, full, use_xnnpack=False, use_gpu=True)
    assert "--num_runs=30" in flags and "--min_secs=3" in flags and "--max_secs=120" in flags
    assert "--warmup_runs=5" in flags and flags[-2:] == ["--use_xnnpack=false", "--use_gpu=true"]
    with pytest.raises(ValueError, match="threads must be >= 1"):
        benchmark_flags("m.tflite", 0, full)


def test_device_fact_parsers_on_the_documented_formats():
    props = parse_getprop(body(FIXTURES / "adb" / "getprop.txt"))
    assert props["ro.product.model"] == "Pixel 7" and props["ro.soc.model"] == "GS201"
    assert parse_dumpsys_battery(body(FIXTURES / "adb" / "dumpsys_battery.txt")) == {
        "battery_level": 87, "battery_temperature_c": 29.1, "charging": True,
        "powered_by": ["USB"]}
    assert parse_thermal(body(FIXTURES / "adb" / "dumpsys_thermalservice.txt")) == {
        "thermal_status": 1, "thermal": "light"}
    assert parse_thermal("no such service") == {"thermal_status": None, "thermal": "unknown"}
    assert Adb(TCP).over_tcp and not Adb(SERIAL).over_tcp


# -- a whole cell through the runner, against a stand-in adb ---------------------------------

STANDIN = r'''#!{python}
"""A stand-in adb: logs its arguments, replays output text."""
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
fixtures = Path(os.environ["STANDIN_FIXTURES"])
known = os.environ["STANDIN_DEVICES"].split(",")


def body(path):
    return path.read_text().partition("# ---\n")[2]


if args[:1] == ["connect"]:
    print(f"connected to {{args[1]}}" if args[1] in known else
          f"failed to connect to '{{args[1]}}': Connection refused")
    sys.exit(0)
serial, rest = args[1], args[2:]
if serial not in known:
    print(f"error: device '{{serial}}' not found", file=sys.stderr)
    sys.exit(1)
if rest == ["get-state"]:
    print("device")
elif rest[:1] == ["push"]:
    print(f"{{rest[1]}}: 1 file pushed, 0 skipped.")
elif rest == ["shell", "getprop"]:
    print(body(fixtures / "adb" / "getprop.txt"), end="")
elif rest == ["shell", "dumpsys battery"]:
    print(body(fixtures / "adb" / "dumpsys_battery.txt"), end="")
elif rest == ["shell", "dumpsys thermalservice"]:
    print(body(fixtures / "adb" / "dumpsys_thermalservice.txt"), end="")
elif rest[:1] == ["shell"] and "benchmark_model --graph=" in rest[1]:
    print(body(fixtures / "benchmark_model" / os.environ["STANDIN_BENCH"]), end="")
    print("edge-exit=0")
elif rest[:1] == ["shell"]:
    pass  # mkdir, chmod
else:
    print(f"stand-in adb: unexpected {{args}}", file=sys.stderr)
    sys.exit(2)
'''

CATALOG = """
[networks.none]
download_kbps = 0.0
upload_kbps = 0.0
latency_ms = 0.0

[profiles.host]
label = "This machine"
tier = "host"
network = "none"

[profiles.pixel_usb]
label = "Pixel 7 on USB"
tier = "high"
cores = 8
memory_class = 8
network = "none"
adb = "{serial}"

[profiles.pixel_tcp]
label = "Pixel 7 over Wi-Fi"
tier = "high"
cores = 8
memory_class = 8
network = "none"
adb = "{tcp}"

[profiles.moto_g4]
label = "Moto G4"
tier = "low"
descriptor = "Moto G4"
benchmark_index = 400
cores = 8
memory_class = 2
network = "none"
"""


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """A stand-in adb first on PATH, a benchmark tool file, a catalog with adb phones and a
    bench; returns a namespace with `run(device)` (the record) and `calls()` (adb's argv)."""
    from rich.console import Console

    from edge.farm.cells import Artifact, Bench
    from edge.farm.emulation.devices import load_catalog
    from edge.farm.protocol.protocol import PRESETS
    from edge.farm.scheduling.matrix import Cell, Matrix
    from edge.results.store import ResultStore

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(STANDIN.format(python=sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "adb.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("STANDIN_LOG", str(log))
    monkeypatch.setenv("STANDIN_FIXTURES", str(FIXTURES))
    monkeypatch.setenv("STANDIN_DEVICES", f"{SERIAL},{TCP}")
    monkeypatch.setenv("STANDIN_BENCH", "tflite_2020_iccd_peak_memory.txt")
    tool = tmp_path / "android_aarch64_benchmark_model"
    tool.write_bytes(b"\x7fELF stand-in")
    monkeypatch.setenv("EDGE_BENCHMARK_MODEL", str(tool))

    cat_path = tmp_path / "catalog.toml"
    cat_path.write_text(CATALOG.format(serial=SERIAL, tcp=TCP))
    catalog = load_catalog(cat_path, descriptors=["Moto G4"])
    model = tmp_path / "art" / "model.tflite"
    model.parent.mkdir()
    model.write_bytes(b"TFL3 stand-in model")
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    artifact = Artifact(key="k", dir=model.parent, manifest={
        "files": [{"path": "model.tflite", "sha256": sha}], "sha256": sha, "format": "tflite",
        "quantization": "fp32", "bytes": 19, "gzip_bytes": 19,
        "model": {"task": "classification", "mean": [0.0], "std": [1.0]}})
    matrix = Matrix(path=tmp_path / "m.toml", models=[], variants=[])
    runs = []

    class Phone:
        sha16 = sha[:16]
        protocol = PRESETS["smoke"].to_dict()

        @staticmethod
        def run(device: str, runtime: str = "benchmark-model", threads: int = 4) -> dict:
            """One cell in a run directory of its own (a cell has one record per run)."""
            runs.append(tmp_path / f"run{len(runs)}")
            bench = Bench(matrix, {}, None, ResultStore(runs[-1]), "test-run",
                          PRESETS["smoke"], catalog, {}, Console(quiet=True))
            cell = Cell("mobilenet_v2", "tflite-fp32", runtime, device, threads)
            return runner_for(runtime).run(bench, cell, artifact, Where())

        @staticmethod
        def calls() -> list[list[str]]:
            if not log.exists():
                return []
            return [json.loads(line) for line in log.read_text().splitlines()]

    return Phone


def test_a_cell_on_a_usb_phone_is_a_real_record(phone):
    assert isinstance(runner_for("benchmark-model"), AdbRunner)
    rec = phone.run("pixel_usb")
    assert rec["status"] == "ok", rec.get("error")
    assert rec["real"] is True and rec["emulated"] is False
    assert rec["runtime"] == "benchmark-model" and rec["device"] == "pixel_usb"
    lat = rec["metrics"]["latency"]
    assert lat["mean"] == pytest.approx(9.07621) and lat["p50"] == pytest.approx(9.07621)
    assert lat["n"] == 109 and lat["min"] == pytest.approx(7.923)
    assert lat["std"] == pytest.approx(0.418) and lat["first_ms"] == pytest.approx(20.253)
    assert rec["metrics"]["memory"]["overall_delta_mb"] == 39.2188
    facts = rec["adb"]
    assert facts["model"] == "Pixel 7" and facts["manufacturer"] == "Google"
    assert facts["android"] == "14" and facts["sdk"] == "34"
    assert facts["soc"] == "GS201" and facts["abi"] == "arm64-v8a"
    assert facts["thermal"] == "light" and facts["thermal_status"] == 1
    assert facts["battery_level"] == 87 and facts["charging"] is True
    assert facts["connection"] == "usb" and facts["serial"] == SERIAL

    calls = phone.calls()
    model = f"/data/local/tmp/edge/{phone.sha16}.tflite"
    tool = "/data/local/tmp/edge/benchmark_model"
    assert ["connect", SERIAL] not in calls  # USB: no adb connect
    assert calls[0] == ["-s", SERIAL, "get-state"]
    assert all(c[:2] == ["-s", SERIAL] for c in calls)
    pushes = [c[2:] for c in calls if c[2] == "push"]
    assert [p[2] for p in pushes] == [tool, model]
    assert pushes[0][1].endswith("android_aarch64_benchmark_model")
    assert pushes[1][1].endswith("model.tflite")
    assert ["-s", SERIAL, "shell", f"chmod 755 {tool}"] in calls
    command = calls[-1]
    assert command[:3] == ["-s", SERIAL, "shell"]
    p = phone.protocol
    assert command[3] == (
        f"{tool} --graph={model} --num_threads=4 --warmup_runs={p['warmup']} "
        f"--warmup_min_secs=0 --num_runs={p['min_runs']} --min_secs={p['min_seconds']:g} "
        f"--max_secs={p['max_seconds']:g} --use_xnnpack=true 2>&1; echo edge-exit=$?")
    assert rec["benchmark_model"]["command"] == command[3].split(" 2>&1")[0]
    assert rec["benchmark_model"]["output_form"] == "stats-lines"


def test_a_phone_over_tcp_is_connected_first(phone):
    rec = phone.run("pixel_tcp")
    assert rec["status"] == "ok", rec.get("error")
    calls = phone.calls()
    assert calls[0] == ["connect", TCP] and calls[1] == ["-s", TCP, "get-state"]
    assert rec["adb"]["connection"] == "tcp"


def test_litert_2_output_through_the_runner(phone, monkeypatch):
    monkeypatch.setenv("STANDIN_BENCH", "litert_2_1_5_mobile_app_open_issue1134.txt")
    rec = phone.run("pixel_usb")
    assert rec["status"] == "ok"
    assert rec["metrics"]["latency"]["mean"] == pytest.approx(7430.20)
    assert rec["benchmark_model"]["output_form"] == "litert2-summary"


def test_missing_adb_says_what_to_install(phone, monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    rec = phone.run("pixel_usb")
    assert rec["status"] == "failed"
    assert rec["error"] == INSTALL_ADB
    assert rec["error"].startswith("adb not found on PATH: install Android platform-tools")
    assert rec["real"] is True and phone.calls() == []


def test_missing_benchmark_tool_names_the_variable(phone, monkeypatch, tmp_path):
    monkeypatch.delenv("EDGE_BENCHMARK_MODEL")
    rec = phone.run("pixel_usb")
    assert rec["status"] == "failed"
    assert rec["error"].startswith("no benchmark_model binary: set EDGE_BENCHMARK_MODEL")
    monkeypatch.setenv("EDGE_BENCHMARK_MODEL", str(tmp_path / "nope"))
    rec = phone.run("pixel_usb")
    assert rec["status"] == "failed"
    assert f"EDGE_BENCHMARK_MODEL = '{tmp_path / 'nope'}': no such file" in rec["error"]
    assert phone.calls() == []  # nothing reached the phone


def test_no_such_device_says_what_to_connect(phone, monkeypatch):
    monkeypatch.setenv("STANDIN_DEVICES", "someone-else")
    rec = phone.run("pixel_usb")
    assert rec["status"] == "failed"
    assert rec["error"].startswith(f"no adb device {SERIAL}: connect the phone by USB")
    assert "not found" in rec["error"]  # adb's own words
    rec = phone.run("pixel_tcp")
    assert rec["status"] == "failed"
    assert rec["error"].startswith(f"adb connect {TCP} failed: failed to connect")


def test_a_failing_benchmark_is_a_failed_record(phone, monkeypatch):
    monkeypatch.setenv("STANDIN_BENCH", "tflite_2_13_android_memory_issue75029.txt")
    rec = phone.run("pixel_usb")
    assert rec["status"] == "failed"
    assert rec["error"].startswith(f"benchmark_model failed on {SERIAL}: no timed runs")


def test_benchmark_model_on_a_profile_without_adb(phone):
    rec = phone.run("moto_g4")
    assert rec["status"] == "failed"
    assert "profile 'moto_g4' names no 'adb' device" in rec["error"]
    assert phone.calls() == []


# -- the catalog and the matrix --------------------------------------------------------------


def test_catalog_adb_fields(tmp_path):
    from edge.farm.emulation.devices import CatalogError, load_catalog

    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.format(serial=SERIAL, tcp=TCP))
    cat = load_catalog(path, descriptors=["Moto G4"])
    assert cat["pixel_usb"].adb == SERIAL and cat["pixel_tcp"].adb == TCP
    assert not cat["pixel_usb"].emulated and cat["moto_g4"].adb is None
    bad = [("adb = \"R5CT 12\"", "field 'adb' must be an adb serial"),
           ("adb = \"R5CT\"\nemulated = true", "field 'emulated' must be false when 'adb'"),
           ("benchmark_model = \"/x\"", "field 'benchmark_model' needs an 'adb' device")]
    for line, message in bad:
        text = CATALOG.format(serial=SERIAL, tcp=TCP) + "\n[profiles.other]\nlabel = \"x\"\n" \
            "tier = \"mid\"\ncores = 4\nmemory_class = 4\nnetwork = \"none\"\n" + line + "\n"
        path.write_text(text)
        with pytest.raises(CatalogError, match="profile 'other'") as err:
            load_catalog(path, descriptors=["Moto G4"])
        assert message in str(err.value)
    path.write_text(CATALOG.format(serial=SERIAL, tcp=TCP).replace(
        'tier = "host"\n', 'tier = "host"\nadb = "R5CT"\n'))
    with pytest.raises(CatalogError, match="field 'adb' is not allowed on the host profile"):
        load_catalog(path, descriptors=["Moto G4"])


def test_matrix_rules_name_their_adb_phones(tmp_path):
    from edge.farm.scheduling.matrix import load_matrix

    path = tmp_path / "m.toml"
    path.write_text('[build]\nmodels = ["mobilenet_v2"]\nvariants = ["tflite-fp32"]\n'
                    '[bench]\ndevices = ["host", "pixel_usb"]\nthreads = [2]\n'
                    '[[bench.cells]]\nruntimes = ["benchmark-model"]\n'
                    '[[bench.cells]]\nruntimes = ["benchmark-model"]\ndevices = ["pixel_usb"]\n'
                    'threads = [1, 4]\n')
    cells = load_matrix(path, device_names=["host", "pixel_usb"]).cells("default")
    assert {(c.runtime, c.device, c.threads) for c in cells} == {
        ("benchmark-model", "pixel_usb", 1), ("benchmark-model", "pixel_usb", 4)}
    assert all(c.native for c in cells)


def test_host_runtimes_refuse_an_adb_phone(phone):
    rec = phone.run("pixel_usb", runtime="litert")
    assert rec["status"] == "failed"
    assert rec["error"] == ("runtime litert runs on this machine, not on the phone of profile "
                            "'pixel_usb': measure it there with runtime benchmark-model (adb)")
    assert phone.calls() == []


def test_an_adb_phone_is_a_remote_device_for_shards(tmp_path):
    from edge.farm.emulation.devices import load_catalog
    from edge.farm.scheduling.matrix import Cell
    from edge.farm.scheduling.shards import remote_devices, shard_key

    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.format(serial=SERIAL, tcp=TCP))
    cat = load_catalog(path, descriptors=["Moto G4"])
    remote = remote_devices(cat)
    assert remote == {"pixel_usb", "pixel_tcp"}
    cell = Cell("m", "tflite-fp32", "benchmark-model", "pixel_usb", 4)
    assert shard_key(cell, remote) == "m|tflite-fp32|benchmark-model|pixel_usb"
