"""The built-in model family: plain CNNs, from the tutorial's to VGG-like stacks with batch norm.

    conf/model/tutorial_cnn.yaml: _target_: mnist_hydra.models.cnn.build_cnn

Read `build_cnn` like the tutorial's layer list: convs (each optionally followed by batch
normalization and pooling), dropout, flatten, hidden dense layers, softmax. Its schema
(`CNNConfig`) and its checks (`check_cnn`: every value, kernels and pools that fit the image
as it shrinks, and the parameter and activation counts for the memory estimate) sit beside
it; Keras is imported only when a model is built, so the checks run before TensorFlow loads.
"""

from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING, DictConfig

from mnist_hydra.checks import is_int, require
from mnist_hydra.config import ModelConfig

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


@dataclass
class CNNConfig(ModelConfig):
    filters: list[int] = MISSING
    kernel_size: Any = MISSING  # an int for every conv, or a list of one per conv
    conv_activation: str = MISSING
    padding: str = MISSING
    batch_norm: bool = MISSING
    pool_size: Optional[int] = MISSING
    pool_every: Optional[int] = MISSING
    dropout: float = MISSING
    dense_units: Any = MISSING  # an int, a list of ints, or null: OmegaConf has no unions
    dense_activation: str = MISSING
    dense_dropout: float = MISSING


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

    # Walk the image through the layers so that a kernel or pool that does not fit is
    # reported here, not as a shape error deep inside Keras, and count what training holds.
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
    for width in dense_widths(units):
        params += inputs * width + width
        activations += 2 * width
        inputs = width
    return params + inputs * num_classes + num_classes, activations


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
    import keras
    from keras import layers

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


build_cnn.check_config = check_cnn  # models/__init__.py calls a builder's check before TensorFlow loads
