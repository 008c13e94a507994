"""The pinned TF.js runtime the harness page loads: where it is installed, and installing it.

The harness page and the runtime's `package.json` / `package-lock.json` ship with the package
(`edge/data/web`); `npm ci` installs the runtime into a per-user cache directory named by the
lock file's hash, ``$XDG_CACHE_HOME/edge/web-runtime/<hash>/`` (``~/.cache/edge/...`` without
XDG_CACHE_HOME), never into the package, so a non-editable install works and a changed lock file
means a fresh directory. The loopback server serves ``node_modules`` from there.

Installing is a setup step (the nox sessions, ``.ci/run``, or
``python -m edge.farm.runners.web_runtime``), never something a measuring run does. Standard
library only: the noxfile imports it under any interpreter.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from edge.data import data_path
from edge.errors import EdgeError

#: `npm ci`'s flags. @tensorflow/tfjs-tflite 0.0.1-alpha.10 declares peer versions that the
#: pinned TF.js no longer matches: without legacy peer resolution npm refuses (ERESOLVE).
NPM_FLAGS = ("--no-audit", "--no-fund", "--legacy-peer-deps")
#: The files `npm ci` needs, copied from the harness directory into the runtime directory.
PACKAGE_FILES = ("package.json", "package-lock.json")
INSTALL_COMMAND = "python -m edge.farm.runners.web_runtime"


def harness_dir() -> Path:
    """The harness page, its scripts and the runtime's package files (shipped data)."""
    return data_path("web")


def cache_home() -> Path:
    """$XDG_CACHE_HOME, else ~/.cache."""
    configured = os.environ.get("XDG_CACHE_HOME")
    return Path(configured) if configured else Path.home() / ".cache"


def lock_hash(web: Path | None = None) -> str:
    """The first 16 hex digits of the sha256 of package-lock.json."""
    lock = (web or harness_dir()) / "package-lock.json"
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16]


def web_runtime_dir(web: Path | None = None) -> Path:
    """Where `npm ci` installs the runtime of this package-lock.json."""
    return cache_home() / "edge" / "web-runtime" / lock_hash(web)


def node_modules(web: Path | None = None) -> Path:
    return web_runtime_dir(web) / "node_modules"


def installed_version(web: Path | None = None) -> str | None:
    """The installed @tensorflow/tfjs version, None when the runtime is not installed."""
    import json

    pkg = node_modules(web) / "@tensorflow" / "tfjs" / "package.json"
    return json.loads(pkg.read_text())["version"] if pkg.exists() else None


def is_installed(web: Path | None = None) -> bool:
    """`npm ci` finished for this lock file (it writes node_modules/.package-lock.json last)."""
    modules = node_modules(web)
    return (modules / ".package-lock.json").exists() and \
        (modules / "@tensorflow" / "tfjs" / "package.json").exists()


def prepare(web: Path | None = None) -> Path:
    """The runtime directory with the package files in it, ready for `npm ci --prefix`."""
    web = web or harness_dir()
    target = web_runtime_dir(web)
    target.mkdir(parents=True, exist_ok=True)
    for name in PACKAGE_FILES:
        shutil.copyfile(web / name, target / name)
    return target


def ensure_web_runtime(web: Path | None = None) -> Path:
    """Install the pinned TF.js runtime (`npm ci`) when it is missing; returns its directory."""
    if is_installed(web):
        return web_runtime_dir(web)
    npm = shutil.which("npm")
    if npm is None:
        raise EdgeError("npm not found: install Node.js and npm to fetch the TF.js runtime")
    target = prepare(web)
    subprocess.run([npm, "ci", *NPM_FLAGS, "--prefix", str(target)], check=True)
    return target


def require_web_runtime(web: Path | None = None) -> None:
    """Fail fast when the pinned TF.js runtime is not installed. Installing it is a setup step,
    never something a measuring run does halfway through."""
    if is_installed(web):
        return
    raise EdgeError(f"the TF.js runtime is not installed in {web_runtime_dir(web)}: run "
                    f"`{INSTALL_COMMAND}` (npm ci of the pinned package-lock.json), or "
                    "`nox -s device_matrix`, which installs it")


if __name__ == "__main__":
    print(ensure_web_runtime())
