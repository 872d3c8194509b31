"""Our own pruner, beside Optuna's: successive halving that weighs what each trial costs.

Plain successive halving lets the best 1/reduction_factor of the trials at each rung go on,
whatever they cost. In a search of CNNs the cost sits in the trials with the widest convolutions
(an epoch of 64 then 128 filters takes about ten times one of 16 then 32), and the sampler soon
proposes them again and again (docs/performance.md, "Search"). Here a trial that takes k times
the median trial's time per epoch (k > 1) must rank among the best 1/(reduction_factor x k) at a
rung to go on: a slow trial has to earn its cost, a cheap one keeps plain halving's chance.

A trial's cost is the user attribute COST, its mean seconds per epoch so far, which mnist-hydra's
training sets before each report (mnist_hydra/training/pruning.py). Trials that report none (an
app of one's own) all weigh 1: this is then plain asynchronous successive halving.
"""

import math
import statistics

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection

COST = "seconds_per_epoch"


class CostAwareHalvingPruner(BasePruner):
    """Rungs after min_resource epochs, then min_resource x reduction_factor, and so on."""

    def __init__(self, min_resource: int = 1, reduction_factor: int = 3):
        if not (isinstance(min_resource, int) and min_resource >= 1):
            raise ValueError(f"min_resource={min_resource!r}: a number of epochs, 1 or more")
        if not (isinstance(reduction_factor, int) and reduction_factor >= 2):
            raise ValueError(f"reduction_factor={reduction_factor!r}: an int, 2 or more")
        self.min_resource, self.reduction_factor = min_resource, reduction_factor

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or not self.is_rung(step):
            return False
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True
        # Every trial that reached this rung competes, whether it ended, was pruned or runs on.
        at_rung = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and step in t.intermediate_values
        ]
        values = [value, *(t.intermediate_values[step] for t in at_rung)]
        values = [v for v in values if not math.isnan(v)]
        keep = max(1, int(len(values) / (self.reduction_factor * self.weight(trial, at_rung))))
        maximize = study.direction == StudyDirection.MAXIMIZE
        bar = sorted(values, reverse=maximize)[keep - 1]
        return value < bar if maximize else value > bar

    def is_rung(self, step: int) -> bool:
        rung = self.min_resource
        while rung < step:
            rung *= self.reduction_factor
        return rung == step

    @staticmethod
    def weight(trial: optuna.trial.FrozenTrial, at_rung: list) -> float:
        """How many times the median trial's cost per epoch this trial's is, and 1 at least."""
        own = trial.user_attrs.get(COST)
        costs = [c for c in (t.user_attrs.get(COST) for t in [trial, *at_rung]) if c]
        if not own or not costs:
            return 1.0
        return max(1.0, own / statistics.median(costs))
