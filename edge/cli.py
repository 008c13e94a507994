"""The `edge` command line: garden, build, validate, bench, merge, report, pick, devices,
doctor.

Heavy imports (TensorFlow) happen inside the commands that need them, so `edge --help` is fast.
A user's mistake prints one line naming the file, model, parameter or flag, and exits with 2;
failed conversions or fidelity checks exit with 1.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import click

from edge import __version__
from edge.errors import ConversionError, EdgeError, ValidationError


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def _input_size(ctx, param, value):
    if value is None:
        return None
    try:
        h, _, w = value.lower().partition("x")
        return (int(h), int(w or h))
    except ValueError:
        raise click.BadParameter(f"expected HxW such as 224x224, got {value!r}") from None


def _variants(ctx, param, value):
    if not value:
        return None
    from edge.variants import VARIANTS

    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise click.BadParameter(
            f"unknown variant(s) {', '.join(unknown)}; valid: {', '.join(VARIANTS)}")
    return names


def _shard(ctx, param, value):
    if value is None:
        return None
    from edge.farm.scheduling.shards import parse_shard

    try:
        return str(parse_shard(value, flag="--shard"))
    except EdgeError as exc:
        raise click.BadParameter(str(exc).removeprefix("--shard "), param=param) from None


def model_options(fn):
    """Options that select what to build or validate (shared by build and validate)."""
    options = [
        click.argument("models", nargs=-1, metavar="[MODEL[:key=value,...]]..."),
        click.option("--model", "model_path", type=click.Path(path_type=Path),
                     help="Your own model: a .keras/.h5 file, a SavedModel directory or a "
                     ".tflite file (measured as is; a float one also gets the tflite-aiq-* "
                     "recipe variants)."),
        click.option("--task", type=click.Choice(
            ["classification", "segmentation", "text_detection"]),
            help="Task of --model (inferred from the output shape when omitted)."),
        click.option("--input-size", callback=_input_size, metavar="HxW",
                     help="Input size of --model when the model does not fix it."),
        click.option("--mean", type=float, default=127.5, show_default=True,
                     help="Preprocessing of --model: (pixel - mean) / std."),
        click.option("--std", type=float, default=127.5, show_default=True,
                     help="Preprocessing of --model: (pixel - mean) / std."),
        click.option("--images", type=click.Path(path_type=Path),
                     help="Folder of unlabelled images for the int8 representative dataset "
                     "and fidelity (default: synthetic images of the task). --eval-data wins "
                     "when both are given."),
        click.option("--eval-data", type=click.Path(path_type=Path), metavar="DIR",
                     help="Labelled images (classification: one folder per class; "
                     "segmentation: images/ + masks/; text detection: images/ + boxes/ with "
                     "x1,y1,...,x4,y4 lines): 20 % (at most 100) calibrate int8, the rest "
                     "give task accuracy and fidelity. Wins over --images."),
        click.option("--untrained", is_flag=True,
                     help="Garden models with random weights (batch-norm statistics "
                     "calibrated on the evaluation inputs), not trained on their synthetic "
                     "task; no task accuracy. --tiny models are always untrained."),
        click.option("--variants", callback=_variants, metavar="A,B,...",
                     help="Variants to build (default: every supported one)."),
        click.option("--weights", type=click.Path(path_type=Path),
                     help="Keras weights file for a garden model (default: random weights "
                     "with batch-norm statistics calibrated on the evaluation inputs)."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of the random weights."),
        click.option("--tiny", is_flag=True,
                     help="Use each garden model's tiny test configuration."),
        click.option("--matrix", type=click.Path(path_type=Path), default=None,
                     help="With no MODEL: build the models and variants of this matrix's "
                     "[build] table, what the main job builds (default: ./device_matrix.toml "
                     "if there is one, else the default matrix shipped with edge)."),
        click.option("--build-dir", type=click.Path(path_type=Path), default=Path("build"),
                     show_default=True, help="Artifact cache directory."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _targets(models, model_path, task, input_size, mean, std, images, variants, weights,
             seed, tiny, eval_data=None, untrained=False, matrix=None, **_):
    from edge.convert.targets import user_target
    from edge.workflow import garden_targets, matrix_build_targets

    if eval_data is not None and not eval_data.is_dir():
        raise EdgeError(f"--eval-data: folder not found: {eval_data}")
    if eval_data is not None and images is not None:
        click.echo(f"--eval-data {eval_data} wins over --images {images}: calibration and "
                   "fidelity use the labelled images", err=True)
        images = None
    if model_path is not None:
        if models:
            raise EdgeError("give either garden MODEL arguments or --model PATH, not both")
        return [user_target(model_path, task=task, input_size=input_size,
                            images=str(images) if images else None, mean=mean, std=std,
                            variants=variants, eval_data=str(eval_data) if eval_data else None)]
    if images is not None and not images.is_dir():
        raise EdgeError(f"--images: folder not found: {images}")
    if matrix is not None and models:
        raise EdgeError("--matrix: give either garden MODEL arguments or --matrix FILE, not both")
    options = {"tiny": tiny, "seed": seed, "weights": str(weights) if weights else None,
               "images": str(images) if images else None,
               "trained": False if untrained else None,
               "eval_data": str(eval_data) if eval_data else None}
    if not models:  # what the main job builds: the matrix's models and variants
        return matrix_build_targets(matrix, variants=variants, **options)
    return garden_targets(models, variants=variants, **options)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge")
def cli():
    """Build, validate and pick TF.js and TFLite variants of vision models for phones."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def garden(as_json):
    """List the garden: models, their parameters, variants and known issues."""
    from edge.farm.scheduling.matrix import load_matrix
    from edge.garden import REGISTRY

    matrix = load_matrix(None)  # what `edge build` and the main job build

    data = []
    for spec in REGISTRY.values():
        data.append({
            "name": spec.name, "task": spec.task, "description": spec.description,
            "params": [{"name": p.name, "type": p.type.__name__, "default": p.default,
                        "choices": list(p.choices) if p.choices else None, "help": p.help}
                       for p in spec.params],
            "variants": list(spec.variants),
            "known_issues": [{"variant": i.variant, "runtime": i.runtime, "reason": i.reason,
                              "signature": i.signature}
                             for i in spec.issues()],
            "output": spec.output,
        })
    if as_json:
        click.echo(json.dumps({"models": data, "default_garden": list(matrix.models),
                               "matrix": str(matrix.path)}, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    from edge.workflow import make_console

    table = Table(title="edge garden")
    for col in ("model", "task", "parameters (default)", "description"):
        table.add_column(col)
    for m in data:
        params = ", ".join(
            f"{p['name']}={p['default']}" + (f" [{'|'.join(map(str, p['choices']))}]"
                                            if p["choices"] else "") for p in m["params"])
        table.add_row(m["name"], m["task"], escape(params), escape(m["description"]))
    console = make_console()
    console.print(table)
    console.print("variants: " + ", ".join(data[0]["variants"]))
    console.print("known issues:")
    for issue in data[0]["known_issues"]:
        console.print(f"  {issue['variant']} on {issue['runtime']}: {issue['reason']}")
    console.print(f"default garden (what `edge build` and the main job build; {matrix.path}): "
                  + " ".join(matrix.models))


@cli.command()
@model_options
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Conversions to run at once, each in its own worker process.")
@click.option("--validate/--no-validate", "run_validate", default=True, show_default=True,
              help="Check every variant's fidelity after building.")
@click.option("--strict", is_flag=True,
              help="Exit 1 when a variant fails its fidelity check (default: report it, "
              "exit 0).")
def build(jobs, run_validate, strict, **opts):
    """Build TFLite and TF.js variants (cached by content hash) and check their fidelity.

    MODEL is a garden name with optional parameters, e.g. `deeplab_v3:head=ade20k,size=129`;
    no MODEL builds what the main job builds: the models and variants of the matrix's [build]
    table (--matrix, else ./device_matrix.toml, else the shipped default). Exits 1 when a
    conversion fails, and with --strict when a variant fails its fidelity check.
    """
    _quiet_tensorflow()
    from edge import workflow

    result = workflow.build_step(_targets(**opts), opts["build_dir"], jobs=jobs,
                                 run_validate=run_validate)
    failed = result.summary.failures or (strict and result.fidelity_failures)
    sys.exit(1 if failed else 0)


@cli.command()
@model_options
@click.option("--force", is_flag=True, help="Re-run checks whose results are cached.")
@click.option("--allow-fail", is_flag=True,
              help="Exit 0 even when a variant fails its thresholds (still reported).")
def validate(force, allow_fail, **opts):
    """Check built variants against the float32 reference with task-aware metrics."""
    _quiet_tensorflow()
    from edge import workflow
    from edge.validate.run import check

    results = workflow.validate_step(_targets(**opts), opts["build_dir"], force=force)
    if not allow_fail:
        check(results)


@cli.command()
@click.option("--matrix", type=click.Path(path_type=Path), default=None,
              help="Matrix file (default: ./device_matrix.toml if there is one, else the default "
              "matrix shipped with edge).")
@click.option("--preset", type=click.Choice(["default", "full", "smoke"]), default="default",
              show_default=True, help="Which cells: the file's rules, everything, or a quick few.")
@click.option("--resume", "resume", metavar="RUN_ID",
              help="Finish the missing cells of an interrupted run (no duplicates), with the "
              "settings it recorded (preset, tiny, models).")
@click.option("--tiny", is_flag=True, help="Tiny model configurations (as built with --tiny).")
@click.option("--shard", callback=_shard, metavar="I/N",
              help="Measure only shard I of N (counted from 1) of the matrix's cells, into a "
              "run of its own; the same matrix gives the same N shards on every machine. "
              "Combine the shards' runs with `edge merge`.")
@click.option("--catalog", type=click.Path(path_type=Path), metavar="FILE",
              help="Device catalog (default: edge/data/catalog.toml): e.g. one that adds real "
              "browsers elsewhere (profiles with an `endpoint`). A resumed run uses its own.")
@click.option("--model", "model_paths", multiple=True, type=click.Path(path_type=Path),
              metavar="PATH",
              help="Your own model (a .keras/.h5 file, a SavedModel directory or a .tflite "
              "file), as built by `edge build --model PATH`: measured instead of the matrix's "
              "models, by the matrix's rules that name no model. Repeatable.")
@click.option("--task", type=click.Choice(["classification", "segmentation", "text_detection"]),
              help="Task of --model, as given to `edge build` (default: inferred from the "
              "output shape).")
@click.option("--input-size", callback=_input_size, metavar="HxW",
              help="Input size of --model, as given to `edge build` (default: the model's).")
@click.option("--mean", type=float, default=127.5, show_default=True,
              help="Preprocessing of --model, as given to `edge build`: (pixel - mean) / std.")
@click.option("--std", type=float, default=127.5, show_default=True,
              help="Preprocessing of --model, as given to `edge build`: (pixel - mean) / std.")
@click.option("--images", type=click.Path(path_type=Path),
              help="Image folder of --model, as given to `edge build` (its representative "
              "dataset and fidelity inputs).")
@click.option("--eval-data", type=click.Path(path_type=Path), metavar="DIR",
              help="Labelled data of --model, as given to `edge build`.")
def bench(matrix, preset, resume, tiny, shard, catalog, model_paths, task, input_size, mean,
          std, images, eval_data):
    """Measure built variants on device profiles: browsers (TF.js, tfjs-tflite) and TFLite.

    Writes one JSON Lines record per cell to reports/<run-id>/results.jsonl. Run `edge build`
    (or `nox -s device_matrix`) first. Emulated phone figures are estimates. With --model,
    measures your own model's built variants (`edge build --model PATH` first, with the same
    --task/--input-size/--mean/--std/--images and build directory).
    """
    _quiet_tensorflow()
    from edge.farm.emulation.devices import DEFAULT_CATALOG, load_catalog
    from edge.farm.scheduling.matrix import load_matrix
    from edge.workflow import measure, with_user_models

    if model_paths and resume:
        raise EdgeError("--model: a resumed run measures the models it recorded; resume it "
                        "without --model")
    if catalog is not None and not catalog.is_file():
        raise EdgeError(f"--catalog {catalog}: file not found")
    if resume and catalog is not None:
        raise EdgeError(f"--catalog {catalog}: a resumed run uses the catalog it recorded; "
                        "resume it without --catalog")
    # a resumed run's devices are checked against the catalog it recorded, by `measure`
    devices = None if resume else list(load_catalog(catalog or DEFAULT_CATALOG))
    loaded = load_matrix(matrix, device_names=devices)
    if model_paths:
        loaded = with_user_models(loaded, model_paths, task=task, input_size=input_size,
                                  mean=mean, std=std, images=images, eval_data=eval_data)
    measure(loaded, preset=preset, tiny=tiny,
            resume=resume, shard=shard, catalog=str(catalog.resolve()) if catalog else None)


@cli.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN_ID...")
@click.option("--into", "into", metavar="NEW_ID",
              help="Id of the merged run (default: a new id); it must not exist yet.")
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"),
              show_default=True, help="Where the runs are, and where the merged run is written.")
def merge(runs, into, reports_dir):
    """Combine runs (e.g. the shards of `edge bench --shard`) into one run.

    The merged run is a run directory like any other: `edge report --run NEW_ID` and
    `edge pick --run NEW_ID` read it. Refuses a cell measured in two of the runs and an
    artifact (model and variant) whose sha256 differs between runs; each record keeps its
    provenance (machine, endpoint, shard) and the id of the run that measured it.
    """
    from edge.results.checks import format_checks
    from edge.results.merge import merge_runs
    from edge.workflow import make_console

    merged = merge_runs(reports_dir, list(runs), into=into)
    console = make_console()
    console.print(format_checks(merged.checks))
    for note in merged.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"merged {len(merged.records)} records from {len(runs)} runs "
                  f"({', '.join(runs)}) -> {merged.run_dir}")


