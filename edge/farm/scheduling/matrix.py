"""The device matrix as data: which (model, variant, runtime, device, threads) cells to measure.

A matrix file holds the build list and the measurement rules: `--matrix FILE` when given, else
`device_matrix.toml` in the working directory when there is one, else the default matrix that ships
with the package (`edge/data/device_matrix.toml`, `default_matrix_path`). Each `[[bench.cells]]`
rule is a small cross product (globs allowed for models and variants); the matrix is the union of
the rules, deduplicated. Presets: `default` (the file's rules), `full` (every variant on every
runtime that runs its format, on every device of `bench.devices`), `smoke` (a few minutes).
A rule with `interleave = false` has its cells measured alone, one after another, rather than
in a comparison group with the other variants of their model (cheaper; their comparisons then
carry the run's drift, which the noise check measures); a cell that another rule also gives is
interleaved. A rule's `protocol` table (fields of `edge.stopping.DEFAULTS`) overrides the run's
protocol where its cells are measured on their own (a comparison group's rounds keep the run's);
the record says which protocol it ran under.

A `[build] models` entry is a garden name (`NAME:key=value,...`) or the path of the user's own
model (relative to the working directory, like `build_dir`): a .keras/.h5 file, a SavedModel
directory or a .tflite file, with optional settings `PATH:task=...,size=HxW,mean=M,std=S,
images=DIR` (`edge.convert.targets.parse_user_model_arg`). A rule that names no model applies to
it; a model pattern matches its name (the file name without suffix).
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edge.data import data_path
from edge.errors import EdgeError
from edge.farm.protocol.protocol import Protocol, ProtocolError
from edge.farm.runners.table import ADB_RUNTIMES, NATIVE_RUNTIMES, runner_for
from edge.variants import RUNTIMES, VARIANTS

#: A matrix file in the working directory takes the place of the shipped default.
LOCAL_MATRIX = Path("device_matrix.toml")
PRESETS = ("default", "full", "smoke")

_BUILD_KEYS = {"models": list, "variants": list, "jobs": int, "build_dir": str}
_BENCH_KEYS = {"devices": list, "protocol": (str, dict), "reports_dir": str, "threads": list,
               "cells": list, "fidelity_images": int}
_RULE_KEYS = {"models": list, "variants": list, "runtimes": list, "devices": list,
              "threads": list, "interleave": bool, "protocol": dict}


@dataclass(frozen=True, order=True)
class Cell:
    model: str  # the target slug, e.g. "deeplab_v3:head=ade20k"
    variant: str
    runtime: str
    device: str
    threads: int | None = None

    @property
    def native(self) -> bool:
        return runner_for(self.runtime).native

    def as_dict(self) -> dict:
        d = {"model": self.model, "variant": self.variant, "runtime": self.runtime,
             "device": self.device}
        if self.threads is not None:
            d["threads"] = self.threads
        return d


@dataclass
class Matrix:
    path: Path
    models: list[str]
    variants: list[str]
    jobs: int = 2
    build_dir: Path = Path("build")
    devices: list[str] = field(default_factory=lambda: ["host"])
    protocol: str | dict = "default"
    reports_dir: Path = Path("reports")
    threads: list[int] = field(default_factory=lambda: [2])
    rules: list[dict] = field(default_factory=list)
    fidelity_images: int = 4

    def cells(self, preset: str = "default", model_slugs: list[str] | None = None) -> list[Cell]:
        """Expand the rules (or a preset) into cells. `model_slugs` are the built targets'
        slugs, in the order of `models`; default: the model arguments themselves."""
        slugs = model_slugs or list(self.models)
        cells = {c for _, expanded in self._expanded(preset, slugs) for c in expanded}
        order = {s: i for i, s in enumerate(slugs)}
        return sorted(cells, key=lambda c: (not c.native, c.device, order[c.model], c.variant,
                                            c.runtime, c.threads or 0))

    def alone_cells(self, preset: str = "default",
                    model_slugs: list[str] | None = None) -> frozenset[Cell]:
        """The cells of `cells` that only rules with `interleave = false` give: each is measured
        alone, never in a comparison group (`edge.farm.scheduling.interleaved`). None for the
        full and smoke presets, which have no such rules."""
        alone: set[Cell] = set()
        interleaved: set[Cell] = set()
        for rule, expanded in self._expanded(preset, model_slugs or list(self.models)):
            (alone if rule.get("interleave", True) is False else interleaved).update(expanded)
        return frozenset(alone - interleaved)

    def cell_protocols(self, preset: str = "default",
                       model_slugs: list[str] | None = None) -> dict[Cell, dict]:
        """The protocol fields that rules with a `protocol` table set for their cells (a later
        rule's fields over an earlier's), to be laid over the run's protocol. None for the full
        and smoke presets."""
        out: dict[Cell, dict] = {}
        for rule, expanded in self._expanded(preset, model_slugs or list(self.models)):
            for cell in expanded if rule.get("protocol") else ():
                out[cell] = {**out.get(cell, {}), **rule["protocol"]}
        return out

    def _expanded(self, preset: str, slugs: list[str]) -> list[tuple[dict, list[Cell]]]:
        """Each rule of the preset with the cells it gives."""
        if preset not in PRESETS:
            raise EdgeError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        if preset == "full":
            # Never more threads than the host has cores: more measures the scheduler.
            cores = os.cpu_count() or 1
            # Phones over adb (`benchmark-model`) are measured where a rule names them.
            browser = [r for r in RUNTIMES if r not in NATIVE_RUNTIMES + ADB_RUNTIMES]
            every = {"models": ["*"], "variants": ["*"], "devices": self.devices}
            rules = [{**every, "runtimes": list(NATIVE_RUNTIMES),
                      "threads": sorted({1, min(2, cores), cores})},
                     {**every, "runtimes": browser},  # the run's thread count per profile
                     {**every, "runtimes": browser, "threads": [1]}]
        elif preset == "smoke":
            rules = [{"models": slugs[:1],
                      "variants": ["tflite-fp32", "tflite-as-is", "tfjs-fp32"],
                      "runtimes": ["litert", "tfjs-wasm"], "devices": self.devices[:2],
                      "threads": self.threads[:1]}]
        else:
            rules = self.rules
        return [(rule, _expand(rule, slugs, self.variants, self.devices, self.threads))
                for rule in rules]


def _match(patterns: list[str], names: list[str]) -> list[str]:
    """Names matching any glob; a model pattern also matches by family (`deeplab_v3` matches
    `deeplab_v3:head=ade20k` and a tiny `mobilenet_v2:size=64,...`)."""
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) or
                                    fnmatch.fnmatchcase(n.split(":")[0], p) for p in patterns)]


def _expand(rule: dict, slugs, variants, devices, threads) -> list[Cell]:
    cells = []
    models = _match(rule.get("models", ["*"]), slugs)
    chosen_variants = _match(rule.get("variants", ["*"]), variants)
    for runtime in rule.get("runtimes", list(RUNTIMES)):
        fmt = RUNTIMES[runtime]
        runner = runner_for(runtime)
        native = runner.native
        # Native runtimes run on the host unless a rule names devices (then each emulated
        # phone's CPU is emulated by bandwidth control); a phone over adb only where named.
        default_devices = [] if runtime in ADB_RUNTIMES else ["host"] if native else devices
        rule_devices = rule.get("devices", default_devices)
        # Browser cells take the rule's thread count when it names one; otherwise the run
        # gives them min(phone cores, host cores) (see edge.farm.scheduling.run.resolve_threads).
        rule_threads = rule.get("threads", threads) if native else rule.get("threads", [None])
        if runner.gpu:  # no CPU thread count to speak of
            rule_threads = [None]
        for model in models:
            for variant in chosen_variants:
                if VARIANTS[variant].format != fmt:
                    continue
                for device in rule_devices:
                    for t in rule_threads:
                        cells.append(Cell(model, variant, runtime, device, t))
    return cells


def _check_table(path: Path, section: str, table: dict, allowed: dict) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise EdgeError(f"{path}: [{section}] unknown key {key!r}; allowed: "
                            f"{', '.join(allowed)}")
        if not isinstance(value, allowed[key]):
            kinds = allowed[key] if isinstance(allowed[key], tuple) else (allowed[key],)
            raise EdgeError(f"{path}: [{section}] {key} must be "
                            f"{' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")


def _check_names(path: Path, where: str, key: str, values: list, allowed,
                 globs: bool = False) -> None:
    for v in values:
        if not isinstance(v, str | int):
            raise EdgeError(f"{path}: {where} {key}: {v!r} is not a name")
        is_glob = any(ch in str(v) for ch in "*?[")
        if is_glob and not globs:
            raise EdgeError(f"{path}: {where} {key}: {v!r}: patterns are allowed for models and "
                            f"variants only; list the {key}")
        if allowed is not None and v not in allowed and not is_glob:
            raise EdgeError(f"{path}: {where} {key}: unknown {key[:-1]} {v!r}; allowed: "
                            f"{', '.join(map(str, allowed))}")


def shipped_matrix() -> Path:
    """The default matrix that ships with the package."""
    return data_path("device_matrix.toml")


def default_matrix_path(given: Path | None = None) -> Path:
    """The matrix a command uses: `given` (--matrix), else ./device_matrix.toml when it exists,
    else the shipped default."""
    if given is not None:
        return Path(given)
    return LOCAL_MATRIX if LOCAL_MATRIX.is_file() else shipped_matrix()


def load_matrix(path: Path | None = None, device_names=None) -> Matrix:
    """Read and check the matrix file (`default_matrix_path` when None); errors name the file,
    the key and the allowed values."""
    path = default_matrix_path(path)
    if not path.exists():
        raise EdgeError(f"{path}: matrix file not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise EdgeError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"build", "bench"}
    if unknown:
        raise EdgeError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; "
                        "allowed: build, bench")
    build = data.get("build")
    if not isinstance(build, dict):
        raise EdgeError(f"{path}: missing [build] table")
    _check_table(path, "build", build, _BUILD_KEYS)
    bench = data.get("bench", {})
    _check_table(path, "bench", bench, _BENCH_KEYS)
    if build.get("jobs", 1) < 1:
        raise EdgeError(f"{path}: [build] jobs must be at least 1, got {build['jobs']}")
    variants = build.get("variants", [])
    _check_names(path, "[build]", "variants", variants, list(VARIANTS))
    devices = bench.get("devices", ["host"])
    _check_names(path, "[bench]", "devices", devices, device_names)
    threads = bench.get("threads", [2])
    if any(not isinstance(t, int) or t < 1 for t in threads):
        raise EdgeError(f"{path}: [bench] threads must be integers >= 1, got {threads}")
    rules = bench.get("cells", [])
    for i, rule in enumerate(rules):
        where = f"[[bench.cells]] #{i + 1}"
        if not isinstance(rule, dict):
            raise EdgeError(f"{path}: {where} must be a table")
        _check_table(path, where, rule, _RULE_KEYS)
        _check_names(path, where, "runtimes", rule.get("runtimes", []), list(RUNTIMES))
        _check_names(path, where, "variants", rule.get("variants", []), list(VARIANTS),
                     globs=True)
        _check_names(path, where, "devices", rule.get("devices", []), device_names)
        if any(not isinstance(t, int) or t < 1 for t in rule.get("threads", [])):
            raise EdgeError(f"{path}: {where} threads must be integers >= 1")
        if "protocol" in rule:
            try:
                Protocol.from_dict(rule["protocol"], source=f"{path}: {where} protocol")
            except ProtocolError as exc:
                raise EdgeError(str(exc)) from None
    fidelity_images = bench.get("fidelity_images", 4)
    if fidelity_images < 0:
        raise EdgeError(f"{path}: [bench] fidelity_images must be >= 0, got {fidelity_images}")
    return Matrix(
        path=path, models=build.get("models", []), variants=variants,
        jobs=build.get("jobs", 2), build_dir=Path(build.get("build_dir", "build")),
        devices=devices, protocol=bench.get("protocol", "default"),
        reports_dir=Path(bench.get("reports_dir", "reports")), threads=threads, rules=rules,
        fidelity_images=fidelity_images,
    )
