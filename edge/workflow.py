"""The one orchestration path: build → validate → measure → report.

The `edge` command (build, validate, bench), the nox sessions (`device_matrix`), the benchmarks
and the tests call these functions; nothing else chains the steps. `edge.convert.pipeline` plans
and runs the conversions, `edge.validate` checks fidelity, `edge.farm` measures and
`edge.report` writes the report.

A run's settings (preset, tiny models, the models and variants it covers, the protocol, its
shard of the matrix and its device catalog) are fixed once, by `run_settings`: from the
arguments for a new run, from the run's `run.json` for a resumed one. The build and the
measurement both take them from there, so resuming a run builds and measures what the run
started with, whatever the command line says.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edge.convert import pipeline
from edge.convert.cache import Store
from edge.convert.targets import Target, garden_target, is_model_path, user_model_target
from edge.errors import EdgeError
from edge.garden import DEFAULT_GARDEN, resolve
from edge.variants import ONNX_VARIANTS, RECIPE_VARIANTS

DEFAULT_BUILD_DIR = Path("build")
#: Fidelity statuses that fail a variant (`edge build --strict`, `edge validate`).
FIDELITY_FAILURES = ("fail", "error")


def make_console(stderr: bool = False) -> Console:
    """A console that does not squeeze tables to 80 columns when output is not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


# -- what to build ---------------------------------------------------------------------------

def garden_targets(models: Sequence[str] = (), *, tiny: bool = False, seed: int = 0,
                   weights: str | None = None, images: str | None = None,
                   variants: Sequence[str] | None = None, trained: bool | None = None,
                   eval_data: str | None = None) -> list[Target]:
    """Targets for garden model arguments (`NAME[:key=value,...]`); none means the default
    garden. With `tiny`, each spec's test-size configuration fills unspecified parameters.
    Models are trained on their synthetic task unless `trained` is False; tiny ones (the test
    suite's) are not unless `trained` is True."""
    trained = (not tiny) if trained is None else trained
    targets = []
    for text in models or DEFAULT_GARDEN:
        config = resolve(text)
        if tiny:
            config = config.spec.resolve({**config.spec.tiny, **_explicit(text)})
        targets.append(garden_target(config, seed=seed, weights=weights, images=images,
                                     variants=tuple(variants) if variants else None,
                                     trained=trained, eval_data=eval_data))
    return targets


def model_targets(models: Sequence[str] = (), *, tiny: bool = False,
                  variants: Sequence[str] | None = None) -> list[Target]:
    """Targets for a run's model arguments: garden names (`garden_targets`) and the user's own
    models, given by path (`PATH[:task=...,size=HxW,...]`, `user_model_target`), in order;
    none means the default garden. Two models with one name are an error: cells, records and
    `edge pick --model` know a model by its name."""
    if not models:
        return garden_targets(tiny=tiny, variants=variants)
    chosen = tuple(variants) if variants else None
    targets = [user_model_target(m, chosen) if is_model_path(m)
               else garden_targets([m], tiny=tiny, variants=variants)[0] for m in models]
    seen: dict[str, str] = {}
    for model, target in zip(models, targets, strict=True):
        if target.slug in seen:
            raise EdgeError(f"two models named {target.slug!r} in one run ({seen[target.slug]} "
                            f"and {model}): rename one of the files")
        seen[target.slug] = model
    return targets


def matrix_build_targets(matrix_path: Path | None = None, *,
                         variants: Sequence[str] | None = None, **garden_options) -> list[Target]:
    """What `edge build` builds with no model argument: what the main job builds, the models
    and variants of the matrix's [build] table (`matrix_path`, else ./device_matrix.toml when
    there is one, else the shipped default). `variants` replaces the matrix's; the garden
    models take `garden_options` (`garden_targets`' keywords: tiny, seed, weights, images,
    trained, eval_data), a path in the matrix names one of the user's own models."""
    from edge.farm.scheduling.matrix import load_matrix

    matrix = load_matrix(matrix_path)
    chosen = list(variants) if variants else list(matrix.variants) or None
    models = list(matrix.models)
    if any(is_model_path(m) for m in models):
        return model_targets(models, tiny=bool(garden_options.get("tiny")), variants=chosen)
    return garden_targets(models, variants=chosen, **garden_options)


