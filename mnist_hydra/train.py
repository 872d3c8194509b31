"""Train the model the configs describe, evaluate it on the test set, save both.

    python -m mnist_hydra.train [overrides]        (installed as: mnist-hydra-train)

Outputs go to Hydra's run folder: model.keras, metrics.json, learning_curves.png,
confusion_matrix.png, the tracker's files, the log and .hydra/.
"""

import logging
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hydra_plugins.mnist_hydra_launchers import register as register_launchers
from mnist_hydra.config import check_split_sizes, register_schemas, validate
from mnist_hydra.run_folders import claim, register_resolvers, release

log = logging.getLogger(__name__)
register_schemas()
register_resolvers()
register_launchers()


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
        log.info("trainer.steps_per_execution=%d does not divide the %d steps of an epoch; using %d",
                 wanted, steps_per_epoch, fitting)
    return fitting


def compiled_model(cfg: DictConfig, input_shape: tuple, num_classes: int, steps_per_epoch: int):
    """The model the configs describe, compiled with their optimizer, schedule and trainer levers."""
    import keras

    from mnist_hydra.model import build_model

    model = build_model(cfg.model, input_shape, num_classes)
    learning_rate = hydra.utils.instantiate(cfg.schedule)(
        cfg.optimizer.learning_rate, steps_per_epoch, cfg.trainer.epochs)
    model.compile(
        optimizer=hydra.utils.instantiate(cfg.optimizer, _partial_=True)(learning_rate=learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.trainer.label_smoothing),
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
    import keras

    from mnist_hydra.data import load_dataset, to_model_inputs
    from mnist_hydra.evaluate import evaluate_on_test
    from mnist_hydra.pipeline import evaluation_batches, training_batches
    from mnist_hydra.plots import plot_learning_curves
    from mnist_hydra.cpu import cpu_share, use_precision, use_threads
    from mnist_hydra.backup import EpochBackup
    from mnist_hydra.runtime import (EpochRecorder, RunRecord, kill_point_callbacks, library_versions,
                                     save_model, seed_everything)

    use_threads(cfg.trainer.threads or cpu_share(launcher))
    keras.backend.clear_session()  # a launcher may run several jobs in one process
    use_precision(cfg.trainer.precision)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    class_names = list(cfg.dataset.class_names)
    train_split, test_split = load_dataset(cfg.dataset)
    check_split_sizes(cfg, len(train_split.labels))
    x_train, y_train = to_model_inputs(train_split, len(class_names))
    # Like Keras' validation_split: the last images of the training set, before shuffling.
    kept = int(len(x_train) * (1 - cfg.trainer.validation_split))
    validation = (evaluation_batches(x_train[kept:], y_train[kept:], cfg.trainer.batch_size)
                  if kept < len(x_train) else None)
    batches, steps_per_epoch = training_batches(x_train[:kept], y_train[:kept], cfg.trainer.batch_size,
                                                cfg.seed, cfg.trainer.augment)
    log.info("Data: %s, %d training (%d held out for validation) and %d test images",
             cfg.dataset.name, kept, len(x_train) - kept, len(test_split.labels))

    model = compiled_model(cfg, x_train.shape[1:], len(class_names), steps_per_epoch)
    model.summary(print_fn=log.info)

    record = RunRecord(output_dir / "metrics.json", params=model.count_params(), seed=cfg.seed,
                       train_images=kept, test_images=len(test_split.labels),
                       versions=library_versions())
    start_tracker = hydra.utils.instantiate(cfg.logger)  # a partial: the run folder and config follow
    epochs = EpochRecorder(output_dir / "epochs.json")
    # Weights, optimizer state and epoch count after every epoch; an earlier backup
    # in this folder (an interrupted run) is restored first. Removed once the run is completed.
    backup = EpochBackup(output_dir / "backup")
    with record.watching(lambda: start_tracker(output_dir=output_dir, config=cfg)) as tracker:
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
        test = evaluate_on_test(model, test_split, class_names, cfg.trainer.batch_size,
                                output_dir, plot_mistakes=False)
        plot_learning_curves(epochs.history, output_dir / "learning_curves.png")
        save_model(model, output_dir / "model.keras")
        last_validation = {name: values[-1] for name, values in epochs.history.items()
                           if name.startswith("val_")}
        metrics = record.update(status="completed", **test, **last_validation,
                                history=epochs.history, epoch_seconds=epochs.seconds)
        tracker.finish(metrics, output_dir / "model.keras")
        shutil.rmtree(output_dir / "backup", ignore_errors=True)

    log.info("Test loss %.4f, test accuracy %.2f%%", metrics["test_loss"], 100 * metrics["test_accuracy"])
    log.info("Outputs in %s", output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Hydra's entry point; returns `objective` (test accuracy by default) for sweepers to optimize."""
    hydra_cfg = HydraConfig.get()
    try:
        return train(cfg, Path(hydra_cfg.runtime.output_dir), hydra_cfg.launcher)[cfg.objective]
    except KeyboardInterrupt:
        raise SystemExit(130) from None  # already logged and recorded; no traceback for a Ctrl-C


if __name__ == "__main__":
    main()
