"""Native TFLite on a real Android phone over adb: the `benchmark-model` runtime.

A device profile names its phone with ``adb`` (a serial from ``adb devices``, or ``host:port``
for a phone on the network, which edge reaches with ``adb connect`` first). For each cell edge:

1. finds ``adb`` on PATH and the TFLite benchmark tool built for the phone (the profile's
   ``benchmark_model`` field, else the ``EDGE_BENCHMARK_MODEL`` environment variable);
2. checks the phone is there (``adb -s SERIAL get-state`` answers ``device``) and reads what it
   is: ``getprop`` (model, manufacturer, Android release and SDK, SoC or board platform, ABI),
   ``dumpsys thermalservice`` (the thermal status) and ``dumpsys battery`` (level, temperature,
   charging);
3. pushes the tool and the variant's ``.tflite`` under ``/data/local/tmp/edge/``, runs the tool
   with the protocol's flags (`edge.farm.runners.benchmark_model.benchmark_flags`) and reads its
   output (`parse_output`).

The record is ``real``, never emulated, and carries the phone (``adb``) and the tool's command
and figures (``benchmark_model``). What is missing (adb, the tool, the phone) is a ``failed``
record whose error says what to install or connect; nothing here raises for it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edge.farm.cells import now
from edge.farm.runners.base import Runner, Where
from edge.farm.runners.benchmark_model import (
    BenchmarkOutputError,
    benchmark_flags,
    error_summary,
    parse_output,
)

#: The environment variable naming the benchmark tool when the profile does not.
BINARY_ENV = "EDGE_BENCHMARK_MODEL"
#: Where the tool and the models go on the phone.
DEVICE_DIR = "/data/local/tmp/edge"
#: Seconds an adb command other than the benchmark itself may take (a push of a large model
#: over Wi-Fi included).
ADB_TIMEOUT_S = 300.0
#: Android's thermal status values (PowerManager.THERMAL_STATUS_*).
THERMAL_STATUS = ("none", "light", "moderate", "severe", "critical", "emergency", "shutdown")

INSTALL_ADB = ("adb not found on PATH: install Android platform-tools "
               "(https://developer.android.com/tools/releases/platform-tools) and put adb on PATH")


#: What adb says when the phone, not the model or the tool, is the problem.
_ADB_LOST = re.compile(r"no adb device|device (?:'[^']*' )?not found|device offline|"
                       r"is 'offline'|no devices/emulators found|protocol fault|"
                       r"connection reset|error: closed|failed to connect", re.IGNORECASE)


class AdbError(RuntimeError):
    """An adb step failed; the message says what to install, connect or check."""


@dataclass
class Adb:
    """adb, aimed at one phone (`serial`: a USB serial or ``host:port``)."""

    serial: str
    exe: str = "adb"
    timeout_s: float = ADB_TIMEOUT_S

    @classmethod
    def find(cls, serial: str) -> Adb:
        exe = shutil.which("adb")
        if exe is None:
            raise AdbError(INSTALL_ADB)
        return cls(serial=serial, exe=exe)

    @property
    def over_tcp(self) -> bool:
        return re.fullmatch(r"[^\s:]+:\d+", self.serial) is not None

    def run(self, *args: str, timeout_s: float | None = None, device: bool = True) -> str:
        """stdout and stderr of ``adb [-s SERIAL] ARGS``; `AdbError` on a non-zero exit or a
        timeout."""
        argv = [self.exe, *(["-s", self.serial] if device else []), *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                                  timeout=timeout_s or self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise AdbError(f"`adb {' '.join(args[:2])}` took more than "
                           f"{timeout_s or self.timeout_s:g} s on {self.serial}") from None
        except OSError as exc:
            raise AdbError(f"cannot run adb ({self.exe}): {exc}") from None
        output = (done.stdout or "") + (done.stderr or "")
        if done.returncode != 0:
            raise AdbError(f"`adb {' '.join(args[:2])}` failed on {self.serial} (exit "
                           f"{done.returncode}): {error_summary(output, lines=3)}")
        return output

    def connect(self) -> None:
        """Make sure the phone answers: ``adb connect`` first for ``host:port``, then
        ``get-state`` must say ``device``."""
        if self.over_tcp:
            said = self.run("connect", self.serial, device=False, timeout_s=30)
            if "connected to" not in said:
                raise AdbError(f"adb connect {self.serial} failed: {said.strip()}; enable "
                               f"wireless debugging (or `adb tcpip 5555` over USB) and check "
                               f"the phone is reachable at that address")
        try:
            state = self.run("get-state", timeout_s=30).strip()
        except AdbError as exc:
            raise AdbError(f"no adb device {self.serial}: connect the phone by USB with USB "
                           f"debugging on and accept the computer's key (see `adb devices`), "
                           f"or `adb connect host:port` for a phone on the network ({exc})") \
                from None
        if state.splitlines()[-1:] != ["device"]:
            raise AdbError(f"adb device {self.serial} is {state or 'in no state'!r}, not "
                           f"'device': unlock it and accept the USB debugging prompt")

    def shell(self, command: str, timeout_s: float | None = None) -> str:
        return self.run("shell", command, timeout_s=timeout_s)

    def push(self, local: Path, remote: str) -> None:
        self.run("push", str(local), remote)


def parse_getprop(text: str) -> dict[str, str]:
    """``adb shell getprop``'s listing (``[key]: [value]`` lines) as a dict."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, flags=re.MULTILINE))


