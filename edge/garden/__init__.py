"""The model garden: a registry of declarative specs, one module per family."""

from __future__ import annotations

from edge.errors import SpecError
from edge.garden.base import ModelConfig, ModelSpec, Param, parse_model_arg
from edge.garden.deeplab import SPEC as DEEPLAB_V3
from edge.garden.efficientnet import B0 as EFFICIENTNET_B0
from edge.garden.efficientnet import LITE0 as EFFICIENTNET_LITE0
from edge.garden.mobilenet_v2 import SPEC as MOBILENET_V2
from edge.garden.psenet import SPEC as PSENET

REGISTRY: dict[str, ModelSpec] = {
    s.name: s for s in (MOBILENET_V2, EFFICIENTNET_B0, EFFICIENTNET_LITE0, DEEPLAB_V3, PSENET)
}

#: Every garden configuration the project builds somewhere (the benchmarks' `--all-models`).
#: `edge build` with no model argument builds what the main job builds instead: the matrix's
#: [build] models (`edge.workflow.matrix_build_targets`), which leave out DeepLab's cityscapes
#: head.
DEFAULT_GARDEN: tuple[str, ...] = (
    "mobilenet_v2",
    "efficientnet_b0",
    "efficientnet_lite0",
    "deeplab_v3:head=pascal",
    "deeplab_v3:head=cityscapes",
    "deeplab_v3:head=ade20k",
    "psenet",
)


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SpecError(
            f"unknown model {name!r}; garden models: {', '.join(REGISTRY)} "
            "(your own model: its file's path, `--model PATH` in edge build/validate/bench "
            "or a path in a matrix's [build] models)"
        ) from None


def resolve(text: str) -> ModelConfig:
    """Resolve `NAME[:key=value,...]` into a config, with errors that list the valid choices."""
    name, params = parse_model_arg(text)
    return get_spec(name).resolve(params)


__all__ = ["REGISTRY", "DEFAULT_GARDEN", "ModelConfig", "ModelSpec", "Param", "get_spec",
           "resolve"]
