"""Plan and run conversions: references first, then every variant, in worker processes; find
the built artifacts of a target list.

Keys are computed in the parent without importing TensorFlow, so a build with nothing changed
finishes in about a second and converts nothing. A recipe variant (ai-edge-quantizer) is built
from the float32 `.tflite`: its key covers that artifact's key (or the user's `.tflite` file) and
the quantizer's version, and it waits until that artifact is built. Each conversion's failure is
collected, not raised, so one broken variant does not cost the others.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from edge.convert.cache import ONNX_TOOLS, Store, files_summary, hash_key, tool_versions
from edge.convert.targets import Target
from edge.errors import EdgeError
from edge.variants import RECIPE_BASE, get_variant


@dataclass
class Job:
    kind: str  # "training" | "reference" | "artifact"
    target: Target
    key: str
    variant: str | None = None
    ref_key: str | None = None
    cached: bool = False
    #: A recipe variant's float32 `.tflite` artifact (None: the user's `.tflite`, or no base).
    base_key: str | None = None
    #: Built only because a recipe variant quantizes it; not one of the target's variants.
    prerequisite: bool = False
    #: The trained weights a reference loads (`edge.garden.training`), None: untrained.
    train_key: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "training":
            return f"{self.target.slug} training"
        return f"{self.target.slug} {self.variant or 'reference'}"


@dataclass
class Outcome:
    job: Job
    status: str  # "built" | "cached" | "failed" | "skipped"
    path: Path | None = None
    seconds: float = 0.0
    error: str | None = None
    manifest: dict = field(default_factory=dict)


@dataclass
class BuildPlan:
    store: Store
    references: list[Job]
    artifacts: list[Job]
    eval_images: dict[str, np.ndarray]
    trainings: list[Job] = field(default_factory=list)

    @property
    def to_convert(self) -> int:
        return sum(not j.cached for j in self.trainings + self.references + self.artifacts)


def artifact_key(ref_key: str, variant_name: str, base_key: str | None = None) -> str:
    versions = tool_versions()
    variant = get_variant(variant_name)
    material = {
        "reference": ref_key,
        "variant": variant.key_material(),
        "tools": {k: versions[k] for k in ("tensorflow", "keras", "tensorflowjs")},
    }
    if variant.recipe:
        material["tools"]["ai-edge-quantizer"] = versions["ai-edge-quantizer"]
        material["base"] = base_key
    if variant.format == "onnx":
        material["tools"].update({k: versions[k] for k in ONNX_TOOLS})
    return hash_key(material)


def plan(targets: Iterable[Target], store: Store) -> BuildPlan:
    references, artifacts, images, trainings = [], [], {}, {}
    for target in targets:
        train_key = target.training_key()
        if train_key and train_key not in trainings:
            trainings[train_key] = Job("training", target, train_key,
                                       cached=store.has("weights", train_key))
        eval_images = target.eval_images()
        fingerprint = hash_key({"shape": list(eval_images.shape),
                                "sha": hashlib.sha256(eval_images.tobytes()).hexdigest()})
        ref_key = hash_key(target.reference_material(fingerprint))
        images[ref_key] = eval_images
        recipes = [v for v in target.variants if get_variant(v).recipe]
        # A user's .tflite has a reference (its own outputs) only when something is checked
        # against it: the recipe variants made from it.
        if target.kind != "tflite" or recipes:
            references.append(Job("reference", target, ref_key, train_key=train_key,
                                  cached=store.has("references", ref_key)))
        base_key = None
        if recipes and target.kind != "tflite":
            base_key = artifact_key(ref_key, RECIPE_BASE)
            if RECIPE_BASE not in target.variants:
                artifacts.append(Job("artifact", target, base_key, variant=RECIPE_BASE,
                                     ref_key=ref_key, prerequisite=True,
                                     cached=store.has("artifacts", base_key)))
        for v in target.variants:
            base = base_key if v in recipes else None
            key = artifact_key(ref_key, v, base)
            artifacts.append(Job("artifact", target, key, variant=v, ref_key=ref_key,
                                 base_key=base, cached=store.has("artifacts", key)))
    return BuildPlan(store, references, artifacts, images, list(trainings.values()))


# -- work done in the worker processes ------------------------------------------------------

def _training_work(target: Target, store_root: str, key: str) -> dict:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edge.garden.training import WEIGHTS_FILE, save_weights, train

    store = Store(Path(store_root))
    config = target.config()
    with _staging(store) as staged:
        model, facts = train(config)
        save_weights(model, staged / WEIGHTS_FILE)
        manifest = {"model": config.spec.name, "target": target.slug, **facts,
                    "tools": tool_versions()}
        store.commit("weights", key, staged, manifest)
    return manifest


def _reference_work(target: Target, store_root: str, key: str, eval_images: np.ndarray,
                    train_key: str | None = None) -> dict:
    from edge.convert.reference import build_reference

    store = Store(Path(store_root))
    trained = store.path("weights", train_key) if train_key else None
    with _staging(store) as staged:
        manifest = build_reference(target, staged, eval_images, trained)
        if train_key:
            manifest["training"] = {"key": train_key, **{
                k: v for k, v in store.read("weights", train_key).items()
                if k in ("seconds", "train_size", "loss", "schedule", "images")}}
        manifest["tools"] = tool_versions()
        store.commit("references", key, staged, manifest)
    return manifest


def _artifact_work(target: Target, variant_name: str, store_root: str, key: str,
                   ref_key: str | None, eval_images: np.ndarray,
                   base_key: str | None = None) -> dict:
    from edge.convert.onnx_models import build_onnx
    from edge.convert.recipes import build_recipe
    from edge.convert.tfjs import build_tfjs
    from edge.convert.tflite import MODEL_FILE, build_tflite

    builders: dict[str, Callable] = {"tflite": build_tflite, "tfjs": build_tfjs,
                                     "onnx": build_onnx}
    store = Store(Path(store_root))
    variant = get_variant(variant_name)
    started = time.perf_counter()
    base = None
    if variant.recipe:
        if target.kind == "tflite":
            source = Path(target.source)
            base = {"variant": "tflite-as-is", "source": target.source,
                    "sha256": target.source_sha256}
        else:
            source = store.path("artifacts", base_key) / MODEL_FILE
            base = {"variant": RECIPE_BASE, "key": base_key,
                    "sha256": store.read("artifacts", base_key)["sha256"]}
        reference = store.read("references", ref_key)
    elif target.kind == "tflite":
        source, reference = Path(target.source), None
    else:
        source = store.path("references", ref_key) / "saved_model"
        reference = store.read("references", ref_key)
    with _staging(store) as staged:
        if variant.recipe:
            built = build_recipe(variant, source, staged)
        else:
            calibration = (target.preprocess(target.calibration_images())
                           if variant.needs_representative_data else None)
            built = builders[variant.format](variant, source, calibration, staged)
        manifest = _artifact_manifest(target, variant, staged, built, ref_key, reference, started)
        if variant.needs_representative_data:
            manifest["calibration"] = {"source": target.calibration_source(),
                                       "images": int(len(calibration))}
        if variant.recipe:
            manifest["recipe"] = built["recipe"]
            manifest["base"] = base
        store.commit("artifacts", key, staged, manifest)
    return manifest


@contextmanager
def _staging(store: Store):
    """A staging directory that is removed when the build fails before its commit."""
    staged = store.staging()
    try:
        yield staged
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def _artifact_manifest(target, variant, staged, built, ref_key, reference, started) -> dict:
    return {
        "target": target.slug,
        "model": {"kind": target.kind, "source": target.source, "params": target.params,
                  "task": target.task, "input_shape": list(target.input_shape),
                  "mean": list(target.mean), "std": list(target.std)},
        "variant": variant.key_material(),
        "format": variant.format,
        "quantization": variant.quantization,
        **files_summary(staged, built["files"]),
        "ops": built["ops"],
        "op_count": sum(built["ops"].values()),
        "io": built.get("io"),
        "reference": None if reference is None else {
            "key": ref_key, "params": reference["params"], "flops": reference["flops"],
            "outputs": reference.get("outputs", 1)},
        "tools": tool_versions(),
        "build_seconds": round(time.perf_counter() - started, 3),
        "fidelity": None,
    }


def _guarded(fn, *args) -> tuple[str, object, float]:
    started = time.perf_counter()
    try:
        return "built", fn(*args), time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - reported per job, the build goes on
        tb = traceback.format_exc(limit=3)
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        return "failed", {"error": message, "traceback": tb}, time.perf_counter() - started


# -- running a plan --------------------------------------------------------------------------

def _worker_init(log_path: str) -> None:
    """Send a worker's stdout/stderr (converter chatter, C++ logs) to a log file, so the
    parent's progress display stays readable; failures travel back as results."""
    import os

    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


