"""Classify a person's own images of digits with a trained model.

    python -m mnist_hydra.predict ckpt_path=<run folder or model.keras> images=[a.png,b.jpg]
    (installed as: mnist-hydra-predict)

Prints the predicted class and the top-3 probabilities of each image, and writes
them to predictions.csv. An unreadable image is reported and skipped; the others
are still predicted, and the run then exits non-zero.
"""

import logging
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnist_hydra.config import register_schemas
from mnist_hydra.errors import ImageError
from mnist_hydra.files import write_csv

log = logging.getLogger(__name__)
register_schemas()
TOP = 3


def predict(cfg: DictConfig, output_dir: Path) -> list[dict]:
    from mnist_hydra.checkpoints import find_checkpoint, load_model, load_run_config
    from mnist_hydra.images import load_digit

    model_path, run_dir = find_checkpoint(cfg)
    if not cfg.images:
        raise ImageError("images=[...] is empty: name at least one PNG or JPEG file")
    run_cfg = load_run_config(run_dir)
    class_names = list(run_cfg.dataset.class_names)
    model = load_model(model_path, run_cfg)

    digits, paths, failures = [], [], []
    for path in map(Path, cfg.images):
        try:
            digits.append(load_digit(path))
            paths.append(path)
        except ImageError as error:
            log.error("%s", error)
            failures.append(str(path))

    rows = []
    if digits:
        probabilities = model.predict(np.stack(digits)[..., np.newaxis], verbose=0)
        for path, probs in zip(paths, probabilities):
            best = np.argsort(-probs)[:TOP]
            row = {"path": str(path), "predicted": class_names[best[0]]}
            for rank, index in enumerate(best, start=1):
                row[f"top{rank}"] = class_names[index]
                row[f"top{rank}_probability"] = round(float(probs[index]), 6)
            rows.append(row)
            top = ", ".join(f"{class_names[i]} {probs[i]:.1%}" for i in best)
            print(f"{path}: {row['predicted']}   ({top})")

    columns = ["path", "predicted"] + [f"top{r}{s}" for r in range(1, TOP + 1) for s in ("", "_probability")]
    write_csv(output_dir / "predictions.csv", columns, rows)
    log.info("Predictions in %s", output_dir / "predictions.csv")
    if failures:
        raise ImageError(f"{len(failures)} of {len(cfg.images)} images could not be read: "
                                    f"{', '.join(failures)}")
    return rows


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
