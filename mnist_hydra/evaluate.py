"""Evaluate a trained model on the test set of the dataset it was trained on.

    python -m mnist_hydra.evaluate ckpt_path=<run folder or model.keras>   (mnist-hydra-evaluate)

Writes metrics.json (loss, accuracy, per-class precision, recall and accuracy),
confusion_matrix.png and misclassified.png into its own output folder.
"""

import logging
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnist_hydra.config import register_schemas

log = logging.getLogger(__name__)
register_schemas()


def classification_report(labels: np.ndarray, probabilities: np.ndarray, class_names: list) -> dict:
    """The confusion matrix, and per class: precision, recall, one-vs-rest accuracy, support."""
    n = len(class_names)
    predicted = probabilities.argmax(axis=1)
    matrix = np.bincount(labels.astype(int) * n + predicted, minlength=n * n).reshape(n, n)
    total = matrix.sum()
    per_class = {}
    for index, name in enumerate(class_names):
        hits = matrix[index, index]
        guessed, actual = matrix[:, index].sum(), matrix[index, :].sum()
        per_class[str(name)] = {
            "precision": float(hits / guessed) if guessed else 0.0,
            "recall": float(hits / actual) if actual else 0.0,
            # right about "is it this class or not", over all test images
            "accuracy": float((total - guessed - actual + 2 * hits) / total),
            "support": int(actual),
        }
    return {"confusion_matrix": matrix.tolist(), "per_class": per_class}


def evaluate_on_test(model, test_split, class_names: list, batch_size: int, output_dir: Path,
                     plot_mistakes: bool) -> dict:
    """Test loss and accuracy (as Keras computes them), the report, and the plots."""
    from mnist_hydra.data import to_model_inputs
    from mnist_hydra.plots import plot_confusion_matrix, plot_misclassified

    images, one_hot = to_model_inputs(test_split, len(class_names))
    test_loss, test_accuracy = model.evaluate(images, one_hot, batch_size=batch_size, verbose=0)
    probabilities = model.predict(images, batch_size=batch_size, verbose=0)
    report = classification_report(test_split.labels, probabilities, class_names)
    plot_confusion_matrix(np.array(report["confusion_matrix"]), class_names,
                          output_dir / "confusion_matrix.png",
                          title=f"Test set: {test_accuracy:.2%} accurate on {len(images)} images")
    if plot_mistakes:
        plot_misclassified(images, test_split.labels, probabilities, class_names,
                           output_dir / "misclassified.png")
    return {"test_loss": float(test_loss), "test_accuracy": float(test_accuracy), **report}


def evaluate(cfg: DictConfig, output_dir: Path) -> dict:
    from mnist_hydra.checkpoints import find_checkpoint, load_model, load_run_config
    from mnist_hydra.data import load_dataset
    from mnist_hydra.files import write_json

    model_path, run_dir = find_checkpoint(cfg)
    run_cfg = load_run_config(run_dir)
    model = load_model(model_path, run_cfg)
    _, test = load_dataset(run_cfg.dataset)
    log.info("Evaluating %s on %d %s test images", model_path, len(test.labels), run_cfg.dataset.name)

    # The training run's batch size, so that the sums add up in the same order
    # and the accuracy equals the one the run reported.
    metrics = evaluate_on_test(model, test, list(run_cfg.dataset.class_names),
                               run_cfg.trainer.batch_size, output_dir, plot_mistakes=True)
    metrics = {"checkpoint": str(model_path), "dataset": run_cfg.dataset.name, **metrics}
    write_json(output_dir / "metrics.json", metrics)
    log.info("Test loss %.4f, test accuracy %.2f%%", metrics["test_loss"], 100 * metrics["test_accuracy"])
    log.info("Outputs in %s", output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    return evaluate(cfg, Path(HydraConfig.get().runtime.output_dir))["test_accuracy"]


if __name__ == "__main__":
    main()
