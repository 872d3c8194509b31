"""A Hydra app that is not mnist-hydra: x^2 + y^2, searched with hydra/sweeper=optuna. With
multi_objective.py and custom_space.py, it plays the example apps of hydra-optuna-sweeper, whose
test cases tests/test_optuna_plugin.py runs against our sweeper."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="sphere")
def sphere(cfg: DictConfig) -> float:
    if cfg.get("error", False):
        raise RuntimeError("cfg.error is True")  # a failing trial, on request
    return cfg.x**2 + cfg.y**2


if __name__ == "__main__":
    sphere()
