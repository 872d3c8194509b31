"""Shared fixtures: the real configs composed with Hydra's compose API, and CLI runs."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import mnist_hydra.train  # noqa: F401  (registers the schemas, resolvers and launchers)
from mnist_hydra.building import build

# The smallest data that still trains (conf/debug/smoke.yaml: 300 images, one epoch, no tracker).
SMOKE = ["debug=smoke"]


def compose_train(overrides=()) -> DictConfig:
    """The task's config as a run would see it: `${hydra:...}` resolves, the hydra node is gone."""
    with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_cli(module: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m module args` as a user would, from `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HYDRA_FULL_ERROR": "", **(env or {})},
    )


def load_dataset(dataset_cfg: DictConfig):
    """(train, test) of a `dataset` config, built as the task builds it."""
    return build("dataset", dataset_cfg).load()


@pytest.fixture
def compose_cfg():
    return compose_train


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A run folder with a model good enough to read digits (about 90% on 2,000 images)."""
    folder = tmp_path_factory.mktemp("trained") / "run"
    result = run_cli(
        "mnist_hydra.train",
        "dataset.train_limit=2000",
        "dataset.test_limit=200",
        "trainer.epochs=2",
        "trainer.batch_size=50",
        "optimizer=adam",  # default tracker: tensorboard
        f"hydra.run.dir={folder}",
        cwd=folder.parent,
    )
    assert result.returncode == 0, result.stderr
    return folder


def pytest_collection_modifyitems(items):
    """Mark as slow every test that starts a process or uses the trained run: what the
    test's own code does decides, so a new test cannot be filed in the wrong set."""
    for item in items:
        source = inspect.getsource(item.function)
        if "trained_run" in item.fixturenames or "run_cli(" in source or "subprocess." in source:
            item.add_marker(pytest.mark.slow)
