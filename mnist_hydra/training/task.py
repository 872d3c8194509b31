"""The training task, in four steps: the machine, the data, the model, and the fit with its records.

Every object is built the same way (mnist_hydra/building.py): the dataset, the model, the
learning-rate schedule, the optimizer, the loss and the tracker. The values were checked
before TensorFlow loaded (the entry point, mnist_hydra/train.py, runs `validate` first).
"""

import logging
import shutil
import sys
from pathlib import Path
from typing import NamedTuple, Optional

import keras
import tensorflow as tf
from omegaconf import DictConfig

from mnist_hydra.building import build
from mnist_hydra.config.validate import training_batch_size, validate
from mnist_hydra.data import Dataset, Split, one_hot, to_model_inputs
from mnist_hydra.data.pipeline import evaluation_batches, training_batches
from mnist_hydra.errors import JobPruned
from mnist_hydra.machine import cpu_share, reported_flags
from mnist_hydra.models import build_model
from mnist_hydra.reporting.evaluation import score_on_test
from mnist_hydra.reporting.plots import plot_learning_curves
from mnist_hydra.run_folders import claim, release
from mnist_hydra.search.job import TrialAddress
from mnist_hydra.training.backup import EpochBackup, has_backup
from mnist_hydra.training.callbacks import BestCheckpoint, configured_callbacks
from mnist_hydra.training.cpu import onednn_enabled, use_precision, use_threads
from mnist_hydra.training.fine_tuning import freeze, start_from
from mnist_hydra.training.pruning import TrialReporter, trial_reporter
from mnist_hydra.training.records import (
    EpochRecorder,
    RunRecord,
    fault_point_callbacks,
    library_versions,
    save_model,
    seed_everything,
)

log = logging.getLogger(__name__)


class TrainingData(NamedTuple):
    dataset: Dataset
    batches: tf.data.Dataset  # endless; an epoch is `steps_per_epoch` of them
    steps_per_epoch: int
    validation: Optional[tf.data.Dataset]
    test: Split
    train_images: int  # those trained on, the validation split left out


def train(
    cfg: DictConfig, output_dir: Path, launcher: DictConfig, trial: Optional[TrialAddress] = None
) -> dict:
    """Run one training job and return its metrics (also written to metrics.json).

    `launcher` (Hydra's launcher config) tells how many jobs share the CPU cores; `trial`, the
    search's trial the job is, if it is one (it reports each epoch, and may be pruned).
    """
    validate(cfg)  # again, for callers other than the entry point: it costs nothing
    claim(output_dir, cfg)  # one live run per folder; already done for a single run (training/guard.py)
    try:
        log.info("Output folder: %s", output_dir)
        machine = set_up_machine(cfg, launcher, trial.at_once if trial else None)
        data = prepare_data(cfg)
        model = compiled_model(
            cfg,
            data.dataset.image_shape,
            len(data.dataset.class_names),
            data.steps_per_epoch,
            resuming=has_backup(output_dir / "backup"),
        )
        model.summary(print_fn=log.info)
        metrics = fit_and_test(cfg, model, data, output_dir, machine, trial_reporter(trial, cfg.objective))
    finally:
        release(output_dir)
    if metrics["status"] == "pruned":  # not a failure: the search's sweeper tells Optuna so
        raise JobPruned(**metrics["pruned"])
    log.info("Test loss %.4f, test accuracy %.2f%%", metrics["test_loss"], 100 * metrics["test_accuracy"])
    log.info("Outputs in %s", output_dir)
    return metrics


def set_up_machine(cfg: DictConfig, launcher: DictConfig, searching: Optional[int] = None) -> dict:
    """Threads, precision and seeds for this job (a launcher may run several in one process;
    a search, `searching` trials at once); returns what the run records of the machine."""
    onednn, flags = onednn_enabled(), reported_flags()
    log.info("oneDNN kernels %s; CPU flags: %s", "on" if onednn else "off", " ".join(flags))
    use_threads(cfg.trainer.threads or cpu_share(launcher, searching))
    keras.backend.clear_session()
    use_precision(cfg.trainer.precision)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    return {"onednn": onednn, "cpu_flags": flags, "versions": library_versions()}


