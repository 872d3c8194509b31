"""Fine-tuning: a run that starts from a trained run's weights (`init_from`), with its first
layers kept as they come (`trainer.freeze`).

The run to start from is read as evaluate reads one (inference/loading.py): its records as data,
its model sized before its weights and loaded in safe mode, no code of its own. Its layers with
weights must be this config's, one for one (kind and shapes); the first that differs is named
in one line. With `init_from_head: new`, the last (the classifier) is not taken: it starts
afresh, and may have another number of classes.
"""

import logging

import keras

from mnist_hydra.errors import ConfigError
from mnist_hydra.inference.loading import DEFAULT_MAX_PARAMETERS, load_model, model_parameters
from mnist_hydra.trained_runs import locate_run

log = logging.getLogger(__name__)


def start_from(model: keras.Model, init_from: str, head: str) -> None:
    files = locate_run(init_from)
    model_parameters(files, False, DEFAULT_MAX_PARAMETERS)
    source = load_model(files)
    ours, theirs = _weighted(model), _weighted(source)
    for index, (mine, its) in enumerate(zip(ours, theirs)):
        new_head = head == "new" and index == len(ours) - 1
        if _shape(mine) != _shape(its) and not (new_head and type(mine) is type(its)):
            raise ConfigError(
                f"init_from={init_from}: its layer {index + 1} with weights is {its.name} {_shape(its)}, "
                f"this config's is {mine.name} {_shape(mine)}: not the same model"
                + (
                    " (init_from_head=new gives the last layer a fresh start)"
                    if index == len(ours) - 1
                    else ""
                )
            )
        if not new_head:
            mine.set_weights(its.get_weights())
    if len(ours) != len(theirs):
        raise ConfigError(
            f"init_from={init_from}: its model has {len(theirs)} layers with weights, this config's "
            f"{len(ours)}: not the same model"
        )
    taken = len(ours) - (head == "new")
    log.info("Started from %s: the weights of %d of %d layers", files.model_path, taken, len(ours))


def freeze(model: keras.Model, count: int) -> None:
    """The first `count` layers (the input aside) are not trained."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if count > len(layers):
        raise ConfigError(
            f"trainer.freeze={count} is not allowed: the model has {len(layers)} layers "
            f"({', '.join(layer.name for layer in layers)})"
        )
    for layer in layers[:count]:
        layer.trainable = False
    if count:
        log.info("Frozen: %s", ", ".join(layer.name for layer in layers[:count]))


def _weighted(model: keras.Model) -> list:
    return [layer for layer in model.layers if layer.weights]


def _shape(layer) -> tuple:
    return (type(layer).__name__, *(tuple(weight.shape) for weight in layer.weights))
