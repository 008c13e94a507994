"""What this machine needs to run edge, and what to install where it is missing.

Standard library only, and runnable by older Pythons: the nox sessions import it under whatever
interpreter runs nox, before any environment exists, and `edge doctor` reports the same lines.

- **Python.** TensorFlow < 2.20 has no wheels for Python 3.13 and tflite-runtime 2.14 none after
  3.11: the shared environment wants 3.11 or 3.12, tflite-runtime's own environment 3.11.
- **A browser Playwright can drive.** Debian's `chromium` package, installed by the setup as
  root; elsewhere the line from `browser_install_hint` says what to install and how to point
  `EDGE_BROWSER` at it. Ubuntu's `chromium-browser` is a shim that only asks for the snap.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

#: Pythons the shared environment works with, in order of preference.
SUPPORTED_PYTHONS = ("3.11", "3.12")
#: Pythons tflite-runtime 2.14 has wheels for.
TFLITE_RUNTIME_PYTHONS = ("3.11",)
#: Where a usable Chromium or Chrome is looked for on PATH (a snap shim does not count).
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PLAYWRIGHT_INSTALL = ".nox/edge/bin/python -m playwright install chromium"

Which = Callable[[str], "str | None"]


# -- Python --------------------------------------------------------------------------------

def python_version(executable: str) -> str | None:
    """"3.11" for a Python 3.11 interpreter; None when it does not run (a pyenv shim of a
    version that is not installed, a broken link)."""
    try:
        out = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    version = out.stdout.strip()
    return version if out.returncode == 0 and version.count(".") == 1 else None


def _current() -> tuple[str, str]:
    return sys.executable, "{}.{}".format(*sys.version_info[:2])


def _find_python(versions, path: str | None) -> str | None:
    for version in versions:
        found = shutil.which(f"python{version}", path=path)
        if found and python_version(found) == version:
            return found
    return None


def choose_python(path: str | None = None, *,
                  current: tuple[str, str] | None = None) -> tuple[str, str | None]:
    """The interpreter for the shared environment and a warning (None when it is fine): the
    first of python3.11, python3.12 on `path` (default PATH) that runs, else `current` (the
    running interpreter and its "X.Y")."""
    found = _find_python(SUPPORTED_PYTHONS, path)
    if found:
        return found, None
    executable, version = current or _current()
    if version in SUPPORTED_PYTHONS:
        return executable, None
    return executable, (
        f"no python3.11 or python3.12 found on PATH: using {executable} (Python {version}); "
        f"TensorFlow < 2.20 supports Python 3.11 and 3.12 only, so installing may fail")


def choose_tflite_runtime_python(path: str | None = None, *,
                                 current: tuple[str, str] | None = None) -> str | None:
    """The interpreter for tflite-runtime's environment (python3.11, else `current` when it is
    3.11), or None: tflite-runtime 2.14 has no wheels for other Pythons."""
    found = _find_python(TFLITE_RUNTIME_PYTHONS, path)
    if found:
        return found
    executable, version = current or _current()
    return executable if version in TFLITE_RUNTIME_PYTHONS else None


# -- the browser ---------------------------------------------------------------------------

def is_snap_shim(path: str | Path) -> bool:
    """Ubuntu's `chromium-browser`/`chromium` packages install a small script that asks for
    the chromium snap (and runs it, confined, when present): not a browser Playwright drives."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return False
    return head.startswith(b"#!") and b"snap" in head


def _playwright_dir(env: Mapping[str, str]) -> Path:
    given = env.get("PLAYWRIGHT_BROWSERS_PATH")
    if given and given != "0":
        return Path(given)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ms-playwright"
    if sys.platform == "win32":
        return Path(env.get("LOCALAPPDATA", Path.home())) / "ms-playwright"
    return Path.home() / ".cache" / "ms-playwright"


def find_browser(env: Mapping[str, str] | None = None, which: Which = shutil.which,
                 playwright_dir: Path | None = None) -> str | None:
    """A usable browser without importing Playwright: EDGE_BROWSER, a Chromium or Chrome on
    PATH that is not a snap shim, or a Chromium that `playwright install` downloaded."""
    env = os.environ if env is None else env
    if env.get("EDGE_BROWSER"):
        return env["EDGE_BROWSER"] if Path(env["EDGE_BROWSER"]).exists() else None
    for name in BROWSER_NAMES:
        found = which(name)
        if found and not is_snap_shim(found):
            return found
    root = playwright_dir or _playwright_dir(env)
    for pattern in ("chromium-*/chrome-linux/chrome", "chromium-*/chrome-mac/Chromium.app/"
                    "Contents/MacOS/Chromium", "chromium-*/chrome-win/chrome.exe"):
        for candidate in sorted(root.glob(pattern), reverse=True):
            return str(candidate)
    return None