class _Inline:
    """An executor that runs each job at once in this process (for -j 1 and tests)."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


STORE_KIND = {"training": "weights", "reference": "references", "artifact": "artifacts"}


def _result(future: Future) -> tuple[str, object, float]:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - a worker died (killed, out of memory)
        return "failed", {"error": f"worker died: {exc!r}"}, 0.0


def run(build: BuildPlan, jobs: int = 1,
        on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Build everything in the plan that is not cached. Returns one outcome per job."""
    store = build.store
    outcomes: list[Outcome] = []

    def finish(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)

    for job in build.trainings + build.references + build.artifacts:
        if job.cached:
            kind = STORE_KIND[job.kind]
            finish(Outcome(job, "cached", store.path(kind, job.key),
                           manifest=store.read(kind, job.key)))
    pending_train = [j for j in build.trainings if not j.cached]
    pending_refs = [j for j in build.references if not j.cached]
    pending_arts = [j for j in build.artifacts if not j.cached]
    if not pending_train and not pending_refs and not pending_arts:
        return outcomes

    if jobs <= 1:
        executor = _Inline()
    else:
        log = Path(store.root) / "workers.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        executor = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                                       initializer=_worker_init, initargs=(str(log),))
    ready_refs = {j.ref_key for j in build.artifacts if j.ref_key} - {j.key for j in pending_refs}
    ready_bases = {j.key for j in build.artifacts if j.cached}
    failed_refs: dict[str, str] = {}
    failed_bases: dict[str, str] = {}
    running: dict[Future, Job] = {}

    def ready(job: Job) -> bool:
        if job.base_key is not None:
            return job.base_key in ready_bases and job.ref_key in ready_refs
        recipe = get_variant(job.variant).recipe
        return (job.target.kind == "tflite" and not recipe) or job.ref_key in ready_refs

    def submit_ready_artifacts():
        for job in list(pending_arts):
            if ready(job):
                pending_arts.remove(job)
                running[executor.submit(
                    _guarded, _artifact_work, job.target, job.variant, str(store.root), job.key,
                    job.ref_key, build.eval_images[job.ref_key], job.base_key)] = job
            elif job.ref_key in failed_refs:
                pending_arts.remove(job)
                finish(Outcome(job, "skipped",
                               error=f"reference failed: {failed_refs[job.ref_key]}"))
            elif job.base_key in failed_bases:
                pending_arts.remove(job)
                finish(Outcome(job, "skipped", error=f"{RECIPE_BASE} failed: "
                               f"{failed_bases[job.base_key]}"))

    try:
        # Training first, one model at a time: each uses every core.
        failed_training: dict[str, str] = {}
        for job in pending_train:
            status, payload, seconds = _result(executor.submit(
                _guarded, _training_work, job.target, str(store.root), job.key))
            if status == "built":
                finish(Outcome(job, "built", store.path("weights", job.key), seconds,
                               manifest=payload))
            else:
                failed_training[job.key] = payload["error"]
                finish(Outcome(job, "failed", seconds=seconds, error=payload["error"],
                               manifest={"traceback": payload.get("traceback")}))
        for job in list(pending_refs):
            if job.train_key in failed_training:
                pending_refs.remove(job)
                failed_refs[job.key] = f"training failed: {failed_training[job.train_key]}"
                finish(Outcome(job, "skipped", error=failed_refs[job.key]))
        for job in pending_refs:
            running[executor.submit(_guarded, _reference_work, job.target, str(store.root),
                                    job.key, build.eval_images[job.key], job.train_key)] = job
        submit_ready_artifacts()
        while running:
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                status, payload, seconds = _result(future)
                kind = STORE_KIND[job.kind]
                if status == "built":
                    if job.kind == "reference":
                        ready_refs.add(job.key)
                    else:
                        ready_bases.add(job.key)
                    finish(Outcome(job, "built", store.path(kind, job.key), seconds,
                                   manifest=payload))
                else:
                    if job.kind == "reference":
                        failed_refs[job.key] = payload["error"]
                    else:
                        failed_bases[job.key] = payload["error"]
                    finish(Outcome(job, "failed", seconds=seconds, error=payload["error"],
                                   manifest={"traceback": payload.get("traceback")}))
            submit_ready_artifacts()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return outcomes


def built_jobs(targets: Iterable[Target], store: Store, needed=None) -> list[Job]:
    """The targets' artifact jobs (only the `needed` (slug, variant) pairs if given), every one
    of them built; an error naming those that are not built yet."""
    jobs = [j for j in plan(targets, store).artifacts
            if (needed is None and not j.prerequisite)
            or (needed is not None and (j.target.slug, j.variant) in needed)]
    missing = [j.label for j in jobs if not j.cached]
    if missing:
        raise EdgeError(f"not built yet (run `edge build` first): {', '.join(missing)}")
    return jobs


def artifacts_for(targets: Iterable[Target], store: Store, needed=None) -> dict:
    """The built artifacts of the targets, ``{(slug, variant): edge.farm.cells.Artifact}`` (only
    the `needed` (slug, variant) pairs if given). Raises when one of them is not built yet."""
    from edge.farm.cells import Artifact

    return {(j.target.slug, j.variant): Artifact(j.key, store.path("artifacts", j.key),
                                                  store.read("artifacts", j.key))
            for j in built_jobs(targets, store, needed)}