def build_command(target: Target, build_dir: Path = DEFAULT_BUILD_DIR) -> str:
    """The `edge build` command that builds a target's artifacts (as `edge bench` looks them
    up: same settings, same build directory)."""
    if target.kind == "garden":
        command = f"edge build {target.slug}"
    else:
        command = (f"edge build --model {target.source} --task {target.task} "
                   f"--input-size {target.input_size[0]}x{target.input_size[1]}")
        if target.mean != (127.5,) * 3:
            command += f" --mean {target.mean[0]:g}"
        if target.std != (127.5,) * 3:
            command += f" --std {target.std[0]:g}"
        if target.images:
            command += f" --images {target.images}"
        if target.eval_data:
            command += f" --eval-data {target.eval_data}"
    if Path(build_dir) != DEFAULT_BUILD_DIR:
        command += f" --build-dir {build_dir}"
    return command


def _explicit(text: str) -> dict:
    from edge.garden.base import parse_model_arg

    return parse_model_arg(text)[1]


# -- build and validate ----------------------------------------------------------------------

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
    """Convert what is not cached (with a progress bar); one outcome per reference and
    artifact."""
    console = console or make_console(stderr=True)
    started = time.perf_counter()
    store = Store(Path(build_dir))
    plan = pipeline.plan(targets, store)
    total = len(plan.trainings) + len(plan.references) + len(plan.artifacts)
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


def validate(keys: Sequence[str], build_dir: Path = DEFAULT_BUILD_DIR, force: bool = False,
             console: Console | None = None):
    """Each artifact's fidelity on the host (`edge.validate.run.Fidelity`, cached per runtime
    version unless `force`)."""
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


def accuracy_table(keys: Sequence[str], build_dir: Path = DEFAULT_BUILD_DIR) -> Table | None:
    """Task accuracy on labelled held-out images: per model the float32 figure (95 % bootstrap
    interval) against the garden's target, then each variant's figure, drop against float32
    (paired bootstrap interval) and verdict. None when no reference has labels."""
    from edge.garden.training import ACCURACY_TARGETS
    from edge.variants import VARIANTS

    store = Store(Path(build_dir))
    rows: dict[str, list] = {}
    refs: dict[str, dict] = {}
    for key in keys:
        m = store.read("artifacts", key)
        ref_key = (m.get("reference") or {}).get("key")
        if ref_key and ref_key not in refs and store.has("references", ref_key):
            refs[ref_key] = store.read("references", ref_key)
        if ref_key in refs and refs[ref_key].get("accuracy"):
            rows.setdefault(ref_key, []).append(m)
    refs = {k: ref for k, ref in refs.items() if k in rows}
    if not refs:
        return None
    table = Table(title="task accuracy (held-out, labelled)")
    for col in ("model", "variant", "metric", "accuracy", "95% CI", "drop (points)",
                "drop 95% CI", "verdict"):
        table.add_column(col, no_wrap=True,
                         justify="right" if col in ("accuracy", "95% CI", "drop (points)",
                                                    "drop 95% CI") else "left")
    styles = {"pass": "green", "fail": "red"}
    for ref_key, ref in refs.items():
        acc = ref["accuracy"]
        target = ACCURACY_TARGETS.get(ref["task"]) if ref.get("training") else None
        met = "" if target is None else (
            f"[green]target {target:.2f} met[/]" if acc["value"] >= target
            else f"[red]below target {target:.2f} by {target - acc['value']:.3f}[/]")
        lo, hi = acc["interval"]
        table.add_row(escape(ref["target"]), "float32 (reference)", acc["metric"],
                      f"{acc['value']:.3f}", f"{lo:.3f}-{hi:.3f}", "", "", met)
        order = list(VARIANTS)
        for m in sorted(rows[ref_key], key=lambda m: order.index(m["variant"]["name"])
                        if m["variant"]["name"] in order else len(order)):
            fid = m.get("fidelity") or {}
            a = fid.get("accuracy")
            if not a:
                why = ("in the browser" if m["format"] == "tfjs"
                       else fid.get("status", "not validated"))
                table.add_row("", m["variant"]["name"], acc["metric"], "-", "", "", "",
                              f"[dim]{escape(why)}[/]")
                continue
            dlo, dhi = a["drop_interval"]
            table.add_row("", m["variant"]["name"], a["metric"], f"{a['value']:.3f}", "",
                          f"{100 * a['drop']:+.1f}", f"{100 * dlo:+.1f} to {100 * dhi:+.1f}",
                          f"[{styles.get(a['verdict'], 'dim')}]{a['verdict']}[/] "
                          f"(keeps {a['value'] / a['reference']:.1%}, needs "
                          f"{a['fraction']:.0%})" if a["reference"] else a["verdict"])
    sources = sorted({ref["accuracy"]["data"] for ref in refs.values()})
    table.caption = "data: " + "; ".join(escape(s) for s in sources)
    return table


