"""The search of hydra/sweeper=optuna, in the sweep's process: ask Optuna for a trial, launch
its job, tell Optuna how it ended; then the best trial, the plots, and one line of counts.

A job ends in one of three ways for Optuna: completed (its objective's value or values),
pruned (its pruner stopped it: JobPruned, told PRUNED with its last reported value), or failed
(anything else, also a crash or SIGTERM). Only failures count against `max_failure_rate`.

Any Hydra app: what its task returns is the value (or values) searched for. mnist-hydra's
training has an `objective` key naming it, which sets the direction and what is pruned; an app
without one is minimized, as hydra-optuna-sweeper does, and its pruner acts only on what its
trials report (nothing, unless the app reports).
"""

import logging
import math
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Optional

import numpy
import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from hydra_plugins.mnist_hydra_launchers._stopping import STOPPED_STATUS
from mnist_hydra.config.schema import objectives, search_direction
from mnist_hydra.errors import ConfigError, JobPruned, MnistHydraError, first_line
from mnist_hydra.files import write_text
from mnist_hydra.search.job import prunes
from mnist_hydra.search.plots import plot_study
from mnist_hydra.search.space import as_override, grid, search_space
from mnist_hydra.search.study import JOURNAL, Heartbeat, abandoned_trials, optuna_object, storage_for

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)  # our lines say what happened, once each


