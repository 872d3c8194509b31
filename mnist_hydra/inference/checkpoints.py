"""Finding a trained run, and loading its model safely, with what the run knew of its data."""

import importlib
import json
from pathlib import Path
from typing import NamedTuple

from omegaconf import DictConfig, OmegaConf

from mnist_hydra.errors import CheckpointError, first_line
from mnist_hydra.training.run_folders import record_status, run_status


class TrainedRun(NamedTuple):
    model_path: Path
    folder: Path
    config: DictConfig  # the composed config the run saved (.hydra/config.yaml)
    class_names: list[str]  # as the run's dataset named them (an image folder's, from its folders)
    image_shape: tuple  # (height, width, channels) the model takes


def open_run(ckpt_path) -> TrainedRun:
    """The run of `ckpt_path`: a run folder, or a model file inside one."""
    if ckpt_path is None or ckpt_path == "???":
        raise CheckpointError(
            "ckpt_path is required: a training run's folder or its model.keras, "
            "e.g. ckpt_path=outputs/2026-01-31/12-00-00-000000"
        )
    path = Path(ckpt_path).expanduser()
    model_path = path / "model.keras" if path.is_dir() else path
    if not model_path.is_file():
        raise CheckpointError(
            f"ckpt_path={ckpt_path}: no such model file (expected a run folder "
            f"holding model.keras, or a .keras file)"
        )
    folder = model_path.parent
    config_path = folder / ".hydra" / "config.yaml"
    if not config_path.is_file():
        raise CheckpointError(f"{config_path} is missing: cannot tell which dataset the model was trained on")
    config = OmegaConf.load(config_path)
    try:
        record = json.loads((folder / "metrics.json").read_text())
        class_names, image_shape = record["class_names"], tuple(record["image_shape"])
    except (OSError, ValueError, KeyError):  # a folder put together by hand: the config's word
        dataset = config.dataset
        class_names = list(dataset.class_names or [])
        image_shape = (dataset.image_size, dataset.image_size, dataset.get("channels", 1))
    return TrainedRun(model_path, folder, config, class_names, image_shape)


def ckpt_path_of(cfg: DictConfig):
    return None if OmegaConf.is_missing(cfg, "ckpt_path") else cfg.ckpt_path


def load_model(run: TrainedRun):
    """Load with Keras' safe_mode on (a file that would run code when loaded is refused, not
    run), and check that it takes the run's images and gives one output per class."""
    import keras

    _import_model_module(run)
    try:
        model = keras.models.load_model(run.model_path, safe_mode=True)
    except Exception as error:  # Keras raises several kinds; each means the same to a user
        raise CheckpointError(
            f"{run.model_path}: refused or unreadable as a Keras model: {first_line(error)}"
        ) from None
    expected_input, classes = (None, *run.image_shape), len(run.class_names)
    if tuple(model.input_shape) != expected_input or tuple(model.output_shape) != (None, classes):
        raise CheckpointError(
            f"{run.model_path}: takes {tuple(model.input_shape)} and gives {tuple(model.output_shape)}, "
            f"but its run's dataset {run.config.dataset.name} has {'x'.join(map(str, run.image_shape))} "
            f"images and {classes} classes: not the model of this run"
        )
    return model


def _import_model_module(run: TrainedRun) -> None:
    """Import the module of the run's model builder: a user's custom layers register themselves
    with Keras there (keras.saving.register_keras_serializable), which loading needs."""
    target = run.config.get("model", {}).get("_target_")
    if not target or "." not in target:
        return
    try:
        importlib.import_module(target.rsplit(".", 1)[0])
    except ImportError as error:
        raise CheckpointError(
            f"model._target_={target}: its module cannot be imported ({first_line(error)}); "
            f"put it on the Python path (PYTHONPATH) to load this run's model"
        ) from None


def _jobs(folder: Path) -> list[Path]:
    return sorted(
        (path.parent for path in folder.glob("*/.hydra")),
        key=lambda job: (not job.name.isdigit(), int(job.name) if job.name.isdigit() else job.name),
    )


def is_sweep(ckpt_path) -> bool:
    """A sweep's folder: job folders (each with Hydra's .hydra/), no model of its own."""
    folder = Path(str(ckpt_path)).expanduser()
    return folder.is_dir() and not (folder / "model.keras").is_file() and bool(_jobs(folder))


def sweep_runs(sweep_dir) -> "tuple[list[TrainedRun], list[str]]":
    """A sweep folder's completed runs, and the jobs skipped (with why)."""
    folder = Path(sweep_dir).expanduser()
    jobs = _jobs(folder)
    members, skipped = [], []
    for job in jobs:
        status = run_status(job) or record_status(job / "job.json")  # job.json: a job refused before training
        if status == "completed" and (job / "model.keras").is_file():
            members.append(open_run(job))
        else:
            skipped.append(f"{job.name} ({status or 'never started training'})")
    if not members:
        raise CheckpointError(f"{folder}: none of its {len(jobs)} jobs completed ({', '.join(skipped)})")
    return members, skipped


def same_test_set(members: "list[TrainedRun]") -> None:
    """Refuse an ensemble whose members were trained on different datasets or test images."""

    def test_set(run: TrainedRun) -> str:
        dataset = OmegaConf.to_container(run.config.dataset, resolve=False)
        dataset.pop("train_limit", None)  # how much of the training set each used does not matter
        return json.dumps([dataset, run.class_names, list(run.image_shape)], sort_keys=True)

    first = test_set(members[0])
    others = [run.folder.name for run in members[1:] if test_set(run) != first]
    if others:
        raise CheckpointError(
            f"an ensemble needs one dataset and one test set: {', '.join(others)} "
            f"differ from {members[0].folder.name} (dataset, test_limit or classes)"
        )
