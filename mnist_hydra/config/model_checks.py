"""The model's checks, before TensorFlow loads: the built-in CNN family's every value, and a
user's model's own `check_config`, if its builder has one.

The CNN's checks walk the image through the layers, so that a kernel or pool that does not
fit is one line here, not a shape error deep inside Keras, and count the parameters and
activations that the memory estimate needs. `kernel_sizes`, `dense_widths` and `pools_after`
read the config for the checks and for `build_cnn` alike.
"""

import inspect
from typing import Any, Optional

from hydra.utils import get_object
from omegaconf import DictConfig

from mnist_hydra.config.checks import is_int, require
from mnist_hydra.errors import ConfigError, first_line, underlying

# Keras activation names usable by a hidden layer (a test checks each against
# keras.activations.get, so this list cannot drift from Keras).
ACTIVATIONS = (
    "celu",
    "elu",
    "exponential",
    "gelu",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "linear",
    "log_sigmoid",
    "mish",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "softplus",
    "softsign",
    "squareplus",
    "swish",
    "tanh",
)
PADDINGS = ("valid", "same")


def kernel_sizes(kernel_size: Any, num_convs: int) -> list:
    """`model.kernel_size` as one size per conv: an int is every conv's."""
    return [kernel_size] * num_convs if is_int(kernel_size) else list(kernel_size)


def dense_widths(dense_units: Any) -> list[int]:
    """`model.dense_units` as a list: an int is one hidden layer, null or [] none."""
    if dense_units is None:
        return []
    if is_int(dense_units):
        return [dense_units]
    return list(dense_units)


def pools_after(conv_index: int, num_convs: int, pool_every: Optional[int]) -> bool:
    """Whether a MaxPooling2D follows conv `conv_index` (1-based).

    `pool_every: null` pools once, after the conv stack; `k` pools after every
    k-th conv and after the last one.
    """
    every = pool_every or num_convs
    return conv_index % every == 0 or conv_index == num_convs


def check_cnn(model: DictConfig, input_shape: tuple, num_classes: int) -> tuple[int, int]:
    """Check every key; return (parameters, activation values per image) for a memory estimate."""
    _check_cnn_values(model)
    return _walk_the_layers(model, input_shape, num_classes)


def _check_cnn_values(model: DictConfig) -> None:
    filters = list(model.filters)
    require(len(filters) >= 1, "model.filters", filters, "a list of at least one positive int")
    for width in filters:
        require(is_int(width) and width >= 1, "model.filters", filters, "positive ints")
    kernels = kernel_sizes(model.kernel_size, len(filters)) if not isinstance(model.kernel_size, str) else [0]
    require(
        len(kernels) == len(filters) and all(is_int(k) and k >= 1 for k in kernels),
        "model.kernel_size",
        model.kernel_size,
        f"a positive int, or a list of {len(filters)} (one per conv of model.filters)",
    )
    require(model.padding in PADDINGS, "model.padding", model.padding, f"one of {', '.join(PADDINGS)}")
    for key in ("conv_activation", "dense_activation"):
        require(model[key] in ACTIVATIONS, f"model.{key}", model[key], f"one of {', '.join(ACTIVATIONS)}")
    require(
        model.pool_size is None or model.pool_size >= 1,
        "model.pool_size",
        model.pool_size,
        "a positive int, or null for no pooling",
    )
    require(
        model.pool_every is None or model.pool_every >= 1,
        "model.pool_every",
        model.pool_every,
        "a positive int, or null to pool once after the conv stack",
    )
    for key in ("dropout", "dense_dropout"):
        require(0.0 <= model[key] < 1.0, f"model.{key}", model[key], "a rate in [0, 1)")
    units = model.dense_units
    ok = units is None or is_int(units) or (not isinstance(units, (str, bool)) and hasattr(units, "__iter__"))
    require(ok, "model.dense_units", units, "a positive int, a list of them, or null")
    for width in dense_widths(units):
        require(
            is_int(width) and width >= 1,
            "model.dense_units",
            units,
            "a positive int, a list of them, or null",
        )


def _walk_the_layers(model: DictConfig, input_shape: tuple, num_classes: int) -> tuple[int, int]:
    """The image through the layers: a kernel or pool that does not fit is reported here, not
    as a shape error deep inside Keras; and the parameters and activations training holds."""
    filters, kernels = list(model.filters), kernel_sizes(model.kernel_size, len(model.filters))
    size, _, depth = input_shape
    params, activations = 0, 0
    for index, (width, kernel) in enumerate(zip(filters, kernels), start=1):
        # With padding=same a kernel larger than the image only multiplies zeros (and memory).
        require(
            kernel <= size,
            "model.kernel_size",
            model.kernel_size,
            f"at most {size} for conv{index}: it sees a {size}x{size} image",
        )
        if model.padding == "valid":
            size = size - kernel + 1
        params += kernel**2 * depth * width + width
        depth = width
        activations += 2 * size * size * depth  # the conv's output and its activation's
        if model.pool_size and pools_after(index, len(filters), model.pool_every):
            require(
                model.pool_size <= size,
                "model.pool_size",
                model.pool_size,
                f"at most {size}: the pool after conv{index} sees a {size}x{size} image",
            )
            size //= model.pool_size
            activations += size * size * depth
    inputs = size * size * depth
    for width in dense_widths(model.dense_units):
        params += inputs * width + width
        activations += 2 * width
        inputs = width
    return params + inputs * num_classes + num_classes, activations


# Our builders' checks, by target: looking the builder up would import it, and with it Keras.
BUILT_IN_CHECKS = {"mnist_hydra.models.cnn.build_cnn": check_cnn}


def check_model(model_cfg: DictConfig, input_shape: tuple, num_classes: int) -> Optional[tuple[int, int]]:
    """Run the model's checks; return (parameters, activation values per image) when they count them.

    A user's builder may carry a `check_config(model_cfg, input_shape, num_classes)` attribute
    that raises ConfigError for a bad value (README: Your own model, optimizer, or any other object)."""
    target = model_cfg._target_
    if target in BUILT_IN_CHECKS:
        return BUILT_IN_CHECKS[target](model_cfg, input_shape, num_classes)
    try:
        builder = get_object(target)
    except Exception as error:  # Hydra wraps the ImportError or AttributeError
        reason = underlying(error)
        raise ConfigError(
            f"model._target_={target} cannot be found: {type(reason).__name__}: {first_line(reason)}"
        ) from None
    _check_arguments(builder, model_cfg)
    check = getattr(builder, "check_config", None)
    return check(model_cfg, input_shape, num_classes) if check else None


def _check_arguments(builder, model_cfg: DictConfig) -> None:
    """A user's model file's keys must be its builder's arguments (the task adds input_shape and
    num_classes), or the mistake shows only once TensorFlow and the data have loaded."""
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError):  # a builtin or a class without a readable signature: Keras will tell
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    given = {key for key in model_cfg if not str(key).startswith("_")}
    arguments = set(parameters) - {"input_shape", "num_classes"}
    for key in sorted(given - arguments):
        raise ConfigError(
            f"model.{key} is not an argument of {model_cfg._target_}: its arguments are "
            f"{', '.join(sorted(arguments)) or 'none besides input_shape and num_classes'}"
        )
    for name, parameter in parameters.items():
        if (
            name not in given | {"input_shape", "num_classes"}
            and parameter.default is inspect.Parameter.empty
        ):
            raise ConfigError(
                f"model.{name} is required by {model_cfg._target_}: add a line `{name}: ...` to its file"
            )
