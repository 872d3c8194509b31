"""Evaluate a trained model on the test set of the dataset it was trained on.

    python -m mnist_hydra.evaluate ckpt_path=<run folder or model.keras>   (mnist-hydra-evaluate)

A sweep's folder is evaluated as an ensemble of its completed runs. Writes metrics.json
(loss, accuracy, per-class precision, recall and accuracy, each member's accuracy),
confusion_matrix.png and misclassified.png into its own output folder.
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnist_hydra.config.schema import register_schemas
from mnist_hydra.config.validate import check_tta_shift, validate_evaluate
from mnist_hydra.console import tensorflow_start_quieted
from mnist_hydra.process import run_then_exit, task_returned
from mnist_hydra.trained_runs import locate_runs

register_schemas()


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    validate_evaluate(cfg)
    runs, _ = locate_runs(cfg.ckpt_path, cfg.trust_run_code)  # read as data: a refusal needs no TensorFlow
    if cfg.tta_shift is not None:
        for run in runs:
            check_tta_shift(cfg.tta_shift, run.image_shape[0], "tta_shift")
    with tensorflow_start_quieted():  # its start-up notices are not the user's concern
        from mnist_hydra.reporting.evaluation import evaluate  # TensorFlow loads here

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics = evaluate(cfg.ckpt_path, output_dir, cfg.tta_shift, cfg.trust_run_code, cfg.max_parameters)
    task_returned()
    return metrics["test_accuracy"]


def cli() -> None:
    """The command line: main(), then a quick exit after a single run (mnist_hydra/process.py)."""
    run_then_exit(main)


if __name__ == "__main__":
    cli()
