"""`hydra/sweeper=optuna`: a hyperparameter search with Optuna, with pruning and no batch barrier,
in any Hydra app.

It takes hydra-optuna-sweeper's keys (direction, storage, study_name, n_trials, n_jobs,
max_failure_rate, params, custom_search_space, the sampler group) and its search-space syntax
(mnist_hydra/search/space.py), on a current Optuna. What it adds:
- a pruner (the group hydra/sweeper/pruner): each trial's job may report its objective after
  every epoch and is stopped early when the pruner says so (mnist_hydra/training/pruning.py
  reports for mnist-hydra's training; in an app that reports nothing, a pruner never acts);
- with a launcher that can start one job at a time (hydra/launcher=joblib), a new trial starts
  as soon as any running one ends; other launchers run trials in batches of `n_jobs`.
The search itself (ask, launch, tell) is _search.py; Optuna loads only when a search runs.

Hydra's plugin scan imports this module in every app: it stores the sweeper's config and the
sampler and pruner groups (the YAML files in conf/ beside it), so that no app needs our search path.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import MISSING, DictConfig, OmegaConf


@dataclass
class OptunaSweeperConf:
    """`hydra/sweeper=optuna`. hydra-optuna-sweeper's keys and defaults, but for two: the direction
    follows the app's `objective` when it has one, and a median pruner is on (README: Search)."""

    _target_: str = "hydra_plugins.mnist_hydra_launchers.optuna_sweeper.OptunaSweeper"
    # The sampler and pruner stay configs: _search.py builds them once it knows the search space
    # (the grid sampler needs it), and only from Optuna's own classes.
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])
    sampler: Any = MISSING  # conf/sampler/*.yaml beside this file
    pruner: Any = MISSING  # conf/pruner/*.yaml beside this file
    # minimize or maximize, or a list of them; null: as the app's `objective` (a loss is
    # minimized, anything else maximized), or minimize in an app without one
    direction: Any = None
    storage: Optional[str] = None
    study_name: Optional[str] = None
    n_trials: int = 20
    n_jobs: int = 1
    batches: bool = False  # true: n_jobs trials at a time, each batch waiting for its slowest
    max_failure_rate: float = 0.0
    # A running trial whose sweep has written no heartbeat for this many seconds was abandoned (its
    # sweep killed): the next sweep of the study tells it failed. Beats come every quarter of it.
    abandoned_after: float = 120.0
    params: Optional[dict[str, Any]] = None
    # A function (module.function) called with the config and each trial after the trial has its
    # values from `params`: for parameters that depend on others (trial.suggest_float(...)).
    custom_search_space: Optional[str] = None
    # Set by the sweeper on each trial's job (as a `hydra.` override, which the job's folder
    # name and its overrides.yaml leave out): which trial of the study the job is. Never by hand.
    trial: Optional[int] = None


def store_configs() -> None:
    """The sweeper's config and its sampler and pruner groups, in Hydra's config store."""
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="mnist_hydra")
    for group in ("sampler", "pruner"):
        for path in sorted((Path(__file__).parent / "conf" / group).glob("*.yaml")):
            node = OmegaConf.load(path)
            store.store(group=f"hydra/sweeper/{group}", name=path.stem, node=node, provider="mnist_hydra")


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


store_configs()
