"""Which trial of which study a search's job is: read from the job's Hydra config, where the
optuna sweeper put it (hydra.sweeper.trial). TF-free and Optuna-free: the entry point asks."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

SWEEPER = "hydra_plugins.mnist_hydra_launchers.optuna_sweeper.OptunaSweeper"


def prunes(pruner: DictConfig) -> bool:
    """Whether a pruner config stops trials at all (`none` is Optuna's NopPruner)."""
    return not str(pruner._target_).endswith("NopPruner")


@dataclass(frozen=True)
class TrialAddress:
    number: int
    study_name: str
    storage: Optional[str]  # null: the journal file in the sweep folder
    sweep_dir: Path
    pruner: DictConfig  # a `_target_` in optuna.pruners and its arguments
    at_once: int  # the search's n_jobs: trials that share the cores

    @property
    def pruning(self) -> bool:
        return prunes(self.pruner)


def trial_of(hydra_cfg: DictConfig) -> Optional[TrialAddress]:
    """The trial this job runs for the optuna sweeper, or None (a single run, another sweeper)."""
    sweeper = hydra_cfg.sweeper
    if sweeper.get("_target_") != SWEEPER or sweeper.get("trial") is None:
        return None
    return TrialAddress(
        number=sweeper.trial,
        study_name=sweeper.study_name,
        storage=sweeper.storage,
        sweep_dir=Path(str(hydra_cfg.sweep.dir)).absolute(),
        pruner=sweeper.pruner,
        at_once=sweeper.n_jobs,
    )
