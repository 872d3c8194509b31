"""Pictures of a run (learning curves, the confusion matrix, the worst mistakes) and of a sweep.

Each function writes one PNG and closes its figure, so that a sweep of many runs
does not pile figures up in memory.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a training machine

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from mnist_hydra.files import write_atomically  # noqa: E402


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    write_atomically(path, lambda temporary: fig.savefig(temporary, dpi=100))
    plt.close(fig)


def plot_learning_curves(history: dict, path: Path) -> None:
    """Loss and accuracy per epoch, for training and, when there is one, validation."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        epochs = np.arange(1, len(history[metric]) + 1)
        ax.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        ax.set(title=f"{metric.capitalize()} per epoch", xlabel="epoch", ylabel=metric)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, class_names: list, path: Path, title: str) -> None:
    """Counts of true (rows) against predicted (columns) classes, written in each cell."""
    size = max(5.0, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set(title=title, xlabel="predicted class", ylabel="true class")
    threshold = matrix.max() / 2
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(
            col,
            row,
            str(count),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if count > threshold else "black",
        )
    _save(fig, path)


def plot_misclassified(
    images: np.ndarray,
    true: np.ndarray,
    probabilities: np.ndarray,
    class_names: list,
    path: Path,
    limit: int = 25,
) -> None:
    """A grid of the most confident mistakes, each titled with its true and predicted class."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != true)
    worst = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:limit]
    columns = 5
    rows = max(1, -(-len(worst) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, worst):
        ax.imshow(images[index].squeeze(), cmap="gray_r")
        guess = predicted[index]
        ax.set_title(
            f"true {class_names[true[index]]}\npred {class_names[guess]} ({probabilities[index, guess]:.0%})",
            fontsize=9,
        )
    fig.suptitle(f"The {len(worst)} most confident mistakes of {len(wrong)}")
    _save(fig, path)


def plot_metric_against(panels: dict, metric: str, path: Path) -> None:
    """One panel per swept key: `metric` against the key's values ({key: [(value, metric), ...]}).
    Numeric values on a line, in order; other values (names) as categories."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5), squeeze=False)
    for axis, (key, points) in zip(axes[0], panels.items()):
        if all(_is_number(x) for x, _ in points):
            points = sorted((float(x), y) for x, y in points)
            axis.plot(*zip(*points), "o-" if len({x for x, _ in points}) == len(points) else "o")
        else:
            labels = sorted({x for x, _ in points})
            axis.plot([labels.index(x) for x, _ in points], [y for _, y in points], "o")
            axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        axis.set_xlabel(key)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    _save(fig, path)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
