"""The model factory: a `model` config in, a Keras functional graph out.

Read it like the tutorial's layer list: convs (each optionally followed by batch
normalization and pooling), dropout, flatten, hidden dense layers, softmax.
"""

import keras
from keras import layers
from omegaconf import DictConfig

from mnist_hydra.config import dense_widths, pools_after


def _normalized(x, activation: str, use_batch_norm: bool, name: str):
    """Batch normalization sits between a layer and its activation, when asked for."""
    if not use_batch_norm:
        return x
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def build_model(cfg: DictConfig, input_shape: tuple, num_classes: int) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    bn = cfg.batch_norm
    x = inputs

    for index, filters in enumerate(cfg.filters, start=1):
        x = layers.Conv2D(
            filters, cfg.kernel_size, padding=cfg.padding, name=f"conv{index}",
            activation=None if bn else cfg.conv_activation,
            use_bias=not bn,  # batch normalization's own offset makes a bias redundant
        )(x)
        x = _normalized(x, cfg.conv_activation, bn, f"conv{index}")
        if cfg.pool_size and pools_after(index, len(cfg.filters), cfg.pool_every):
            x = layers.MaxPooling2D(cfg.pool_size, name=f"pool{index}")(x)
    if cfg.dropout:
        x = layers.Dropout(cfg.dropout, name="conv_dropout")(x)
    x = layers.Flatten(name="flatten")(x)

    for index, units in enumerate(dense_widths(cfg.dense_units), start=1):
        x = layers.Dense(
            units, name=f"dense{index}", activation=None if bn else cfg.dense_activation,
            use_bias=not bn,
        )(x)
        x = _normalized(x, cfg.dense_activation, bn, f"dense{index}")
        if cfg.dense_dropout:
            x = layers.Dropout(cfg.dense_dropout, name=f"dense{index}_dropout")(x)

    # float32 whatever the precision: a softmax in bfloat16 loses the small probabilities.
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="cnn")