class Search:
    def __init__(self, config: DictConfig, launcher) -> None:
        self.config, self.launcher = config, launcher
        self.settings = config.hydra.sweeper
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.reports = "objective" in config  # mnist-hydra's training: its trials report each epoch
        direction = self.settings.direction
        if self.reports:
            self.objectives = objectives(config.objective)
            direction = direction or search_direction(config.objective)
        else:  # any other app: the value its task returns, minimized unless told otherwise
            direction = direction or "minimize"
            self.objectives = _value_names(direction)
        self.directions = _directions(direction, self.objectives)
        self.pruning = prunes(self.settings.pruner) and self.reports
        self.job_idx, self.failures, self.told = 0, [], 0

    def run(self, arguments: list[str]) -> None:
        params = [f"{name}={value}" for name, value in (self.settings.params or {}).items()]
        self.space, self.fixed, self.deletions = search_space(params + list(arguments))
        self.extend_space = _custom_search_space(self.settings.get("custom_search_space"))
        self._check_pruning()
        study = self._open_study()
        n_trials = self._n_trials()
        self._fail_abandoned(study)
        at_once = max(1, min(self.settings.n_jobs, n_trials))
        one_by_one = at_once > 1 and hasattr(self.launcher, "jobs_one_by_one") and not self.settings.batches
        log.info(
            "Optuna %s: study %s (%s), %s, %s; %d trials, %d at once%s",
            optuna.__version__,
            study.study_name,
            self.settings.storage or self.sweep_dir / JOURNAL,
            type(study.sampler).__name__,
            type(study.pruner).__name__,
            n_trials,
            at_once,
            ", each as soon as one ends" if one_by_one else (" in batches" if at_once > 1 else ""),
        )
        with Heartbeat(self.settings.abandoned_after) as self.heartbeat:
            if one_by_one:
                self._run_as_they_end(study, n_trials, at_once)
            else:
                self._run_in_batches(study, n_trials, at_once)
        self._report(study)

    # --- before any trial -------------------------------------------------------------

    def _fail_abandoned(self, study: optuna.Study) -> None:
        """Trials that a killed sweep left running (no heartbeat for hydra.sweeper.abandoned_after
        seconds) are told as failed: no one else will, and they would count as running forever."""
        after = self.settings.abandoned_after
        if not (isinstance(after, (int, float)) and after > 0):
            raise ConfigError(
                f"hydra.sweeper.abandoned_after={after}: seconds without a heartbeat after which a running "
                f"trial is taken for abandoned, more than 0 (default 120)"
            )
        for trial in abandoned_trials(study, after):
            _tell_study(study, trial.number, state=TrialState.FAIL, skip_if_finished=True)
            log.warning(
                "Trial %d was left running by a sweep that was killed (no heartbeat for %g s): marked failed",
                trial.number,
                after,
            )

    def _check_pruning(self) -> None:
        if not self.pruning:
            return
        if len(self.objectives) > 1:
            raise ConfigError(
                f"objective={self.objectives}: Optuna prunes searches of one objective only; "
                "add hydra/sweeper/pruner=none"
            )
        if not self.objectives[0].startswith("val_"):
            raise ConfigError(
                f"objective={self.objectives[0]} cannot be pruned (a trial reports it after every "
                "epoch): use val_accuracy or val_loss (with trainer.validation_split > 0), "
                "or hydra/sweeper/pruner=none"
            )

    def _open_study(self) -> optuna.Study:
        storage = storage_for(self.settings.storage, self.sweep_dir)
        sampler = OmegaConf.to_container(self.settings.sampler, resolve=True)
        if str(sampler["_target_"]).endswith("GridSampler"):
            sampler["search_space"] = grid(self.space)
        if "constant_liar" in sampler and sampler["constant_liar"] is None:
            sampler["constant_liar"] = self.settings.n_jobs > 1  # running trials count as poor ones
        try:
            study = optuna.create_study(
                study_name=self.settings.study_name,
                storage=storage,
                sampler=optuna_object("sampler", sampler),
                pruner=optuna_object("pruner", self.settings.pruner),
                directions=self.directions,
                load_if_exists=True,
            )
        except ValueError as error:  # e.g. a stored study with other directions
            raise ConfigError(f"study {self.settings.study_name}: {first_line(error)}") from None
        held = len(study.get_trials(deepcopy=False))
        if held and sampler.get("seed") is not None:
            # A study continued: a sampler seeded as the first run's would propose its very points
            # again. Its seed follows the trials the study holds: new points, the same each time.
            seed = int(numpy.random.SeedSequence([sampler["seed"], held]).generate_state(1)[0])
            study.sampler = optuna_object("sampler", {**sampler, "seed": seed})
            log.info("The study holds %d trials: its sampler is seeded with %d", held, seed)
        return study

    def _n_trials(self) -> int:
        n_trials = self.settings.n_trials
        if str(self.settings.sampler._target_).endswith("GridSampler"):
            size = math.prod(len(values) for values in grid(self.space).values())
            if size < n_trials:
                log.info("The grid has %d points: %d trials, not %d", size, size, n_trials)
            n_trials = min(n_trials, size)
        if n_trials < 1:
            raise ConfigError(f"hydra.sweeper.n_trials={n_trials}: a search needs at least one trial")
        return n_trials

    # --- the trials -------------------------------------------------------------------

    def _ask(self, study: optuna.Study) -> tuple[optuna.Trial, list[str]]:
        trial = study.ask(fixed_distributions=self.space)
        self.heartbeat.add(trial)
        for name, value in self.fixed.items():
            trial.set_user_attr(name, value)
        if self.extend_space is not None:  # the user's parameters that depend on others
            self.extend_space(self.config, trial)
        overrides = [as_override(name, value) for name, value in trial.params.items()]
        overrides += [f"{name}={value}" for name, value in self.fixed.items()] + self.deletions
        overrides.append(f"hydra.sweeper.trial={trial.number}")
        if self.settings.study_name is None:  # Optuna named it: the job must find it too
            overrides.append(f"hydra.sweeper.study_name={study.study_name}")
        return trial, overrides

    def _run_in_batches(self, study: optuna.Study, n_trials: int, batch: int) -> None:
        asked = 0
        while asked < n_trials and not self._too_many_failures():
            trials = []
            try:
                trials = [self._ask(study) for _ in range(min(batch, n_trials - asked))]
                asked += len(trials)
                returns = self.launcher.launch([o for _, o in trials], initial_job_idx=self.job_idx)
            except BaseException:  # SIGTERM or Ctrl-C stopped the batch: its trials ended with it
                for trial, _ in trials:
                    _tell_study(study, trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
            self.job_idx += len(trials)
            for (trial, _), job in zip(trials, returns):
                self._tell(study, trial, job)

    def _run_as_they_end(self, study: optuna.Study, n_trials: int, at_once: int) -> None:
        asked, running = 0, {}
        with self.launcher.jobs_one_by_one() as stopping, ThreadPoolExecutor(at_once) as threads:
            try:
                while True:
                    while len(running) < at_once and asked < n_trials and not self._stop(stopping):
                        trial, overrides = self._ask(study)
                        running[threads.submit(self.launcher.run_job, self.job_idx, overrides)] = trial
                        self.job_idx, asked = self.job_idx + 1, asked + 1
                    if not running:
                        break
                    ended, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                    for job in ended:
                        self._tell(study, running.pop(job), _result(job))
            finally:  # an error in the sweep process itself: the running trials end as failed
                for trial in running.values():
                    _tell_study(study, trial, state=TrialState.FAIL, skip_if_finished=True)
        if stopping.is_set():
            log.error("Stopped by SIGTERM: the running trials were interrupted and told as failed")
            raise SystemExit(STOPPED_STATUS)

    def _stop(self, stopping) -> bool:
        return stopping.is_set() or self._too_many_failures()

    def _tell(self, study: optuna.Study, trial: optuna.Trial, job: JobReturn) -> None:
        self.told += 1
        error = job._return_value if job.status is not JobStatus.COMPLETED else None
        if isinstance(error, JobPruned):
            _tell_study(study, trial, state=TrialState.PRUNED)  # with the last value it reported
            log.info(
                "Trial %d pruned after epoch %d (%s %.4f)",
                trial.number,
                error.epoch,
                error.objective,
                error.value,
            )
            return
        values = _values(job.return_value, len(self.directions)) if error is None else None
        if values is None:
            _tell_study(study, trial, state=TrialState.FAIL)
            reason = (
                f"{type(error).__name__}: {first_line(error)}"
                if error is not None
                else f"returned {job.return_value!r}, not {len(self.directions)} number(s)"
            )
            self.failures.append(f"trial {trial.number}: {reason}")
            log.warning("Trial %d failed: %s", trial.number, reason)
            return
        _tell_study(study, trial, values=values)
        log.info(
            "Trial %d: %s = %s",
            trial.number,
            ", ".join(self.objectives),
            ", ".join(f"{v:.4f}" for v in values),
        )

    def _too_many_failures(self) -> bool:
        return bool(self.told) and len(self.failures) / self.told > self.settings.max_failure_rate

    # --- after the trials -------------------------------------------------------------

    def _report(self, study: optuna.Study) -> None:
        """The search's outcome: why it stopped if it failed, else its best trial, the plots and
        the counts. optimization_results.yaml keeps what hydra-optuna-sweeper wrote."""
        if self._too_many_failures():
            raise MnistHydraError(
                f"{len(self.failures)} of {self.told} trials failed, more than hydra.sweeper."
                f"max_failure_rate={self.settings.max_failure_rate} allows; the first, {self.failures[0]}"
            )
        trials = study.get_trials(deepcopy=False)
        counts = {state.name.lower(): sum(t.state is state for t in trials) for state in TrialState}
        log.info(
            "Study %s: %s trials", study.study_name, ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        )
        plotted = plot_study(study, self.sweep_dir, self.objectives)
        if not counts["complete"]:
            log.error(
                "No trial of the search completed (%d pruned, %d failed): no best trial",
                counts["pruned"],
                counts["fail"],
            )
            raise SystemExit(1)
        results = {"name": "optuna", "study_name": study.study_name, "trials": counts}
        if len(self.directions) == 1:
            best = study.best_trial
            results.update(best_trial=best.number, best_params=best.params, best_value=best.value)
            log.info(
                "Best trial %d: %s = %.4f with %s", best.number, self.objectives[0], best.value, best.params
            )
        else:
            results["solutions"] = [{"params": t.params, "values": t.values} for t in study.best_trials]
            log.info("%d Pareto-optimal trials", len(study.best_trials))
        write_text(self.sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))
        log.info("In %s: optimization_results.yaml, %s", self.sweep_dir, ", ".join(plotted) or "no plots")


