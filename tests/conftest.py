"""Shared fixtures: the real configs composed with Hydra's compose API, and CLI runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from mnist_hydra.config import register_schemas

register_schemas()

# The smallest data that still trains: enough for a smoke run to mean something.
SMOKE = ["dataset.train_limit=300", "dataset.test_limit=100", "trainer.epochs=1", "trainer.batch_size=100"]


def compose_train(overrides=()) -> DictConfig:
    with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def run_cli(module: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m module args` as a user would, from `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
        env={**os.environ, "HYDRA_FULL_ERROR": "", **(env or {})},
    )


@pytest.fixture
def compose_cfg():
    return compose_train
