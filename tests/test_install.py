"""A non-editable install works: the wheel carries the data the package reads (catalog,
reference points, default matrix, harness page) and the commands run from another directory.

The wheel is built from a copy of the sources (the build writes `build/` beside them), installed
without dependencies into a directory of its own put first on PYTHONPATH, so this environment's
packages (TensorFlow, Playwright) serve it while `edge` comes from the wheel only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

SHIPPED = ("edge/data/catalog.toml", "edge/data/reference_points.toml",
           "edge/data/device_matrix.toml", "edge/data/web/index.html",
           "edge/data/web/harness.js", "edge/data/web/pse.js", "edge/data/web/stopping.js",
           "edge/data/web/package.json", "edge/data/web/package-lock.json", "edge/stopping.py",
           "edge/farm/runners/tflite_worker.py", "edge/report/static/picker.js")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    shutil.copytree(ROOT / "edge", src / "edge",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "-w", str(wheels),
                    "--no-deps", "--no-build-isolation", "-q"], check=True, timeout=300)
    (wheel,) = wheels.glob("edge-*.whl")
    target = tmp / "target"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target",
                    str(target), "-q", str(wheel)], check=True, timeout=300)
    work = tmp / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return {"wheel": wheel, "target": target, "work": work, "env": env}


def edge(installed: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=installed["work"],
                          env=installed["env"], capture_output=True, text=True, timeout=timeout)


def test_the_wheel_carries_the_data_files(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert set(SHIPPED) <= names, set(SHIPPED) - names
    assert not any(n.startswith("devices/") or "node_modules" in n for n in names)


def test_the_installed_package_is_the_one_imported_and_finds_its_data(installed):
    code = ("import edge, edge.farm.emulation.devices as d, edge.farm.scheduling.matrix as m; "
            "from edge.farm.runners import web_runtime as w; "
            "print(edge.__file__); print(d.DEFAULT_CATALOG); print(m.default_matrix_path()); "
            "print(w.harness_dir()); print(w.web_runtime_dir())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=installed["work"],
                          env=installed["env"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    package, catalog, matrix, harness, runtime = proc.stdout.splitlines()
    target = str(installed["target"])
    assert package.startswith(target) and catalog.startswith(target)
    assert matrix.startswith(target) and harness.startswith(target)
    assert Path(catalog).is_file() and Path(matrix).is_file()
    assert (Path(harness) / "index.html").is_file()
    assert not runtime.startswith(target)  # npm installs into the user's cache, never here


def test_doctor_and_a_tiny_build_run_from_another_directory(installed):
    doctor = edge(installed, "doctor", timeout=300)
    assert "TF.js runtime" in doctor.stdout, doctor.stdout + doctor.stderr
    assert "tensorflow" in doctor.stdout
    build = edge(installed, "build", "--tiny", "mobilenet_v2", "--variants", "tflite-fp32")
    assert build.returncode == 0, build.stdout + build.stderr
    manifests = list((installed["work"] / "build" / "artifacts").glob("*/manifest.json"))
    assert len(manifests) == 1
    assert not (ROOT / "edge" / "data" / "build").exists()