def training_line(summary: BuildSummary) -> str | None:
    """What the build trained, and in how long; None when no model is trained."""
    jobs = [o for o in summary.outcomes if o.job.kind == "training"]
    if not jobs:
        return None
    built = [o for o in jobs if o.status == "built"]
    if not built:
        return f"training: nothing to train ({len(jobs)} trained model(s) cached)"
    parts = ", ".join(f"{o.job.target.slug} {o.seconds:.0f} s" for o in built)
    return (f"training: {len(built)} model(s) in {sum(o.seconds for o in built):.0f} s "
            f"({parts})")


@dataclass
class BuildResult:
    """What the build step did: the conversions, and the host fidelity of what was built."""

    summary: BuildSummary
    keys: list[str]
    fidelity: list = field(default_factory=list)  # edge.validate.run.Fidelity
    validate_seconds: float = 0.0

    @property
    def fidelity_failures(self) -> list:
        return [f for f in self.fidelity if f.status in FIDELITY_FAILURES]


def build_step(targets: Sequence[Target], build_dir: Path = DEFAULT_BUILD_DIR, *,
               jobs: int = 1, run_validate: bool = True,
               console: Console | None = None) -> BuildResult:
    """Build the targets, check every built variant's fidelity on the host, and print the
    variants table, the failed conversions and fidelity checks, and a summary."""
    console = console or make_console()
    summary = build(targets, build_dir, jobs=jobs)
    keys = artifact_keys(summary)
    started = time.perf_counter()
    fidelity = validate(keys, build_dir) if run_validate and keys else []
    result = BuildResult(summary, keys, list(fidelity), time.perf_counter() - started)
    if keys:
        console.print(variants_table(keys, build_dir))
        accuracy = accuracy_table(keys, build_dir) if run_validate else None
        if accuracy is not None:
            console.print(accuracy)
    if trained := training_line(summary):
        console.print(trained)
    for o in summary.failures:
        console.print(f"[red]{o.status}[/] " + escape(f"{o.job.label}: {o.error}"))
    for f in result.fidelity_failures:
        console.print(f"[red]fidelity {f.status}[/] "
                      + escape(f"{f.target} {f.variant}: {'; '.join(f.reasons)}"))
    console.print(summary.line())
    if summary.converted == 0 and not summary.failures:
        console.print("nothing to convert: every artifact is cached")
    if result.fidelity:
        counts = {s: sum(r.status == s for r in result.fidelity)
                  for s in ("pass", "warn", "fail", "error", "n/a")}
        console.print(f"host fidelity: {counts['pass']} pass, {counts['warn']} warn, "
                      f"{counts['fail'] + counts['error']} fail, {counts['n/a']} n/a "
                      "(TF.js: checked in the browser)")
    return result


def validate_step(targets: Sequence[Target], build_dir: Path = DEFAULT_BUILD_DIR, *,
                  force: bool = False, console: Console | None = None) -> list:
    """Check the targets' built variants (an error names what is not built yet) and print
    the variants table."""
    keys = [j.key for j in pipeline.built_jobs(targets, Store(Path(build_dir)))]
    results = validate(keys, build_dir, force=force)
    (console or make_console()).print(variants_table(keys, build_dir))
    return results


# -- measure ---------------------------------------------------------------------------------

@dataclass
class RunSettings:
    """What one run builds and measures. A resumed run's come from its run.json."""

    run_id: str
    preset: str
    tiny: bool
    models: list[str]
    variants: list[str]
    protocol: object  # edge.farm.protocol.protocol.Protocol
    recorded: bool  # read from an existing run.json
    shard: str | None = None  # "i/n" of a sharded run (`edge bench --shard`)
    catalog: str | None = None  # the device catalog file (None: the shipped one)

    def targets(self) -> list[Target]:
        return model_targets(self.models, tiny=self.tiny, variants=self.variants)


