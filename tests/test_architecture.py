"""The layer order of docs/architecture.md, enforced.

The contract lives in pyproject.toml (``[tool.importlinter]``) and is checked with import-linter,
which reads every import statement, function-level ones included. These tests run it on the
package, prove it able to fail on planted upward imports in a copy of the package, and check that
no module under ``edge/`` is left outside the layers (a module in no layer is not checked).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
#: The farm's subpackages, one per axis a measurement varies along (docs/architecture.md).
FARM_AXES = ("scheduling", "runners", "emulation", "protocol")
#: Packages that hold layers rather than being one: they must stay empty of imports.
CONTAINERS = ("edge", "edge.convert", "edge.farm", *(f"edge.farm.{axis}" for axis in FARM_AXES))

LINT = ("import sys\n"
        "from importlinter.cli import lint_imports\n"
        "sys.exit(lint_imports(no_cache=True, no_logo=True))\n")


def lint(project: Path) -> subprocess.CompletedProcess:
    """import-linter over the `edge` package and the pyproject.toml found in `project`."""
    return subprocess.run([sys.executable, "-c", LINT], cwd=project, capture_output=True,
                          text=True, timeout=120)


def contract(name: str = "layers") -> dict:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["id"] == name]
    return layers


def layer_modules() -> list[str]:
    return [name.strip() for layer in contract()["layers"]
            for name in layer.replace("|", ":").split(":")]


def package_modules() -> list[str]:
    modules = []
    for path in sorted((ROOT / "edge").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_the_package_keeps_its_layers():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "edge layers KEPT" in result.stdout
    assert "edge.farm axes KEPT" in result.stdout


def test_the_farm_is_split_by_axis():
    farm = ROOT / "edge" / "farm"
    packages = {p.name for p in farm.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in farm.glob("*.py")} - {"__init__"}
    assert packages == set(FARM_AXES)
    assert modules == {"cells", "doctor"}
    farm_contract = contract("farm")
    assert farm_contract["containers"] == ["edge.farm"] and farm_contract["exhaustive"]
    # scheduling -> runners -> cells -> emulation -> protocol, doctor on top: no cycles
    assert farm_contract["layers"] == ["doctor", "scheduling", "runners", "cells", "emulation",
                                       "protocol"]


def test_the_contract_orders_the_documented_layers():
    layers = contract()["layers"]

    def rank(module: str) -> int:
        (index,) = [i for i, layer in enumerate(layers)
                    if module in [n.strip() for n in layer.replace("|", ":").split(":")]]
        return index

    assert "edge.farm | edge.report" in layers  # independent siblings
    assert rank("edge.__main__") < rank("edge.cli") < rank("edge.workflow") \
        < rank("edge.convert.pipeline") < rank("edge.farm") == rank("edge.report") \
        < rank("edge.validate") < rank("edge.convert.cache") < rank("edge.garden") \
        < rank("edge.results") < rank("edge.variants") == rank("edge.stats") \
        < rank("edge.stopping") < rank("edge.errors") == rank("edge.data")


def test_every_module_is_in_a_layer():
    layers = layer_modules()
    outside = [m for m in package_modules() if m not in CONTAINERS
               and not any(m == layer or m.startswith(layer + ".") for layer in layers)]
    assert outside == [], f"modules in no layer of pyproject.toml [tool.importlinter]: {outside}"


def test_the_containers_import_nothing_from_the_package():
    import grimp

    graph = grimp.build_graph("edge", cache_dir=None)
    for container in CONTAINERS:
        assert graph.find_modules_directly_imported_by(container) == set(), container


def test_the_ignored_imports_are_few_and_still_real():
    # import-linter errors on an ignored import that no longer exists, so each entry here is
    # removed once it is fixed; this keeps new exceptions from slipping in unnoticed.
    assert contract().get("ignore_imports", []) == []
    assert contract("farm").get("ignore_imports", []) == []


PLANTED = [
    # a function-level import from the garden up into conversion
    ("edge/garden/base.py",
     "\n\ndef _planted():\n    from edge.convert import targets\n\n    return targets\n",
     "edge.garden.base -> edge.convert.targets"),
    # a module-level import between independent siblings
    ("edge/report/pick.py", "\nimport edge.farm.scheduling.matrix  # noqa\n",
     "edge.report.pick -> edge.farm.scheduling.matrix"),
    # inside the farm: the catalog (emulation) reaching up into the runners
    ("edge/farm/emulation/devices.py",
     "\n\ndef _planted():\n    from edge.farm.runners import endpoints\n\n    return endpoints\n",
     "edge.farm.emulation.devices -> edge.farm.runners.endpoints"),
    # a leaf that reaches the orchestration layer from inside a method
    ("edge/variants.py",
     "\n\nclass _Planted:\n    def run(self):\n        import edge.workflow\n\n"
     "        return edge.workflow\n",
     "edge.variants -> edge.workflow"),
]


@pytest.mark.parametrize(("path", "code", "chain"), PLANTED, ids=[p[2] for p in PLANTED])
def test_a_planted_upward_import_breaks_the_contract(tmp_path, path, code, chain):
    shutil.copytree(ROOT / "edge", tmp_path / "edge",
                    ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    target = tmp_path / path
    target.write_text(target.read_text() + code)

    result = lint(tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert ("edge.farm axes BROKEN" if path.startswith("edge/farm/") else
            "edge layers BROKEN") in out
    assert chain in out
