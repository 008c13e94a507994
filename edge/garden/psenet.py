"""PSENet text detection: MobileNetV2 + feature pyramid predicting n shrunk text kernels.

The model outputs sigmoid kernel maps at input resolution, channel 0 the full text region and
channel n-1 the smallest kernel (scale `MIN_KERNEL_SCALE` at training time). Boxes come from
progressive scale expansion in `edge.pse` (and its JS twin for the browser page).
"""

from __future__ import annotations

from edge.garden.base import ModelSpec, Param

#: Shrink ratio of the smallest kernel used to make training labels (PSENet's m).
MIN_KERNEL_SCALE = 0.4


def build(params: dict, seed: int):
    import keras
    from keras import layers

    from edge.garden.blocks import conv_bn, mobilenet_v2_backbone

    keras.utils.set_random_seed(seed)
    size, ch = params["size"], params["fpn_channels"]
    inputs = keras.Input((size, size, 3), name="image")
    _, taps = mobilenet_v2_backbone(inputs, alpha=params["alpha"])
    laterals = {s: conv_bn(taps[s], ch, 1, activation="relu", name=f"lateral{s}")
                for s in (4, 8, 16, 32)}
    p = laterals[32]
    pyramid = {32: conv_bn(p, ch, 3, activation="relu", name="smooth32")}
    for s in (16, 8, 4):
        target = laterals[s]
        up = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{s}")(p)
        p = layers.Add(name=f"merge{s}")([target, up])
        pyramid[s] = conv_bn(p, ch, 3, activation="relu", name=f"smooth{s}")
    fused = [pyramid[4]] + [
        layers.UpSampling2D(s // 4, interpolation="bilinear", name=f"fuse_up{s}")(pyramid[s])
        for s in (8, 16, 32)
    ]
    x = layers.Concatenate(name="fuse")(fused)
    x = conv_bn(x, ch, 3, activation="relu", name="fuse")
    x = layers.Conv2D(params["kernels"], 1, name="kernel_logits")(x)
    x = layers.UpSampling2D(4, interpolation="bilinear", name="kernel_resize")(x)
    outputs = layers.Activation("sigmoid", name="kernels")(x)
    return keras.Model(inputs, outputs, name="psenet")


SPEC = ModelSpec(
    name="psenet",
    task="text_detection",
    description="PSENet text detection, MobileNetV2 + FPN, progressive scale expansion.",
    params=(
        Param("kernels", int, 7, "number of kernel maps (n)", minimum=2, maximum=12),
        Param("size", int, 320, "input height and width in pixels (a multiple of 32)",
              minimum=64, maximum=1280, multiple_of=32),
        Param("alpha", float, 1.0, "backbone width multiplier", minimum=0.1, maximum=2.0),
        Param("fpn_channels", int, 128, "channels of the feature pyramid", minimum=4),
    ),
    build_fn=build,
    input_size_fn=lambda p: (p["size"], p["size"]),
    labels_fn=lambda p: ["text"],
    output="sigmoid kernel maps at input resolution, shape (1, H, W, kernels); "
    "channel 0 = full text region",
    tiny={"size": 64, "alpha": 0.35, "fpn_channels": 8, "kernels": 3},
    source_modules=("edge.garden.blocks",),
)