def _protocol(matrix, preset: str):
    from edge.farm.protocol.protocol import PRESETS as PROTOCOLS
    from edge.farm.protocol.protocol import Protocol

    spec = "smoke" if preset == "smoke" else matrix.protocol
    if isinstance(spec, dict):
        protocol = Protocol.from_dict(spec, source=f"{matrix.path}: [bench] protocol")
    elif spec in PROTOCOLS:
        protocol = PROTOCOLS[spec]
    else:
        raise EdgeError(f"{matrix.path}: [bench] protocol: unknown preset {spec!r}; "
                        f"allowed: {', '.join(PROTOCOLS)} or a table")
    protocol.validate()
    return protocol


def _scope(matrix, preset: str, tiny: bool) -> tuple[list[str], list[str]]:
    """The models and variants a new run covers: the matrix's, or for the smoke preset only
    what its cells measure."""
    if preset == "full":  # the whole cross product: the recipe and ONNX variants too
        return list(matrix.models), list(dict.fromkeys([*matrix.variants, *RECIPE_VARIANTS,
                                                        *ONNX_VARIANTS]))
    if preset != "smoke":
        return list(matrix.models), list(matrix.variants)
    models = list(matrix.models[:1])
    targets = model_targets(models, tiny=tiny, variants=matrix.variants)
    variants = sorted({*matrix.variants, *(v for t in targets for v in t.variants)})
    scoped = dataclasses.replace(matrix, variants=variants)
    return models, sorted({c.variant for c in scoped.cells("smoke", [t.slug for t in targets])})


def _absolute(model: str) -> str:
    """A user's model argument with absolute paths (a run records it in its run.json and a
    resumed run finds the same file from anywhere); a garden argument unchanged."""
    from edge.convert.targets import parse_user_model_arg, user_model_arg

    if not is_model_path(model):
        return model
    path, options = parse_user_model_arg(model)
    return user_model_arg(path, **options)


def run_settings(matrix, *, preset: str = "default", tiny: bool = False,
                 run_id: str | None = None, resume: str | None = None,
                 shard: str | None = None, catalog: str | None = None) -> RunSettings:
    """A new run's settings from the arguments, or a resumed run's from its run.json (the
    arguments' preset and tiny flag are then ignored). `shard` is ``"i/n"`` (`--shard`); a
    resumed run keeps the shard it recorded. `catalog` is the device catalog file (`--catalog`;
    a resumed run keeps its own). Raises when `resume` names no run, or when the shard given
    differs from the resumed run's."""
    from edge.farm.protocol.protocol import Protocol
    from edge.farm.scheduling.shards import parse_shard
    from edge.results.store import ResultStore, new_run_id

    if shard is not None:
        shard = str(parse_shard(shard))

    meta = None
    if resume:
        run_dir = matrix.reports_dir / resume
        if not (run_dir / "results.jsonl").exists() and not (run_dir / "run.json").exists():
            raise EdgeError(f"--resume {resume}: no such run under {matrix.reports_dir}")
        meta = ResultStore(run_dir).read_meta()
    if not meta:
        models, variants = _scope(matrix, preset, tiny)
        models = [_absolute(m) for m in models]
        return RunSettings(resume or run_id or new_run_id(), preset, tiny, models, variants,
                           _protocol(matrix, preset), recorded=False, shard=shard,
                           catalog=str(catalog) if catalog else None)
    recorded_shard = meta.get("shard")
    if shard is not None and shard != recorded_shard:
        raise EdgeError(f"--shard {shard}: run {resume} was recorded as "
                        + (f"shard {recorded_shard}" if recorded_shard else "an unsharded run")
                        + "; resume it without --shard (it keeps its own)")
    preset, tiny = meta.get("preset", preset), bool(meta.get("tiny", tiny))
    protocol = Protocol.from_dict(meta["protocol"], source=f"{run_dir}/run.json")
    if "models" in meta:
        models, variants = list(meta["models"]), list(meta.get("variants", matrix.variants))
    else:  # recorded before run.json named its models: the matrix's, scoped by the preset
        models, variants = _scope(matrix, preset, tiny)
    return RunSettings(resume, preset, tiny, models, variants, protocol, recorded=True,
                       shard=recorded_shard, catalog=meta.get("catalog"))


