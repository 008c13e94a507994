"""Where a cell runs, by table: every runtime has one runner, every endpoint scheme the catalog
accepts has one connect function, and the TF.js runtime has one install location."""

from __future__ import annotations

import hashlib
import types

import pytest

from edge.farm.emulation.devices import ENDPOINT_SCHEMES
from edge.farm.runners import endpoints, web_runtime
from edge.farm.runners.base import Runner
from edge.farm.runners.browser import BrowserRunner
from edge.farm.runners.native import NativeRunner
from edge.farm.runners.table import (
    ADB_RUNTIMES,
    GPU_RUNTIMES,
    NATIVE_RUNTIMES,
    RUNNERS,
    runner_for,
)
from edge.farm.runners.tflite_runner import RUNTIMES as WORKER_RUNTIMES
from edge.farm.scheduling.matrix import Cell
from edge.variants import RUNTIMES


def test_every_runtime_of_the_vocabulary_has_exactly_one_runner():
    assert set(RUNNERS) == set(RUNTIMES)
    assert all(isinstance(r, Runner) for r in RUNNERS.values())
    # the table decides what is native and what runs on the GPU, and the matrix asks it
    assert NATIVE_RUNTIMES == ("litert", "litert-compiled", "tflite-runtime", "onnxruntime")
    assert GPU_RUNTIMES == ("tfjs-webgl", "tfjs-webgpu", "litertjs-webgpu", "ort-webgpu")
    assert all(isinstance(RUNNERS[r], NativeRunner) for r in NATIVE_RUNTIMES)
    assert ADB_RUNTIMES == ("benchmark-model",)
    assert all(isinstance(r, BrowserRunner) for n, r in RUNNERS.items() if n not in
               NATIVE_RUNTIMES + ADB_RUNTIMES)
    assert set(NATIVE_RUNTIMES) == set(WORKER_RUNTIMES)  # the worker knows each one
    from edge.report import table as report_table  # the report's copy (it never imports farm)

    assert report_table.NATIVE_RUNTIMES == NATIVE_RUNTIMES
    assert Cell("m", "tflite-fp32", "litert", "host").native
    assert not Cell("m", "tflite-fp32", "tflite-web", "host").native
    with pytest.raises(ValueError, match="no runner for runtime 'tfjs-cpu'"):
        runner_for("tfjs-cpu")


def test_the_noise_probe_runtime_of_each_kind_is_one_of_its_own():
    for runner in RUNNERS.values():
        assert RUNNERS[runner.noise_runtime].kind == runner.kind


def test_every_endpoint_scheme_the_catalog_accepts_connects():
    assert {s.split("://")[0] for s in ENDPOINT_SCHEMES} == set(endpoints.CONNECT)
    calls = []
    chromium = types.SimpleNamespace(
        connect=lambda url: calls.append(("playwright", url)) or "pw",
        connect_over_cdp=lambda url: calls.append(("cdp", url)) or "cdp")
    pw = types.SimpleNamespace(chromium=chromium)
    assert endpoints.connect(pw, "ws://127.0.0.1:3000/x") == "pw"
    assert endpoints.connect(pw, "http://127.0.0.1:9222") == "cdp"
    assert calls == [("playwright", "ws://127.0.0.1:3000/x"), ("cdp", "http://127.0.0.1:9222")]
    with pytest.raises(ValueError, match="unknown endpoint scheme 'ftp'"):
        endpoints.connect(pw, "ftp://x")


def test_the_web_runtime_lives_in_the_user_cache_keyed_by_the_lock_file(tmp_path, monkeypatch):
    web = web_runtime.harness_dir()
    assert (web / "index.html").is_file() and (web / "stopping.js").is_file()
    digest = hashlib.sha256((web / "package-lock.json").read_bytes()).hexdigest()[:16]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert web_runtime.web_runtime_dir() == tmp_path / "xdg" / "edge" / "web-runtime" / digest
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert web_runtime.web_runtime_dir() == (tmp_path / "home" / ".cache" / "edge"
                                             / "web-runtime" / digest)
    # another lock file, another directory
    other = tmp_path / "web"
    other.mkdir()
    (other / "package-lock.json").write_text("{}")
    (other / "package.json").write_text('{"name": "x"}')
    assert web_runtime.web_runtime_dir(other).name != digest
    assert not web_runtime.is_installed(other)
    with pytest.raises(Exception, match="not installed in .*web-runtime"):
        web_runtime.require_web_runtime(other)
    target = web_runtime.prepare(other)
    assert target == web_runtime.web_runtime_dir(other)
    assert (target / "package.json").read_text() == '{"name": "x"}'
    assert (target / "package-lock.json").read_text() == "{}"


def test_doctor_says_whether_litertjs_initialises_and_why_no_gpu_cell():
    from edge.farm.doctor import litert_gpu_row, litert_row

    what, ok, found, _ = litert_row({"loaded": True, "error": None, "version": "2.5.3",
                                     "build": "threaded", "threadsUsed": 2})
    assert ok and "initialises" in found and "2.5.3" in found and "threaded" in found
    _, ok, found, fix = litert_row({"loaded": False, "error": "loadLiteRt timed out"})
    assert not ok and "loadLiteRt timed out" in found and "web_runtime" in fix
    _, ok, found, _ = litert_gpu_row([])
    assert ok and "no GPU cell" in found and "no GPU device" in found
    assert "/dev/dri/renderD128" in litert_gpu_row(["/dev/dri/renderD128"])[2]


def test_doctor_names_litertjs_webgpu_adapter_and_says_when_it_is_software():
    from edge.farm.doctor import litert_webgpu_row

    what, ok, found, _ = litert_webgpu_row(
        {"error": None}, {"vendor": "google", "architecture": "swiftshader",
                          "isFallbackAdapter": True})
    assert what == "LiteRT.js WebGPU (litertjs-webgpu)" and ok
    assert "google swiftshader" in found and "software" in found
    _, ok, found, _ = litert_webgpu_row({"error": None}, {"vendor": "arm", "architecture":
                                                          "valhall"})
    assert ok and "arm valhall" in found and "software" not in found
    _, ok, found, fix = litert_webgpu_row(
        {"error": "backend webgpu unavailable: requestAdapter() returned null"}, {})
    assert not ok and "requestAdapter() returned null" in found and "no cell" in fix