def _run_id(reports_dir: Path, run: str | None) -> str:
    from edge.results.store import latest_run, list_runs

    runs = list_runs(reports_dir)
    if run in (None, "latest"):
        found = latest_run(reports_dir)  # the most recent run that has results
        if found is None:
            raise EdgeError(f"no runs with results under {reports_dir}: run `edge bench` or the "
                            "main job first")
        return found
    if run not in runs:
        raise EdgeError(f"--run {run}: no such run under {reports_dir}; runs: "
                        f"{', '.join(runs[-10:]) or '(none)'}")
    return run


@cli.command()
@click.option("--run", "run", metavar="RUN_ID", help="Run to report (default: latest, the most "
              "recent run that has results).")
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"),
              show_default=True)
@click.option("--compare", nargs=2, metavar="RUN_A RUN_B",
              help="Compare two runs cell by cell: p50 ratio and whether the difference is "
              "larger than the runs' own spread.")
def report(run, reports_dir, compare):
    """Write the HTML report of a run (offline; reports/<run-id>/index.html, reports/latest)."""
    from edge.workflow import make_console

    console = make_console()
    if compare:
        from edge.report.compare import compare as compare_runs
        from edge.report.compare import format_compare
        from edge.report.table import load_run, tidy

        a, b = (_run_id(reports_dir, r) for r in compare)
        table = compare_runs(tidy(load_run(reports_dir, a)[0]), tidy(load_run(reports_dir, b)[0]))
        console.print(format_compare(table))
        return
    from edge.report.html import CHECKS_NAME, write_report
    from edge.results.checks import format_checks

    index = write_report(reports_dir, _run_id(reports_dir, run))
    checks = json.loads((index.parent / CHECKS_NAME).read_text(encoding="utf-8"))["checks"]
    console.print(format_checks(checks))
    console.print(f"report: {index}")