def measure(matrix, *, preset: str = "default", tiny: bool = False, run_id: str | None = None,
            resume: str | None = None, console: Console | None = None,
            settings: RunSettings | None = None, shard: str | None = None,
            catalog: str | None = None) -> Path:
    """Measure the run's cells into reports/<run-id>/results.jsonl (a resumed run: only the
    missing ones; a sharded run: only its shard's, `edge.farm.scheduling.shards`), print the
    summary table and the self-checks; returns the run dir."""
    from edge.farm.emulation.devices import DEFAULT_CATALOG, load_catalog
    from edge.farm.emulation.methods import choose_emulation
    from edge.farm.scheduling.run import run_matrix, summary_table
    from edge.farm.scheduling.shards import parse_shard, shard_cells
    from edge.results.checks import checks_json, format_checks, self_checks
    from edge.results.store import ResultStore, host_metadata, update_latest

    console = console or make_console()
    settings = settings or run_settings(matrix, preset=preset, tiny=tiny, run_id=run_id,
                                        resume=resume, shard=shard, catalog=catalog)
    catalog = load_catalog(settings.catalog or DEFAULT_CATALOG)
    run_dir = matrix.reports_dir / settings.run_id
    targets = settings.targets()
    # A user's .tflite file is measured as itself (tflite-as-is), a Keras model in the run's
    # buildable variants: each model's cells are those of its own variants.
    variants = list(dict.fromkeys([*settings.variants, *(v for t in targets for v in t.variants)]))
    scoped = dataclasses.replace(matrix, models=settings.models, variants=variants)
    own = {t.slug: set(t.variants) for t in targets}
    slugs = [t.slug for t in targets]
    every_cell = [c for c in scoped.cells(settings.preset, slugs) if c.variant in own[c.model]]
    every_cell = _built_user_cells(every_cell, targets, matrix.build_dir, console)
    shard = parse_shard(settings.shard) if settings.shard else None
    cells = shard_cells(every_cell, shard, catalog)
    unknown = sorted({c.device for c in every_cell} - set(catalog))
    if unknown:
        raise EdgeError(f"{matrix.path}: device(s) {', '.join(unknown)} not in the catalog "
                        f"{settings.catalog or DEFAULT_CATALOG}; known: {', '.join(catalog)}")
    store = Store(matrix.build_dir)
    artifacts = pipeline.artifacts_for(targets, store, {(c.model, c.variant) for c in cells})
    results = ResultStore(run_dir)
    if not settings.recorded:
        method = choose_emulation()
        method.close()
        results.write_meta({"run_id": settings.run_id, "matrix": str(matrix.path),
                            "preset": settings.preset, "tiny": settings.tiny,
                            "models": settings.models, "variants": settings.variants,
                            "cells": len(cells), "shard": settings.shard,
                            "catalog": settings.catalog,
                            "matrix_cells": len(every_cell),
                            "protocol": settings.protocol.to_dict(),
                            "host": host_metadata(),
                            "emulation": {"method": method.method, "reason": method.reason}})
    console.print(f"run {settings.run_id}: {len(cells)} cells"
                  + (f" (shard {shard} of the matrix's {len(every_cell)})" if shard else "")
                  + f", {len(results.done_cells())} already measured -> {run_dir}")
    emulation = choose_emulation()
    try:
        run_matrix(scoped, cells, artifacts, store, results, settings.run_id, settings.protocol,
                   catalog, console, emulation=emulation, shard=settings.shard,
                   alone=scoped.alone_cells(settings.preset, slugs),
                   protocols=scoped.cell_protocols(settings.preset, slugs))
    finally:
        emulation.close()
    records = results.records()
    console.print(summary_table(records))
    checks = self_checks(records)
    console.print(format_checks(checks))
    (run_dir / "checks.json").write_text(checks_json(checks), encoding="utf-8")
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    console.print(f"records: {len(records)} of {len(cells)} cells; " + ", ".join(
        f"{k} {v}" for k, v in sorted(counts.items())))
    update_latest(matrix.reports_dir)  # "latest" is this run once it has results
    return run_dir


def _built_user_cells(cells: list, targets: Sequence[Target], build_dir: Path,
                      console: Console) -> list:
    """The cells, less those of a user's model's variants that are not built (a note names
    them and the command that builds them). A user's model of which no measured variant is
    built is an error naming that command. Garden models' missing artifacts are reported by
    `pipeline.artifacts_for`."""
    users = [t for t in targets if t.kind != "garden"]
    if not users:
        return cells
    plan = pipeline.plan(users, Store(Path(build_dir)))
    built = {(j.target.slug, j.variant) for j in plan.artifacts if j.cached}
    kept = []
    for target in users:
        wanted = sorted({c.variant for c in cells if c.model == target.slug})
        missing = [v for v in wanted if (target.slug, v) not in built]
        if wanted and len(missing) == len(wanted):
            raise EdgeError(
                f"{target.source}: nothing built for this model with these settings (task "
                f"{target.task}, input {target.input_size[0]}x{target.input_size[1]}) in "
                f"{build_dir} (variants {', '.join(wanted)}); run "
                f"`{build_command(target, build_dir)}` first, or give `edge bench` the --task, "
                "--input-size, --mean, --std and --images it was built with")
        if missing:
            console.print(f"[yellow]note:[/] {escape(target.slug)}: not built, not measured: "
                          f"{', '.join(missing)} (`{escape(build_command(target, build_dir))}` "
                          "builds them)")
    for c in cells:
        if (c.model, c.variant) in built or c.model not in {t.slug for t in users}:
            kept.append(c)
    return kept


