"""The config schema, and the value checks that run before anything heavy.

Every group has a typed base (a `_target_` that the task completes: `_partial_` is true for
all), and each file of ours extends it with its own keys, so unknown keys and wrong types
fail at the command line. The dataclasses only give types: every default lives in the YAML
files under `conf/`, so code and config cannot disagree about one. A user's own file starts
from `/schema/<group>/custom`, the base with room for keys of its own. `validate` rejects
values out of range. No TensorFlow here: `--help` and `--cfg job` must answer at once.
"""

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mnist_hydra.checks import is_number, require
from mnist_hydra.errors import ConfigError

PRECISIONS = ("fp32", "bf16")
ONEDNN = ("auto", "on", "off")
# The numbers a run reports (val_* are the last epoch's): what it returns to a sweeper (its
# `objective`) and what a sweep's summary shows and ranks by. Losses rank lowest first, and a
# search minimizes them.
METRICS = ("test_accuracy", "test_loss", "val_accuracy", "val_loss")
SEED_RANGE = (0, 2**32 - 1)  # what keras.utils.set_random_seed (NumPy's seed) accepts
MAX_IMAGE_SIZE = 1024  # pixels a side; past it one image alone is megabytes per layer
MAX_THREADS = 256  # TensorFlow threads per op; more only adds contention


# --- the typed bases, one per group ---------------------------------------------------


@dataclass
class PartialConfig:
    """A `_target_` that the task completes with arguments of its own."""

    _target_: str = MISSING
    _partial_: bool = True


@dataclass
class DatasetConfig(PartialConfig):
    name: str = MISSING
    image_size: int = MISSING
    channels: int = MISSING
    class_names: Optional[list[str]] = MISSING  # null: the dataset knows them (image folders)
    train_limit: Optional[int] = MISSING
    test_limit: Optional[int] = MISSING


@dataclass
class ModelConfig(PartialConfig):
    pass


@dataclass
class OptimizerConfig(PartialConfig):
    learning_rate: float = MISSING  # the peak; the schedule shapes it over training


@dataclass
class ScheduleConfig(PartialConfig):
    pass


@dataclass
class LossConfig(PartialConfig):
    pass


@dataclass
class TrackerConfig(PartialConfig):
    pass


# --- our files' schemas ---------------------------------------------------------------


@dataclass
class IDXFileConfig:
    file: str = MISSING
    bytes: int = MISSING
    sha256: str = MISSING


@dataclass
class IDXDatasetConfig(DatasetConfig):
    data_dir: Optional[str] = MISSING
    files: dict[str, IDXFileConfig] = field(default_factory=dict)
    keras_download: Optional[str] = MISSING


@dataclass
class ImageFolderConfig(DatasetConfig):
    path: str = MISSING
    test_split: float = MISSING
    seed: int = MISSING
    cache_dir: Optional[str] = MISSING


@dataclass
class AdadeltaConfig(OptimizerConfig):
    rho: float = MISSING
    epsilon: float = MISSING


@dataclass
class AdamConfig(OptimizerConfig):
    beta_1: float = MISSING
    beta_2: float = MISSING
    epsilon: float = MISSING
    amsgrad: bool = MISSING


@dataclass
class SGDConfig(OptimizerConfig):
    momentum: float = MISSING
    nesterov: bool = MISSING


@dataclass
class RMSpropConfig(OptimizerConfig):
    rho: float = MISSING
    momentum: float = MISSING
    epsilon: float = MISSING
    centered: bool = MISSING


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    warmup_epochs: float = MISSING
    start_ratio: float = MISSING
    final_ratio: float = MISSING


@dataclass
class CrossEntropyConfig(LossConfig):
    label_smoothing: float = MISSING


@dataclass
class TensorBoardTrackerConfig(TrackerConfig):
    subdir: str = MISSING


@dataclass
class CSVTrackerConfig(TrackerConfig):
    filename: str = MISSING


@dataclass
class MLflowTrackerConfig(TrackerConfig):
    tracking_uri: str = MISSING
    experiment_name: str = MISSING


@dataclass
class AugmentConfig:
    shift: float = MISSING  # fraction of the image's height/width
    rotation: float = MISSING  # degrees


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    validation_split: float = MISSING
    deterministic: bool = MISSING
    verbose: Any = MISSING  # Keras' fit(verbose=...): "auto", 0, 1 or 2
    threads: Optional[int] = MISSING  # null: this job's share of the CPU cores
    onednn: str = MISSING
    precision: str = MISSING
    jit_compile: bool = MISSING
    steps_per_execution: int = MISSING
    augment: AugmentConfig = MISSING
    tta_shift: int = MISSING  # pixels; 0: no test-time augmentation


@dataclass
class TrainConfig:
    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    schedule: ScheduleConfig = MISSING
    loss: LossConfig = MISSING
    tracker: TrackerConfig = MISSING
    trainer: TrainerConfig = MISSING
    seed: int = MISSING
    resume: bool = MISSING
    objective: str = MISSING