@cli.command()
@click.option("--run", "run", metavar="RUN_ID", help="Run to pick from (default: latest, the "
              "most recent run that has results).")
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"),
              show_default=True)
@click.option("--device", required=True, help="Device profile, e.g. pixel_5 (see edge devices).")
@click.option("--model", "model", metavar="NAME",
              help="Model name or family (required when the run measured several models).")
@click.option("--max-p90", "max_p90", type=float, metavar="MS", help="Latency budget (p90, ms).")
@click.option("--max-size", "max_size", type=float, metavar="MB",
              help="Download budget (gzip MB).")
@click.option("--max-memory", "max_memory", type=float, metavar="MB", help="Memory budget (MB).")
@click.option("--min-fidelity", "min_fidelity", type=float, metavar="X",
              help="Minimum fidelity (the task's headline metric against float32, 0..1).")
@click.option("--max-cold", "max_cold", type=float, metavar="MS",
              help="Cold-start budget (download on the phone's network + load + first "
                   "inference, ms).")
@click.option("--allow-accuracy-fail", is_flag=True,
              help="Also consider variants that fail their task-accuracy verdict (left out by "
                   "default).")
@click.option("--json", "as_json", is_flag=True, help="Print the recommendation as JSON.")
def pick(run, reports_dir, device, model, max_p90, max_size, max_memory, min_fidelity,
         max_cold, allow_accuracy_fail, as_json):
    """Recommend a variant and runtime for a device under latency/size/memory/fidelity budgets.

    Every catalogued phone has an answer: the host's measurement times a factor for the phone
    with its 80 % interval and evidence (your device via `edge calibrate`, published figures,
    the benchmark index). Uses the same ranking rules as the report's picker. When nothing
    fits, says which budget rules everything out; when estimates tie, what to measure on the
    device to settle it.
    """
    from edge.reference_points import compare_with_records, load_reference_points
    from edge.report.phones import phone_answer
    from edge.report.pick import format_pick, require_model
    from edge.report.pick import pick as pick_variant
    from edge.report.table import load_run, tidy

    run_id = _run_id(reports_dir, run)
    records, meta = load_run(reports_dir, run_id)
    answer = phone_answer(tidy(records), records, meta)
    if answer.error:
        click.echo(f"warning: {answer.error}", err=True)
    df = answer.rows
    require_model(df, model)
    references = compare_with_records(load_reference_points(), records)
    result = pick_variant(df, device, max_p90_ms=max_p90, max_size_mb=max_size,
                          max_memory_mb=max_memory, min_fidelity=min_fidelity, model=model,
                          references=references, max_cold_ms=max_cold,
                          accuracy_pass=not allow_accuracy_fail)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        click.echo(format_pick(result))
    sys.exit(0 if result.get("best") else 1)