# -- calibrate a phone from a real device ------------------------------------------------------

#: The reference set `edge calibrate` measures by default: the field's baseline and the
#: mobile-friendly EfficientNet, float32 and full int8 (the precisions whose effect differs most
#: by phone).
CALIBRATION_MODELS = ("mobilenet_v2", "efficientnet_lite0")
CALIBRATION_VARIANTS = ("tflite-fp32", "tflite-int8-full")
#: A device runtime -> the host runtime that measures the same kernels here.
HOST_RUNTIME = {"benchmark-model": "litert"}


def calibration_runtimes(profile) -> list[str]:
    """The runtimes a device has: the TFLite benchmark tool over adb, LiteRT.js in its browser
    (an endpoint), LiteRT natively and LiteRT.js for a profile measured on this machine (an
    emulated stand-in)."""
    runtimes = []
    if getattr(profile, "adb", None):
        runtimes.append("benchmark-model")
    if getattr(profile, "endpoint", None):
        runtimes.append("litertjs-wasm")
    if not runtimes:
        runtimes = ["litert", "litertjs-wasm"]
    return runtimes


def calibrate(device: str, *, catalog: Path | None = None,
              models: Sequence[str] = CALIBRATION_MODELS,
              variants: Sequence[str] = CALIBRATION_VARIANTS,
              runtimes: Sequence[str] | None = None, device_threads: int | None = None,
              tiny: bool = False, build_dir: Path = DEFAULT_BUILD_DIR,
              reports_dir: Path = Path("reports"), out: Path | None = None,
              jobs: int = 1, console: Console | None = None) -> list[dict]:
    """Measure the reference set (`models` x `variants` on the device's `runtimes`) on
    `device` and on the host in one run, and store each (model, variant, runtime) pair's
    figures, with the date, run and runtime versions, in the calibrations file (`out`, default
    `edge.report.phones.calibrations_path()`); later reports use them as the phone's best
    evidence. Returns the entries written."""
    from edge.estimate import kind_of, today, write_calibrations
    from edge.farm.emulation.devices import DEFAULT_CATALOG, load_catalog
    from edge.farm.scheduling.matrix import Matrix
    from edge.report.phones import calibrations_path

    console = console or make_console()
    profiles = load_catalog(catalog or DEFAULT_CATALOG)
    profile = profiles.get(device)
    if profile is None:
        raise EdgeError(f"--device {device}: not in the catalog {catalog or DEFAULT_CATALOG}; "
                        f"known: {', '.join(profiles)}")
    if profile.is_host:
        raise EdgeError(f"--device {device}: the host is what a device is calibrated against")
    runtimes = list(runtimes or calibration_runtimes(profile))
    for runtime in runtimes:
        if kind_of(runtime) is None:
            raise EdgeError(f"--runtime {runtime}: not a CPU runtime edge estimates (one of "
                            "litert, litert-compiled, litertjs-wasm, tfjs-wasm, tflite-web, "
                            "benchmark-model)")
    host_runtimes = sorted({HOST_RUNTIME.get(r, r) for r in runtimes})
    # rules name the targets' slugs (a tiny configuration fills parameters the names omit)
    slugs = [t.slug for t in model_targets(models, tiny=tiny, variants=variants)]
    device_rule = {"models": slugs, "variants": list(variants), "runtimes": runtimes,
                   "devices": [device], "interleave": False}
    if device_threads is not None:
        device_rule["threads"] = [device_threads]
    rules = [{"models": slugs, "variants": list(variants), "runtimes": host_runtimes,
              "devices": ["host"], "interleave": False}, device_rule]
    matrix = Matrix(path=Path(f"edge calibrate {device}"), models=list(models),
                    variants=list(variants), build_dir=Path(build_dir),
                    devices=["host", device], reports_dir=Path(reports_dir), rules=rules)
    settings = run_settings(matrix, tiny=tiny,
                            catalog=str(Path(catalog).resolve()) if catalog else None)
    built = build_step(settings.targets(), matrix.build_dir, jobs=jobs, console=console,
                       run_validate=False)
    if built.summary.failures:
        raise EdgeError("the reference set did not build: see the failures above")
    run_dir = measure(matrix, settings=settings, console=console)
    from edge.results.store import ResultStore

    records = ResultStore(run_dir).records()
    host = {(r["model"], r["variant"], r["runtime"]): r for r in records
            if r.get("device") == "host" and r.get("status") == "ok"}
    entries = []
    for r in records:
        if r.get("device") != device or r.get("status") != "ok":
            continue
        h = host.get((r["model"], r["variant"], HOST_RUNTIME.get(r["runtime"], r["runtime"])))
        p50 = ((r.get("metrics") or {}).get("latency") or {}).get("p50")
        hp50 = ((h or {}).get("metrics") or {}).get("latency", {}).get("p50")
        if not p50 or not hp50:
            continue
        packages = (r.get("host") or {}).get("packages") or {}
        entries.append({
            "phone": device, "model": r["model"].split(":", 1)[0], "variant": r["variant"],
            "runtime": HOST_RUNTIME.get(r["runtime"], r["runtime"]),
            "device_runtime": r["runtime"], "threads": r.get("threads"),
            "host_threads": h.get("threads"), "phone_ms": round(float(p50), 4),
            "host_ms": round(float(hp50), 4), "date": today(), "run_id": run_dir.name,
            "real": bool(r.get("real")), "emulated": bool(r.get("emulated")),
            "litert_version": packages.get("ai-edge-litert"),
            "device_label": r.get("device_label"),
        })
    if not entries:
        raise EdgeError(f"no cell of the reference set was measured on both {device} and the "
                        f"host (see {run_dir / 'results.jsonl'}): nothing to calibrate")
    path = write_calibrations(out or calibrations_path(), entries)
    for e in entries:
        console.print(f"  {e['model']} {e['variant']} {e['device_runtime']}: {device} "
                      f"{e['phone_ms']:.3g} ms / host {e['host_ms']:.3g} ms = "
                      f"x{e['phone_ms'] / e['host_ms']:.2f}")
    console.print(f"calibration of {device}: {len(entries)} pairs -> {path}")
    return entries