def read_os_release(path: str = "/etc/os-release") -> dict[str, str]:
    """/etc/os-release as a dict (ID, ID_LIKE, VERSION_ID, ...); empty where there is none."""
    out: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def _ids(os_release: Mapping[str, str]) -> set[str]:
    return {os_release.get("ID", "").lower(), *os_release.get("ID_LIKE", "").lower().split()}


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def can_apt_install_chromium(os_release: Mapping[str, str] | None = None,
                             which: Which = shutil.which, is_root: bool | None = None) -> bool:
    """Whether `apt-get install chromium` gives a real Chromium here: Debian (or a derivative
    other than Ubuntu's family, whose package is a snap shim), apt-get present, running as
    root."""
    os_release = read_os_release() if os_release is None else os_release
    is_root = _is_root() if is_root is None else is_root
    ids = _ids(os_release)
    return bool(which("apt-get")) and is_root and "debian" in ids and "ubuntu" not in ids


def browser_install_hint(system: str | None = None, *,
                         os_release: Mapping[str, str] | None = None,
                         which: Which = shutil.which, is_root: bool | None = None) -> str:
    """One line: what to install on this system (`system` as `platform.system()` names it)
    for a browser to measure in, and how to point EDGE_BROWSER at it."""
    system = system or platform.system()
    if system == "Darwin":
        how = ("`brew install --cask google-chrome`" if which("brew")
               else "Google Chrome from https://www.google.com/chrome/")
        return (f"no usable Chromium: install {how}, then export EDGE_BROWSER=\"/Applications/"
                f"Google Chrome.app/Contents/MacOS/Google Chrome\" (or run `{PLAYWRIGHT_INSTALL}`"
                f", found without EDGE_BROWSER)")
    if system == "Windows":
        return ("no usable Chromium: install Google Chrome from https://www.google.com/chrome/, "
                r"then set EDGE_BROWSER=C:\Program Files\Google\Chrome\Application\chrome.exe")
    os_release = read_os_release() if os_release is None else os_release
    is_root = _is_root() if is_root is None else is_root
    ids = _ids(os_release)
    sudo = "" if is_root else "sudo "
    playwright = f"or, without root, `{PLAYWRIGHT_INSTALL}` (found without EDGE_BROWSER)"
    if "ubuntu" in ids:
        return ("no usable Chromium: Ubuntu's chromium package is a snap shim Playwright cannot "
                f"drive; run `{PLAYWRIGHT_INSTALL.replace('install', 'install --with-deps')}` "
                "(found without EDGE_BROWSER), or install Google Chrome's .deb "
                "(https://www.google.com/chrome/) and export "
                "EDGE_BROWSER=/usr/bin/google-chrome-stable")
    if which("apt-get") and "debian" in ids:
        return (f"no usable Chromium: run `{sudo}apt-get install chromium` and export "
                f"EDGE_BROWSER=/usr/bin/chromium (found there without it too), {playwright}")
    for tool, command, binary in (("dnf", "dnf install chromium", "/usr/bin/chromium-browser"),
                                  ("pacman", "pacman -S chromium", "/usr/bin/chromium"),
                                  ("zypper", "zypper install chromium", "/usr/bin/chromium"),
                                  ("apk", "apk add chromium", "/usr/bin/chromium-browser")):
        if which(tool):
            return (f"no usable Chromium: run `{sudo}{command}` and export "
                    f"EDGE_BROWSER={binary}, {playwright}")
    return (f"no usable Chromium: run `{PLAYWRIGHT_INSTALL}` (found without EDGE_BROWSER), or "
            "install Chromium or Google Chrome with your system's packages and export "
            "EDGE_BROWSER=/path/to/chrome")


def browser_check(found: str | None) -> tuple[str, bool, str, str]:
    """`edge doctor`'s row (what, ok, found, how to fix) for the browser found (or None)."""
    if found is None:
        return ("browser setup", False, "not found", browser_install_hint())
    if is_snap_shim(found):
        return ("browser setup", False, f"{found} is a snap shim, not a browser",
                browser_install_hint())
    return ("browser setup", True, found, "")
