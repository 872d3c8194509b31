"""Every check of every command's values, run before anything heavy: one line naming the key,
the value and what is allowed (a ConfigError). The types are the schemas' job (schema.py)."""

import dataclasses
import difflib
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from mnist_hydra.config.checks import is_number, require
from mnist_hydra.config.model_checks import check_model
from mnist_hydra.config.schema import METRICS, objectives
from mnist_hydra.errors import ConfigError
from mnist_hydra.machine import machine_memory

PRECISIONS = ("fp32", "bf16")
ONEDNN = ("auto", "on", "off")
EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
SEED_RANGE = (0, 2**32 - 1)  # what keras.utils.set_random_seed (NumPy's seed) accepts
MAX_IMAGE_SIZE = 1024  # pixels a side; past it one image alone is megabytes per layer
MAX_THREADS = 256  # TensorFlow threads per op; more only adds contention
# Pixels an image may have, read from its header before anything is decoded: a 50-megapixel
# photo is about 200 MB as floats; a tiny file claiming 20000x20000 is a decompression bomb.
MAX_PIXELS = 50_000_000
BUILT_GROUPS = ("dataset", "model", "optimizer", "schedule", "loss", "tracker")  # each file: a _target_
# What the task reads of a group's file beyond its `_target_`, and a line to add for each.
NEEDED_KEYS = {
    "dataset": {"name": "name: my_data", "image_size": "image_size: 28", "channels": "channels: 1"},
    "optimizer": {"learning_rate": "learning_rate: 0.001"},
}


# --- train ----------------------------------------------------------------------------


def validate(cfg: DictConfig) -> None:
    """The training command's values, before TensorFlow loads."""
    for key in sorted(OmegaConf.missing_keys(cfg)):
        raise ConfigError(f"{key} is required (it is ??? in its file): set it, e.g. {key}=...")
    refuse_unknown_keys(cfg)
    _check_needed_keys(cfg)
    _check_dataset(cfg.dataset)
    require(
        SEED_RANGE[0] <= cfg.seed <= SEED_RANGE[1],
        "seed",
        cfg.seed,
        f"an int from {SEED_RANGE[0]} to {SEED_RANGE[1]}",
    )
    input_shape = (cfg.dataset.image_size, cfg.dataset.image_size, cfg.dataset.channels)
    # An image folder's classes are known once it is listed: at least two.
    class_names = cfg.dataset.get("class_names")
    counts = check_model(cfg.model, input_shape, len(class_names) if class_names is not None else 2)
    _check_trainer(cfg.trainer, cfg.dataset.image_size)
    if counts:
        _check_memory(cfg, *counts)
    _check_loss_and_schedule(cfg)
    names = objectives(cfg.objective)
    for name in names:
        require(name in METRICS, "objective", name, f"one of {', '.join(METRICS)}, or a list of them")
        require(
            not name.startswith("val_") or cfg.trainer.validation_split > 0,
            "objective",
            name,
            "test_accuracy or test_loss unless trainer.validation_split > 0",
        )
    require(bool(names), "objective", "[]", "at least one metric")
    _check_optimizer(cfg.optimizer)
    _check_callbacks(cfg)
    require(
        cfg.init_from_head in ("same", "new"),
        "init_from_head",
        cfg.init_from_head,
        "same (every layer from init_from's run) or new (all but the last, for other classes)",
    )
    require(cfg.trainer.freeze >= 0, "trainer.freeze", cfg.trainer.freeze, "a number of layers, 0 or more")


def refuse_unknown_keys(node: DictConfig, path: str = "") -> None:
    """A key that a schema of ours does not have (added with `+`, as Hydra suggests after a
    typo: `+trainer.epoch=3`) would be ignored, or fail deep inside Keras: refused here."""
    schema = OmegaConf.get_type(node)
    known = {field.name for field in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    if getattr(schema, "takes_any_keys", False):  # /schema/<group>/custom: a user's own keys
        known = None
    for key in node.keys():
        name = f"{path}{key}"
        if known is not None and key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {path}{close[0]}?)" if close else ""
            keys = ", ".join(sorted(k for k in known if not k.startswith("_")))
            where = path.rstrip(".") or "the config"
            raise ConfigError(f"{name} is not a key of {where} ({schema.__name__}){hint}; its keys: {keys}")
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            refuse_unknown_keys(child, f"{name}.")


