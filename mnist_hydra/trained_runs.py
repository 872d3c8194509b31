"""Finding a trained run's files, and a sweep's completed runs, without loading anything heavy.

A command that reads a run (evaluate, predict, serve, export) is given `ckpt_path`: a run
folder, a model file inside one, or (evaluate) a sweep's folder. What the run knew of its
data comes with it: the composed config it saved, and the classes and image shape that its
metrics.json records (an image folder's classes are known only once it was listed). Both are
read as data, never resolved or built (mnist_hydra/received_run.py).
"""

from pathlib import Path
from typing import NamedTuple, Optional

from mnist_hydra.errors import CheckpointError
from mnist_hydra.received_run import SavedConfig, read_metrics, read_saved_config
from mnist_hydra.run_folders import crashed, job_folders, record_status, run_status


class RunFiles(NamedTuple):
    model_path: Path
    folder: Path
    config: SavedConfig  # what the run's saved config says of its data, read as data (received_run.py)
    class_names: list[str]  # as the run's dataset named them (an image folder's, from its folders)
    image_shape: tuple  # (height, width, channels) the model takes
    test_set_sha256: Optional[str]  # the fingerprint of the test set it was scored on (data.Split.sha256)
    test_batch_size: int  # the batch size it was scored with (its training batch size before it was recorded)


def locate_run(ckpt_path, trust_run_code: bool = False) -> RunFiles:
    """The run of `ckpt_path`: a run folder, or a model file inside one; its records read as data."""
    path = Path(str(ckpt_path)).expanduser()
    model_path = path / "model.keras" if path.is_dir() else path
    if not model_path.is_file():
        raise CheckpointError(
            f"ckpt_path={ckpt_path}: no such model file (expected a run folder "
            f"holding model.keras, or a .keras file)"
        )
    folder = model_path.parent
    config = read_saved_config(folder, trust_run_code)
    record = read_metrics(folder)
    if record is None:  # a folder put together by hand: the config's word
        dataset, record = config.dataset, {}
        class_names = [str(name) for name in dataset.get("class_names") or []]
        image_shape = (dataset.image_size, dataset.image_size, dataset.get("channels", 1))
    else:
        class_names, image_shape = record["class_names"], tuple(record["image_shape"])
    test_batch_size = record.get("test_batch_size") or config.batch_size
    return RunFiles(
        model_path, folder, config, class_names, image_shape, record.get("test_set_sha256"), test_batch_size
    )


def is_sweep(ckpt_path) -> bool:
    """A sweep's folder: job folders (each with Hydra's .hydra/), no model of its own."""
    folder = Path(str(ckpt_path)).expanduser()
    return folder.is_dir() and not (folder / "model.keras").is_file() and bool(job_folders(folder))


def locate_runs(ckpt_path, trust_run_code: bool = False) -> tuple[list[RunFiles], list[str]]:
    """One run, or a sweep's completed runs in job order; and the jobs skipped (with why)."""
    if not is_sweep(ckpt_path):
        return [locate_run(ckpt_path, trust_run_code)], []
    folder = Path(str(ckpt_path)).expanduser()
    members, skipped = [], []
    jobs = job_folders(folder)
    for job in jobs:
        # As the sweep's summary tells it: `running` with no live process is `crashed`; job.json
        # holds the status of a job refused before training.
        status = "crashed" if crashed(job) else run_status(job) or record_status(job / "job.json")
        if status == "completed" and (job / "model.keras").is_file():
            members.append(locate_run(job, trust_run_code))
        else:
            skipped.append(f"{job.relative_to(folder)} ({status or 'never started training'})")
    if not members:
        raise CheckpointError(f"{folder}: none of its {len(jobs)} jobs completed ({', '.join(skipped)})")
    return members, skipped
