"""Classify a person's own images with a trained model.

    python -m mnist_hydra.predict ckpt_path=<run folder or model.keras> images=[a.png,b.jpg]
    (installed as: mnist-hydra-predict)

Prints the predicted class and the top-3 probabilities of each image, and writes
them to predictions.csv. An unusable image is named in one line and skipped; the others
are still predicted, and the run then exits non-zero.
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnist_hydra.config.schema import register_schemas
from mnist_hydra.config.validate import validate_predict
from mnist_hydra.console import tensorflow_start_quieted
from mnist_hydra.process import run_then_exit, task_returned
from mnist_hydra.trained_runs import locate_runs

register_schemas()


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    validate_predict(cfg)
    locate_runs(cfg.ckpt_path, cfg.trust_run_code)  # its records, read as data: a refusal needs no TensorFlow
    with tensorflow_start_quieted():  # its start-up notices are not the user's concern
        from mnist_hydra.inference.prediction import predict  # TensorFlow loads here

    predict(
        cfg.ckpt_path,
        list(cfg.images),
        Path(HydraConfig.get().runtime.output_dir),
        cfg.trust_run_code,
        cfg.max_parameters,
    )
    task_returned()


def cli() -> None:
    """The command line: main(), then a quick exit after a single run (mnist_hydra/process.py)."""
    run_then_exit(main)


if __name__ == "__main__":
    cli()
