"""`hydra/sweeper=optuna`: a hyperparameter search with Optuna, with pruning and no batch barrier.

It takes hydra-optuna-sweeper's keys (direction, storage, study_name, n_trials, n_jobs,
max_failure_rate, params, the sampler group) and its search-space syntax (mnist_hydra/search/
space.py), on a current Optuna. What it adds:
- a pruner (the group hydra/sweeper/pruner): each trial's job reports its objective after every
  epoch and stops early when the pruner says so (mnist_hydra/training/pruning.py);
- with a launcher that can start one job at a time (hydra/launcher=joblib), a new trial starts
  as soon as any running one ends; other launchers run trials in batches of `n_jobs`.
The search itself (ask, launch, tell) is _search.py; Optuna loads only when a search runs.
"""

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import MISSING, DictConfig


@dataclass
class OptunaSweeperConf:
    """`hydra/sweeper=optuna` (register()). Defaults as hydra-optuna-sweeper's, but the direction
    follows `objective` and a median pruner is on (README: Search)."""

    _target_: str = "hydra_plugins.mnist_hydra_launchers.optuna_sweeper.OptunaSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])
    sampler: Any = MISSING  # conf/hydra/sweeper/sampler/*.yaml
    pruner: Any = MISSING  # conf/hydra/sweeper/pruner/*.yaml
    direction: Any = "${mnist_hydra.direction:${objective}}"  # minimize or maximize, or a list of them
    storage: Optional[str] = None
    study_name: Optional[str] = None
    n_trials: int = 20
    n_jobs: int = 1
    batches: bool = False  # true: n_jobs trials at a time, each batch waiting for its slowest
    max_failure_rate: float = 0.0
    params: Optional[dict[str, Any]] = None
    # Set by the sweeper on each trial's job (as a `hydra.` override, which the job's folder
    # name and its overrides.yaml leave out): which trial of the study the job is. Never by hand.
    trial: Optional[int] = None


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        from hydra_plugins.mnist_hydra_launchers._search import Search  # Optuna loads here

        Search(self.config, self.launcher).run(arguments)