def _tell_study(study: optuna.Study, trial, **how) -> None:
    """study.tell(trial, **how). The grid sampler asks the study to stop once its last point is
    told, which Optuna allows only inside study.optimize(): the trial is stored all the same, and
    the search ends by counting its trials (n_trials is cut to the grid's size)."""
    try:
        study.tell(trial, **how)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise


def _value_names(direction) -> list[str]:
    """What an app without `objective` returns, named for the logs and plots: one value or several."""
    count = 1 if isinstance(direction, str) else len(direction)
    return ["value"] if count == 1 else [f"value {i}" for i in range(count)]


def _custom_search_space(path: Optional[str]):
    """`custom_search_space`: the user's function (module.function), or None. Like a `_target_` of
    a config one trains with, it is code the user chose for this command."""
    if not path:
        return None
    try:
        return get_method(path)
    except Exception as error:  # Hydra's ImportError or ValueError for a path it cannot follow
        raise ConfigError(
            f"hydra.sweeper.custom_search_space={path} cannot be imported ({first_line(error)}): give "
            "module.function, with the module on the Python path"
        ) from None


def _directions(direction, names: list[str]) -> list[str]:
    directions = [direction] if isinstance(direction, str) else list(direction)
    for d in directions:
        if d not in ("minimize", "maximize"):
            raise ConfigError(f"hydra.sweeper.direction={d}: give minimize or maximize")
    if len(directions) != len(names):
        raise ConfigError(
            f"hydra.sweeper.direction={directions} gives {len(directions)} direction(s) for "
            f"{len(names)} objective(s) ({', '.join(names)}): give one each"
        )
    return directions


def _values(returned, count: int) -> Optional[list[float]]:
    """The objective's value(s) as Optuna takes them, or None for something that is not."""
    values = list(returned) if isinstance(returned, (list, tuple)) else [returned]
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return values if len(values) == count and all(math.isfinite(v) for v in values) else None


def _result(job: Future) -> JobReturn:
    """A job's JobReturn; a launcher's own error becomes a failed job, not a dead search."""
    try:
        return job.result()
    except Exception as error:
        return JobReturn(status=JobStatus.FAILED, _return_value=error)