def _check_needed_keys(cfg: DictConfig) -> None:
    """A user's plain file (a `_target_` and its own keys) must still say what the task reads."""
    for group in BUILT_GROUPS:
        node = cfg[group]
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(
                f"{group}: its file has no _target_: add a line `_target_: <the class or function "
                f"that builds it>` (conf/{group}/ holds ours)"
            )
        for key, line in NEEDED_KEYS.get(group, {}).items():
            if key not in node:
                raise ConfigError(f"{group}.{key} is required: add a line `{line}` to the {group}'s file")


def _check_dataset(dataset: DictConfig) -> None:
    for key in ("train_limit", "test_limit"):
        value = dataset.get(key)
        require(
            value is None or value >= 1,
            f"dataset.{key}",
            value,
            "a positive int, or null for the whole split",
        )
    require(
        1 <= dataset.image_size <= MAX_IMAGE_SIZE,
        "dataset.image_size",
        dataset.image_size,
        f"pixels a side, from 1 to {MAX_IMAGE_SIZE}",
    )
    require(dataset.channels in (1, 3), "dataset.channels", dataset.channels, "1 (grayscale) or 3 (RGB)")
    if dataset._target_ == "mnist_hydra.data.idx.IDXDataset":  # IDX files of unsigned bytes: one channel
        require(
            dataset.channels == 1,
            "dataset.channels",
            dataset.channels,
            f"1: {dataset.name}'s images are grayscale",
        )
    if dataset.get("class_names") is not None:
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
    if dataset.get("digits"):  # read as MNIST's digits: 28x28, one channel (data/digits.py)
        require(
            dataset.image_size == 28, "dataset.image_size", dataset.image_size, "28 with dataset.digits=true"
        )
        require(dataset.channels == 1, "dataset.channels", dataset.channels, "1 with dataset.digits=true")


def _check_trainer(trainer: DictConfig, image_size: int) -> None:
    require(trainer.epochs >= 1, "trainer.epochs", trainer.epochs, "a positive int")
    require(trainer.batch_size >= 1, "trainer.batch_size", trainer.batch_size, "a positive int")
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
    for lever, allowed in (("scale", 0.5), ("elastic", 100.0), ("thickness", 1.0), ("low_resolution", 1.0)):
        value = trainer.augment.get(lever, 0.0)
        require(
            is_number(value) and 0.0 <= value <= allowed,
            f"trainer.augment.{lever}",
            value,
            f"a number in [0, {allowed}]; 0 for none",
        )
    check_tta_shift(trainer.tta_shift, image_size, "trainer.tta_shift")


def _check_memory(cfg: DictConfig, params: int, activations: int) -> None:
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


# What Keras logs at the end of each epoch: what a callback may watch.
EPOCH_LOGS = ("loss", "accuracy", "val_loss", "val_accuracy")
CONSTANT_SCHEDULE = "mnist_hydra.training.schedules.constant"


def _check_callbacks(cfg: DictConfig) -> None:
    """Each selected callback names what builds it, watches a metric the run produces, and (a
    plateau's) can change the learning rate: refused here, not epochs into training."""
    for name, node in (cfg.get("callbacks") or {}).items():
        require(
            isinstance(node, DictConfig) and isinstance(node.get("_target_"), str),
            f"callbacks.{name}",
            node,
            "a config with the _target_ that builds the callback (conf/callbacks/ has examples)",
        )
        monitor = node.get("monitor")
        if monitor is not None:
            require(
                monitor in EPOCH_LOGS,
                f"callbacks.{name}.monitor",
                monitor,
                f"one of {', '.join(EPOCH_LOGS)}: what Keras logs after each epoch",
            )
            require(
                not monitor.startswith("val_") or cfg.trainer.validation_split > 0,
                f"callbacks.{name}.monitor",
                monitor,
                "loss or accuracy, unless trainer.validation_split > 0 (then val_loss or val_accuracy)",
            )
        if node._target_.endswith("ReduceLROnPlateau"):
            require(
                cfg.schedule.get("_target_") == CONSTANT_SCHEDULE,
                f"callbacks.{name}",
                name,
                f"only with schedule=constant: schedule._target_={cfg.schedule.get('_target_')} "
                "sets the learning rate at every step, which a plateau could not change",
            )