def parse_dumpsys_battery(text: str) -> dict:
    """Level (percent of ``scale``), temperature (°C: the service reports tenths) and whether
    a charger is plugged in, from ``dumpsys battery``."""
    fields = dict(re.findall(r"^\s*([A-Za-z ]+):\s*(.+?)\s*$", text, flags=re.MULTILINE))
    out: dict = {}
    level, scale = fields.get("level"), fields.get("scale")
    if level is not None and level.lstrip("-").isdigit():
        pct = int(level)
        if scale and scale.isdigit() and int(scale) not in (0, 100):
            pct = round(100 * pct / int(scale))
        out["battery_level"] = pct
    temp = fields.get("temperature")
    if temp is not None and temp.lstrip("-").isdigit():
        out["battery_temperature_c"] = int(temp) / 10
    powered = [k for k in ("AC powered", "USB powered", "Wireless powered", "Dock powered")
               if fields.get(k) == "true"]
    if any(k in fields for k in ("AC powered", "USB powered")):
        out["charging"] = bool(powered)
        out["powered_by"] = [k.split()[0] for k in powered]
    return out


def parse_thermal(text: str) -> dict:
    """The thermal status (0-6 and its name) from ``dumpsys thermalservice``."""
    m = re.search(r"Thermal Status:\s*(\d+)", text)
    if m is None:
        return {"thermal_status": None, "thermal": "unknown"}
    status = int(m.group(1))
    name = THERMAL_STATUS[status] if 0 <= status < len(THERMAL_STATUS) else f"status {status}"
    return {"thermal_status": status, "thermal": name}


def device_facts(adb: Adb) -> dict:
    """What the phone is and how it is (model, Android, SoC, thermal status, battery)."""
    props = parse_getprop(adb.shell("getprop"))
    facts = {
        "serial": adb.serial,
        "connection": "tcp" if adb.over_tcp else "usb",
        "model": props.get("ro.product.model"),
        "manufacturer": props.get("ro.product.manufacturer"),
        "android": props.get("ro.build.version.release"),
        "sdk": props.get("ro.build.version.sdk"),
        "soc": props.get("ro.soc.model") or props.get("ro.board.platform")
        or props.get("ro.hardware"),
        "soc_manufacturer": props.get("ro.soc.manufacturer"),
        "abi": props.get("ro.product.cpu.abi"),
        "build": props.get("ro.build.fingerprint"),
    }
    for command, parse in (("dumpsys thermalservice", parse_thermal),
                           ("dumpsys battery", parse_dumpsys_battery)):
        try:
            facts.update(parse(adb.shell(command, timeout_s=30)))
        except AdbError as exc:  # an old Android without the service: say so, measure anyway
            facts[command.split()[1] + "_error"] = str(exc)
    return facts


