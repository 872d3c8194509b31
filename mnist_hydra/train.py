"""Train the model the configs describe, evaluate it on the test set, save both.

    python -m mnist_hydra.train [overrides]        (installed as: mnist-hydra-train)

Outputs go to Hydra's run folder: model.keras, metrics.json, learning_curves.png,
confusion_matrix.png, the tracker's files, the log and .hydra/ (README: Outputs).
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.mnist_hydra_launchers import register as register_launchers
from mnist_hydra.config import register_schemas, search_direction
from mnist_hydra.training.run_folders import run_folder

register_schemas()
register_launchers()
OmegaConf.register_new_resolver("mnist_hydra.run_folder", run_folder, replace=True)
OmegaConf.register_new_resolver("mnist_hydra.direction", search_direction, replace=True)


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Returns `objective` (test accuracy by default) for sweepers to optimize."""
    from mnist_hydra.training.task import train

    hydra_cfg = HydraConfig.get()
    try:
        return train(cfg, Path(hydra_cfg.runtime.output_dir), hydra_cfg.launcher)[cfg.objective]
    except KeyboardInterrupt:
        raise SystemExit(130) from None  # already logged and recorded; no traceback for a Ctrl-C


if __name__ == "__main__":
    main()