def _check_loss_and_schedule(cfg: DictConfig) -> None:
    if "label_smoothing" in cfg.loss:
        require(
            0.0 <= cfg.loss.label_smoothing < 1.0,
            "loss.label_smoothing",
            cfg.loss.label_smoothing,
            "a value in [0, 1)",
        )
    for key, low, high in (
        ("warmup_epochs", 0.0, cfg.trainer.epochs),
        ("start_ratio", 0.0, 1.0),
        ("final_ratio", 0.0, 1.0),
    ):
        if key in cfg.schedule:
            value = cfg.schedule[key]
            require(low <= value <= high, f"schedule.{key}", value, f"a value in [{low}, {high}]")


def _check_optimizer(optimizer: DictConfig) -> None:
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


def training_batch_size(cfg: DictConfig, train_images: int) -> int:
    """Once the training images are counted: the batch to train with, `trainer.batch_size` or, when
    fewer images are left to train on (a small image folder), all of them at once. A validation
    split must leave at least one image to train on and hold out at least one itself."""
    split, batch = cfg.trainer.validation_split, cfg.trainer.batch_size
    kept = int(train_images * (1 - split))
    require(
        kept >= 1,
        "trainer.validation_split",
        split,
        f"a fraction that leaves some of the {train_images} training images to train on; it leaves none",
    )
    require(
        split == 0 or kept < train_images,
        "trainer.validation_split",
        split,
        f"0, or a fraction that holds out at least one of the {train_images} training images",
    )
    return min(batch, kept)


def check_tta_shift(shift: int, image_size: int, key: str) -> None:
    """The largest test-time shift is less than half the image: or little of a digit is left.
    For a run's trainer.tta_shift, and for evaluate's tta_shift= once it knows the runs."""
    largest = image_size // 2 - 1
    require(0 <= shift <= largest, key, shift, f"pixels from 0 (off) to {largest}, less than half the image")


# --- the commands that read a trained run -----------------------------------------------


def required_ckpt_path(cfg: DictConfig) -> str:
    """Every command that reads a run: its path, and the cap on the size of a model it may load."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.ckpt_path is None:
        raise ConfigError(
            "ckpt_path is required: a training run's folder or its model.keras, "
            "e.g. ckpt_path=outputs/2026-01-31/12-00-00-000000"
        )
    require(
        cfg.max_parameters >= 1, "max_parameters", cfg.max_parameters, "a number of parameters, at least 1"
    )
    return cfg.ckpt_path


def validate_evaluate(cfg: DictConfig) -> None:
    required_ckpt_path(cfg)
    shift: Optional[int] = cfg.tta_shift
    require(
        shift is None or shift >= 0, "tta_shift", shift, "pixels from 0 (off), or null for each run's own"
    )


def validate_predict(cfg: DictConfig) -> None:
    required_ckpt_path(cfg)
    require(
        len(cfg.images) >= 1, "images", list(cfg.images), "at least one PNG or JPEG file, e.g. images=[a.png]"
    )


def validate_serve(cfg: DictConfig) -> None:
    required_ckpt_path(cfg)
    require(0 <= cfg.port <= 65535, "port", cfg.port, "1 to 65535, or 0 for any free one")
    require(cfg.max_bytes >= 1, "max_bytes", cfg.max_bytes, "at least 1")
    require(
        1 <= cfg.max_pixels <= MAX_PIXELS,
        "max_pixels",
        cfg.max_pixels,
        f"from 1 to {MAX_PIXELS:,} (predict's)",
    )
    require(is_number(cfg.timeout) and cfg.timeout > 0, "timeout", cfg.timeout, "seconds, more than 0")
    require(cfg.decoders >= 1, "decoders", cfg.decoders, "at least 1")
    require(cfg.max_connections >= 1, "max_connections", cfg.max_connections, "at least 1")
    require(
        1 <= cfg.collect_max_per_label <= 100_000,
        "collect_max_per_label",
        cfg.collect_max_per_label,
        "from 1 to 100,000 drawings a label",
    )


def validate_export(cfg: DictConfig) -> None:
    required_ckpt_path(cfg)
    require(cfg.format in EXPORT_FORMATS, "format", cfg.format, f"one of {', '.join(EXPORT_FORMATS)}")
