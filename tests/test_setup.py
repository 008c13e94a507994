"""Setting up: which Pythons work, the TF.js runtime installed at setup (never mid-run), the
browser to install on systems where `apt-get install chromium` is not possible."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
import types
from pathlib import Path

import pytest

from edge.errors import EdgeError

ROOT = Path(__file__).resolve().parent.parent


# -- Python versions -------------------------------------------------------------------------

def _fake_python(folder: Path, name: str, version: str | None) -> Path:
    """An executable that answers like `pythonX.Y -c ...` (or fails, like a pyenv shim whose
    version is not installed)."""
    path = folder / name
    body = f"echo {version}" if version else "echo 'pyenv: command not found' >&2; exit 127"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_the_shared_env_takes_the_first_working_python_of_3_11_and_3_12(tmp_path):
    from edge.environment import choose_python

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    p312 = _fake_python(a, "python3.12", "3.12")
    p311 = _fake_python(b, "python3.11", "3.11")
    current = ("/usr/bin/python3.13", "3.13")
    assert choose_python(f"{a}{os.pathsep}{b}", current=current) == (str(p311), None)
    assert choose_python(str(a), current=current) == (str(p312), None)


def test_a_broken_python_on_path_is_skipped(tmp_path):
    from edge.environment import choose_python

    _fake_python(tmp_path, "python3.11", None)  # a shim for a version that is not installed
    p312 = _fake_python(tmp_path, "python3.12", "3.12")
    assert choose_python(str(tmp_path), current=("/x/python3", "3.13")) == (str(p312), None)


def test_without_3_11_or_3_12_the_running_python_is_used_with_a_warning(tmp_path):
    from edge.environment import choose_python

    _fake_python(tmp_path, "python3.13", "3.13")
    exe, warning = choose_python(str(tmp_path), current=("/usr/bin/python3.13", "3.13"))
    assert exe == "/usr/bin/python3.13"
    assert "3.13" in warning and "3.11" in warning and "3.12" in warning
    assert "TensorFlow" in warning
    assert choose_python(str(tmp_path), current=("/opt/py/bin/python3", "3.12")) == (
        "/opt/py/bin/python3", None)


def test_tflite_runtime_gets_python_3_11_or_nothing(tmp_path):
    from edge.environment import choose_tflite_runtime_python

    p312 = _fake_python(tmp_path, "python3.12", "3.12")
    assert choose_tflite_runtime_python(str(tmp_path), current=(str(p312), "3.12")) is None
    p311 = _fake_python(tmp_path, "python3.11", "3.11")
    assert choose_tflite_runtime_python(str(tmp_path), current=(str(p312), "3.12")) == str(p311)
    assert choose_tflite_runtime_python(str(tmp_path / "none"),
                                        current=("/usr/bin/python3", "3.11")) == \
        "/usr/bin/python3"


def test_the_package_metadata_names_the_pythons_that_work():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.13"
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11 or 3.12" in readme


# -- the browser to install ------------------------------------------------------------------

DEBIAN = {"ID": "debian", "VERSION_ID": "12"}
UBUNTU = {"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "24.04"}
FEDORA = {"ID": "fedora", "VERSION_ID": "40"}
ARCH = {"ID": "arch"}
SNAP_SHIM = """#! /bin/sh
# Script to tell the user to install the chromium snap
if ! [ -x /snap/bin/chromium ]; then
    echo "Command '$0' requires the chromium snap to be installed." >&2
    echo "Please install it with:" >&2
    echo "snap install chromium" >&2
    exit 1
