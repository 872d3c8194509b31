"""What a run needs around the training itself: seeding, timing, and records on disk."""

import json
import os
import platform
import time
from pathlib import Path

import keras
import tensorflow as tf


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; optionally make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        # Without it, multi-threaded reductions may add in a different order from
        # run to run, and the same seed can end a few test images apart.
        tf.config.experimental.enable_op_determinism()


def library_versions() -> dict:
    import hydra
    import numpy

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "hydra": hydra.__version__,
        "numpy": numpy.__version__,
    }


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, validation included, in seconds."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def write_json(path: Path, record: dict) -> None:
    """Write through a temporary file, so that a reader never sees half a record."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, path)


def save_model(model: keras.Model, path: Path) -> None:
    """Save through a temporary file, so that an interrupted save leaves no model that looks whole."""
    partial = path.with_name(path.stem + ".partial" + path.suffix)  # Keras insists on the suffix
    model.save(partial)
    os.replace(partial, path)
