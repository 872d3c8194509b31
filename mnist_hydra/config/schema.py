"""The config's schemas: the types of every key of our own files, registered with Hydra.

A group that builds an object (dataset, model, optimizer, schedule, loss, tracker) is typed
`Any` in `TrainConfig`, so that a user's plain YAML file (a `_target_` and its own keys)
composes as it is. Each of our files types itself instead, by naming its schema first in its
defaults list (`/schema/model/cnn@_here_`): a misspelt key or a wrong type in one of ours
fails at the command line. The dataclasses give types only; every default lives in the YAML
files under `conf/`, where users read and change them.
"""

from dataclasses import dataclass, field, make_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

# The numbers a run reports (val_* are the last epoch's): what it returns to a sweeper (its
# `objective`) and what a sweep's summary shows and ranks by.
METRICS = ("test_accuracy", "test_loss", "val_accuracy", "val_loss")


def lower_is_better(metric: str) -> bool:
    """Losses rank lowest first, and a search minimizes them."""
    return metric.endswith("loss")


def objectives(objective) -> list[str]:
    """`objective` as a list: one metric's name, or several (a search with several objectives)."""
    return [objective] if isinstance(objective, str) else [str(name) for name in objective]


def search_direction(objective):
    """The Optuna sweeper's `direction` when it follows `objective`: one per objective."""
    directions = ["minimize" if lower_is_better(name) else "maximize" for name in objectives(objective)]
    return directions[0] if isinstance(objective, str) else directions


# --- the bases of the groups that build an object --------------------------------------


@dataclass
class TargetConfig:
    """A `_target_`: the class or function that builds the group's object. The training task
    completes it with arguments of its own (mnist_hydra/building.py)."""

    _target_: str = MISSING


@dataclass
class DatasetConfig(TargetConfig):
    name: str = MISSING
    image_size: int = MISSING
    channels: int = MISSING
    class_names: Optional[list[str]] = MISSING  # null: the dataset knows them (image folders)
    train_limit: Optional[int] = MISSING
    test_limit: Optional[int] = MISSING


@dataclass
class OptimizerConfig(TargetConfig):
    learning_rate: float = MISSING  # the peak; the schedule shapes it over training


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
    digits: bool = False  # read as MNIST's digits are (a run from before the key: false)
    test_split: float = MISSING
    seed: int = MISSING
    cache_dir: Optional[str] = MISSING


@dataclass
class CNNConfig(TargetConfig):
    """mnist_hydra.models.cnn.build_cnn's arguments (conf/model/tutorial_cnn.yaml explains each)."""

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
class CosineScheduleConfig(TargetConfig):
    warmup_epochs: float = MISSING
    start_ratio: float = MISSING
    final_ratio: float = MISSING


@dataclass
class CrossEntropyConfig(TargetConfig):
    label_smoothing: float = MISSING


@dataclass
class TensorBoardTrackerConfig(TargetConfig):
    subdir: str = MISSING


@dataclass
class CSVTrackerConfig(TargetConfig):
    filename: str = MISSING


@dataclass
class MLflowTrackerConfig(TargetConfig):
    tracking_uri: str = MISSING
    experiment_name: str = MISSING


@dataclass
class AugmentConfig:
    shift: float = MISSING  # fraction of the image's height/width
    rotation: float = MISSING  # degrees
    scale: float = 0.0  # fraction either way
    elastic: float = 0.0  # strength (alpha) of a smooth random warp; Simard et al. 2003: 34
    thickness: float = 0.0  # share of images
    low_resolution: float = 0.0  # share of images


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
    freeze: int = MISSING  # the first n layers are not trained (fine-tuning)


# --- the commands ---------------------------------------------------------------------


