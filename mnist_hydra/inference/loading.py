"""Opening a trained run for any command that reads one: its model, loaded safely, and the
dataset it was trained on (which prepares a person's images the way it prepared its own).

evaluate, predict, serve and export all start here; evaluate opens a sweep's completed runs
the same way, one by one (mnist_hydra/trained_runs.py finds them).
"""

import importlib
from pathlib import Path
from typing import NamedTuple

import keras
from omegaconf import DictConfig

from mnist_hydra.building import build
from mnist_hydra.data import Dataset
from mnist_hydra.errors import CheckpointError, first_line
from mnist_hydra.trained_runs import RunFiles, locate_run, locate_runs


class TrainedRun(NamedTuple):
    """A run's files (mnist_hydra/trained_runs.py: RunFiles), its model, and its dataset."""

    model_path: Path
    folder: Path
    config: DictConfig
    class_names: list[str]
    image_shape: tuple
    model: keras.Model
    dataset: Dataset


def open_runs(ckpt_path) -> tuple[list[TrainedRun], list[str]]:
    """The run of `ckpt_path`, or a sweep's completed runs; and the jobs skipped (with why)."""
    located, skipped = locate_runs(ckpt_path)
    return [open_located(files) for files in located], skipped


def open_run(ckpt_path) -> TrainedRun:
    """The run of `ckpt_path`: a run folder, or a model file inside one."""
    return open_located(locate_run(ckpt_path))


def open_located(files: RunFiles) -> TrainedRun:
    return TrainedRun(*files, load_model(files), build("dataset", files.config.dataset))


def load_model(files: RunFiles) -> keras.Model:
    """Load with Keras' safe_mode on (a file that would run code when loaded is refused, not
    run), and check that it takes the run's images and gives one output per class."""
    _import_model_module(files)
    try:
        model = keras.models.load_model(files.model_path, safe_mode=True)
    except Exception as error:  # Keras raises several kinds; each means the same to a user
        raise CheckpointError(
            f"{files.model_path}: refused or unreadable as a Keras model: {first_line(error)}"
        ) from None
    expected_input, classes = (None, *files.image_shape), len(files.class_names)
    if tuple(model.input_shape) != expected_input or tuple(model.output_shape) != (None, classes):
        raise CheckpointError(
            f"{files.model_path}: takes {tuple(model.input_shape)} and gives {tuple(model.output_shape)}, "
            f"but its run's dataset {files.config.dataset.name} has "
            f"{'x'.join(map(str, files.image_shape))} images and {classes} classes: not the model of this run"
        )
    return model


def _import_model_module(files: RunFiles) -> None:
    """Import the module of the run's model builder: a user's custom layers register themselves
    with Keras there (keras.saving.register_keras_serializable), which loading needs."""
    target = files.config.get("model", {}).get("_target_")
    if not target or "." not in target:
        return
    try:
        importlib.import_module(target.rsplit(".", 1)[0])
    except ImportError as error:
        raise CheckpointError(
            f"model._target_={target}: its module cannot be imported ({first_line(error)}); "
            f"put it on the Python path (PYTHONPATH) to load this run's model"
        ) from None
