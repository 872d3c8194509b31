"""The config schema, and the value checks that run before anything heavy.

The dataclasses only give types: every default lives in the YAML files under
`conf/`, so code and config cannot disagree about one. Hydra rejects unknown keys
and wrong types at the command line; `validate` rejects values out of range.
No TensorFlow here: `--help` and `--cfg job` must answer at once.
"""

import math
import os
from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from mnist_hydra.errors import ConfigError

# Keras activation names usable by a hidden layer (tests check each against
# keras.activations.get, so this list cannot drift from Keras).
ACTIVATIONS = (
    "celu", "elu", "exponential", "gelu", "hard_sigmoid", "hard_silu", "hard_swish",
    "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "mish", "relu", "relu6",
    "selu", "sigmoid", "silu", "softplus", "softsign", "squareplus", "swish", "tanh",
)
DATASETS = ("mnist", "fashion_mnist")
PADDINGS = ("valid", "same")
PRECISIONS = ("fp32", "bf16")
# What a run returns to a sweeper and a sweep summary ranks by; val_* are the last epoch's.
OBJECTIVES = ("test_accuracy", "test_loss", "val_accuracy", "val_loss")
SEED_RANGE = (0, 2**32 - 1)  # what keras.utils.set_random_seed (NumPy's seed) accepts
MAX_IMAGE_SIZE = 1024         # pixels a side; past it one image alone is megabytes per layer
MAX_THREADS = 256             # TensorFlow threads per op; more only adds contention


@dataclass
class DatasetConfig:
    name: str = MISSING
    data_dir: Optional[str] = MISSING
    image_size: int = MISSING
    class_names: list[str] = MISSING
    train_limit: Optional[int] = MISSING
    test_limit: Optional[int] = MISSING


@dataclass
class ModelConfig:
    filters: list[int] = MISSING
    kernel_size: int = MISSING
    conv_activation: str = MISSING
    padding: str = MISSING
    batch_norm: bool = MISSING
    pool_size: Optional[int] = MISSING
    pool_every: Optional[int] = MISSING
    dropout: float = MISSING
    dense_units: Any = MISSING  # an int, a list of ints, or null: OmegaConf has no unions
    dense_activation: str = MISSING
    dense_dropout: float = MISSING


@dataclass
class AugmentConfig:
    shift: float = MISSING     # fraction of the image's height/width
    rotation: float = MISSING  # degrees


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    validation_split: float = MISSING
    deterministic: bool = MISSING
    verbose: Any = MISSING  # Keras' fit(verbose=...): "auto", 0, 1 or 2
    threads: Optional[int] = MISSING  # null: this job's share of the CPU cores
    precision: str = MISSING
    jit_compile: bool = MISSING
    steps_per_execution: int = MISSING
    label_smoothing: float = MISSING
    augment: AugmentConfig = MISSING


@dataclass
class PartialConfig:
    """A `_target_` that the task completes with arguments of its own (`_partial_: true`)."""
    _target_: str = MISSING
    _partial_: bool = MISSING


@dataclass
class ConstantScheduleConfig(PartialConfig):
    pass


@dataclass
class CosineScheduleConfig(PartialConfig):
    warmup_epochs: float = MISSING
    start_ratio: float = MISSING
    final_ratio: float = MISSING


@dataclass
class AdadeltaConfig:
    _target_: str = MISSING
    learning_rate: float = MISSING
    rho: float = MISSING
    epsilon: float = MISSING


@dataclass
class AdamConfig:
    _target_: str = MISSING
    learning_rate: float = MISSING
    beta_1: float = MISSING
    beta_2: float = MISSING
    epsilon: float = MISSING
    amsgrad: bool = MISSING


@dataclass
class SGDConfig:
    _target_: str = MISSING
    learning_rate: float = MISSING
    momentum: float = MISSING
    nesterov: bool = MISSING


