"""Run each variant on the host over the evaluation set and judge it against the reference.

TFLite variants run in LiteRT, ONNX variants in ONNX Runtime (CPU). A TF.js variant's fidelity
is measured where TF.js runs, in the browser farm; here its record says so instead of inventing a
figure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from edge.convert.cache import Store
from edge.convert.reference import (
    load_reference_output_list,
    load_reference_outputs,
    tflite_output_order,
)
from edge.errors import ValidationError
from edge.garden.base import DEFAULT_OUTPUT_THRESHOLDS, HEADLINE_METRIC, Preprocessing
from edge.validate.metrics import METRICS, compare_outputs, judge, match_outputs, worst_status


@dataclass
class Fidelity:
    target: str
    variant: str
    status: str  # pass | warn | fail | n/a | error
    figures: dict
    reasons: list[str]
    headline: float | None
    runtime: str | None
    seconds: float = 0.0
    #: Task accuracy on labelled held-out images (`edge.accuracy.Accuracy.to_dict`);
    #: where there is one, the status is its verdict and agreement is a diagnostic.
    accuracy: dict | None = None
    #: A model with several outputs: per output its name, shape, role (the task's, or
    #: "output"), figures, status and reasons (`edge.validate.metrics.compare_outputs`); the
    #: worst output's status is the variant's, `figures` are the first output's.
    outputs: list[dict] | None = None

    def to_dict(self) -> dict:
        return {"status": self.status, "figures": self.figures, "reasons": self.reasons,
                "headline": self.headline, "runtime": self.runtime,
                "seconds": round(self.seconds, 3), "accuracy": self.accuracy,
                "outputs": self.outputs}


def litert_version() -> str:
    return f"litert {metadata.version('ai-edge-litert')}"


def onnxruntime_version() -> str:
    return f"onnxruntime {metadata.version('onnxruntime')}"


def runtime_label(fmt: str) -> str:
    """The runtime (and its version) a variant of this format is validated in."""
    return onnxruntime_version() if fmt == "onnx" else litert_version()


def run_model_named(fmt: str, model_path: Path, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of a variant on `inputs`, by name (dequantized to float32)."""
    if fmt == "onnx":
        from edge.convert.onnx_models import run_onnx_named

        return run_onnx_named(model_path, inputs)
    return tflite_runner(model_path, every_output=True)(inputs)


def run_model(fmt: str, model_path: Path, inputs: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        from edge.convert.onnx_models import run_onnx

        return run_onnx(model_path, inputs)
    return run_tflite(model_path, inputs)


def model_runner(fmt: str, model_path: Path):
    """A function from a batch of inputs to the model's outputs; a TFLite model's interpreter
    is made once (the held-out images are scored a few at a time)."""
    if fmt == "onnx":
        return lambda inputs: run_model(fmt, model_path, inputs)
    return tflite_runner(model_path)


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x.astype(np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]) == np.float32:
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def run_tflite(model_path: Path, inputs: np.ndarray, threads: int = 2) -> np.ndarray:
    """Outputs of a .tflite model for a batch of float inputs, one image per invoke."""
    return tflite_runner(model_path, threads)(inputs)