@cli.command()
@click.option("--device", required=True, help="The device profile to calibrate (a real device "
              "in your catalog: endpoint or adb; see edge devices).")
@click.option("--catalog", type=click.Path(path_type=Path), help="Catalog file that names the "
              "device (default: edge/data/catalog.toml).")
@click.option("--model", "models", multiple=True, metavar="NAME",
              help="Reference-set model (repeatable; default: mobilenet_v2, efficientnet_lite0).")
@click.option("--variant", "variants", multiple=True, metavar="NAME",
              help="Reference-set variant (repeatable; default: tflite-fp32, tflite-int8-full).")
@click.option("--runtime", "runtimes", multiple=True, metavar="NAME",
              help="Runtime on the device (repeatable; default: what the profile has: "
                   "benchmark-model over adb, litertjs-wasm in its browser).")
@click.option("--threads", "device_threads", type=int, metavar="N",
              help="Threads on the device (default: the run's).")
@click.option("--tiny", is_flag=True, help="Tiny model configurations (a quick check).")
@click.option("--out", type=click.Path(path_type=Path), metavar="FILE",
              help="Calibrations file to update (default: $EDGE_CALIBRATIONS or "
                   "./device_calibrations.toml, which reports and edge pick read).")
@click.option("--build-dir", type=click.Path(path_type=Path), default=Path("build"),
              show_default=True)
