"""Train the model the configs describe, evaluate it on the test set, save both.

    python -m mnist_hydra.train [overrides]        (installed as: mnist-hydra-train)

Outputs go to Hydra's run folder: model.keras, metrics.json, learning_curves.png,
confusion_matrix.png, the tracker's files, the log and .hydra/ (README: Outputs).
"""

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.mnist_hydra_launchers import register as register_launchers
from mnist_hydra.config.schema import objectives, register_schemas
from mnist_hydra.config.validate import validate
from mnist_hydra.console import tensorflow_start_quieted
from mnist_hydra.machine import use_onednn
from mnist_hydra.process import run_then_exit, task_returned
from mnist_hydra.run_folders import release
from mnist_hydra.search.job import trial_of
from mnist_hydra.trained_runs import locate_run
from mnist_hydra.training.guard import job_folder, run_folder

register_schemas()
register_launchers()
OmegaConf.register_new_resolver("mnist_hydra.run_folder", run_folder, replace=True)
OmegaConf.register_new_resolver("mnist_hydra.job_folder", job_folder, replace=True)
log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="train")
def main(cfg: DictConfig) -> float | list[float]:
    """Returns `objective` (test accuracy by default) for sweepers to optimize: its value, or
    a list of values for a list of objectives."""
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)  # claimed before Hydra wrote into it (training/guard.py)
    if hydra_cfg.mode == RunMode.RUN and hydra_cfg.sweeper.get("params"):  # e.g. experiment=ensemble
        log.warning(
            "This config sweeps %s with -m; without -m this is one run, of the values composed",
            ", ".join(hydra_cfg.sweeper.params),
        )
    try:
        validate(cfg)  # a bad value fails here, in about a second, before TensorFlow loads
        if cfg.get("init_from") and not cfg.get("resume"):  # resumed: its backup has the weights
            locate_run(cfg.init_from)  # the run to start from, read as data (received_run.py)
        log.info("oneDNN: %s", use_onednn(cfg.trainer.onednn))  # must come before TensorFlow loads
        with tensorflow_start_quieted(start_devices=False):  # the task sets its threads first
            from mnist_hydra.training.task import train  # TensorFlow loads here

        metrics = train(cfg, output_dir, hydra_cfg.launcher, trial_of(hydra_cfg))
        values = [metrics[name] for name in objectives(cfg.objective)]
        task_returned()
        return values[0] if isinstance(cfg.objective, str) else values
    except KeyboardInterrupt:
        raise SystemExit(130) from None  # already logged and recorded; no traceback for a Ctrl-C
    finally:
        release(output_dir)  # for the next job of a sweep run in this process


def cli() -> None:
    """The command line: main(), then a quick exit after a single run (mnist_hydra/process.py)."""
    run_then_exit(main)


if __name__ == "__main__":
    cli()
