"""A search's trial, seen from its job: the objective reported to the study after every epoch,
and training stopped at the end of an epoch when the study's pruner says the trial is hopeless.

The job finds its trial through the sweeper's config (mnist_hydra/search/job.py) and opens the
study in its own storage, so this works in any process a launcher runs it in.
"""

import logging
import statistics
import time
from typing import Optional

import keras
import optuna

from mnist_hydra.config.schema import objectives
from mnist_hydra.errors import first_line
from mnist_hydra.search.job import TrialAddress
from mnist_hydra.search.pruners import COST
from mnist_hydra.search.study import optuna_object, storage_for

log = logging.getLogger(__name__)


class TrialReporter(keras.callbacks.Callback):
    def __init__(self, address: TrialAddress, objective: str):
        super().__init__()
        self.address, self.objective = address, objective
        self.stopped: Optional[tuple[int, float]] = None  # (epoch, value) when pruned
        # Each epoch's seconds in this process (a resumed trial's earlier epochs are not
        # timed here), for a pruner that weighs cost.
        self.epoch_seconds: list[float] = []
        self.started: Optional[float] = None
        study = optuna.load_study(
            study_name=address.study_name,
            storage=storage_for(address.storage, address.sweep_dir),
            pruner=optuna_object("pruner", address.pruner),
        )
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, address.number)
        self.trial: Optional[optuna.Trial] = optuna.Trial(study, trial_id)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.started is not None:
            self.epoch_seconds.append(time.perf_counter() - self.started)
        value = (logs or {}).get(self.objective)
        if self.trial is None or value is None:
            return
        try:
            if self.epoch_seconds:
                self.trial.set_user_attr(COST, statistics.fmean(self.epoch_seconds))
            self.trial.report(float(value), step=epoch + 1)
            # After the last epoch there is nothing left to save: the trial completes and its
            # value is the objective. Pruned there, a finished trial would be lost to the search
            # (the median pruner, or a rung at the last epoch, would drop most of them).
            last = epoch + 1 == (self.params or {}).get("epochs")
            prune = self.address.pruning and not last and self.trial.should_prune()
        except Exception as error:  # e.g. the trial was told failed: its sweep was killed
            log.warning(
                "Trial %d: cannot report to the study (%s); training on",
                self.address.number,
                first_line(error),
            )
            self.trial = None
            return
        if prune:
            self.stopped = (epoch + 1, float(value))
            self.model.stop_training = True
            log.info("Pruned by the search after epoch %d: %s %.4f", epoch + 1, self.objective, value)


def trial_reporter(address: Optional[TrialAddress], objective) -> Optional[TrialReporter]:
    """The callback of a search's trial whose objective is one `val_*` metric, else None: Optuna
    takes intermediate values of one objective only, and test metrics exist only at the end."""
    names = objectives(objective)
    if address is None or len(names) != 1 or not names[0].startswith("val_"):
        return None
    return TrialReporter(address, names[0])