@dataclass
class EvaluateConfig:
    ckpt_path: str = MISSING
    tta_shift: Optional[int] = MISSING  # null: each run's own trainer.tta_shift


@dataclass
class PredictConfig:
    ckpt_path: str = MISSING
    images: list[str] = MISSING


@dataclass
class ServeConfig:
    ckpt_path: str = MISSING
    host: str = MISSING
    port: int = MISSING
    max_bytes: int = MISSING


EXPORT_FORMATS = ("saved_model", "tflite", "onnx")


@dataclass
class ExportConfig:
    ckpt_path: str = MISSING
    format: str = MISSING


def _custom(base) -> DictConfig:
    """The group's base, open to keys of a user's own (a user's model or dataset has its own)."""
    node = OmegaConf.structured(base)
    OmegaConf.set_struct(node, False)
    return node


def register_schemas() -> None:
    """Put the schemas where the YAML files' defaults lists look for them (once per process)."""
    from mnist_hydra.models.cnn import CNNConfig

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="evaluate_schema", node=EvaluateConfig)
    store.store(name="predict_schema", node=PredictConfig)
    store.store(name="serve_schema", node=ServeConfig)
    store.store(name="export_schema", node=ExportConfig)
    group_schemas = {
        "dataset": (DatasetConfig, {"idx": IDXDatasetConfig, "image_folder": ImageFolderConfig}),
        "model": (ModelConfig, {"cnn": CNNConfig}),
        "optimizer": (
            OptimizerConfig,
            {"adadelta": AdadeltaConfig, "adam": AdamConfig, "sgd": SGDConfig, "rmsprop": RMSpropConfig},
        ),
        "schedule": (ScheduleConfig, {"constant": ScheduleConfig, "cosine": CosineScheduleConfig}),
        "loss": (LossConfig, {"cross_entropy": CrossEntropyConfig}),
        "tracker": (
            TrackerConfig,
            {
                "tensorboard": TensorBoardTrackerConfig,
                "csv": CSVTrackerConfig,
                "mlflow": MLflowTrackerConfig,
                "none": TrackerConfig,
            },
        ),
    }
    for group, (base, schemas) in group_schemas.items():
        store.store(group=f"schema/{group}", name="custom", node=_custom(base))
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)


# --- the checks -----------------------------------------------------------------------


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
        keys = " ".join(
            f"model.{key}={cfg.model[key]}" for key in ("filters", "dense_units") if key in cfg.model
        )
        raise ConfigError(
            f"{keys + ' with ' if keys else 'the model with '}trainer.batch_size={cfg.trainer.batch_size} "
            f"needs about {needed / 2**30:,.0f} GiB to train ({params:,} parameters), more than this "
            f"machine's {available / 2**30:,.0f} GiB: use a smaller model or a smaller batch"
        )


def _validate_dataset(dataset: DictConfig) -> None:
    for key in ("train_limit", "test_limit"):
        require(
            dataset[key] is None or dataset[key] >= 1,
            f"dataset.{key}",
            dataset[key],
            "a positive int, or null for the whole split",
        )
    require(
        1 <= dataset.image_size <= MAX_IMAGE_SIZE,
        "dataset.image_size",
        dataset.image_size,
        f"pixels a side, from 1 to {MAX_IMAGE_SIZE}",
    )
    require(dataset.channels in (1, 3), "dataset.channels", dataset.channels, "1 (grayscale) or 3 (RGB)")
    if dataset.class_names is not None:
        names = list(dataset.class_names)
        require(
            len(names) >= 2 and len(set(names)) == len(names),
            "dataset.class_names",
            names,
            "at least two names, all different",
        )
    if "test_split" in dataset:
        require(
            0.0 < dataset.test_split < 1.0, "dataset.test_split", dataset.test_split, "a fraction in (0, 1)"
        )


def max_tta_shift(image_size: int) -> int:
    """The largest test-time shift: less than half the image, or little of a digit is left."""
    return image_size // 2 - 1