def benchmark_binary(profile) -> Path:
    """The benchmark tool to push: the profile's ``benchmark_model``, else $EDGE_BENCHMARK_MODEL;
    `AdbError` naming the field or variable when neither names a file."""
    given = getattr(profile, "benchmark_model", None)
    source = f"profile {profile.name!r} field 'benchmark_model'"
    if not given:
        given, source = os.environ.get(BINARY_ENV), BINARY_ENV
    if not given:
        raise AdbError(f"no benchmark_model binary: set {BINARY_ENV} (or the profile's "
                       f"'benchmark_model' field) to the TFLite benchmark tool built for the "
                       f"phone, e.g. the nightly android_aarch64_benchmark_model or `bazel build "
                       f"-c opt --config=android_arm64 //tensorflow/lite/tools/benchmark:"
                       f"benchmark_model`")
    path = Path(given).expanduser()
    if not path.is_file():
        raise AdbError(f"{source} = {given!r}: no such file (the TFLite benchmark tool built "
                       f"for the phone)")
    return path


class AdbRunner(Runner):
    """`benchmark-model` cells: the TFLite benchmark tool on a profile's adb phone."""

    kind = "adb"
    native = True
    noise_runtime = "benchmark-model"
    noise_between = "benchmark_model runs"

    def connection_lost(self, bench, cell, where: Where, error: str | None) -> bool:
        """The phone went away (unplugged, Wi-Fi dropped, adb server restarted): adb says the
        device is missing, offline or unauthorized, or the transport closed."""
        return bool(error) and _ADB_LOST.search(error) is not None

    def run(self, bench, cell, artifact, where: Where) -> dict:
        started = now()
        extra = bench.artifact_extra(artifact)
        profile = bench.catalog.get(cell.device)
        serial = getattr(profile, "adb", None)
        if not serial:
            return bench.record(cell, "failed", artifact, started=started, extra=extra,
                                error=f"runtime {cell.runtime} runs on a phone over adb: "
                                      f"profile {cell.device!r} names no 'adb' device "
                                      f"(a serial from `adb devices`, or host:port)")
        extra["real"] = True
        try:
            binary = benchmark_binary(profile)
            adb = Adb.find(serial)
            adb.connect()
            extra["adb"] = device_facts(adb)
            threads = cell.threads or 1
            remote_tool = f"{DEVICE_DIR}/benchmark_model"
            remote_model = f"{DEVICE_DIR}/{artifact.manifest['sha256'][:16]}.tflite"
            flags = benchmark_flags(remote_model, threads, bench.cell_protocol.to_dict())
            command = " ".join([remote_tool, *flags])
            extra["benchmark_model"] = {"binary": binary.name, "command": command}
            adb.shell(f"mkdir -p {DEVICE_DIR}")
            adb.push(binary, remote_tool)
            adb.shell(f"chmod 755 {remote_tool}")
            adb.push(artifact.main_file, remote_model)
        except AdbError as exc:
            return bench.record(cell, "failed", artifact, started=started, extra=extra,
                                error=str(exc))
        try:
            # The tool's own exit code is lost by old adb shells: the output decides.
            text = adb.run("shell", f"{command} 2>&1; echo edge-exit=$?",
                           timeout_s=bench.protocol.timeout_s)
        except AdbError as exc:
            status = "timeout" if "took more than" in str(exc) else "failed"
            return bench.record(cell, status, artifact, started=started, extra=extra,
                                error=str(exc))
        exit_code = re.search(r"edge-exit=(\d+)\s*$", text)
        try:
            out = parse_output(text)
        except BenchmarkOutputError as exc:
            code = (f" (exit {exit_code.group(1)})" if exit_code and exit_code.group(1) != "0"
                    else "")
            return bench.record(cell, "failed", artifact, started=started, extra=extra,
                                error=f"benchmark_model failed on {serial}{code}: {exc}")
        extra["benchmark_model"]["output_form"] = out.form
        metrics = {"latency": out.latency_ms(), "memory": out.memory()}
        return bench.record(cell, "ok", artifact, metrics=metrics, started=started,
                            extra=extra)