@dataclass
class RMSpropConfig:
    _target_: str = MISSING
    learning_rate: float = MISSING
    rho: float = MISSING
    momentum: float = MISSING
    epsilon: float = MISSING
    centered: bool = MISSING


@dataclass
class NoLoggerConfig(PartialConfig):
    pass


@dataclass
class TensorBoardLoggerConfig(NoLoggerConfig):
    subdir: str = MISSING


@dataclass
class CSVLoggerConfig(NoLoggerConfig):
    filename: str = MISSING


@dataclass
class MLflowLoggerConfig(NoLoggerConfig):
    tracking_uri: str = MISSING
    experiment_name: str = MISSING


@dataclass
class TrainConfig:
    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    optimizer: Any = MISSING  # each optimizer file brings its own schema
    trainer: TrainerConfig = MISSING
    schedule: Any = MISSING   # and each learning-rate schedule file
    logger: Any = MISSING     # so does each logger file
    seed: int = MISSING
    resume: bool = MISSING
    objective: str = MISSING


@dataclass
class EvaluateConfig:
    ckpt_path: str = MISSING


@dataclass
class PredictConfig:
    ckpt_path: str = MISSING
    images: list[str] = MISSING


def register_schemas() -> None:
    """Put the schemas where the YAML files' defaults lists look for them."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="evaluate_schema", node=EvaluateConfig)
    store.store(name="predict_schema", node=PredictConfig)
    group_schemas = {
        "optimizer": {"adadelta": AdadeltaConfig, "adam": AdamConfig, "sgd": SGDConfig,
                      "rmsprop": RMSpropConfig},
        "logger": {"tensorboard": TensorBoardLoggerConfig, "csv": CSVLoggerConfig,
                   "mlflow": MLflowLoggerConfig, "none": NoLoggerConfig},
        "schedule": {"constant": ConstantScheduleConfig, "cosine": CosineScheduleConfig},
    }
    for group, schemas in group_schemas.items():
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value} is not allowed: {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def dense_widths(dense_units: Any) -> list[int]:
    """`model.dense_units` as a list: an int is one hidden layer, null or [] none."""
    if dense_units is None:
        return []
    if _is_int(dense_units):
        return [dense_units]
    return list(dense_units)


def pools_after(conv_index: int, num_convs: int, pool_every: Optional[int]) -> bool:
    """Whether a MaxPooling2D follows conv `conv_index` (1-based).

    `pool_every: null` pools once, after the conv stack; `k` pools after every
    k-th conv and after the last one.
    """
    every = pool_every or num_convs
    return conv_index % every == 0 or conv_index == num_convs


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate_model(model: DictConfig, image_size: int, num_classes: int, channels: int = 1) -> "tuple[int, int]":
    """Check the model keys; return (parameters, activation values per image) for a memory estimate."""
    filters = list(model.filters)
    _require(len(filters) >= 1, "model.filters", filters, "a list of at least one positive int")
    for width in filters:
        _require(_is_int(width) and width >= 1, "model.filters", filters, "positive ints")
    _require(model.kernel_size >= 1, "model.kernel_size", model.kernel_size, "a positive int")
    _require(model.padding in PADDINGS, "model.padding", model.padding, f"one of {', '.join(PADDINGS)}")
    for key in ("conv_activation", "dense_activation"):
        _require(model[key] in ACTIVATIONS, f"model.{key}", model[key],
                 f"one of {', '.join(ACTIVATIONS)}")
    _require(model.pool_size is None or model.pool_size >= 1, "model.pool_size",
             model.pool_size, "a positive int, or null for no pooling")
    _require(model.pool_every is None or model.pool_every >= 1, "model.pool_every",
             model.pool_every, "a positive int, or null to pool once after the conv stack")
    for key in ("dropout", "dense_dropout"):
        _require(0.0 <= model[key] < 1.0, f"model.{key}", model[key], "a rate in [0, 1)")
    units = model.dense_units
    ok = units is None or _is_int(units) or (
        not isinstance(units, (str, bool)) and hasattr(units, "__iter__"))
    _require(ok, "model.dense_units", units, "a positive int, a list of them, or null")
    for width in dense_widths(units):
        _require(_is_int(width) and width >= 1, "model.dense_units", units,
                 "a positive int, a list of them, or null")

    # Walk the image through the layers so that a kernel or pool that does not fit is
    # reported here, not as a shape error deep inside Keras, and count what training holds.
    size, depth, params, activations = image_size, channels, 0, 0
    for index, width in enumerate(filters, start=1):
        # With padding=same a kernel larger than the image only multiplies zeros (and memory).
        _require(model.kernel_size <= size, "model.kernel_size", model.kernel_size,
                 f"at most {size}: conv{index} sees a {size}x{size} image")
        if model.padding == "valid":
            size = size - model.kernel_size + 1
        params += model.kernel_size ** 2 * depth * width + width
        depth = width
        activations += 2 * size * size * depth  # the conv's output and its activation's
        if model.pool_size and pools_after(index, len(filters), model.pool_every):
            _require(model.pool_size <= size, "model.pool_size", model.pool_size,
                     f"at most {size}: the pool after conv{index} sees a {size}x{size} image")
            size //= model.pool_size
            activations += size * size * depth
    inputs = size * size * depth
    for width in dense_widths(units):
        params += inputs * width + width
        activations += 2 * width
        inputs = width
    return params + inputs * num_classes + num_classes, activations


def machine_memory() -> int:
    """Bytes of physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _validate_memory(cfg: DictConfig, params: int, activations: int) -> None:
    """Refuse a model and batch that cannot fit in this machine's memory, before TensorFlow
    tries to allocate it: weights, gradients and two optimizer slots per parameter, and
    each layer's output and its gradient for every image of a batch, in float32."""
    needed = 4 * (4 * params + 2 * activations * cfg.trainer.batch_size)
    available = machine_memory()
    if needed >= available:
        raise ConfigError(
            f"model.filters={list(cfg.model.filters)} with model.dense_units={cfg.model.dense_units} and "
            f"trainer.batch_size={cfg.trainer.batch_size} need about {needed / 2**30:,.0f} GiB to train "
            f"({params:,} parameters), more than this machine's {available / 2**30:,.0f} GiB: "
            f"use fewer filters, smaller dense layers or a smaller batch")


