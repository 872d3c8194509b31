"""Scoring models on their dataset's test set: loss, accuracy, a per-class report, plots.

One flow for all: a training run scores its model, `evaluate` scores a run or a sweep's runs,
and a run is an ensemble of one. Each member gives its softmax outputs for every test image,
as it is and (with test-time augmentation, `tta_shift`) moved that many pixels up, down, left
and right; the ensemble's answer is the mean over views and members. `test_loss` is the
cross-entropy of that mean, `test_accuracy` how often its highest class is the label; with
test-time augmentation, the same for the images as they are is kept as `*_without_tta`.
"""

import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np
from omegaconf import OmegaConf

from mnist_hydra.config.validate import check_tta_shift
from mnist_hydra.data import Split, to_model_inputs
from mnist_hydra.data.pipeline import prediction_batches
from mnist_hydra.errors import CheckpointError
from mnist_hydra.files import write_json
from mnist_hydra.inference.loading import DEFAULT_MAX_PARAMETERS, TrainedRun, open_runs
from mnist_hydra.reporting.plots import plot_confusion_matrix, plot_misclassified

log = logging.getLogger(__name__)


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


def views_probabilities(model, images: np.ndarray, batch_size: int, tta_shift: int = 0) -> np.ndarray:
    """(views, images, classes): the model's softmax outputs for the images as they are first,
    then, with `tta_shift`, moved that many pixels up, down, left and right."""
    s = tta_shift
    views = [(0, 0)] + ([(s, 0), (-s, 0), (0, s), (0, -s)] if s else [])
    return np.stack(
        [model.predict(prediction_batches(moved(images, dy, dx), batch_size), verbose=0) for dy, dx in views]
    )


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    return float(-np.mean(np.log(picked)))


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == labels))


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


def test_report(
    members_views: list[np.ndarray], labels: np.ndarray, class_names: list
) -> tuple[dict, np.ndarray]:
    """The scores and the report of the members' mean answer, and that answer."""
    probabilities = np.mean([views.mean(axis=0) for views in members_views], axis=0)
    report = {
        "test_loss": cross_entropy(probabilities, labels),
        "test_accuracy": accuracy(probabilities, labels),
    }
    if any(len(views) > 1 for views in members_views):
        as_they_are = np.mean([views[0] for views in members_views], axis=0)
        report["test_loss_without_tta"] = cross_entropy(as_they_are, labels)
        report["test_accuracy_without_tta"] = accuracy(as_they_are, labels)
    return {**report, **classification_report(labels, probabilities, class_names)}, probabilities