@click.option("--reports-dir", type=click.Path(path_type=Path), default=Path("reports"),
              show_default=True)
def calibrate(device, catalog, models, variants, runtimes, device_threads, tiny, out, build_dir,
              reports_dir):
    """Measure a small reference set on a real device and on this host; store the factors.

    The reference set (by default MobileNetV2 and EfficientNet-Lite0, float32 and full int8)
    runs on the device (over adb with the TFLite benchmark tool, or in its browser through its
    endpoint) and on the host, in one run. Each pair's figures go to the calibrations file with
    the date, the run and the runtime versions; later reports and `edge pick` use them as the
    phone's best evidence ("device"), ahead of published figures and the benchmark index.
    """
    _quiet_tensorflow()
    from edge.workflow import CALIBRATION_MODELS, CALIBRATION_VARIANTS
    from edge.workflow import calibrate as run_calibration

    if catalog is not None and not catalog.is_file():
        raise EdgeError(f"--catalog {catalog}: file not found")
    run_calibration(device, catalog=catalog, models=models or CALIBRATION_MODELS,
                    variants=variants or CALIBRATION_VARIANTS, runtimes=runtimes or None,
                    device_threads=device_threads, tiny=tiny, build_dir=build_dir,
                    reports_dir=reports_dir, out=out)


