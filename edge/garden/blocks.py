"""Building blocks shared by the garden families (Keras 3 functional API).

Written out rather than taken from `keras.applications` so that width multipliers, output stride
(atrous convolution) and feature taps are parameters, and tiny test configurations are possible.
Only ops that TFLite and TF.js both convert are used (Conv2D, DepthwiseConv2D, BatchNorm folded
at export, ReLU6, swish, pooling, bilinear resize, concat, add, multiply).
"""

from __future__ import annotations


def make_divisible(value: float, divisor: int = 8) -> int:
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def conv_bn(x, filters, kernel, stride=1, dilation=1, activation="relu6", name=""):
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=stride, dilation_rate=dilation, padding="same",
                      use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return activate(x, activation, name)


def activate(x, activation, name):
    from keras import layers

    if activation == "relu6":
        return layers.ReLU(6.0, name=f"{name}_relu6")(x)
    if activation == "relu":
        return layers.ReLU(name=f"{name}_relu")(x)
    if activation == "swish":
        return layers.Activation("swish", name=f"{name}_swish")(x)
    if activation is None:
        return x
    raise ValueError(f"unknown activation {activation!r}")


def inverted_residual(x, expansion, filters, stride, dilation=1, activation="relu6",
                      se_ratio=0.0, kernel=3, name=""):
    """MobileNetV2 / EfficientNet MBConv block (expansion, depthwise, optional SE, projection)."""
    from keras import layers

    in_ch = x.shape[-1]
    shortcut = x
    if expansion != 1:
        x = conv_bn(x, in_ch * expansion, 1, activation=activation, name=f"{name}_expand")
    x = layers.DepthwiseConv2D(kernel, strides=stride, dilation_rate=dilation, padding="same",
                               use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = activate(x, activation, f"{name}_dw")
    if se_ratio > 0:
        squeezed = max(1, int(in_ch * se_ratio))
        s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
        s = layers.Conv2D(squeezed, 1, activation="swish", name=f"{name}_se_reduce")(s)
        s = layers.Conv2D(x.shape[-1], 1, activation="sigmoid", name=f"{name}_se_expand")(s)
        x = layers.Multiply(name=f"{name}_se_scale")([x, s])
    x = conv_bn(x, filters, 1, activation=None, name=f"{name}_project")
    if stride == 1 and in_ch == filters:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


#: MobileNetV2 body: (expansion, channels, repeats, stride).
MOBILENET_V2_BLOCKS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def mobilenet_v2_backbone(inputs, alpha=1.0, output_stride=32):
    """MobileNetV2 feature extractor.

    Returns (last feature map, {stride: feature map}) with taps at strides 4, 8, 16 and 32 (or
    the output stride when atrous convolution replaces the later strides, as in DeepLab v3).
    """
    x = conv_bn(inputs, make_divisible(32 * alpha), 3, stride=2, name="stem")
    current_stride, dilation = 2, 1
    taps = {}
    block = 0
    for expansion, channels, repeats, stride in MOBILENET_V2_BLOCKS:
        filters = make_divisible(channels * alpha)
        for i in range(repeats):
            s = stride if i == 0 else 1
            if s > 1 and current_stride >= output_stride:
                # Keep resolution: replace the stride by dilation (atrous convolution).
                block_dilation, s = dilation, 1
                dilation *= stride
            else:
                block_dilation = dilation
                if s > 1:
                    taps[current_stride] = x
                    current_stride *= s
            x = inverted_residual(x, expansion, filters, s, dilation=block_dilation,
                                  name=f"block{block}")
            block += 1
    taps[current_stride] = x
    return x, taps


def resize_to(x, size, name):
    """Bilinear resize to a fixed (H, W); converts to ResizeBilinear in TFLite and TF.js.

    Use it only as a model's last layer. Keras 3's `Resizing` is a preprocessing layer whose
    call resets the training flag of the call context: batch-norm layers that run after it
    trace in training mode (batch statistics, variable updates) into the exported graph. Inside
    a network use `UpSampling2D(interpolation="bilinear")`.
    """
    from keras import layers

    return layers.Resizing(size[0], size[1], interpolation="bilinear", name=name)(x)