def prepare_data(cfg: DictConfig) -> TrainingData:
    """The dataset's splits as the model takes them: shuffled (and augmented) training batches,
    the validation split (like Keras': the last training images, before shuffling), the test split."""
    dataset = build("dataset", cfg.dataset)
    train_split, test_split = dataset.load()
    count = len(train_split.labels)
    kept = int(count * (1 - cfg.trainer.validation_split))
    batch_size = training_batch_size(cfg, count)
    if batch_size < cfg.trainer.batch_size:  # a small image folder
        log.info(
            "trainer.batch_size=%d is more than the %d images to train on: one batch of %d an epoch",
            cfg.trainer.batch_size,
            kept,
            batch_size,
        )
    held_out = Split(train_split.images[kept:], train_split.labels[kept:])
    validation = (
        evaluation_batches(*to_model_inputs(held_out, len(dataset.class_names)), batch_size)
        if kept < count
        else None
    )
    # The training images stay uint8 until each batch is drawn: converting all of them to
    # floats first took 1 s of fast's 15 s process (docs/performance.md).
    batches, steps_per_epoch = training_batches(
        train_split.images[:kept],
        one_hot(train_split.labels[:kept], len(dataset.class_names)),
        batch_size,
        cfg.seed,
        cfg.trainer.augment,
    )
    log.info(
        "Data: %s, %d training (%d held out for validation) and %d test images of %s, %d classes",
        dataset.name,
        kept,
        count - kept,
        len(test_split.labels),
        "x".join(map(str, dataset.image_shape)),
        len(dataset.class_names),
    )
    return TrainingData(dataset, batches, steps_per_epoch, validation, test_split, kept)


def compiled_model(
    cfg: DictConfig, input_shape: tuple, num_classes: int, steps_per_epoch: int, resuming: bool = False
) -> keras.Model:
    """The model the configs describe, compiled with their optimizer, schedule, loss and levers.
    A resumed run's weights come from its backup: init_from is not read again (it may be gone)."""
    model = build_model(cfg.model, input_shape, num_classes)
    if cfg.get("init_from") and not resuming:
        start_from(model, cfg.init_from, cfg.init_from_head)
    freeze(model, cfg.trainer.freeze)
    learning_rate = build(
        "schedule",
        cfg.schedule,
        learning_rate=cfg.optimizer.learning_rate,
        steps_per_epoch=steps_per_epoch,
        epochs=cfg.trainer.epochs,
    )
    model.compile(
        optimizer=build("optimizer", cfg.optimizer, learning_rate=learning_rate),
        loss=build("loss", cfg.loss),
        metrics=["accuracy"],
        jit_compile=cfg.trainer.jit_compile,
        steps_per_execution=whole_executions(steps_per_epoch, cfg.trainer.steps_per_execution),
    )
    return model


