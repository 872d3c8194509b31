"""Evaluating a model on its dataset's test set: loss, accuracy, a per-class report, plots."""

import logging
from pathlib import Path

import numpy as np

from mnist_hydra.building import build
from mnist_hydra.files import write_json

log = logging.getLogger(__name__)


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


def evaluate_on_test(
    model, test_split, class_names: list, batch_size: int, output_dir: Path, plot_mistakes: bool
) -> dict:
    """Test loss and accuracy (as Keras computes them), the report, and the plots."""
    from mnist_hydra.data import to_model_inputs
    from mnist_hydra.reporting.plots import plot_confusion_matrix, plot_misclassified

    images, one_hot = to_model_inputs(test_split, len(class_names))
    test_loss, test_accuracy = model.evaluate(images, one_hot, batch_size=batch_size, verbose=0)
    probabilities = model.predict(images, batch_size=batch_size, verbose=0)
    report = classification_report(test_split.labels, probabilities, class_names)
    plot_confusion_matrix(
        np.array(report["confusion_matrix"]),
        class_names,
        output_dir / "confusion_matrix.png",
        title=f"Test set: {test_accuracy:.2%} accurate on {len(images)} images",
    )
    if plot_mistakes:
        plot_misclassified(
            images, test_split.labels, probabilities, class_names, output_dir / "misclassified.png"
        )
    return {"test_loss": float(test_loss), "test_accuracy": float(test_accuracy), **report}


def evaluate(ckpt_path, output_dir: Path) -> dict:
    """A trained run's model on the test set of the dataset it was trained on; metrics.json and plots."""
    from mnist_hydra.inference.checkpoints import load_model, open_run

    run = open_run(ckpt_path)
    model = load_model(run)
    dataset = build("dataset", run.config.dataset)
    _, test = dataset.load()
    log.info("Evaluating %s on %d %s test images", run.model_path, len(test.labels), dataset.name)

    # The training run's batch size, so that the sums add up in the same order
    # and the accuracy equals the one the run reported.
    metrics = evaluate_on_test(
        model, test, run.class_names, run.config.trainer.batch_size, output_dir, plot_mistakes=True
    )
    metrics = {"checkpoint": str(run.model_path), "dataset": dataset.name, **metrics}
    write_json(output_dir / "metrics.json", metrics)
    log.info("Test loss %.4f, test accuracy %.2f%%", metrics["test_loss"], 100 * metrics["test_accuracy"])
    log.info("Outputs in %s", output_dir)
    return metrics