def tflite_runner(model_path: Path, threads: int = 2, every_output: bool = False):
    """`run_tflite` with its interpreter made once, for batches one after another: the first
    output (`edge.convert.reference.tflite_output_order`), or all of them by name when
    `every_output`."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path), num_threads=threads)
    interp.allocate_tensors()
    (inp,), order = interp.get_input_details(), tflite_output_order(interp)
    if not every_output:
        order = order[:1]

    def run_all(inputs: np.ndarray) -> dict[str, np.ndarray]:
        results: dict[str, list] = {name: [] for name, _ in order}
        for i in range(len(inputs)):
            interp.set_tensor(inp["index"], quantize(inputs[i:i + 1], inp))
            interp.invoke()
            for name, out in order:
                results[name].append(dequantize(interp.get_tensor(out["index"]), out))
        return {name: np.concatenate(parts) for name, parts in results.items()}

    if every_output:
        return run_all
    return lambda inputs: next(iter(run_all(inputs).values()))


def current_thresholds(manifest: dict) -> dict:
    """The thresholds in force now (a spec's may change after its artifacts were built)."""
    from edge.garden import REGISTRY
    from edge.garden.base import DEFAULT_THRESHOLDS

    model = manifest["model"]
    if model["kind"] == "garden" and model["source"] in REGISTRY:
        spec = REGISTRY[model["source"]]
        return {k: {c: list(v) for c, v in levels.items()}
                for k, levels in spec.metric_thresholds().items()}
    return {k: {c: list(v) for c, v in levels.items()}
            for k, levels in DEFAULT_THRESHOLDS[model["task"]].items()}


def output_count(manifest: dict) -> int:
    return int((manifest.get("reference") or {}).get("outputs", 1))


def several_outputs(manifest: dict) -> str | None:
    """Why a runtime's returned outputs get no fidelity figures in the farm for an artifact
    whose model has several outputs (runtimes return the first output only), else None. Host
    validation compares every output (`validate_artifact`)."""
    n = output_count(manifest)
    if n > 1:
        return (f"the model has {n} outputs: runtimes return the first only; every output's "
                "fidelity is the host validation's (edge validate)")
    return None


def per_output_fidelity(store: Store, manifest: dict, model_path: Path, inputs: np.ndarray,
                        thresholds: dict) -> list[dict] | None:
    """Every output of a multi-output variant against the reference's (`compare_outputs`), or
    None where the reference was built before every output was kept."""
    ref_key = manifest["reference"]["key"]
    reference = store.read("references", ref_key)
    names, shapes = reference.get("output_names"), reference.get("output_shapes")
    refs = None if not names else load_reference_output_list(store.path("references", ref_key),
                                                             len(names))
    if refs is None:
        return None
    got = run_model_named(manifest["format"], model_path, inputs)
    matched, _how = match_outputs(names, [tuple(s[1:]) for s in shapes],
                                  {n: a.shape[1:] for n, a in got.items()})
    return compare_outputs(manifest["model"]["task"], names, refs, [got[n] for n in matched],
                           thresholds, manifest["quantization"], DEFAULT_OUTPUT_THRESHOLDS)


class _OldReference(Exception):
    def __init__(self, n: int):
        super().__init__(f"the model has {n} outputs and its reference was built before every "
                         "output was kept: rebuild it (edge build --force) for per-output "
                         "figures")


def validate_artifact(store: Store, key: str, force: bool = False) -> Fidelity:
    """Fidelity of one built artifact; cached in its manifest per runtime version and
    thresholds."""
    manifest = store.read("artifacts", key)
    thresholds = current_thresholds(manifest)
    target, variant = manifest["target"], manifest["variant"]["name"]
    task = manifest["model"]["task"]
    cached = manifest.get("fidelity")
    if manifest["format"] == "tfjs":
        fid = Fidelity(target, variant, "n/a", {}, ["TF.js variants are checked in the browser "
                       "(edge bench), where TF.js runs"], None, None)
    elif manifest["reference"] is None:
        fid = Fidelity(target, variant, "n/a", {}, ["no float32 reference: the model was given "
                       "as a .tflite file"], None, None)
    elif (cached and cached.get("runtime") == runtime_label(manifest["format"])
          and cached.get("thresholds") == thresholds and not force):
        return Fidelity(target, variant, cached["status"], cached["figures"], cached["reasons"],
                        cached["headline"], cached["runtime"], cached.get("seconds", 0.0),
                        cached.get("accuracy"), cached.get("outputs"))
    else:
        started = time.perf_counter()
        ref_dir = store.path("references", manifest["reference"]["key"])
        images, ref_out = load_reference_outputs(ref_dir)
        inputs = Preprocessing(tuple(manifest["model"]["mean"]),
                               tuple(manifest["model"]["std"])).apply(images)
        model_path = store.path("artifacts", key) / manifest["files"][0]["path"]
        task_accuracy, per_output = None, None
        try:
            if output_count(manifest) > 1:
                per_output = per_output_fidelity(store, manifest, model_path, inputs, thresholds)
            if per_output is not None:  # the worst output's status is the variant's
                figures = dict(per_output[0]["figures"])
                status = worst_status(o["status"] for o in per_output)
                reasons = [f"{o['name']}: {r}" for o in per_output for r in o["reasons"]]
            elif output_count(manifest) > 1:
                raise _OldReference(output_count(manifest))
            else:
                out = run_model(manifest["format"], model_path, inputs)
                figures = METRICS[task](ref_out, out.reshape(ref_out.shape))
                status, reasons = judge(figures, thresholds, manifest["quantization"])
                if figures.get("note"):
                    reasons.append(figures["note"])
            reference = store.read("references", manifest["reference"]["key"])
            if reference.get("accuracy"):
                task_accuracy = variant_accuracy(manifest["format"], model_path, ref_dir,
                                                 reference, manifest["model"])
                figures["agreement_status"] = status
                if task_accuracy.verdict != "n/a":  # else agreement stays the verdict
                    reasons = [f"agreement (diagnostic): {r}" for r in reasons]
                    status = task_accuracy.verdict
                    if per_output is not None:  # accuracy judges the task's output only
                        status = worst_status([status, *(o["status"] for o in per_output[1:])])
                reasons = [task_accuracy.reason(), *reasons]
        except _OldReference as exc:
            figures, status, reasons = {}, "n/a", [str(exc)]
        except Exception as exc:  # noqa: BLE001 - a runtime rejecting a model is a finding
            figures, status = {}, "error"
            reasons = [f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"]
        fid = Fidelity(target, variant, status, figures, reasons,
                       figures.get(HEADLINE_METRIC[task]), runtime_label(manifest["format"]),
                       time.perf_counter() - started,
                       task_accuracy.to_dict() if task_accuracy else None, per_output)
    store.update_manifest("artifacts", key, fidelity={**fid.to_dict(), "thresholds": thresholds})
    return fid


def variant_accuracy(fmt: str, model_path: Path, ref_dir: Path, reference: dict, model: dict):
    """A variant's task accuracy on its reference's held-out set, against the float32 model's
    counts on the same images (`edge.accuracy.compare`)."""
    from edge import accuracy as acc

    task = reference["task"]
    images, truth = acc.load_holdout(ref_dir)
    classes = reference["accuracy"].get("classes")
    prep = Preprocessing(tuple(model["mean"]), tuple(model["std"]))
    stats = acc.holdout_stats(task, model_runner(fmt, model_path), images, truth,
                              prep.apply, None if classes is None else np.asarray(classes),
                              chunk=10)
    ref_stats = np.load(ref_dir / acc.HOLDOUT_STATS_FILE)
    return acc.compare(task, stats, ref_stats, reference["accuracy"]["data"])


def validate_all(store: Store, keys: list[str], force: bool = False,
                 on_done=None) -> list[Fidelity]:
    """`validate_artifact` for each key (results in the keys' order). The variants of one
    reference are checked one after another, while its outputs (hundreds of MB for a
    segmentation reference, memory-mapped) are still in the page cache."""
    def reference_of(key: str) -> str:
        return (store.read("artifacts", key).get("reference") or {}).get("key") or ""

    order = sorted(range(len(keys)), key=lambda i: (reference_of(keys[i]), i))
    results: list[Fidelity | None] = [None] * len(keys)
    for i in order:
        fid = validate_artifact(store, keys[i], force=force)
        results[i] = fid
        if on_done:
            on_done(fid)
    return results


def check(results: list[Fidelity]) -> None:
    """Raise one ValidationError listing every failed variant (not just the first)."""
    failures = [f"{r.target} {r.variant}: {r.status}: {'; '.join(r.reasons)}"
                for r in results if r.status in ("fail", "error")]
    if failures:
        raise ValidationError(failures)