@cli.command()
@click.option("--catalog", type=click.Path(path_type=Path), help="Catalog file "
              "(default: edge/data/catalog.toml).")
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as JSON.")
def devices(catalog, as_json):
    """List the device profiles (phones from low-end to flagship, and the host)."""
    from dataclasses import asdict

    from edge.farm.emulation.devices import DEFAULT_CATALOG, devices_table, load_catalog
    from edge.workflow import make_console

    try:
        profiles = load_catalog(catalog or DEFAULT_CATALOG)
    except ValueError as exc:
        raise EdgeError(str(exc)) from None
    if as_json:
        click.echo(json.dumps({n: {**asdict(p), "endpoint_kind": p.endpoint_kind}
                               for n, p in profiles.items()}, indent=2, default=str))
        return
    make_console().print(devices_table(profiles.values()))


@cli.command()
def doctor():
    """Check the measuring stack: packages, browser, Node/npm, TF.js and its backends."""
    from rich.markup import escape

    from edge.farm.doctor import checks
    from edge.workflow import make_console

    console = make_console()
    bad = 0
    for what, ok, found, fix in checks():
        mark = "[green]ok[/]  " if ok else "[red]fix[/] "
        console.print(f"{mark} {what:22} {escape(found)}" + (
            f"\n       -> {escape(fix)}" if not ok and fix else ""))
        bad += not ok
    sys.exit(1 if bad else 0)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> None:
    # SIGTERM (kill, systemd, CI cancellation) takes the same path as Ctrl-C: running work is
    # stopped and cleaned up (a TFLite worker runs in a session of its own: the default action
    # would leave it running on) and everything already recorded is kept for --resume.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv) -> None:
    try:
        rv = cli.main(args=argv, prog_name="edge", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            click.echo("interrupted: everything finished so far is kept; run the same command "
                       "again (edge bench: with --resume RUN_ID) to finish", err=True)
        else:
            click.echo("aborted", err=True)
        sys.exit(130)
    except EdgeError as exc:
        click.echo(f"error: {exc}", err=True)
        # A failed conversion or fidelity check is the tool's result (1); anything else is the
        # user's input (2). Chosen by type, so subclasses count too.
        sys.exit(1 if isinstance(exc, ConversionError | ValidationError) else 2)
    except KeyboardInterrupt:
        click.echo("interrupted: everything finished so far is kept; run the same command again "
                   "(edge bench: with --resume RUN_ID) to finish", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
