"""Models. A `model` config names a callable (`_target_`) that takes `input_shape`,
`num_classes` and the config's own keys, and returns a Keras model: the built-in CNN family
(`cnn.py`) or one of the user's (README: Your own model, optimizer, or any other object).
Its checks ran before TensorFlow loaded (mnist_hydra/config/model_checks.py).
"""

import keras
from omegaconf import DictConfig

from mnist_hydra.building import build
from mnist_hydra.errors import ConfigError


def build_model(model_cfg: DictConfig, input_shape: tuple, num_classes: int) -> keras.Model:
    model = build("model", model_cfg, input_shape=tuple(input_shape), num_classes=num_classes)
    if not isinstance(model, keras.Model):
        raise ConfigError(
            f"model._target_={model_cfg._target_} returned a {type(model).__name__}, not a Keras model"
        )
    return model
