"""The built-in model family: plain CNNs, from the tutorial's to VGG-like stacks with batch norm.

    conf/model/tutorial_cnn.yaml: _target_: mnist_hydra.models.cnn.build_cnn

Read `build_cnn` like the tutorial's layer list: convs (each optionally followed by batch
normalization and pooling), dropout, flatten, hidden dense layers, softmax. Its schema
(`CNNConfig`) and its checks (every value, kernels and pools that fit the image as it
shrinks, the counts for the memory estimate) are in mnist_hydra/config/, so that they run
before TensorFlow loads.
"""

from typing import Any, Optional

import keras
from keras import layers

from mnist_hydra.config.model_checks import dense_widths, kernel_sizes, pools_after


def build_cnn(
    input_shape: tuple,
    num_classes: int,
    filters: list,
    kernel_size: Any,
    conv_activation: str,
    padding: str,
    batch_norm: bool,
    pool_size: Optional[int],
    pool_every: Optional[int],
    dropout: float,
    dense_units: Any,
    dense_activation: str,
    dense_dropout: float,
):
    def normalized(x, activation: str, name: str):
        """Batch normalization sits between a layer and its activation, when asked for."""
        if not batch_norm:
            return x
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.Activation(activation, name=f"{name}_{activation}")(x)

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for index, (width, kernel) in enumerate(zip(filters, kernel_sizes(kernel_size, len(filters))), start=1):
        x = layers.Conv2D(
            width,
            kernel,
            padding=padding,
            name=f"conv{index}",
            activation=None if batch_norm else conv_activation,
            use_bias=not batch_norm,  # batch normalization's own offset makes a bias redundant
        )(x)
        x = normalized(x, conv_activation, f"conv{index}")
        if pool_size and pools_after(index, len(filters), pool_every):
            x = layers.MaxPooling2D(pool_size, name=f"pool{index}")(x)
    if dropout:
        x = layers.Dropout(dropout, name="conv_dropout")(x)
    x = layers.Flatten(name="flatten")(x)

    for index, units in enumerate(dense_widths(dense_units), start=1):
        x = layers.Dense(
            units,
            name=f"dense{index}",
            activation=None if batch_norm else dense_activation,
            use_bias=not batch_norm,
        )(x)
        x = normalized(x, dense_activation, f"dense{index}")
        if dense_dropout:
            x = layers.Dropout(dense_dropout, name=f"dense{index}_dropout")(x)

    # float32 whatever the precision: a softmax in bfloat16 loses the small probabilities.
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="cnn")
