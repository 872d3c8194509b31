"""The Optuna study a search keeps: where it is stored, its sampler and pruner, and the trials a
killed sweep left `RUNNING`. Shared by the sweep process (which asks and tells) and each trial's
job (which reports its objective after every epoch and asks whether to stop).

Where a study lives (`hydra.sweeper.storage`):
- null: a journal file in the sweep folder, `optuna.journal`. Optuna's journal storage is made for
  several processes on one machine writing at once (file locks, appends only).
- `sqlite:///optuna.db`: a database file, kept across sweeps on one machine.
- an RDB server's URL (`postgresql://user@host/db`, `mysql+pymysql://...`): several machines
  (submitit_slurm); that server's driver must be installed.
"""

import logging
import os
import platform
from pathlib import Path
from typing import Optional

import optuna
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from mnist_hydra.errors import ConfigError, first_line

log = logging.getLogger(__name__)
JOURNAL = "optuna.journal"
# Optuna's own packages: a config chooses a sampler and a pruner by `_target_`, only among these.
TARGETS = {"sampler": "optuna.samplers.", "pruner": "optuna.pruners."}


def storage_for(url: Optional[str], sweep_dir: Path) -> BaseStorage:
    """The study's storage: `url`, or with none a journal file in the sweep folder."""
    if not url:
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(Path(sweep_dir).absolute() / JOURNAL)))
    try:
        if url.startswith("sqlite:"):  # trials telling at once wait for the file's lock, not fail
            return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        return RDBStorage(url)
    except RuntimeError as error:
        if "storage upgrade" in str(error):  # a study written by an older Optuna (2.x: 2021)
            raise ConfigError(
                f"hydra.sweeper.storage={url} holds a study of an older Optuna; upgrade it once with: "
                f".venv/bin/optuna storage upgrade --storage {url}"
            ) from None
        raise ConfigError(f"hydra.sweeper.storage={url}: {first_line(error)}") from None
    except Exception as error:  # SQLAlchemy's errors for a bad URL or a missing driver
        raise ConfigError(
            f"hydra.sweeper.storage={url} cannot be opened ({type(error).__name__}: {first_line(error)}); "
            "give null (a journal file in the sweep folder), sqlite:///FILE or a database server's URL"
        ) from None


def optuna_object(role: str, node):
    """A sampler or pruner from its config node (or that node as a dict), whose keys are its own
    arguments. Only Optuna's classes: a config (perhaps someone else's) never chooses other code
    to run this way."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    target = str(node.get("_target_", ""))
    if not target.startswith(TARGETS[role]):
        raise ConfigError(
            f"hydra.sweeper.{role}._target_={target} is not one of Optuna's {role}s ({TARGETS[role]}*); "
            f"pick one with hydra/sweeper/{role}=NAME"
        )
    given = {k: v for k, v in node.items() if not k.startswith("_")}
    try:
        return get_class(target)(**given)
    except Exception as error:
        raise ConfigError(f"hydra.sweeper.{role} ({target}) cannot be built: {first_line(error)}") from None


def abandoned_trials(study: optuna.Study) -> list:
    """Trials still `RUNNING` whose sweep process, on this machine, is gone (killed outright):
    no one will ever tell how they ended. Those of other machines' sweeps are left alone."""
    here = platform.node()
    return [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if trial.user_attrs.get("sweep_host") == here and not _alive(trial.user_attrs.get("sweep_pid"))
    ]


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def mark_as_ours(trial: optuna.Trial) -> None:
    """Which sweep process runs a trial, so that a later sweep can tell it was abandoned."""
    trial.set_user_attr("sweep_host", platform.node())
    trial.set_user_attr("sweep_pid", os.getpid())
