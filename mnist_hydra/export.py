"""Export a trained model for deployment: a SavedModel, a LiteRT (TFLite) file, or ONNX.

    python -m mnist_hydra.export ckpt_path=<run folder or model.keras> format=saved_model|tflite|onnx
    (installed as: mnist-hydra-export)

Writes into the run's export/ folder (mnist_hydra/inference/exporting.py; README: Export).
"""

import hydra
from omegaconf import DictConfig

from mnist_hydra.config.schema import register_schemas
from mnist_hydra.config.validate import validate_export
from mnist_hydra.console import tensorflow_start_quieted
from mnist_hydra.process import run_then_exit, task_returned
from mnist_hydra.trained_runs import locate_run

register_schemas()


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="export")
def main(cfg: DictConfig) -> None:
    validate_export(cfg)
    locate_run(cfg.ckpt_path, cfg.trust_run_code)  # its records, read as data: a refusal needs no TensorFlow
    with tensorflow_start_quieted():  # its start-up notices are not the user's concern
        from mnist_hydra.inference.exporting import export  # TensorFlow loads here

    exported = export(cfg.ckpt_path, cfg.format, cfg.trust_run_code, cfg.output_dir, cfg.max_parameters)
    print(f"Exported to {exported}")
    task_returned()


def cli() -> None:
    """The command line: main(), then a quick exit after a single run (mnist_hydra/process.py)."""
    run_then_exit(main)


if __name__ == "__main__":
    cli()
