"""Experiment trackers, one per `tracker` config: TensorBoard, MLflow, CSV, or none.

A `tracker/*.yaml` file names its tracker class by `_target_`; the training task completes
it with the run folder and the config. Every tracker gives
Keras callbacks for the per-epoch numbers, records the final metrics, and is closed
with the run's status even when the run fails.
"""

import csv
import logging
from pathlib import Path

import keras
from omegaconf import DictConfig, OmegaConf

from mnist_hydra.config.dotted import dotted_keys
from mnist_hydra.files import file_lock, write_csv

log = logging.getLogger(__name__)


class Tracker:
    """`tracker=none`: nothing beyond the run folder's own files."""

    def __init__(self, output_dir: Path, config: DictConfig):
        self.output_dir = output_dir

    def callbacks(self) -> list:
        return []

    def finish(self, metrics: dict, model_path: Path) -> None:
        pass

    def close(self, status: str) -> None:
        pass


class TensorBoardTracker(Tracker):
    """Event files in the run folder: `tensorboard --logdir outputs` shows every run."""

    def __init__(self, output_dir: Path, config: DictConfig, subdir: str):
        super().__init__(output_dir, config)
        self.log_dir = output_dir / subdir

    def callbacks(self) -> list:
        return [keras.callbacks.TensorBoard(log_dir=str(self.log_dir))]


class CSVTracker(Tracker):
    """One row per epoch in a CSV file of the run folder, rewritten whole after every epoch.

    A resumed run drops the rows from the epoch it restarts at, so each epoch is in it once.
    """

    def __init__(self, output_dir: Path, config: DictConfig, filename: str):
        super().__init__(output_dir, config)
        self.path = output_dir / filename

    def callbacks(self) -> list:
        path = self.path

        class EpochRows(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                try:
                    with open(path, newline="") as file:
                        self.rows = list(csv.DictReader(file))
                except FileNotFoundError:
                    self.rows = []

            def on_epoch_end(self, epoch, logs=None):
                self.rows = [row for row in self.rows if int(row["epoch"]) < epoch]
                self.rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
                write_csv(path, list(self.rows[-1]), self.rows)

        return [EpochRows()]


class MLflowTracker(Tracker):
    """Params, per-epoch and final metrics, and the model, in an MLflow store.

    Writes go through a lock file beside a SQLite store, so that the parallel jobs
    of a sweep take turns instead of tripping over SQLite's locking.
    """

    def __init__(self, output_dir: Path, config: DictConfig, tracking_uri: str, experiment_name: str):
        super().__init__(output_dir, config)
        import mlflow

        self.mlflow = mlflow
        self.lock_path = _lock_path(tracking_uri)
        with self.locked():
            mlflow.set_tracking_uri(tracking_uri)
            mlflow.set_experiment(experiment_name)
            self.run = mlflow.start_run(run_name=output_dir.name)
            mlflow.log_params(dotted_keys(OmegaConf.to_container(config, resolve=True)))
            mlflow.set_tag("output_dir", str(output_dir))
        log.info("MLflow run %s in %s", self.run.info.run_id, tracking_uri)

    def locked(self):
        return file_lock(self.lock_path)

    def log_metrics(self, metrics: dict, step=None) -> None:
        with self.locked():
            self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def callbacks(self) -> list:
        tracker = self

        class EpochMetrics(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                tracker.log_metrics(logs or {}, step=epoch + 1)

        return [EpochMetrics()]

    def finish(self, metrics: dict, model_path: Path) -> None:
        self.log_metrics(
            {
                k: v
                for k, v in metrics.items()
                if k.startswith("test_") and k != "test_batch_size" and isinstance(v, (int, float))
            }
        )
        with self.locked():
            self.mlflow.log_artifact(str(model_path))
            self.mlflow.log_artifact(str(self.output_dir / "metrics.json"))

    def close(self, status: str) -> None:
        mlflow_status = {"completed": "FINISHED", "pruned": "FINISHED", "interrupted": "KILLED"}.get(
            status, "FAILED"
        )
        with self.locked():
            self.mlflow.end_run(status=mlflow_status)


def _lock_path(tracking_uri: str):
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix) :] + ".lock") if tracking_uri.startswith(prefix) else None
