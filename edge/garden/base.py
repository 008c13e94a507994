"""Declarative model specs: what a garden model is, as data.

A `ModelSpec` names the task, its parameters (with defaults, types and allowed values), the input
size and preprocessing, the labels, which variants it supports, the combinations known to fail
(with the reason), and the fidelity thresholds its variants must meet. A `ModelConfig` is a spec
with every parameter resolved; it is what gets built, cached and measured.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.errors import SpecError
from edge.variants import BUILDABLE_VARIANTS, KNOWN_ISSUES, VARIANTS, KnownIssue

TASKS = ("classification", "segmentation", "text_detection")


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    multiple_of: int | None = None

    def coerce(self, model: str, raw: Any) -> Any:
        try:
            value = self.type(raw)
        except (TypeError, ValueError):
            raise SpecError(
                f"{model}: parameter {self.name!r} must be {self.type.__name__}, got {raw!r}"
            ) from None
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise SpecError(f"{model}: {self.name}={raw} is not one of: {allowed}")
        if self.minimum is not None and value < self.minimum:
            raise SpecError(f"{model}: {self.name}={raw} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise SpecError(f"{model}: {self.name}={raw} is above the maximum {self.maximum}")
        if self.multiple_of is not None and value % self.multiple_of:
            raise SpecError(f"{model}: {self.name}={raw} must be a multiple of "
                            f"{self.multiple_of}")
        return value


@dataclass(frozen=True)
class Preprocessing:
    """input = (pixel - mean) / std, per RGB channel, pixels in [0, 255]."""

    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)

    def apply(self, images):
        import numpy as np

        x = images.astype(np.float32)
        return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}


#: Default fidelity thresholds per task: metric -> {precision class: (pass at, warn at)}.
#: "float" covers fp32/fp16 variants, "quantized" the integer ones. Higher is better for all.
DEFAULT_THRESHOLDS: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "classification": {
        "top1_agreement": {"float": (0.97, 0.85), "quantized": (0.80, 0.60)},
        "top5_agreement": {"float": (0.99, 0.90), "quantized": (0.90, 0.75)},
        "snr_db": {"float": (35.0, 20.0), "quantized": (12.0, 6.0)},
    },
    "segmentation": {
        "pixel_agreement": {"float": (0.99, 0.95), "quantized": (0.85, 0.70)},
        "mean_iou": {"float": (0.95, 0.85), "quantized": (0.60, 0.45)},
    },
    "text_detection": {
        "kernel_iou": {"float": (0.97, 0.90), "quantized": (0.75, 0.60)},
        "box_f1": {"float": (0.90, 0.70), "quantized": (0.60, 0.40)},
    },
}

#: Thresholds for an output whose role the task does not say (a model's second and later
#: outputs: boxes, landmarks, scores): its signal-to-noise ratio against the reference's.
DEFAULT_OUTPUT_THRESHOLDS: dict[str, dict[str, tuple[float, float]]] = {
    "snr_db": {"float": (35.0, 20.0), "quantized": (12.0, 6.0)},
}

#: The single figure a variant's fidelity is ranked by, per task.
HEADLINE_METRIC = {
    "classification": "top1_agreement",
    "segmentation": "mean_iou",
    "text_detection": "kernel_iou",
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    description: str
    params: tuple[Param, ...]
    build_fn: Callable[[dict, int], Any] = field(repr=False)
    input_size_fn: Callable[[dict], tuple[int, int]] = field(repr=False)
    labels_fn: Callable[[dict], list[str]] = field(repr=False)
    output: str = ""
    preprocessing: Preprocessing = Preprocessing()
    colormap_fn: Callable[[dict], Any] | None = field(default=None, repr=False)
    #: Variants this model can be built in (a build without --variants makes the defaults).
    variants: tuple[str, ...] = BUILDABLE_VARIANTS
    known_issues: tuple[KnownIssue, ...] = ()
    thresholds: Mapping[str, Mapping[str, tuple[float, float]]] | None = None
    #: A configuration small enough for the test suite (seconds to build and convert).
    tiny: Mapping[str, Any] = field(default_factory=dict)
    #: Modules whose source is part of the cache key (the family module and its building blocks).
    source_modules: tuple[str, ...] = ()

    def __post_init__(self):
        if self.task not in TASKS:
            raise SpecError(f"{self.name}: unknown task {self.task!r}; valid: {', '.join(TASKS)}")
        for v in self.variants:
            if v not in VARIANTS:
                raise SpecError(f"{self.name}: unknown variant {v!r} in spec")

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.param_names))
        if unknown:
            valid = ", ".join(self.param_names) or "(none)"
            raise SpecError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)}; valid parameters: {valid}"
            )
        values = {}
        for p in self.params:
            values[p.name] = p.coerce(self.name, overrides[p.name]) if p.name in overrides \
                else p.default
        return ModelConfig(self, values)

    def metric_thresholds(self) -> Mapping[str, Mapping[str, tuple[float, float]]]:
        return self.thresholds if self.thresholds is not None else DEFAULT_THRESHOLDS[self.task]

    def issues(self) -> tuple[KnownIssue, ...]:
        return KNOWN_ISSUES + self.known_issues

    def source_hash(self) -> str:
        h = hashlib.sha256()
        for mod in (self.build_fn.__module__, *self.source_modules):
            module = __import__(mod, fromlist=["_"])
            h.update(inspect.getsource(module).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class ModelConfig:
    """A spec with every parameter resolved."""

    spec: ModelSpec
    params: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def slug(self) -> str:
        """Readable identity: the spec name plus the parameters that differ from the defaults."""
        parts = [self.spec.name]
        for p in self.spec.params:
            if self.params[p.name] != p.default:
                parts.append(f"{p.name}={self.params[p.name]}")
        return parts[0] if len(parts) == 1 else f"{parts[0]}:{','.join(parts[1:])}"

    @property
    def input_size(self) -> tuple[int, int]:
        return self.spec.input_size_fn(dict(self.params))

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        h, w = self.input_size
        return (1, h, w, 3)

    @property
    def labels(self) -> list[str]:
        return self.spec.labels_fn(dict(self.params))

    def build_keras(self, seed: int = 0):
        return self.spec.build_fn(dict(self.params), seed)

    def describe(self) -> dict:
        return {"model": self.spec.name, "task": self.task, "params": dict(self.params),
                "input_shape": list(self.input_shape),
                "preprocessing": self.spec.preprocessing.to_dict()}

    def key_material(self) -> dict:
        return {**self.describe(), "source": self.spec.source_hash()}

    def __str__(self) -> str:
        return self.slug


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def parse_model_arg(text: str) -> tuple[str, dict[str, str]]:
    """`deeplab_v3:head=ade20k,size=129` -> ("deeplab_v3", {"head": "ade20k", "size": "129"})."""
    name, _, rest = text.partition(":")
    params: dict[str, str] = {}
    if rest:
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise SpecError(
                    f"bad model argument {text!r}: parameters are written NAME:key=value,key=value"
                )
            params[key.strip()] = value.strip()
    return name.strip(), params
