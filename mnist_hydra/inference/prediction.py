"""Predicting people's own image files with a trained run's model.

Each image is prepared the way the run's dataset prepares one (MNIST's digits: grayscale,
inverted if dark on light, cropped, fitted into 20x20 and centred by mass; an image folder's:
resized and converted to its channels). A file that cannot be used gets one line and the
others are still predicted. A sweep's folder predicts as one ensemble of its completed runs:
the mean of their softmax outputs, as `evaluate` scores it.
"""

import logging
from pathlib import Path

import numpy as np

from mnist_hydra.errors import ImageError
from mnist_hydra.files import write_csv
from mnist_hydra.inference.loading import DEFAULT_MAX_PARAMETERS, open_ensemble

log = logging.getLogger(__name__)
TOP = 3
COLUMNS = ["path", "predicted"] + [f"top{r}{s}" for r in range(1, TOP + 1) for s in ("", "_probability")]


def predict(
    ckpt_path,
    images: list,
    output_dir: Path,
    trust_run_code: bool = False,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
) -> list[dict]:
    members = open_ensemble(ckpt_path, trust_run_code, max_parameters)
    class_names, dataset = members[0].class_names, members[0].dataset

    prepared, paths, failures = [], [], []
    for path in map(Path, images):
        try:
            prepared.append(dataset.prepare(path))
            paths.append(path)
        except ImageError as error:
            log.error("%s", error)
            failures.append(str(path))

    rows = []
    if prepared:
        inputs = np.stack(prepared)
        probabilities = np.mean([run.model.predict(inputs, verbose=0) for run in members], axis=0)
        for path, probs in zip(paths, probabilities):
            best = np.argsort(-probs)[:TOP]
            row = {"path": str(path), "predicted": class_names[best[0]]}
            for rank, index in enumerate(best, start=1):
                row[f"top{rank}"] = class_names[index]
                row[f"top{rank}_probability"] = round(float(probs[index]), 6)
            rows.append(row)
            top = ", ".join(f"{class_names[i]} {probs[i]:.1%}" for i in best)
            print(f"{path}: {row['predicted']}   ({top})")

    write_csv(output_dir / "predictions.csv", COLUMNS, rows)
    log.info("Predictions in %s", output_dir / "predictions.csv")
    if failures:
        raise ImageError(f"{len(failures)} of {len(images)} images could not be read: {', '.join(failures)}")
    return rows