@dataclass
class TrainConfig:
    # Any: a group's file brings its own schema (ours) or none (a user's plain YAML file).
    dataset: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    schedule: Any = MISSING
    loss: Any = MISSING
    tracker: Any = MISSING
    callbacks: Optional[dict[str, Any]] = None  # each selected callback's config, by its name
    trainer: TrainerConfig = MISSING
    seed: int = MISSING
    resume: bool = MISSING
    objective: Any = MISSING  # a metric's name, or a list of them (README: Search)
    init_from: Optional[str] = MISSING  # a trained run (folder or model.keras) to start from
    init_from_head: str = MISSING  # same or new


@dataclass
class EvaluateConfig:
    ckpt_path: str = MISSING
    tta_shift: Optional[int] = MISSING  # null: each run's own trainer.tta_shift
    trust_run_code: bool = MISSING  # import and build what the run names (its own code)
    max_parameters: int = MISSING  # a received model (each member of a sweep) may have at most this many


@dataclass
class PredictConfig:
    ckpt_path: str = MISSING
    images: list[str] = MISSING
    trust_run_code: bool = MISSING  # import and build what the run names (its own code)
    max_parameters: int = MISSING  # a received model (each member of a sweep) may have at most this many


@dataclass
class ServeConfig:
    ckpt_path: str = MISSING
    host: str = MISSING
    port: int = MISSING
    max_bytes: int = MISSING
    max_pixels: int = MISSING
    timeout: float = MISSING
    decoders: int = MISSING
    max_connections: int = MISSING
    trust_run_code: bool = MISSING  # import and build what the run names (its own code)
    max_parameters: int = MISSING  # a received model (each member of a sweep) may have at most this many
    collect_dir: Optional[str] = MISSING  # where the page keeps corrected drawings; null: off
    collect_max_per_label: int = MISSING


@dataclass
class ExportConfig:
    ckpt_path: str = MISSING
    format: str = MISSING
    output_dir: Optional[str] = MISSING  # null: the run's export/ folder
    trust_run_code: bool = MISSING  # import and build what the run names (its own code)
    max_parameters: int = MISSING  # a received model (each member of a sweep) may have at most this many


# --- registration ---------------------------------------------------------------------

COMMANDS = {
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "predict": PredictConfig,
    "serve": ServeConfig,
    "export": ExportConfig,
}
# /schema/<group>/<name>, named first in the defaults list of each of our files.
GROUP_SCHEMAS = {
    "dataset": {"idx": IDXDatasetConfig, "image_folder": ImageFolderConfig},
    "model": {"cnn": CNNConfig},
    "optimizer": {"adadelta": AdadeltaConfig, "adam": AdamConfig, "sgd": SGDConfig, "rmsprop": RMSpropConfig},
    "schedule": {"constant": TargetConfig, "cosine": CosineScheduleConfig},
    "loss": {"cross_entropy": CrossEntropyConfig},
    "tracker": {
        "tensorboard": TensorBoardTrackerConfig,
        "csv": CSVTrackerConfig,
        "mlflow": MLflowTrackerConfig,
        "none": TargetConfig,
    },
}
# `/schema/<group>/custom`: what users' files named before plain YAML worked; still accepted,
# with the keys the task reads typed and any others of the user's own (`takes_any_keys`).
CUSTOM_BASES = {"dataset": DatasetConfig, "optimizer": OptimizerConfig}


def _open(base) -> DictConfig:
    custom = make_dataclass(f"Custom{base.__name__}", [], bases=(base,), namespace={"takes_any_keys": True})
    node = OmegaConf.structured(custom)
    OmegaConf.set_struct(node, False)  # room for the user's own keys
    return node


def register_schemas() -> None:
    """Put the schemas where the YAML files' defaults lists look for them (once per process)."""
    store = ConfigStore.instance()
    for command, schema in COMMANDS.items():
        store.store(name=f"{command}_schema", node=schema)
    for group, schemas in GROUP_SCHEMAS.items():
        store.store(group=f"schema/{group}", name="custom", node=_open(CUSTOM_BASES.get(group, TargetConfig)))
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)
