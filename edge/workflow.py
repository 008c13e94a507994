"""The build → validate chain as library functions, shared by the CLI and the nox sessions."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edge.convert import pipeline
from edge.convert.cache import Store
from edge.convert.targets import Target, garden_target
from edge.errors import EdgeError
from edge.garden import DEFAULT_GARDEN, resolve

DEFAULT_BUILD_DIR = Path("build")


def make_console(stderr: bool = False) -> Console:
    """A console that does not squeeze tables to 80 columns when output is not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def garden_targets(models: Sequence[str] = (), *, tiny: bool = False, seed: int = 0,
                   weights: str | None = None, images: str | None = None,
                   variants: Sequence[str] | None = None) -> list[Target]:
    """Targets for garden model arguments (`NAME[:key=value,...]`); none means the default
    garden. With `tiny`, each spec's test-size configuration fills unspecified parameters."""
    targets = []
    for text in models or DEFAULT_GARDEN:
        config = resolve(text)
        if tiny:
            config = config.spec.resolve({**config.spec.tiny, **_explicit(text)})
        targets.append(garden_target(config, seed=seed, weights=weights, images=images,
                                     variants=tuple(variants) if variants else None))
    return targets


def _explicit(text: str) -> dict:
    from edge.garden.base import parse_model_arg

    return parse_model_arg(text)[1]


@dataclass
class BuildSummary:
    outcomes: list[pipeline.Outcome]
    seconds: float

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def converted(self) -> int:
        return self.count("built")

    @property
    def failures(self) -> list[pipeline.Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "skipped")]

    def line(self) -> str:
        return (f"converted {self.converted}, cached {self.count('cached')}, "
                f"failed {len(self.failures)} in {self.seconds:.1f} s")


def build(targets: Sequence[Target], build_dir: Path = DEFAULT_BUILD_DIR, jobs: int = 1,
          console: Console | None = None) -> BuildSummary:
    console = console or make_console(stderr=True)
    started = time.perf_counter()
    store = Store(Path(build_dir))
    plan = pipeline.plan(targets, store)
    total = len(plan.references) + len(plan.artifacts)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False,
                  disable=plan.to_convert == 0) as progress:
        task = progress.add_task("building", total=total)

        def on_done(outcome: pipeline.Outcome) -> None:
            progress.advance(task)
            if outcome.status != "cached":
                detail = f"{outcome.seconds:.1f} s" if outcome.status == "built" \
                    else outcome.error
                progress.console.print(
                    escape(f"  {outcome.status:7} {outcome.job.label}  {detail}"))

        outcomes = pipeline.run(plan, jobs=jobs, on_done=on_done)
    return BuildSummary(outcomes, time.perf_counter() - started)


def artifact_keys(summary: BuildSummary) -> list[str]:
    return [o.job.key for o in summary.outcomes
            if o.job.kind == "artifact" and o.status in ("built", "cached")]


def built_keys(targets: Sequence[Target], build_dir: Path) -> list[str]:
    """Keys of the targets' artifacts; an error naming what is not built yet."""
    plan = pipeline.plan(targets, Store(Path(build_dir)))
    missing = [j.label for j in plan.artifacts if not j.cached]
    if missing:
        raise EdgeError(f"not built yet (run `edge build` first): {', '.join(missing)}")
    return [j.key for j in plan.artifacts]


def validate(keys: Sequence[str], build_dir: Path = DEFAULT_BUILD_DIR, force: bool = False,
             console: Console | None = None):
    from edge.validate.run import validate_all

    console = console or make_console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("validating", total=len(keys))
        return validate_all(Store(Path(build_dir)), list(keys), force=force,
                            on_done=lambda _: progress.advance(task))


def variants_table(keys: Sequence[str], build_dir: Path = DEFAULT_BUILD_DIR) -> Table:
    """One row per artifact: size, gzip size, op count and fidelity."""
    store = Store(Path(build_dir))
    table = Table(title="variants")
    for col in ("model", "variant", "MB", "gzip MB", "ops", "fidelity", "headline"):
        table.add_column(col, no_wrap=True,
                         justify="right" if col in ("MB", "gzip MB", "ops", "headline")
                         else "left")
    table.add_column("notes", overflow="ellipsis", max_width=60, no_wrap=True)
    styles = {"pass": "green", "warn": "yellow", "fail": "red", "error": "red"}
    for key in keys:
        m = store.read("artifacts", key)
        fid = m.get("fidelity") or {}
        status = fid.get("status", "-")
        headline = fid.get("headline")
        table.add_row(
            escape(m["target"]), m["variant"]["name"], f"{m['bytes'] / 1e6:.2f}",
            f"{m['gzip_bytes'] / 1e6:.2f}", str(m["op_count"]),
            f"[{styles.get(status, 'dim')}]{status}[/]",
            "-" if headline is None else f"{headline:.3f}",
            escape("; ".join(fid.get("reasons", []))),
        )
    return table