def validate(cfg: DictConfig) -> None:
    """Reject out-of-range values with one line naming the key; the types are Hydra's job."""
    from mnist_hydra.models import check_model

    for key in sorted(OmegaConf.missing_keys(cfg)):
        raise ConfigError(f"{key} is required (it is ??? in its file): set it, e.g. {key}=...")
    _validate_dataset(cfg.dataset)
    require(
        SEED_RANGE[0] <= cfg.seed <= SEED_RANGE[1],
        "seed",
        cfg.seed,
        f"an int from {SEED_RANGE[0]} to {SEED_RANGE[1]}",
    )
    input_shape = (cfg.dataset.image_size, cfg.dataset.image_size, cfg.dataset.channels)
    # An image folder's classes are known once it is listed: at least two.
    num_classes = len(cfg.dataset.class_names) if cfg.dataset.class_names is not None else 2
    counts = check_model(cfg.model, input_shape, num_classes)
    trainer = cfg.trainer
    require(trainer.epochs >= 1, "trainer.epochs", trainer.epochs, "a positive int")
    require(trainer.batch_size >= 1, "trainer.batch_size", trainer.batch_size, "a positive int")
    if counts:
        _validate_memory(cfg, *counts)
    require(
        0.0 <= trainer.validation_split < 1.0,
        "trainer.validation_split",
        trainer.validation_split,
        "a fraction in [0, 1)",
    )
    require(trainer.verbose in ("auto", 0, 1, 2), "trainer.verbose", trainer.verbose, "one of auto, 0, 1, 2")
    require(
        trainer.threads is None or 1 <= trainer.threads <= MAX_THREADS,
        "trainer.threads",
        trainer.threads,
        f"an int from 1 to {MAX_THREADS}, or null for this job's share of the cores",
    )
    require(trainer.onednn in ONEDNN, "trainer.onednn", trainer.onednn, f"one of {', '.join(ONEDNN)}")
    require(
        trainer.precision in PRECISIONS,
        "trainer.precision",
        trainer.precision,
        f"one of {', '.join(PRECISIONS)}",
    )
    require(
        not (trainer.jit_compile and trainer.deterministic),
        "trainer.jit_compile",
        trainer.jit_compile,
        "true only with trainer.deterministic=false (under op determinism Keras turns XLA off)",
    )
    require(
        trainer.steps_per_execution >= 1,
        "trainer.steps_per_execution",
        trainer.steps_per_execution,
        "a positive int",
    )
    require(
        0.0 <= trainer.augment.shift < 0.5,
        "trainer.augment.shift",
        trainer.augment.shift,
        "a fraction of the image in [0, 0.5); 0 for none",
    )
    require(
        0.0 <= trainer.augment.rotation <= 180.0,
        "trainer.augment.rotation",
        trainer.augment.rotation,
        "degrees in [0, 180]; 0 for none",
    )
    require(
        0 <= trainer.tta_shift <= max_tta_shift(cfg.dataset.image_size),
        "trainer.tta_shift",
        trainer.tta_shift,
        f"pixels from 0 (off) to {max_tta_shift(cfg.dataset.image_size)}, less than half the image",
    )
    if "label_smoothing" in cfg.loss:
        require(
            0.0 <= cfg.loss.label_smoothing < 1.0,
            "loss.label_smoothing",
            cfg.loss.label_smoothing,
            "a value in [0, 1)",
        )
    for key, low, high in (
        ("warmup_epochs", 0.0, trainer.epochs),
        ("start_ratio", 0.0, 1.0),
        ("final_ratio", 0.0, 1.0),
    ):
        if key in cfg.schedule:
            require(
                low <= cfg.schedule[key] <= high,
                f"schedule.{key}",
                cfg.schedule[key],
                f"a value in [{low}, {high}]",
            )
    require(cfg.objective in METRICS, "objective", cfg.objective, f"one of {', '.join(METRICS)}")
    require(
        not cfg.objective.startswith("val_") or trainer.validation_split > 0,
        "objective",
        cfg.objective,
        "test_accuracy or test_loss unless trainer.validation_split > 0",
    )
    _validate_optimizer(cfg.optimizer)


def _validate_optimizer(optimizer: DictConfig) -> None:
    require(
        is_number(optimizer.learning_rate) and optimizer.learning_rate > 0,
        "optimizer.learning_rate",
        optimizer.learning_rate,
        "a positive, finite float",
    )
    for key in ("rho", "momentum", "beta_1", "beta_2"):
        if key in optimizer:
            require(0.0 <= optimizer[key] < 1.0, f"optimizer.{key}", optimizer[key], "a value in [0, 1)")
    if "epsilon" in optimizer:
        require(
            is_number(optimizer.epsilon) and optimizer.epsilon > 0,
            "optimizer.epsilon",
            optimizer.epsilon,
            "a positive, finite float",
        )


def check_split_sizes(cfg: DictConfig, train_images: int) -> None:
    """Once the number of training images is known: the validation split must leave at least
    one batch to train on, and hold at least one image itself."""
    split, batch = cfg.trainer.validation_split, cfg.trainer.batch_size
    kept = int(train_images * (1 - split))
    if split == 0:
        require(
            batch <= train_images, "trainer.batch_size", batch, f"at most the {train_images} training images"
        )
    require(
        kept >= batch,
        "trainer.validation_split",
        split,
        f"a fraction that leaves at least one batch ({batch}) of the {train_images} training images "
        f"to train on; it leaves {kept}",
    )
    require(
        split == 0 or kept < train_images,
        "trainer.validation_split",
        split,
        f"0, or a fraction that holds out at least one of the {train_images} training images",
    )


def search_direction(objective: str) -> str:
    """What a hyperparameter search does with `objective`: a loss is minimized (the Optuna preset's
    `direction` follows it through the `mnist_hydra.direction` resolver)."""
    return "minimize" if objective.endswith("loss") else "maximize"
