"""Models. A `model` config names a callable (`_target_`) that takes `input_shape`,
`num_classes` and the config's own keys, and returns a Keras model: the built-in CNN family
(`cnn.py`) or one of the user's (README: Your own model).

A builder may carry a `check_config(model_cfg, input_shape, num_classes)` attribute: it runs
before TensorFlow loads, raises ConfigError for a bad value, and may return (parameters,
activation values per image) for the memory estimate.
"""

from typing import Optional

from hydra.utils import get_object
from omegaconf import DictConfig

from mnist_hydra.building import build
from mnist_hydra.errors import ConfigError, first_line, underlying


def check_model(model_cfg: DictConfig, input_shape: tuple, num_classes: int) -> Optional[tuple[int, int]]:
    try:
        builder = get_object(model_cfg._target_)
    except Exception as error:  # Hydra wraps the ImportError or AttributeError
        reason = underlying(error)
        raise ConfigError(
            f"model._target_={model_cfg._target_} cannot be found: "
            f"{type(reason).__name__}: {first_line(reason)}"
        ) from None
    check = getattr(builder, "check_config", None)
    return check(model_cfg, input_shape, num_classes) if check else None


def build_model(model_cfg: DictConfig, input_shape: tuple, num_classes: int):
    import keras

    model = build("model", model_cfg, input_shape=tuple(input_shape), num_classes=num_classes)
    if not isinstance(model, keras.Model):
        raise ConfigError(
            f"model._target_={model_cfg._target_} returned a {type(model).__name__}, not a Keras model"
        )
    return model
