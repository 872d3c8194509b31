"""Evaluating a model on its dataset's test set: loss, accuracy, a per-class report, plots."""

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from mnist_hydra.building import build
from mnist_hydra.config import max_tta_shift
from mnist_hydra.errors import ConfigError
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


def moved(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(n, h, w, c) images moved by dy rows and dx columns; what comes in is black (0)."""
    if not dy and not dx:
        return images  # the view as it is: no copy of the whole test set
    height, width = images.shape[1:3]
    out = np.zeros_like(images)
    out[:, max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = images[
        :, max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
    ]
    return out


def predicted_probabilities(model, images: np.ndarray, batch_size: int, tta_shift: int = 0) -> np.ndarray:
    """The model's softmax outputs. With `tta_shift` (test-time augmentation), the mean of its
    outputs for each image as it is and moved that many pixels up, down, left and right."""
    s = tta_shift
    views = [(0, 0)] + ([(s, 0), (-s, 0), (0, s), (0, -s)] if s else [])
    return np.mean(
        [model.predict(moved(images, dy, dx), batch_size=batch_size, verbose=0) for dy, dx in views], axis=0
    )


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    return float(-np.mean(np.log(picked)))


def evaluate_on_test(
    model,
    test_split,
    class_names: list,
    batch_size: int,
    output_dir: Path,
    plot_mistakes: bool,
    tta_shift: int = 0,
) -> dict:
    """Test loss and accuracy (as Keras computes them), the report, and the plots.

    With `tta_shift`, accuracy and report are those of the averaged views
    (predicted_probabilities), the loss the cross-entropy of the averaged probabilities, and
    Keras' figures for the image as it is are kept as `..._without_tta`."""
    from mnist_hydra.data import to_model_inputs
    from mnist_hydra.reporting.plots import plot_confusion_matrix, plot_misclassified

    images, one_hot = to_model_inputs(test_split, len(class_names))
    test_loss, test_accuracy = model.evaluate(images, one_hot, batch_size=batch_size, verbose=0)
    probabilities = predicted_probabilities(model, images, batch_size, tta_shift)
    without_tta = {}
    if tta_shift:
        without_tta = {
            "test_loss_without_tta": float(test_loss),
            "test_accuracy_without_tta": float(test_accuracy),
        }
        test_loss = cross_entropy(probabilities, test_split.labels)
        test_accuracy = float(np.mean(probabilities.argmax(axis=1) == test_split.labels))
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
    return {"test_loss": float(test_loss), "test_accuracy": float(test_accuracy), **without_tta, **report}


def tta_of(run, tta_shift: Optional[int]) -> int:
    """The test-time augmentation to evaluate `run` with: `tta_shift`, or else the run's own."""
    if tta_shift is None:
        return run.config.trainer.get("tta_shift", 0)  # runs from before it existed: 0
    if not 0 <= tta_shift <= max_tta_shift(run.image_shape[0]):
        raise ConfigError(
            f"tta_shift={tta_shift}: pixels from 0 (off) to {max_tta_shift(run.image_shape[0])}"
        )
    return tta_shift


def evaluate(ckpt_path, output_dir: Path, tta_shift: Optional[int] = None) -> dict:
    """A trained run's model on the test set of the dataset it was trained on; metrics.json and plots.
    A sweep's folder: its completed runs evaluated as one ensemble (`evaluate_ensemble`)."""
    from mnist_hydra.inference.checkpoints import is_sweep, load_model, open_run

    if ckpt_path is not None and is_sweep(ckpt_path):
        return evaluate_ensemble(ckpt_path, output_dir, tta_shift)
    run = open_run(ckpt_path)
    model = load_model(run)
    dataset = build("dataset", run.config.dataset)
    _, test = dataset.load()
    log.info("Evaluating %s on %d %s test images", run.model_path, len(test.labels), dataset.name)

    # The training run's batch size, so that the sums add up in the same order
    # and the accuracy equals the one the run reported.
    shift = tta_of(run, tta_shift)
    metrics = evaluate_on_test(
        model,
        test,
        run.class_names,
        run.config.trainer.batch_size,
        output_dir,
        plot_mistakes=True,
        tta_shift=shift,
    )
    metrics = {"checkpoint": str(run.model_path), "dataset": dataset.name, "tta_shift": shift, **metrics}
    write_json(output_dir / "metrics.json", metrics)
    log.info("Test loss %.4f, test accuracy %.2f%%", metrics["test_loss"], 100 * metrics["test_accuracy"])
    log.info("Outputs in %s", output_dir)
    return metrics


def evaluate_ensemble(sweep_dir, output_dir: Path, tta_shift: Optional[int] = None) -> dict:
    """The completed runs of a sweep as one model: the mean of their softmax outputs.

    All must have been trained on the same dataset and evaluate on the same test images
    (anything else is refused); failed or unfinished jobs are skipped and named. metrics.json
    holds the ensemble's test_accuracy and test_loss (the cross-entropy of the mean
    probabilities), its report, and each member's run folder and test accuracy.
    """
    from mnist_hydra.inference.checkpoints import load_model, same_test_set, sweep_runs

    members, skipped = sweep_runs(sweep_dir)
    same_test_set(members)
    for name in skipped:
        log.warning("Skipped %s", name)
    dataset = build("dataset", members[0].config.dataset)
    _, test = dataset.load()
    images = test.images.astype(np.float32) / 255.0
    class_names = members[0].class_names
    probabilities, rows = [], []
    for run in members:
        predicted = predicted_probabilities(
            load_model(run), images, run.config.trainer.batch_size, tta_of(run, tta_shift)
        )
        probabilities.append(predicted)
        accuracy = float(np.mean(predicted.argmax(axis=1) == test.labels))
        rows.append({"run": str(run.folder), "test_accuracy": accuracy})
        log.info("Member %s: test accuracy %.4f", run.folder, accuracy)
    mean = np.mean(probabilities, axis=0)
    report = classification_report(test.labels, mean, class_names)
    from mnist_hydra.reporting.plots import plot_confusion_matrix, plot_misclassified

    accuracy = float(np.mean(mean.argmax(axis=1) == test.labels))
    plot_confusion_matrix(
        np.array(report["confusion_matrix"]),
        class_names,
        output_dir / "confusion_matrix.png",
        title=f"Ensemble of {len(members)}: {accuracy:.2%} accurate on {len(images)} images",
    )
    plot_misclassified(images, test.labels, mean, class_names, output_dir / "misclassified.png")
    metrics = {
        "ensemble_of": str(sweep_dir),
        "dataset": dataset.name,
        "test_accuracy": accuracy,
        "test_loss": cross_entropy(mean, test.labels),
        "members": rows,
        "skipped": skipped,
        **report,
    }
    write_json(output_dir / "metrics.json", metrics)
    best = max(row["test_accuracy"] for row in rows)
    log.info(
        "Ensemble of %d runs: test accuracy %.4f (best member %.4f), loss %.4f",
        len(members),
        accuracy,
        best,
        metrics["test_loss"],
    )
    log.info("Outputs in %s", output_dir)
    return metrics
