"""Evaluate a trained model on the test set of the dataset it was trained on.

    python -m mnist_hydra.evaluate ckpt_path=<run folder or model.keras>   (mnist-hydra-evaluate)

Writes metrics.json (loss, accuracy, per-class precision, recall and accuracy),
confusion_matrix.png and misclassified.png into its own output folder.
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnist_hydra.config import register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    from mnist_hydra.inference.checkpoints import ckpt_path_of
    from mnist_hydra.reporting.evaluation import evaluate

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    return evaluate(ckpt_path_of(cfg), output_dir, cfg.tta_shift)["test_accuracy"]


if __name__ == "__main__":
    main()