def validate(cfg: DictConfig) -> None:
    """Reject out-of-range values with one line naming the key; the types are Hydra's job."""
    _require(cfg.dataset.name in DATASETS, "dataset.name", cfg.dataset.name,
             f"one of {', '.join(DATASETS)}")
    for key in ("train_limit", "test_limit"):
        value = cfg.dataset[key]
        _require(value is None or value >= 1, f"dataset.{key}", value,
                 "a positive int, or null for the whole split")
    _require(1 <= cfg.dataset.image_size <= MAX_IMAGE_SIZE, "dataset.image_size", cfg.dataset.image_size,
             f"pixels a side, from 1 to {MAX_IMAGE_SIZE} (the dataset's files must have this size)")
    names = list(cfg.dataset.class_names)
    _require(len(names) >= 2 and len(set(names)) == len(names), "dataset.class_names", names,
             "at least two names, all different")
    _require(SEED_RANGE[0] <= cfg.seed <= SEED_RANGE[1], "seed", cfg.seed,
             f"an int from {SEED_RANGE[0]} to {SEED_RANGE[1]}")
    params, activations = _validate_model(cfg.model, cfg.dataset.image_size, len(names))
    _require(cfg.trainer.epochs >= 1, "trainer.epochs", cfg.trainer.epochs, "a positive int")
    _require(cfg.trainer.batch_size >= 1, "trainer.batch_size", cfg.trainer.batch_size,
             "a positive int")
    _require(0.0 <= cfg.trainer.validation_split < 1.0, "trainer.validation_split",
             cfg.trainer.validation_split, "a fraction in [0, 1)")
    _require(cfg.trainer.verbose in ("auto", 0, 1, 2), "trainer.verbose", cfg.trainer.verbose,
             "one of auto, 0, 1, 2")
    _require(cfg.trainer.threads is None or 1 <= cfg.trainer.threads <= MAX_THREADS, "trainer.threads",
             cfg.trainer.threads, f"an int from 1 to {MAX_THREADS}, or null for this job's share of the cores")
    _require(cfg.trainer.precision in PRECISIONS, "trainer.precision", cfg.trainer.precision,
             f"one of {', '.join(PRECISIONS)}")
    _require(not (cfg.trainer.jit_compile and cfg.trainer.deterministic), "trainer.jit_compile",
             cfg.trainer.jit_compile, "true only with trainer.deterministic=false "
             "(under op determinism Keras turns XLA off)")
    _require(cfg.trainer.steps_per_execution >= 1, "trainer.steps_per_execution",
             cfg.trainer.steps_per_execution, "a positive int")
    _require(0.0 <= cfg.trainer.label_smoothing < 1.0, "trainer.label_smoothing",
             cfg.trainer.label_smoothing, "a value in [0, 1)")
    _require(0.0 <= cfg.trainer.augment.shift < 0.5, "trainer.augment.shift", cfg.trainer.augment.shift,
             "a fraction of the image in [0, 0.5); 0 for none")
    _require(0.0 <= cfg.trainer.augment.rotation <= 180.0, "trainer.augment.rotation",
             cfg.trainer.augment.rotation, "degrees in [0, 180]; 0 for none")
    for key, low, high in (("warmup_epochs", 0.0, cfg.trainer.epochs), ("start_ratio", 0.0, 1.0),
                           ("final_ratio", 0.0, 1.0)):
        if key in cfg.schedule:
            _require(low <= cfg.schedule[key] <= high, f"schedule.{key}", cfg.schedule[key],
                     f"a value in [{low}, {high}]")
    _require(cfg.objective in OBJECTIVES, "objective", cfg.objective, f"one of {', '.join(OBJECTIVES)}")
    _require(not cfg.objective.startswith("val_") or cfg.trainer.validation_split > 0, "objective",
             cfg.objective, "test_accuracy or test_loss unless trainer.validation_split > 0")
    _validate_memory(cfg, params, activations)
    _require(_is_number(cfg.optimizer.learning_rate) and cfg.optimizer.learning_rate > 0,
             "optimizer.learning_rate", cfg.optimizer.learning_rate, "a positive, finite float")
    for key in ("rho", "momentum", "beta_1", "beta_2"):
        if key in cfg.optimizer:
            _require(0.0 <= cfg.optimizer[key] < 1.0, f"optimizer.{key}", cfg.optimizer[key],
                     "a value in [0, 1)")
    if "epsilon" in cfg.optimizer:
        _require(_is_number(cfg.optimizer.epsilon) and cfg.optimizer.epsilon > 0, "optimizer.epsilon",
                 cfg.optimizer.epsilon, "a positive, finite float")


def check_split_sizes(cfg: DictConfig, train_images: int) -> None:
    """Once the number of training images is known: the validation split must leave at least
    one batch to train on, and hold at least one image itself."""
    split, batch = cfg.trainer.validation_split, cfg.trainer.batch_size
    kept = int(train_images * (1 - split))
    if split == 0:
        _require(batch <= train_images, "trainer.batch_size", batch,
                 f"at most the {train_images} training images")
    _require(kept >= batch, "trainer.validation_split", split,
             f"a fraction that leaves at least one batch ({batch}) of the {train_images} training images "
             f"to train on; it leaves {kept}")
    _require(split == 0 or kept < train_images, "trainer.validation_split", split,
             f"0, or a fraction that holds out at least one of the {train_images} training images")
