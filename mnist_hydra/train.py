"""Train the model the configs describe, evaluate it on the test set, save both.

    python -m mnist_hydra.train [overrides]        (installed as: mnist-hydra-train)

Outputs go to Hydra's run folder: model.keras, metrics.json, the log and .hydra/.
"""

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnist_hydra.config import register_schemas, validate

log = logging.getLogger(__name__)
register_schemas()


def progress_verbosity(verbose):
    """Keras' animated bar floods a log file or pipe; there, `auto` means a line per epoch."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


def train(cfg: DictConfig, output_dir: Path) -> dict:
    """Run one training job and return its metrics (also written to metrics.json)."""
    validate(cfg)  # before TensorFlow loads, so that a bad value fails in about a second
    log.info("Output folder: %s", output_dir)
    # TensorFlow's C++ start-up chatter (no CUDA driver, ...); Python errors still surface.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from mnist_hydra.data import load_dataset, to_model_inputs
    from mnist_hydra.model import build_model
    from mnist_hydra.runtime import EpochTimer, library_versions, save_model, seed_everything, write_json

    seed_everything(cfg.seed, cfg.trainer.deterministic)
    num_classes = len(cfg.dataset.class_names)
    train_split, test_split = load_dataset(cfg.dataset)
    x_train, y_train = to_model_inputs(train_split, num_classes)
    x_test, y_test = to_model_inputs(test_split, num_classes)
    log.info("Data: %s, %d training and %d test images", cfg.dataset.name, len(x_train), len(x_test))

    model = build_model(cfg.model, x_train.shape[1:], num_classes)
    model.compile(
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.summary(print_fn=log.info)

    timer = EpochTimer()
    history = model.fit(
        x_train, y_train,
        batch_size=cfg.trainer.batch_size,
        epochs=cfg.trainer.epochs,
        validation_split=cfg.trainer.validation_split,
        verbose=progress_verbosity(cfg.trainer.verbose),
        callbacks=[timer],
    )
    test_loss, test_accuracy = model.evaluate(
        x_test, y_test, batch_size=cfg.trainer.batch_size, verbose=0
    )
    save_model(model, output_dir / "model.keras")

    metrics = {
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "params": model.count_params(),
        "history": {name: [float(v) for v in values] for name, values in history.history.items()},
        "epoch_seconds": timer.seconds,
        "seed": cfg.seed,
        "train_images": len(x_train),
        "test_images": len(x_test),
        "versions": library_versions(),
    }
    write_json(output_dir / "metrics.json", metrics)
    log.info("Test loss %.4f, test accuracy %.2f%%", test_loss, 100 * test_accuracy)
    log.info("Outputs in %s", output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Hydra's entry point; returns the test accuracy for sweepers to optimize."""
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    return train(cfg, output_dir)["test_accuracy"]


if __name__ == "__main__":
    main()