# -- report ----------------------------------------------------------------------------------

def report(run_dir: Path, console: Console | None = None) -> Path:
    """Write the run's HTML report (reports/<run-id>/index.html, reports/latest)."""
    from edge.report.html import write_report

    index = write_report(run_dir.parent, run_dir.name)
    (console or make_console()).print(f"report: {index}")
    return index


def parse_input_size(text: str | None) -> tuple[int, int] | None:
    """`HxW` (or `N` for a square) as (H, W); an error names --input-size."""
    if text is None:
        return None
    try:
        h, _, w = text.lower().partition("x")
        return (int(h), int(w or h))
    except ValueError:
        raise EdgeError(f"--input-size: expected HxW such as 224x224, got {text!r}") from None


def with_user_models(matrix, paths: Sequence[Path], *, task: str | None = None,
                     input_size: tuple[int, int] | None = None, mean: float = 127.5,
                     std: float = 127.5, images: Path | None = None,
                     eval_data: Path | None = None):
    """The matrix with its models replaced by the user's (`--model PATH`, repeatable), each with
    the settings it is built with; the matrix's rules that name no model measure them. Checks
    every file at once: an error names the path."""
    from edge.convert.targets import user_kind, user_model_arg

    models = []
    for path in paths:
        if not Path(path).exists():
            raise EdgeError(f"--model {path}: model file not found")
        user_kind(Path(path))  # an unknown format or a directory that is no SavedModel
        models.append(user_model_arg(path, task=task, input_size=input_size, mean=mean, std=std,
                                     images=images, eval_data=eval_data))
    if images is not None and not Path(images).is_dir():
        raise EdgeError(f"--images {images}: folder not found")
    if eval_data is not None and not Path(eval_data).is_dir():
        raise EdgeError(f"--eval-data {eval_data}: folder not found")
    return dataclasses.replace(matrix, models=models)


# -- the whole path, for `nox -s device_matrix` ----------------------------------------------

