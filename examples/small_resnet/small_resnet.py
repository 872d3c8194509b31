"""A small residual network: an example of bringing your own model to mnist-hydra.

    PYTHONPATH=examples/small_resnet python -m mnist_hydra.train \
        --config-dir examples/small_resnet/conf model=small_resnet optimizer=adam

`build_small_resnet` is what conf/model/small_resnet.yaml names: it takes `input_shape` and
`num_classes` (the task's) and the file's own keys, and returns a Keras model. Its
`ResidualBlock` is a custom layer; to load under Keras' safe_mode (evaluate, predict) it is
registered as serializable and gives its constructor arguments back in `get_config`.
"""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="small_resnet")
class ResidualBlock(layers.Layer):
    """x + conv(conv(x)), then relu: two 3x3 convs that the input skips."""

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.first = layers.Conv2D(width, 3, padding="same", activation="relu")
        self.second = layers.Conv2D(width, 3, padding="same")

    def build(self, input_shape):
        self.first.build(input_shape)
        self.second.build((*input_shape[:-1], self.width))

    def call(self, x):
        return keras.activations.relu(x + self.second(self.first(x)))

    def get_config(self):
        return {**super().get_config(), "width": self.width}


def build_small_resnet(input_shape: tuple, num_classes: int, width: int, blocks: int, dropout: float):
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(width, 3, padding="same", activation="relu", name="stem")(inputs)
    for index in range(1, blocks + 1):
        x = ResidualBlock(width, name=f"block{index}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = layers.GlobalAveragePooling2D(name="average")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="small_resnet")