fi
exec /snap/bin/chromium "$@"
"""


def _which(*found):
    return lambda name: f"/usr/bin/{name}" if name in found else None


@pytest.mark.parametrize(("system", "os_release", "tools", "root", "expected"), [
    ("Linux", DEBIAN, ("apt-get",), True, ["apt-get install chromium",
                                            "EDGE_BROWSER=/usr/bin/chromium"]),
    ("Linux", DEBIAN, ("apt-get",), False, ["sudo apt-get install chromium",
                                             "EDGE_BROWSER=/usr/bin/chromium",
                                             "playwright install chromium"]),
    ("Linux", UBUNTU, ("apt-get",), True, ["snap", "playwright install --with-deps chromium",
                                            "google-chrome-stable",
                                            "EDGE_BROWSER=/usr/bin/google-chrome-stable"]),
    ("Linux", FEDORA, ("dnf",), False, ["sudo dnf install chromium",
                                         "EDGE_BROWSER=/usr/bin/chromium-browser"]),
    ("Linux", ARCH, ("pacman",), False, ["sudo pacman -S chromium",
                                          "EDGE_BROWSER=/usr/bin/chromium"]),
    ("Linux", {}, (), False, ["playwright install chromium", "EDGE_BROWSER="]),
    ("Darwin", {}, ("brew",), False, [
        "brew install --cask google-chrome",
        'EDGE_BROWSER="/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"']),
    ("Windows", {}, (), False, [r"EDGE_BROWSER=C:\Program Files\Google\Chrome\Application"]),
])
def test_the_install_hint_says_what_to_install_and_how_to_point_edge_browser_at_it(
        system, os_release, tools, root, expected):
    from edge.environment import browser_install_hint

    hint = browser_install_hint(system, os_release=os_release, which=_which(*tools),
                                is_root=root)
    assert "\n" not in hint
    for text in expected:
        assert text in hint, (text, hint)
    if system != "Linux" or os_release.get("ID") != "debian":
        assert "apt-get install chromium" not in hint  # never where it cannot work


def test_apt_get_install_chromium_only_on_debian_as_root():
    from edge.environment import can_apt_install_chromium

    assert can_apt_install_chromium(DEBIAN, which=_which("apt-get"), is_root=True)
    assert not can_apt_install_chromium(DEBIAN, which=_which("apt-get"), is_root=False)
    assert not can_apt_install_chromium(DEBIAN, which=_which(), is_root=True)
    assert not can_apt_install_chromium(UBUNTU, which=_which("apt-get"), is_root=True)
    assert not can_apt_install_chromium(FEDORA, which=_which("dnf"), is_root=True)


def test_ubuntus_snap_shim_is_not_a_browser(tmp_path):
    from edge.environment import find_browser, is_snap_shim

    shim = tmp_path / "chromium-browser"
    shim.write_text(SNAP_SHIM)
    shim.chmod(0o755)
    real = tmp_path / "chrome"
    real.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(4096))
    real.chmod(0o755)
    assert is_snap_shim(shim) and not is_snap_shim(real)
    assert not is_snap_shim(tmp_path / "missing")
    which = {"chromium-browser": str(shim)}.get
    assert find_browser(env={}, which=which, playwright_dir=tmp_path / "none") is None
    assert find_browser(env={"EDGE_BROWSER": str(real)}, which=which,
                        playwright_dir=tmp_path / "none") == str(real)
    which = {"chromium-browser": str(shim), "google-chrome": str(real)}.get
    assert find_browser(env={}, which=which, playwright_dir=tmp_path / "none") == str(real)


def test_playwrights_own_chromium_counts_as_a_browser(tmp_path):
    from edge.environment import find_browser

    chrome = tmp_path / "ms-playwright" / "chromium-1140" / "chrome-linux" / "chrome"
    chrome.parent.mkdir(parents=True)
    chrome.write_bytes(b"\x7fELF")
    chrome.chmod(0o755)
    assert find_browser(env={}, which=lambda n: None,
                        playwright_dir=tmp_path / "ms-playwright") == str(chrome)


def test_doctor_row_gives_the_same_line(tmp_path):
    from edge.environment import browser_check, browser_install_hint

    shim = tmp_path / "chromium-browser"
    shim.write_text(SNAP_SHIM)
    what, ok, found, fix = browser_check(str(shim))
    assert not ok and "snap" in found and fix == browser_install_hint()
    what, ok, found, fix = browser_check(None)
    assert not ok and fix == browser_install_hint()
    real = tmp_path / "chrome"
    real.write_bytes(b"\x7fELF")
    assert browser_check(str(real))[1] is True


def test_doctor_reports_the_install_line(monkeypatch, tmp_path):
    from edge.environment import browser_install_hint
    from edge.farm import doctor
    from edge.farm.runners import browser

    def missing():
        raise EdgeError(browser.INSTALL_HINT)

    monkeypatch.setattr(browser, "resolve_browser", missing)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no TF.js: no page is opened
    rows = {what: (ok, found, fix) for what, ok, found, fix in doctor.checks()}
    assert rows["browser setup"] == (False, "not found", browser_install_hint())


# -- resolve_browser's message ---------------------------------------------------------------

def test_a_missing_edge_browser_names_the_variable_only(monkeypatch, tmp_path):
    from edge.farm.runners.browser import resolve_browser

    monkeypatch.setenv("EDGE_BROWSER", str(tmp_path / "no-chrome"))
    with pytest.raises(EdgeError) as exc:
        resolve_browser()
    message = str(exc.value)
    assert "EDGE_BROWSER" in message and str(tmp_path / "no-chrome") in message
    assert "--browser" not in message


# -- the TF.js runtime: installed at setup, checked (never installed) while measuring -------

def test_require_web_runtime_names_the_command_to_run(monkeypatch, tmp_path):
    from edge.farm.runners import web_runtime

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(EdgeError) as exc:
        web_runtime.require_web_runtime()
    message = str(exc.value)
    assert "npm ci" in message and str(web_runtime.web_runtime_dir()) in message
    assert web_runtime.INSTALL_COMMAND in message and "nox -s device_matrix" in message
    modules = web_runtime.node_modules()
    pkg = modules / "@tensorflow" / "tfjs" / "package.json"
    pkg.parent.mkdir(parents=True)
    pkg.write_text('{"version": "4.22.0"}')
    with pytest.raises(EdgeError):  # npm ci did not finish
        web_runtime.require_web_runtime()
    (modules / ".package-lock.json").write_text("{}")
    web_runtime.require_web_runtime()  # installed: no error
    assert web_runtime.installed_version() == "4.22.0"


def test_a_run_with_browser_cells_fails_fast_without_the_runtime(monkeypatch, tmp_path):
    import subprocess

    from edge.farm.scheduling import run
    from edge.farm.scheduling.matrix import Cell

    def no_install(*args, **kwargs):
        raise AssertionError(f"installing during a run: {args}")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(subprocess, "run", no_install)
    cell = Cell("mobilenet_v2", "tfjs-fp32", "tfjs-wasm", "host", 1)
    with pytest.raises(EdgeError, match="npm ci"):
        run._run_cells(types.SimpleNamespace(), [cell], None, None, {}, None)


def _noxfile(monkeypatch):
    """The noxfile as a module (with a minimal stand-in for nox where it is not installed: the
    tests check the noxfile's own functions, not nox)."""
    try:
        import nox  # noqa: F401
    except ImportError:
        fake = types.ModuleType("nox")
        fake.options = types.SimpleNamespace()
        fake.session = lambda *a, **k: (lambda fn: fn)
        fake.Session = object
        fake.command = types.SimpleNamespace(CommandFailed=RuntimeError)
        monkeypatch.setitem(sys.modules, "nox", fake)
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Session:
    def __init__(self):
        self.runs, self.warnings, self.logs = [], [], []
        self.posargs = []

    def run(self, *args, **kwargs):
        self.runs.append((args, kwargs))

    def warn(self, message):
        self.warnings.append(message)

    def log(self, message):
        self.logs.append(message)

    def error(self, message):
        raise RuntimeError(message)


@pytest.mark.parametrize(("installed", "runs_npm"), [(False, True), (True, False)])
def test_web_runtime_runs_npm_ci_into_the_cache_directory_when_missing(monkeypatch, tmp_path,
                                                                        installed, runs_npm):
    from edge.farm.runners import web_runtime

    nf = _noxfile(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = web_runtime.web_runtime_dir()  # one location: the server serves it, nox fills it
    assert target.parent == tmp_path / "edge" / "web-runtime"
    if installed:
        pkg = target / "node_modules" / "@tensorflow" / "tfjs" / "package.json"
        pkg.parent.mkdir(parents=True)
        pkg.write_text('{"version": "4.22.0"}')
        (target / "node_modules" / ".package-lock.json").write_text("{}")
    monkeypatch.setattr(nf.shutil, "which", lambda name: f"/usr/bin/{name}")
    session = Session()
    nf._web_runtime(session)
    npm = [args for args, _ in session.runs if "ci" in args]
    assert bool(npm) == runs_npm
    if runs_npm:
        assert npm[0][:2] == ("/usr/bin/npm", "ci")
        assert npm[0][-2:] == ("--prefix", str(target))
        assert (target / "package-lock.json").read_bytes() == \
            (web_runtime.harness_dir() / "package-lock.json").read_bytes()


@pytest.mark.parametrize("name", ["device_matrix", "tests", "bench_overhead",
                                  "bench_emulation", "faults"])
def test_measuring_sessions_install_the_web_runtime_first(monkeypatch, name):
    nf = _noxfile(monkeypatch)
    order = []
    monkeypatch.setattr(nf, "_shared_env", lambda s: order.append("env") or "/py")
    monkeypatch.setattr(nf, "_browser", lambda s: order.append("browser"))
    monkeypatch.setattr(nf, "_web_runtime", lambda s: order.append("web"))
    monkeypatch.setattr(nf, "_tflite_runtime_env", lambda s: None)
    session = Session()
    session.run = lambda *a, **k: order.append("run")
    getattr(nf, name)(session)
    assert "web" in order and order.index("web") < order.index("run")
