"""MobileNetV2 classifier: the baseline every mobile comparison starts from."""

from __future__ import annotations

from edge.garden.base import ModelSpec, Param
from edge.garden.labels import classification_labels


def build(params: dict, seed: int):
    import keras
    from keras import layers

    from edge.garden.blocks import conv_bn, make_divisible, mobilenet_v2_backbone

    keras.utils.set_random_seed(seed)
    size, alpha = params["size"], params["alpha"]
    inputs = keras.Input((size, size, 3), name="image")
    x, _ = mobilenet_v2_backbone(inputs, alpha=alpha)
    x = conv_bn(x, make_divisible(1280 * max(1.0, alpha)), 1, name="head")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(params["classes"], name="logits")(x)
    outputs = layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2")


SPEC = ModelSpec(
    name="mobilenet_v2",
    task="classification",
    description="MobileNetV2 (inverted residuals, ReLU6); the mobile baseline.",
    params=(
        Param("size", int, 224, "input height and width in pixels", minimum=32, maximum=1024),
        Param("alpha", float, 1.0, "width multiplier", minimum=0.1, maximum=2.0),
        Param("classes", int, 1000, "number of output classes", minimum=2),
    ),
    build_fn=build,
    input_size_fn=lambda p: (p["size"], p["size"]),
    labels_fn=lambda p: classification_labels(p["classes"]),
    output="softmax probabilities, shape (1, classes)",
    tiny={"size": 64, "alpha": 0.35, "classes": 6},
    source_modules=("edge.garden.blocks",),
)