def test_batch_size(training_batch_size: int, image_shape) -> int:
    """How many test images to score at once: a thousand of MNIST's (fewer calls into the model
    cost less: fast's test took a third less time than in its training batches of 128), fewer
    for larger images, and never fewer than training took at once (with its gradients)."""
    return max(training_batch_size, min(1000, 2**20 // int(np.prod(image_shape))))


def score_on_test(
    model, test_split, class_names: list, batch_size: int, tta_shift: int, output_dir: Path
) -> dict:
    """A training run's model on its test set: the scores, the report, the confusion matrix;
    `test_batch_size` says how many images it scored at once (evaluate does the same)."""
    images, _ = to_model_inputs(test_split, len(class_names))
    batch_size = test_batch_size(batch_size, images.shape[1:])
    report, _ = test_report(
        [views_probabilities(model, images, batch_size, tta_shift)], test_split.labels, class_names
    )
    report["test_batch_size"] = batch_size
    title = f"Test set: {report['test_accuracy']:.2%} accurate on {len(images)} images"
    plot_confusion_matrix(
        np.array(report["confusion_matrix"]), class_names, output_dir / "confusion_matrix.png", title
    )
    return report


def tta_of(run: TrainedRun, tta_shift: Optional[int]) -> int:
    """The test-time augmentation to evaluate `run` with: `tta_shift`, or else the run's own."""
    if tta_shift is None:
        return run.config.tta_shift  # runs from before it existed: 0
    check_tta_shift(tta_shift, run.image_shape[0], "tta_shift")
    return tta_shift


def evaluate(
    ckpt_path,
    output_dir: Path,
    tta_shift: Optional[int] = None,
    trust_run_code: bool = False,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
) -> dict:
    """A trained run, or a sweep's completed runs as one ensemble, on the test set of the
    dataset they were trained on: metrics.json, the confusion matrix, the worst mistakes.

    Each run is scored with the batch size it was tested with (test_batch_size), so that its
    accuracy equals the one it reported. An ensemble's members must share one test set (anything else is
    refused); failed or unfinished jobs are skipped and named."""
    members, skipped = open_runs(ckpt_path, trust_run_code, max_parameters)
    for name in skipped:
        log.warning("Skipped %s", name)
    first = members[0]
    test = one_test_set(members)
    images, _ = to_model_inputs(test, len(first.class_names))
    log.info(
        "Evaluating %d run(s) of %s on %d %s test images",
        len(members),
        ckpt_path,
        len(images),
        first.dataset.name,
    )
    members_views, rows = [], []
    for run in members:
        shift = tta_of(run, tta_shift)
        views = views_probabilities(run.model, images, run.test_batch_size, shift)
        members_views.append(views)
        rows.append(
            {
                "run": str(run.folder),
                "tta_shift": shift,
                "test_accuracy": accuracy(views.mean(axis=0), test.labels),
            }
        )
        log.info("%s: test accuracy %.4f", run.folder, rows[-1]["test_accuracy"])
    report, probabilities = test_report(members_views, test.labels, first.class_names)
    shifts = {row["tta_shift"] for row in rows}
    metrics = {
        "evaluated": str(ckpt_path),
        "dataset": first.dataset.name,
        "tta_shift": shifts.pop() if len(shifts) == 1 else None,  # null: the members' differ
        **report,
        "members": rows,
        "skipped": skipped,
    }
    _write_evaluation(metrics, images, test.labels, probabilities, first.class_names, output_dir)
    return metrics


def one_test_set(members: list[TrainedRun]) -> Split:
    """The test split the members share, as each one's dataset gives it now. Refused: a test
    set that differs from the one a run recorded when it was trained (files added, removed or
    changed since), and members tested on different images or classes."""
    splits: dict[str, Split] = {}  # by dataset config: members of one sweep share it
    fingerprints = []
    for run in members:
        key = json.dumps(
            OmegaConf.to_container(run.config.dataset, resolve=True), sort_keys=True, default=str
        )
        if key not in splits:
            splits[key] = run.dataset.load()[1]
        fingerprint = splits[key].sha256()
        if run.test_set_sha256 and run.test_set_sha256 != fingerprint:
            raise CheckpointError(
                f"{run.folder}: its test set has changed since it was trained (images added, removed or "
                f"changed?): it recorded test_set_sha256 {run.test_set_sha256[:12]}..., the images now give "
                f"{fingerprint[:12]}...; its accuracy would not be comparable"
            )
        fingerprints.append((fingerprint, run.class_names))
    others = [run.folder.name for run, seen in zip(members, fingerprints) if seen != fingerprints[0]]
    if others:
        raise CheckpointError(
            f"an ensemble needs one dataset and one test set: {', '.join(others)} differ from "
            f"{members[0].folder.name} (their test images, labels or classes)"
        )
    return next(iter(splits.values()))  # all the same images


def _write_evaluation(
    metrics: dict, images, labels, probabilities, class_names: list, output_dir: Path
) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    who = f"Ensemble of {len(metrics['members'])}" if len(metrics["members"]) > 1 else "Test set"
    title = f"{who}: {metrics['test_accuracy']:.2%} accurate on {len(images)} images"
    plot_confusion_matrix(
        np.array(metrics["confusion_matrix"]), class_names, output_dir / "confusion_matrix.png", title
    )
    plot_misclassified(images, labels, probabilities, class_names, output_dir / "misclassified.png")
    write_json(output_dir / "metrics.json", metrics)
    best = max(row["test_accuracy"] for row in metrics["members"])
    log.info(
        "Test loss %.4f, test accuracy %.2f%% (best member %.2f%%)",
        metrics["test_loss"],
        100 * metrics["test_accuracy"],
        100 * best,
    )
    log.info("Outputs in %s", output_dir)
