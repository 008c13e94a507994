"""Long-running jobs that nox sessions call: the device matrix."""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

from edge.errors import EdgeError

MATRIX_FILE = Path("device_matrix.toml")
_BUILD_KEYS = {"models": list, "variants": list, "jobs": int, "build_dir": str}


def load_matrix(path: Path = MATRIX_FILE) -> dict:
    """Read and check the matrix file; errors name the file, the key and what is allowed."""
    if not path.exists():
        raise EdgeError(f"{path}: matrix file not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise EdgeError(f"{path}: not valid TOML: {exc}") from None
    build = data.get("build")
    if not isinstance(build, dict):
        raise EdgeError(f"{path}: missing [build] table")
    for key, value in build.items():
        if key not in _BUILD_KEYS:
            raise EdgeError(f"{path}: [build] unknown key {key!r}; allowed: "
                            f"{', '.join(_BUILD_KEYS)}")
        if not isinstance(value, _BUILD_KEYS[key]):
            raise EdgeError(f"{path}: [build] {key} must be {_BUILD_KEYS[key].__name__}, "
                            f"got {type(value).__name__}")
    if build.get("jobs", 1) < 1:
        raise EdgeError(f"{path}: [build] jobs must be at least 1")
    return data


def device_matrix(argv: list[str] | None = None) -> None:
    """Build and validate every model × variant of the matrix, then print the table."""
    from rich.markup import escape

    from edge import workflow

    parser = argparse.ArgumentParser(prog="nox -s device_matrix --")
    parser.add_argument("--matrix", type=Path, default=MATRIX_FILE)
    parser.add_argument("--tiny", action="store_true", help="tiny model configurations")
    parser.add_argument("-j", "--jobs", type=int)
    args = parser.parse_args(argv or [])
    console = workflow.make_console()
    started = time.perf_counter()
    try:
        build = load_matrix(args.matrix)["build"]
        build_dir = Path(build.get("build_dir", "build"))
        targets = workflow.garden_targets(build.get("models", ()), tiny=args.tiny,
                                          variants=build.get("variants"))
    except EdgeError as exc:
        console.print("[red]error:[/] " + escape(str(exc)))
        raise SystemExit(2) from None
    summary = workflow.build(targets, build_dir, jobs=args.jobs or build.get("jobs", 1))
    keys = workflow.artifact_keys(summary)
    t_build = time.perf_counter() - started
    results = workflow.validate(keys, build_dir)
    console.print(workflow.variants_table(keys, build_dir))
    for o in summary.failures:
        console.print(f"[red]{o.status}[/] " + escape(f"{o.job.label}: {o.error}"))
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "warn", "fail", "n/a")}
    console.print(summary.line())
    console.print(f"fidelity: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} "
                  f"fail, {counts['n/a']} n/a (TF.js fidelity is measured in the browser)")
    console.print(f"device matrix: build {t_build:.1f} s, total "
                  f"{time.perf_counter() - started:.1f} s")
    if summary.failures:
        raise SystemExit(1)
