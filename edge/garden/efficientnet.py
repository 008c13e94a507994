"""EfficientNet-B0 and EfficientNet-Lite0 classifiers.

Lite0 is the mobile-friendly variant: no squeeze-and-excite, ReLU6 instead of swish, and a stem
and head that do not scale with the width coefficient, so it quantizes well to int8.
"""

from __future__ import annotations

import math

from edge.garden.base import ModelSpec, Param
from edge.garden.labels import classification_labels

#: (kernel, repeats, output channels, expansion, stride) for B0; SE ratio 0.25 unless lite.
B0_BLOCKS = (
    (3, 1, 16, 1, 1), (3, 2, 24, 6, 2), (5, 2, 40, 6, 2), (3, 3, 80, 6, 2),
    (5, 3, 112, 6, 1), (5, 4, 192, 6, 2), (3, 1, 320, 6, 1),
)


def _build(params: dict, seed: int, lite: bool):
    import keras
    from keras import layers

    from edge.garden.blocks import conv_bn, inverted_residual, make_divisible

    keras.utils.set_random_seed(seed)
    width, depth, size = params["width"], params["depth"], params["size"]
    activation = "relu6" if lite else "swish"
    se_ratio = 0.0 if lite else 0.25

    def filters(c: int) -> int:
        return make_divisible(c * width)

    inputs = keras.Input((size, size, 3), name="image")
    x = conv_bn(inputs, 32 if lite else filters(32), 3, stride=2, activation=activation,
                name="stem")
    block = 0
    for i, (kernel, repeats, channels, expansion, stride) in enumerate(B0_BLOCKS):
        # Lite keeps the first and last stages' repeats fixed, as in the reference models.
        n = repeats if lite and i in (0, len(B0_BLOCKS) - 1) else int(math.ceil(repeats * depth))
        for r in range(n):
            x = inverted_residual(x, expansion, filters(channels), stride if r == 0 else 1,
                                  activation=activation, se_ratio=se_ratio, kernel=kernel,
                                  name=f"block{block}")
            block += 1
    x = conv_bn(x, 1280 if lite else filters(1280), 1, activation=activation, name="head")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(params["classes"], name="logits")(x)
    outputs = layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="efficientnet_lite0" if lite else "efficientnet_b0")


def build_b0(params: dict, seed: int):
    return _build(params, seed, lite=False)


def build_lite0(params: dict, seed: int):
    return _build(params, seed, lite=True)


def _params():
    return (
        Param("size", int, 224, "input height and width in pixels", minimum=32, maximum=1024),
        Param("classes", int, 1000, "number of output classes", minimum=2),
        Param("width", float, 1.0, "width coefficient (1.0 = B0)", minimum=0.1, maximum=4.0),
        Param("depth", float, 1.0, "depth coefficient (1.0 = B0)", minimum=0.1, maximum=4.0),
    )


_TINY = {"size": 64, "classes": 6, "width": 0.25, "depth": 0.34}

B0 = ModelSpec(
    name="efficientnet_b0",
    task="classification",
    description="EfficientNet-B0 (MBConv with squeeze-excite, swish).",
    params=_params(),
    build_fn=build_b0,
    input_size_fn=lambda p: (p["size"], p["size"]),
    labels_fn=lambda p: classification_labels(p["classes"]),
    output="softmax probabilities, shape (1, classes)",
    tiny=_TINY,
    source_modules=("edge.garden.blocks",),
)

LITE0 = ModelSpec(
    name="efficientnet_lite0",
    task="classification",
    description="EfficientNet-Lite0 (no squeeze-excite, ReLU6; quantization-friendly).",
    params=_params(),
    build_fn=build_lite0,
    input_size_fn=lambda p: (p["size"], p["size"]),
    labels_fn=lambda p: classification_labels(p["classes"]),
    output="softmax probabilities, shape (1, classes)",
    tiny=_TINY,
    source_modules=("edge.garden.blocks",),
)
