"""Opening a trained run for any command that reads one: its model, loaded safely, and the
dataset it was trained on (which prepares a person's images the way it prepared its own).

evaluate, predict, serve and export all start here; evaluate, predict and serve open a sweep's
completed runs the same way, one by one, as one ensemble (mnist_hydra/trained_runs.py finds them).

A run folder may have come from anyone, so nothing it says chooses code to run: the model
loads with Keras' safe_mode, its dataset is built only if it is one of ours, and its model's
module is not imported. Nor where to write: an image folder's cache goes to this machine's
default cache folder, not to the run's `cache_dir`. `trust_run_code=true` (the user's word,
for one command) lifts these, for a run of one's own model or dataset (docs/guarantees.md:
Reading a run).
"""

import importlib
import logging
from pathlib import Path
from typing import NamedTuple, Optional

import keras
from omegaconf import DictConfig, OmegaConf

from mnist_hydra.building import build
from mnist_hydra.data import Dataset
from mnist_hydra.errors import CheckpointError, first_line
from mnist_hydra.trained_runs import RunFiles, locate_run, locate_runs

log = logging.getLogger(__name__)


def _not_a_retrace_warning(record: logging.LogRecord) -> bool:
    """An ensemble's members each trace a predict function of their own, which TensorFlow counts as
    one function traced again and again: its "triggered tf.function retracing" warning, for nothing."""
    return "triggered tf.function retracing" not in record.getMessage()


class TrainedRun(NamedTuple):
    """A run's files (mnist_hydra/trained_runs.py: RunFiles), its model, and its dataset."""

    model_path: Path
    folder: Path
    config: DictConfig
    class_names: list[str]
    image_shape: tuple
    test_set_sha256: Optional[str]
    test_batch_size: int
    model: keras.Model
    dataset: Dataset


# The datasets a run folder may name without trust_run_code: ours, whose arguments are data.
OUR_DATASETS = ("mnist_hydra.data.idx.IDXDataset", "mnist_hydra.data.image_folder.ImageFolderDataset")
OUR_MODELS = ("mnist_hydra.models.cnn.build_cnn",)  # of Keras' own layers: nothing to import


def open_runs(ckpt_path, trust_run_code: bool = False) -> tuple[list[TrainedRun], list[str]]:
    """The run of `ckpt_path`, or a sweep's completed runs; and the jobs skipped (with why)."""
    located, skipped = locate_runs(ckpt_path)
    if len(located) > 1:
        logging.getLogger("tensorflow").addFilter(_not_a_retrace_warning)  # once: the same function
    return [open_located(files, trust_run_code) for files in located], skipped


def open_ensemble(ckpt_path, trust_run_code: bool = False) -> list[TrainedRun]:
    """The run of `ckpt_path`, or a sweep's completed runs to answer together (predict, serve):
    they must read an image the same way and name the same classes. Skipped jobs are logged."""
    members, skipped = open_runs(ckpt_path, trust_run_code)
    for name in skipped:
        log.warning("Skipped %s", name)

    def preparation(run: TrainedRun) -> tuple:
        return run.class_names, tuple(run.image_shape), run.config.dataset._target_

    for run in members[1:]:
        if preparation(run) != preparation(members[0]):
            raise CheckpointError(
                f"an ensemble needs one dataset: {run.folder.name} was trained on other images or "
                f"classes than {members[0].folder.name}"
            )
    return members


def open_run(ckpt_path, trust_run_code: bool = False) -> TrainedRun:
    """The run of `ckpt_path`: a run folder, or a model file inside one."""
    return open_located(locate_run(ckpt_path), trust_run_code)


def open_located(files: RunFiles, trust_run_code: bool = False) -> TrainedRun:
    dataset = files.config.dataset
    if not trust_run_code:
        _refuse_foreign_targets(files)
        if dataset.get("cache_dir") is not None:  # where to write is this machine's choice, not the run's
            dataset = OmegaConf.merge(dataset, {"cache_dir": None})
    return TrainedRun(*files, load_model(files, trust_run_code), build("dataset", dataset))


def _refuse_foreign_targets(files: RunFiles) -> None:
    """Every `_target_` anywhere in the run's dataset config (instantiate follows nested ones)
    must be one of our datasets: whoever wrote the folder would otherwise choose the code."""
    for key, value in _targets(OmegaConf.to_container(files.config.dataset, resolve=False), "dataset"):
        if key != "dataset._target_" or value not in OUR_DATASETS:
            raise CheckpointError(
                f"{key}={value} in {files.folder / '.hydra' / 'config.yaml'} is not one of "
                f"mnist-hydra's datasets, and a run folder may not choose code to run: pass "
                f"trust_run_code=true if you trust whoever made the run (your own dataset class)"
            )


def _targets(tree, path: str):
    """(dotted key, value) of every `_target_` in a config tree, in dicts and lists alike."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        if key == "_target_":
            yield f"{path}._target_", value
        yield from _targets(value, f"{path}.{key}")


def load_model(files: RunFiles, trust_run_code: bool = False) -> keras.Model:
    """Load with Keras' safe_mode on (a file that would run code when loaded is refused, not
    run), and check that it takes the run's images and gives one output per class. With
    `trust_run_code`, the module of the run's model builder is imported first (a custom layer
    registers itself with Keras there)."""
    target = files.config.get("model", {}).get("_target_")
    if trust_run_code:
        _import_model_module(target)
    try:
        model = keras.models.load_model(files.model_path, safe_mode=True)
    except Exception as error:  # Keras raises several kinds; each means the same to a user
        hint = (
            f" (its model, model._target_={target}, may need its own module, which is imported "
            f"only with trust_run_code=true)"
            if target not in OUR_MODELS and not trust_run_code
            else ""
        )
        raise CheckpointError(
            f"{files.model_path}: refused or unreadable as a Keras model: {first_line(error)}{hint}"
        ) from None
    expected_input, classes = (None, *files.image_shape), len(files.class_names)
    if tuple(model.input_shape) != expected_input or tuple(model.output_shape) != (None, classes):
        raise CheckpointError(
            f"{files.model_path}: takes {tuple(model.input_shape)} and gives {tuple(model.output_shape)}, "
            f"but its run's dataset {files.config.dataset.name} has "
            f"{'x'.join(map(str, files.image_shape))} images and {classes} classes: not the model of this run"
        )
    return model


def _import_model_module(target) -> None:
    """Import the module of the run's model builder: a user's custom layers register themselves
    with Keras there (keras.saving.register_keras_serializable), which loading needs."""
    if not target or "." not in target:
        return
    try:
        importlib.import_module(target.rsplit(".", 1)[0])
    except ImportError as error:
        raise CheckpointError(
            f"model._target_={target}: its module cannot be imported ({first_line(error)}); "
            f"put it on the Python path (PYTHONPATH) to load this run's model"
        ) from None
