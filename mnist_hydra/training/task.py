"""The training task: build what the configs describe, train it, evaluate it, save it all.

Every object is built the same way (mnist_hydra/building.py): the dataset, the model, the
learning-rate schedule, the optimizer, the loss and the tracker.
"""

import logging
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig

from mnist_hydra.building import build
from mnist_hydra.config import check_split_sizes, validate
from mnist_hydra.training.run_folders import claim, release

log = logging.getLogger(__name__)


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


def compiled_model(cfg: DictConfig, input_shape: tuple, num_classes: int, steps_per_epoch: int):
    """The model the configs describe, compiled with their optimizer, schedule, loss and levers."""
    from mnist_hydra.models import build_model

    model = build_model(cfg.model, input_shape, num_classes)
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


def train(cfg: DictConfig, output_dir: Path, launcher: DictConfig) -> dict:
    """Run one training job and return its metrics (also written to metrics.json).

    `launcher` (Hydra's launcher config) tells how many jobs share the CPU cores.
    """
    validate(cfg)  # before TensorFlow loads, so that a bad value fails in about a second
    claim(output_dir, cfg)  # one live run per folder; already done for a single run (RunFolderGuard)
    try:
        return _train(cfg, output_dir, launcher)
    finally:
        release(output_dir)


def _train(cfg: DictConfig, output_dir: Path, launcher: DictConfig) -> dict:
    log.info("Output folder: %s", output_dir)
    from mnist_hydra.training.cpu import (
        REPORTED_FLAGS,
        cpu_flags,
        cpu_share,
        onednn_enabled,
        use_onednn,
        use_precision,
        use_threads,
    )

    decided_by = use_onednn(cfg.trainer.onednn)  # before TensorFlow is imported
    import keras

    from mnist_hydra.data import to_model_inputs
    from mnist_hydra.data.pipeline import evaluation_batches, training_batches
    from mnist_hydra.reporting.evaluation import evaluate_on_test
    from mnist_hydra.reporting.plots import plot_learning_curves
    from mnist_hydra.training.backup import EpochBackup
    from mnist_hydra.training.records import (
        EpochRecorder,
        RunRecord,
        kill_point_callbacks,
        library_versions,
        save_model,
        seed_everything,
    )

    onednn = onednn_enabled()
    flags = [flag for flag in REPORTED_FLAGS if flag in cpu_flags()]
    log.info("oneDNN kernels %s (%s); CPU flags: %s", "on" if onednn else "off", decided_by, " ".join(flags))
    use_threads(cfg.trainer.threads or cpu_share(launcher))
    keras.backend.clear_session()  # a launcher may run several jobs in one process
    use_precision(cfg.trainer.precision)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    dataset = build("dataset", cfg.dataset)
    class_names = dataset.class_names
    train_split, test_split = dataset.load()
    check_split_sizes(cfg, len(train_split.labels))
    x_train, y_train = to_model_inputs(train_split, len(class_names))
    # Like Keras' validation_split: the last images of the training set, before shuffling.
    kept = int(len(x_train) * (1 - cfg.trainer.validation_split))
    validation = (
        evaluation_batches(x_train[kept:], y_train[kept:], cfg.trainer.batch_size)
        if kept < len(x_train)
        else None
    )
    batches, steps_per_epoch = training_batches(
        x_train[:kept], y_train[:kept], cfg.trainer.batch_size, cfg.seed, cfg.trainer.augment
    )
    log.info(
        "Data: %s, %d training (%d held out for validation) and %d test images of %s, %d classes",
        dataset.name,
        kept,
        len(x_train) - kept,
        len(test_split.labels),
        "x".join(map(str, dataset.image_shape)),
        len(class_names),
    )

    model = compiled_model(cfg, dataset.image_shape, len(class_names), steps_per_epoch)
    model.summary(print_fn=log.info)

    # The classes and the image shape go with the run: evaluate, predict and the plots read them.
    record = RunRecord(
        output_dir / "metrics.json",
        params=model.count_params(),
        seed=cfg.seed,
        dataset=dataset.name,
        class_names=class_names,
        image_shape=list(dataset.image_shape),
        train_images=kept,
        test_images=len(test_split.labels),
        onednn=onednn,
        cpu_flags=flags,
        versions=library_versions(),
    )
    epochs = EpochRecorder(output_dir / "epochs.json")
    # Weights, optimizer state and epoch count after every epoch; an earlier backup
    # in this folder (an interrupted run) is restored first. Removed once the run is completed.
    backup = EpochBackup(output_dir / "backup")
    with record.watching(lambda: build("tracker", cfg.tracker, output_dir=output_dir, config=cfg)) as tracker:
        model.fit(
            batches,
            steps_per_epoch=steps_per_epoch,
            epochs=cfg.trainer.epochs,
            validation_data=validation,
            shuffle=False,  # the pipeline shuffles; Keras would only warn that it cannot
            verbose=progress_verbosity(cfg.trainer.verbose),
            # The backup last: once it holds an epoch, every record of that epoch is written.
            callbacks=[epochs, *tracker.callbacks(), *kill_point_callbacks(), backup],
        )
        test = evaluate_on_test(
            model,
            test_split,
            class_names,
            cfg.trainer.batch_size,
            output_dir,
            plot_mistakes=False,
            tta_shift=cfg.trainer.tta_shift,
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
            history=epochs.history,
            epoch_seconds=epochs.seconds,
        )
        tracker.finish(metrics, output_dir / "model.keras")
        shutil.rmtree(output_dir / "backup", ignore_errors=True)

    log.info("Test loss %.4f, test accuracy %.2f%%", metrics["test_loss"], 100 * metrics["test_accuracy"])
    log.info("Outputs in %s", output_dir)
    return metrics
