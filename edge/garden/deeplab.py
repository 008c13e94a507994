"""DeepLab v3 semantic segmentation with a MobileNetV2 backbone and atrous spatial pyramid
pooling; three heads as in the TF.js model garden: pascal (21), cityscapes (19), ade20k (151)."""

from __future__ import annotations

from edge.garden.base import ModelSpec, Param
from edge.garden.labels import HEADS


def build(params: dict, seed: int):
    import keras
    from keras import layers

    from edge.garden.blocks import conv_bn, mobilenet_v2_backbone, resize_to

    keras.utils.set_random_seed(seed)
    size, stride, ch = params["size"], params["output_stride"], params["aspp_channels"]
    classes = len(HEADS[params["head"]][0])
    inputs = keras.Input((size, size, 3), name="image")
    features, _ = mobilenet_v2_backbone(inputs, alpha=params["alpha"], output_stride=stride)
    fh, fw = features.shape[1], features.shape[2]
    rates = (6, 12, 18) if stride == 16 else (12, 24, 36)
    branches = [conv_bn(features, ch, 1, activation="relu", name="aspp0")]
    for i, rate in enumerate(rates, start=1):
        branches.append(conv_bn(features, ch, 3, dilation=rate, activation="relu",
                                name=f"aspp{i}"))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(features)
    pooled = conv_bn(pooled, ch, 1, activation="relu", name="aspp_pool")
    branches.append(layers.UpSampling2D((fh, fw), name="aspp_pool_up")(pooled))
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = conv_bn(x, ch, 1, activation="relu", name="aspp_project")
    x = layers.Conv2D(classes, 1, name="classifier")(x)
    outputs = resize_to(x, (size, size), name="logits")
    return keras.Model(inputs, outputs, name=f"deeplab_v3_{params['head']}")


SPEC = ModelSpec(
    name="deeplab_v3",
    task="segmentation",
    description="DeepLab v3, MobileNetV2 backbone, ASPP; heads pascal/cityscapes/ade20k.",
    params=(
        Param("head", str, "pascal", "label set of the classifier head",
              choices=tuple(HEADS)),
        Param("size", int, 257, "input height and width in pixels", minimum=33, maximum=1025),
        Param("alpha", float, 1.0, "backbone width multiplier", minimum=0.1, maximum=2.0),
        Param("output_stride", int, 16, "backbone output stride", choices=(8, 16)),
        Param("aspp_channels", int, 256, "channels of each ASPP branch", minimum=4),
    ),
    build_fn=build,
    input_size_fn=lambda p: (p["size"], p["size"]),
    labels_fn=lambda p: list(HEADS[p["head"]][0]),
    colormap_fn=lambda p: HEADS[p["head"]][1],
    output="per-pixel class logits at input resolution, shape (1, H, W, classes)",
    tiny={"size": 65, "alpha": 0.35, "aspp_channels": 16},
    source_modules=("edge.garden.blocks",),
)