def device_matrix(argv: list[str] | None = None) -> None:
    """Build and validate every model × variant of the run, measure its cells, write the
    report. Exits 2 on a user's mistake, 1 when a conversion fails."""
    from edge.farm.emulation.devices import DEFAULT_CATALOG, load_catalog
    from edge.farm.scheduling.matrix import PRESETS, load_matrix

    parser = argparse.ArgumentParser(prog="nox -s device_matrix --")
    parser.add_argument("--matrix", type=Path, default=None,
                        help="matrix file (default: ./device_matrix.toml if there is one, else "
                        "the default matrix shipped with edge)")
    parser.add_argument("--preset", choices=PRESETS, default="default")
    parser.add_argument("--resume", metavar="RUN_ID",
                        help="finish the missing cells of a run, with the settings it recorded")
    parser.add_argument("--tiny", action="store_true", help="tiny model configurations")
    parser.add_argument("--shard", metavar="I/N",
                        help="measure shard I of N of the matrix's cells (merge the shards' "
                        "runs with `edge merge`)")
    parser.add_argument("--catalog", type=Path, metavar="FILE",
                        help="device catalog (default: edge/data/catalog.toml)")
    parser.add_argument("--model", action="append", type=Path, metavar="PATH",
                        help="your own model (a .keras/.h5 file, a SavedModel directory or a "
                        ".tflite file) instead of the matrix's models, measured by the rules "
                        "that name no model; repeatable")
    parser.add_argument("--task", choices=("classification", "segmentation", "text_detection"),
                        help="task of --model (default: inferred from its output shape)")
    parser.add_argument("--input-size", metavar="HxW",
                        help="input size of --model when the model does not fix it")
    parser.add_argument("--mean", type=float, default=127.5,
                        help="preprocessing of --model: (pixel - mean) / std (default 127.5)")
    parser.add_argument("--std", type=float, default=127.5,
                        help="preprocessing of --model: (pixel - mean) / std (default 127.5)")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="folder of images for --model's representative dataset and "
                        "fidelity (default: the task's synthetic evaluation set)")
    parser.add_argument("--eval-data", type=Path, metavar="DIR",
                        help="labelled images of --model (layouts: `edge build --help`): "
                        "calibration, fidelity and task accuracy; wins over --images")
    parser.add_argument("-j", "--jobs", type=int, help="conversions to run at once")
    parser.add_argument("--no-measure", action="store_true", help="build and validate only")
    args = parser.parse_args(argv or [])
    console = make_console()
    started = time.perf_counter()
    try:
        if args.catalog is not None and not args.catalog.is_file():
            raise EdgeError(f"--catalog {args.catalog}: file not found")
        devices = None if args.resume else list(load_catalog(args.catalog or DEFAULT_CATALOG))
        matrix = load_matrix(args.matrix, device_names=devices)
        if args.model:
            if args.resume:
                raise EdgeError("--model: a resumed run measures the models it recorded; "
                                "resume it without --model")
            matrix = with_user_models(matrix, args.model, task=args.task,
                                      input_size=parse_input_size(args.input_size),
                                      mean=args.mean, std=args.std, images=args.images,
                                      eval_data=args.eval_data)
        settings = run_settings(matrix, preset=args.preset, tiny=args.tiny, resume=args.resume,
                                shard=args.shard,
                                catalog=args.catalog.resolve() if args.catalog else None)
        targets = settings.targets()
    except EdgeError as exc:
        console.print("[red]error:[/] " + escape(str(exc)))
        raise SystemExit(2) from None
    if settings.recorded:
        console.print(f"resuming {settings.run_id} with its settings: preset "
                      f"{settings.preset}" + (", tiny models" if settings.tiny else ""))
    built = build_step(targets, matrix.build_dir, jobs=args.jobs or matrix.jobs,
                       console=console)
    t_build, t_validate = built.summary.seconds, built.validate_seconds
    if built.summary.failures:
        raise SystemExit(1)
    if args.no_measure:
        return
    try:
        run_dir = measure(matrix, settings=settings, console=console)
    except EdgeError as exc:
        console.print("[red]error:[/] " + escape(str(exc)))
        raise SystemExit(2) from None
    report(run_dir, console)
    total = time.perf_counter() - started
    console.print(f"device matrix ({settings.preset}): build {t_build:.0f} s, validate "
                  f"{t_validate:.0f} s, measure {total - t_build - t_validate:.0f} s, "
                  f"total {total:.0f} s; results in {run_dir / 'results.jsonl'}")
