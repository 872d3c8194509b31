"""One way to build every configured object: Hydra's `instantiate`, completed by the task.

Each group's file names its class or function with `_target_` and gives its own arguments;
it is instantiated as a partial (a plain YAML file needs no `_partial_: true`), which the
task completes with what only it knows (the model gets the input shape and the number of
classes, the optimizer its learning rate, a tracker the run folder). Any failure is one line
naming the group's target.
"""

import hydra
from omegaconf import DictConfig

from mnist_hydra.errors import ConfigError, MnistHydraError, first_line, underlying


def build(group: str, node: DictConfig, **completion):
    target = node.get("_target_")
    try:
        partial = hydra.utils.instantiate(node, _partial_=True)
    except Exception as error:  # Hydra's InstantiationException wraps what went wrong
        reason = underlying(error)
        raise ConfigError(
            f"{group}._target_={target} cannot be built: {type(reason).__name__}: {first_line(reason)}"
        ) from None
    try:
        return partial(**completion)
    except MnistHydraError:
        raise  # already one line that names what is wrong
    except Exception as error:
        raise ConfigError(
            f"{group}._target_={target} raised {type(error).__name__}: {first_line(error)}"
        ) from None