def fit_and_test(
    cfg: DictConfig,
    model: keras.Model,
    data: TrainingData,
    output_dir: Path,
    machine: dict,
    trial: Optional[TrialReporter] = None,
) -> dict:
    """Train with a record of every epoch and a backup after each, test, save; the run's status
    in metrics.json says how it ended (README: Outputs; docs/guarantees.md). A search's trial
    that its pruner stops is saved untested, recorded `pruned`, and raises JobPruned."""
    # The classes and the image shape go with the run: evaluate, predict and the plots read them.
    record = RunRecord(
        output_dir / "metrics.json",
        params=model.count_params(),
        seed=cfg.seed,
        dataset=data.dataset.name,
        class_names=data.dataset.class_names,
        image_shape=list(data.dataset.image_shape),
        train_images=data.train_images,
        test_images=len(data.test.labels),
        test_set_sha256=data.test.sha256(),  # evaluate checks that it still tests these images
        **({"init_from": str(cfg.init_from)} if cfg.get("init_from") else {}),
        **machine,
    )
    epochs = EpochRecorder(output_dir / "epochs.json")
    configured = configured_callbacks(cfg, output_dir / "backup")  # conf/callbacks, none by default
    # Restores an interrupted run's last epoch (and the callbacks' state) first; removed once the
    # run is completed.
    backup = EpochBackup(output_dir / "backup", keeping=configured)
    with record.watching(lambda: build("tracker", cfg.tracker, output_dir=output_dir, config=cfg)) as tracker:
        model.fit(
            data.batches,
            steps_per_epoch=data.steps_per_epoch,
            epochs=cfg.trainer.epochs,
            validation_data=data.validation,
            shuffle=False,  # the pipeline shuffles; Keras would only warn that it cannot
            verbose=progress_verbosity(cfg.trainer.verbose),
            # The backup last: once it holds an epoch, every record of that epoch is written.
            callbacks=[
                epochs,
                *tracker.callbacks(),
                *fault_point_callbacks(),
                *configured.values(),  # before the backup, which keeps their state (backup.py)
                backup,
                *filter(None, [trial]),
            ],
        )
        if trial is not None and trial.stopped:
            return record_pruned(model, record, epochs, output_dir, trial)
        test = score_on_test(
            model,
            data.test,
            data.dataset.class_names,
            cfg.trainer.batch_size,
            cfg.trainer.tta_shift,
            output_dir,
        )
        plot_learning_curves(epochs.history, output_dir / "learning_curves.png")
        save_model(model, output_dir / "model.keras")
        last_validation = {
            name: values[-1] for name, values in epochs.history.items() if name.startswith("val_")
        }
        metrics = record.update(
            status="completed",
            **test,
            **last_validation,
            **ended_early(epochs, cfg.trainer.epochs, configured),
            history=epochs.history,
            epoch_seconds=epochs.seconds,
        )
        tracker.finish(metrics, output_dir / "model.keras")
        shutil.rmtree(output_dir / "backup", ignore_errors=True)
    return metrics


def ended_early(epochs: EpochRecorder, planned: int, configured: dict) -> dict:
    """What metrics.json says of a run its callbacks ended before its last epoch (stopped_epoch:
    the last epoch it trained), and of the epoch best_checkpoint kept (best_epoch)."""
    ran = len(epochs.history.get("loss", []))
    ended = {}
    if ran < planned:
        ended["stopped_epoch"] = ran
        log.info("Stopped early after epoch %d of %d (callbacks: %s)", ran, planned, ", ".join(configured))
    best = [callback.best_epoch for callback in configured.values() if isinstance(callback, BestCheckpoint)]
    if best and best[0]:
        ended["best_epoch"] = best[0]
        log.info("The model is its best epoch's, epoch %d", best[0])
    return ended


def record_pruned(
    model: keras.Model, record: RunRecord, epochs: EpochRecorder, output_dir: Path, trial: TrialReporter
) -> dict:
    """A pruned trial keeps its model and curves, runs no test, and drops its backup (a requeued
    job must not resume it); its metrics.json says where it stopped."""
    plot_learning_curves(epochs.history, output_dir / "learning_curves.png")
    save_model(model, output_dir / "model.keras")
    epoch, value = trial.stopped
    metrics = record.update(
        status="pruned",
        pruned={"epoch": epoch, "objective": trial.objective, "value": value},
        **{name: values[-1] for name, values in epochs.history.items() if name.startswith("val_")},
        history=epochs.history,
        epoch_seconds=epochs.seconds,
    )
    shutil.rmtree(output_dir / "backup", ignore_errors=True)
    return metrics


def progress_verbosity(verbose):
    """Keras' animated bar floods a log file or pipe; there, `auto` means a line per epoch."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


def whole_executions(steps_per_epoch: int, wanted: int) -> int:
    """The largest steps_per_execution up to `wanted` that divides an epoch: otherwise Keras
    runs the last execution of an epoch into the next epoch's batches."""
    fitting = max(n for n in range(1, min(wanted, steps_per_epoch) + 1) if steps_per_epoch % n == 0)
    if fitting != wanted:
        log.info(
            "trainer.steps_per_execution=%d does not divide the %d steps of an epoch; using %d",
            wanted,
            steps_per_epoch,
            fitting,
        )
    return fitting
