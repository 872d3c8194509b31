"""hparams_search=optuna: our sweeper (hydra/sweeper=optuna) on a current Optuna.

In this process: the search space of every syntax, each sampler and pruner, the storages, the
ask/tell loop with a stand-in launcher (pruned, failed, batches or none). With the command line:
a pruned trial, a failing one, trials under joblib, and a killed search continued.
"""

import collections
import gzip
import os
import platform
import re
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from conftest import SMOKE, hold_at, metrics_of, wait_until_held
from hydra import compose, initialize_config_module
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from test_sweeps import LOOPBACK_RAY, read_summary, sweep_started

import mnist_hydra.train  # noqa: F401  (registers our schemas, sweeper and resolvers)
from hydra_plugins.mnist_hydra_launchers._search import Search
from mnist_hydra.errors import ConfigError, JobPruned, MnistHydraError
from mnist_hydra.reporting.sweep_summary import ranked
from mnist_hydra.search.job import TrialAddress
from mnist_hydra.search.space import grid, search_space
from mnist_hydra.search.study import Heartbeat, abandoned_trials, optuna_object, storage_for

DATA = Path(__file__).parent / "data"


def search_config(tmp_path: Path, *overrides: str):
    with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
        return compose(
            "train",
            overrides=["hparams_search=optuna", f"hydra.sweep.dir={tmp_path}", *overrides],
            return_hydra_config=True,
        )


def journal_study(sweep_dir: Path, name: str = "mnist-hydra") -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


# --- the search space: hydra-optuna-sweeper's syntax ---------------------------------------


@pytest.mark.parametrize(
    "written,expected",
    [
        ("choice(16, 32, 64)", CategoricalDistribution([16, 32, 64])),
        ("16,32,64", CategoricalDistribution([16, 32, 64])),
        ("choice(adam, sgd)", CategoricalDistribution(["adam", "sgd"])),
        # Half-open, as Python and Hydra's own sweeper count (hydra-optuna-sweeper included 4).
        ("range(1, 4)", IntDistribution(1, 3)),
        ("range(0, 10, 3)", IntDistribution(0, 9, step=3)),
        ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
        ("interval(0.0, 0.6)", FloatDistribution(0.0, 0.6)),
        ("interval(1, 4)", FloatDistribution(1.0, 4.0)),  # Hydra reads an interval's ends as floats
        ("tag(log, interval(1e-4, 1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
        ("tag(int, interval(8, 256))", IntDistribution(8, 256)),
        ("tag(int, log, interval(8, 256))", IntDistribution(8, 256, log=True)),
        ("int(interval(1, 5))", IntDistribution(1, 5)),  # Hydra's cast, as hydra-optuna-sweeper reads it
        ("tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True)),
    ],
)
def test_each_sweep_syntax_becomes_its_distribution(written, expected):
    swept, fixed, _ = search_space([f"x={written}"])
    assert swept == {"x": expected} and fixed == {}


def test_a_shuffled_range_is_a_choice_and_plain_values_are_fixed():
    swept, fixed, _ = search_space(["a=shuffle(range(1,4))", "b=0.3", "c=adam"])
    assert set(swept["a"].choices) == {1, 2, 3}
    assert fixed == {"b": "0.3", "c": "adam"}


def test_a_value_on_the_command_line_wins_over_the_presets_range():
    swept, fixed, _ = search_space(["model.dropout=interval(0.0, 0.6)", "model.dropout=0.25"])
    assert swept == {} and fixed == {"model.dropout": "0.25"}


@pytest.mark.parametrize("written", ["range(4, 1)", "range(1, 4, -1)"])
def test_an_empty_range_is_refused_in_one_line(written):
    with pytest.raises(ConfigError, match=r"x: range\(.*\) holds no value"):
        search_space([f"x={written}"])


def test_the_grid_sampler_takes_every_value_and_refuses_intervals():
    swept, _, _ = search_space(["a=choice(1,2)", "b=range(0,6,2)"])
    assert grid(swept) == {"a": [1, 2], "b": [0, 2, 4]}
    with pytest.raises(ConfigError, match="sampler=grid needs a finite set of values for c"):
        grid(search_space(["c=interval(0,1)"])[0])


# --- samplers, pruners and storages ---------------------------------------------------------

SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "nsgaii": "NSGAIISampler",
}
PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "cost_aware_halving": "CostAwareHalvingPruner",
    "threshold": "ThresholdPruner",
    "none": "NopPruner",
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_of_the_group_builds_with_its_seed(name, tmp_path):
    cfg = search_config(tmp_path, f"hydra/sweeper/sampler={name}", "seed=3")
    assert cfg.hydra.sweeper.sampler.seed == 3  # the preset seeds every sampler
    assert type(optuna_object("sampler", cfg.hydra.sweeper.sampler)).__name__ == SAMPLERS[name]


@pytest.mark.parametrize("name", PRUNERS)
def test_each_pruner_of_the_group_builds_from_its_own_arguments(name, tmp_path):
    bound = ["hydra.sweeper.pruner.lower=0.5"] if name == "threshold" else []  # it has no default
    cfg = search_config(tmp_path, f"hydra/sweeper/pruner={name}", "trainer.epochs=9", *bound)
    pruner = optuna_object("pruner", cfg.hydra.sweeper.pruner)
    assert type(pruner).__name__ == PRUNERS[name]
    if name == "hyperband":  # the epochs of a trial never stopped: known once the first one ends
        assert cfg.hydra.sweeper.pruner.max_resource == "auto"


def test_a_pruners_argument_is_a_plain_override(tmp_path):
    cfg = search_config(tmp_path, "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=0.9")
    assert optuna_object("pruner", cfg.hydra.sweeper.pruner)._lower == 0.9


def test_the_presets_pruner_is_the_cost_aware_one_and_the_direction_follows_the_objective(tmp_path):
    cfg = search_config(tmp_path)
    assert cfg.hydra.sweeper.pruner._target_ == "mnist_hydra.search.pruners.CostAwareHalvingPruner"
    assert Search(cfg, None).directions == ["maximize"]  # val_accuracy


@pytest.mark.parametrize(
    "objective,direction", [("val_accuracy", "maximize"), ("val_loss", "minimize"), ("test_loss", "minimize")]
)
def test_the_search_direction_follows_the_objective(objective, direction, tmp_path):
    assert Search(search_config(tmp_path, f"objective={objective}"), None).directions == [direction]


@pytest.mark.parametrize(
    "role,target",
    [
        ("pruner", "os.system"),
        # Under Optuna's packages, yet not a sampler or pruner: what their modules import.
        ("pruner", "optuna.pruners._percentile.np.memmap"),
        ("sampler", "optuna.samplers._cmaes.pickle.Unpickler"),
        ("sampler", "optuna.samplers.BaseSampler"),  # the abstract base itself
    ],
)
def test_only_optunas_own_samplers_and_pruners_are_built(role, target, tmp_path):
    node = OmegaConf.create({"_target_": target, "filename": str(tmp_path / "written"), "shape": [1 << 30]})
    with pytest.raises(ConfigError, match=rf"_target_={re.escape(target)} is not one of Optuna's {role}s"):
        optuna_object(role, node)
    assert not (tmp_path / "written").exists()


def test_optunas_samplers_and_pruners_are_built_by_public_and_module_name():
    assert (
        type(optuna_object("pruner", {"_target_": "optuna.pruners.MedianPruner"}))
        is optuna.pruners.MedianPruner
    )
    assert type(optuna_object("sampler", {"_target_": "optuna.samplers._tpe.sampler.TPESampler"})) is (
        optuna.samplers.TPESampler
    )


def test_a_study_of_optuna_2_names_the_upgrade_command(tmp_path):
    database = tmp_path / "old.db"
    database.write_bytes(gzip.decompress((DATA / "optuna-2.10.db.gz").read_bytes()))
    url = f"sqlite:///{database}"
    with pytest.raises(ConfigError) as refused:
        storage_for(url, tmp_path)
    assert f"optuna storage upgrade --storage {url}" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_an_unreadable_storage_url_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="hydra.sweeper.storage=nosuchdb://x cannot be opened"):
        storage_for("nosuchdb://x", tmp_path)


def test_without_a_storage_the_study_is_a_journal_in_the_sweep_folder(tmp_path):
    storage = storage_for(None, tmp_path / "sweep")
    optuna.create_study(study_name="s", storage=storage)
    assert (tmp_path / "sweep" / "optuna.journal").is_file()


def test_a_trial_is_abandoned_when_its_heartbeat_is_old_whatever_its_host_and_pid(tmp_path):
    study = optuna.create_study(storage=storage_for(None, tmp_path))
    live, gone, old_sweeps = study.ask(), study.ask(), study.ask()
    now = time.time()
    live.set_user_attr("heartbeat", now - 10)
    # What the old host-and-pid check took for dead: a pid that no process here has (another
    # container's PID namespace). Its heartbeat is fresh: it is alive.
    live.set_user_attr("sweep_host", platform.node())
    live.set_user_attr("sweep_pid", 2**22 + 1)
    gone.set_user_attr("heartbeat", now - 121)
    assert [t.number for t in abandoned_trials(study, after=120, now=now)] == [gone.number]
    # A trial of a sweep from before heartbeats: its start is its last sign of life.
    assert old_sweeps.number in [t.number for t in abandoned_trials(study, after=120, now=now + 3600)]


def test_the_heartbeat_beats_for_each_running_trial_until_it_is_told(tmp_path):
    study = optuna.create_study(storage=storage_for(None, tmp_path))
    trial = study.ask()
    with Heartbeat(after=0.4) as heartbeat:  # a beat every 0.1 s
        heartbeat.add(trial)
        first = study.trials[0].user_attrs["heartbeat"]
        deadline = time.monotonic() + 60
        while study.trials[0].user_attrs["heartbeat"] == first:
            assert time.monotonic() < deadline, "no second heartbeat within 60 s"
            time.sleep(0.05)
        study.tell(trial, 1.0)
        deadline = time.monotonic() + 60
        while heartbeat.trials:  # a told trial cannot be updated: the thread drops it
            assert time.monotonic() < deadline, "the told trial was never dropped"
            time.sleep(0.05)
    assert study.trials[0].state is TrialState.COMPLETE


# --- the search, with a stand-in launcher --------------------------------------------------


class StandInLauncher:
    """Runs no process: a job's outcome comes from its trial number. `waits`: trial -> the trial
    whose start it waits for before it ends (at most a minute), so that an order of events is
    forced, never left to the clock."""

    def __init__(self, outcomes: dict, waits: dict | None = None):
        self.outcomes, self.waits = outcomes, waits or {}
        self.started, self.ended, self.launches = {}, {}, []
        self.starts = collections.defaultdict(threading.Event)

    def launch(self, job_overrides, initial_job_idx):
        self.launches.append(len(job_overrides))
        threads = [threading.Thread(target=self._job, args=(o,)) for o in job_overrides]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [self.results.pop(self._trial(o)) for o in job_overrides]

    def _trial(self, overrides) -> int:
        return int(next(o for o in overrides if o.startswith("hydra.sweeper.trial=")).split("=")[1])

    def _job(self, overrides) -> JobReturn:
        trial = self._trial(overrides)
        self.started[trial] = time.monotonic()
        self.starts[trial].set()
        if trial in self.waits:
            self.starts[self.waits[trial]].wait(timeout=60)
        outcome = self.outcomes.get(trial, 0.5)
        self.ended[trial] = time.monotonic()
        if isinstance(outcome, Exception):
            job = JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=outcome)
        else:
            job = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=outcome)
        self.results = getattr(self, "results", {})
        self.results[trial] = job
        return job


class OneByOneLauncher(StandInLauncher):
    """Like hydra/launcher=joblib: a job may start whenever the sweeper asks."""

    @contextmanager
    def jobs_one_by_one(self):
        yield threading.Event()

    def run_job(self, idx, overrides):
        return self._job(overrides)


def test_a_pruned_trial_is_told_pruned_and_is_not_a_failure(tmp_path):
    cfg = search_config(tmp_path, "hydra.sweeper.n_trials=3", "hydra.sweeper.max_failure_rate=0.0")
    launcher = StandInLauncher({1: JobPruned(2, "val_accuracy", 0.4)})
    Search(cfg, launcher).run([])
    study = journal_study(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert (tmp_path / "optimization_results.yaml").is_file()
    assert OmegaConf.load(tmp_path / "optimization_results.yaml").trials.pruned == 1


def test_failures_beyond_max_failure_rate_stop_the_search_in_one_line(tmp_path):
    cfg = search_config(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.max_failure_rate=0.0")
    launcher = StandInLauncher({0: ValueError("diverged")})
    with pytest.raises(MnistHydraError, match=r"1 of 1 trials failed, .*max_failure_rate=0.0.*diverged"):
        Search(cfg, launcher).run([])
    assert len(journal_study(tmp_path).trials) == 1  # no trial asked after it


def test_a_value_that_is_not_a_number_fails_its_trial(tmp_path):
    cfg = search_config(tmp_path, "hydra.sweeper.n_trials=2")
    Search(cfg, StandInLauncher({0: float("nan")})).run([])
    assert [t.state for t in journal_study(tmp_path).trials] == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_search_in_which_no_trial_completed_says_so_in_one_line(tmp_path, caplog):
    cfg = search_config(tmp_path, "hydra.sweeper.n_trials=2")
    launcher = StandInLauncher({0: JobPruned(1, "val_accuracy", 0.1), 1: JobPruned(1, "val_accuracy", 0.2)})
    with pytest.raises(SystemExit) as ended:
        Search(cfg, launcher).run([])
    assert ended.value.code == 1
    assert "No trial of the search completed (2 pruned, 0 failed)" in caplog.text


def test_with_a_launcher_that_can_a_trial_starts_as_soon_as_another_ends(tmp_path):
    cfg = search_config(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2")
    launcher = OneByOneLauncher({}, waits={0: 3})  # trial 0 ends only once trial 3 has started
    Search(cfg, launcher).run([])
    # Trials 2 and 3 took the core that trial 1 freed, while trial 0 still ran: no barrier.
    assert launcher.started[2] < launcher.ended[0] and launcher.started[3] < launcher.ended[0]
    assert len(journal_study(tmp_path).trials) == 4


def test_a_launcher_that_runs_batches_runs_trials_in_batches_of_n_jobs(tmp_path):
    cfg = search_config(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2")
    launcher = StandInLauncher({})
    Search(cfg, launcher).run([])
    assert launcher.launches == [2, 2] and launcher.started[2] >= launcher.ended[0]


def test_parallel_tpe_counts_running_trials_as_poor_ones(tmp_path):
    for n_jobs, liar in ((1, False), (2, True)):
        cfg = search_config(
            tmp_path / str(n_jobs), "hydra.sweeper.n_trials=1", f"hydra.sweeper.n_jobs={n_jobs}"
        )
        search = Search(cfg, StandInLauncher({}))
        search.space, search.fixed, search.deletions = search_space(["x=interval(0,1)"])
        assert search._open_study().sampler._constant_liar is liar


@pytest.mark.parametrize(
    "direction,message",
    [("up", "hydra.sweeper.direction=up: give minimize or maximize"), ("[maximize,minimize]", "2 direction")],
)
def test_a_direction_that_does_not_fit_is_refused_in_one_line(tmp_path, direction, message):
    cfg = search_config(tmp_path, f"hydra.sweeper.direction={direction}")
    with pytest.raises(ConfigError, match=re.escape(message)):
        Search(cfg, StandInLauncher({})).run([])


def test_pruning_needs_one_validation_objective(tmp_path):
    with pytest.raises(ConfigError, match="objective=test_accuracy cannot be pruned"):
        Search(search_config(tmp_path, "objective=test_accuracy"), StandInLauncher({})).run([])
    with pytest.raises(ConfigError, match="prunes searches of one objective only"):
        several = search_config(tmp_path, "objective=[val_accuracy,val_loss]")
        Search(several, StandInLauncher({})).run([])
    # Without a pruner, both are searches like any other (a list is several objectives).
    cfg = search_config(
        tmp_path / "two",
        "objective=[val_accuracy,val_loss]",
        "hydra/sweeper/pruner=none",
        "hydra.sweeper.n_trials=2",
    )
    search = Search(cfg, StandInLauncher({0: [0.9, 0.3], 1: [0.8, 0.2]}))
    assert search.directions == ["maximize", "minimize"]
    search.run([])
    assert [t.values for t in journal_study(tmp_path / "two").trials] == [[0.9, 0.3], [0.8, 0.2]]
    assert (
        tmp_path / "two" / "pareto_front.png"
    ).stat().st_size > 10_000  # Optuna's plot of several objectives


def rung_study(costs_and_values):
    """A study whose finished trials reached epoch 1 with these (seconds per epoch, value) pairs."""
    study = optuna.create_study(direction="maximize")
    for cost, value in costs_and_values:
        trial = study.ask()
        if cost is not None:
            trial.set_user_attr("seconds_per_epoch", cost)
        trial.report(value, step=1)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return study


def test_the_cost_aware_pruner_asks_a_slow_trial_to_rank_higher_than_a_cheap_one():
    from mnist_hydra.search.pruners import CostAwareHalvingPruner

    pruner = CostAwareHalvingPruner(min_resource=1, reduction_factor=3)
    # Five trials at the rung, 2 s an epoch each; a sixth arrives second best of six.
    for own_cost, pruned in ((2.0, False), (6.0, True), (None, False)):
        study = rung_study([(2.0, v) for v in (0.90, 0.80, 0.70, 0.60, 0.95)])
        trial = study.ask()
        if own_cost is not None:
            trial.set_user_attr("seconds_per_epoch", own_cost)
        trial.report(0.91, step=1)
        frozen = study._storage.get_trial(trial._trial_id)
        # Cheap (or of unknown cost): the best third of six, two, go on. Three times the median
        # cost: only the best sixth, one, and it is not that.
        assert pruner.prune(study, frozen) is pruned, own_cost
    # The best at the rung always goes on, however slow.
    study = rung_study([(2.0, 0.5)] * 5)
    trial = study.ask()
    trial.set_user_attr("seconds_per_epoch", 100.0)
    trial.report(0.99, step=1)
    assert not pruner.prune(study, study._storage.get_trial(trial._trial_id))


def test_the_cost_aware_pruner_looks_only_at_its_rungs_and_refuses_bad_arguments():
    from mnist_hydra.search.pruners import CostAwareHalvingPruner

    assert [s for s in range(1, 30) if CostAwareHalvingPruner(1, 3).is_rung(s)] == [1, 3, 9, 27]
    assert [s for s in range(1, 30) if CostAwareHalvingPruner(2, 4).is_rung(s)] == [2, 8]
    with pytest.raises(ValueError, match="reduction_factor=1"):
        CostAwareHalvingPruner(1, 1)
    with pytest.raises(ValueError, match="min_resource=0"):
        CostAwareHalvingPruner(0, 3)


def test_a_bad_argument_of_the_cost_aware_pruner_is_refused_in_one_line(tmp_path):
    cfg = search_config(tmp_path, "hydra.sweeper.pruner.reduction_factor=1")  # the preset's pruner
    with pytest.raises(ConfigError) as refused:
        optuna_object("pruner", cfg.hydra.sweeper.pruner)
    assert str(refused.value) == (
        "hydra.sweeper.pruner (mnist_hydra.search.pruners.CostAwareHalvingPruner) cannot be built: "
        "reduction_factor=1: an int, 2 or more"
    )


# --- the job's side: reporting each epoch ---------------------------------------------------


class Model:
    stop_training = False


def test_a_trial_reports_every_epoch_and_stops_when_its_pruner_says(tmp_path):
    from mnist_hydra.training.pruning import TrialReporter

    study = optuna.create_study(study_name="s", storage=storage_for(None, tmp_path), direction="maximize")
    study.ask()
    pruner = OmegaConf.create({"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5})
    reporter = TrialReporter(TrialAddress(0, "s", None, tmp_path, pruner, 1), "val_accuracy")
    model = Model()
    reporter.set_model(model)
    reporter.on_epoch_end(0, {"val_accuracy": 0.7})
    assert not model.stop_training and reporter.stopped is None
    reporter.on_epoch_end(1, {"val_accuracy": 0.3})
    assert model.stop_training and reporter.stopped == (2, 0.3)
    assert journal_study(tmp_path, "s").trials[0].intermediate_values == {1: 0.7, 2: 0.3}


def test_a_trial_is_never_pruned_after_its_last_epoch(tmp_path):
    """Its training is spent by then: it completes, and the search keeps its value."""
    from mnist_hydra.training.pruning import TrialReporter

    study = optuna.create_study(study_name="s", storage=storage_for(None, tmp_path), direction="maximize")
    study.ask()
    pruner = OmegaConf.create({"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5})
    reporter = TrialReporter(TrialAddress(0, "s", None, tmp_path, pruner, 1), "val_accuracy")
    reporter.set_params({"epochs": 2, "steps": 10})
    model = Model()
    reporter.set_model(model)
    reporter.on_epoch_end(0, {"val_accuracy": 0.7})
    reporter.on_epoch_end(1, {"val_accuracy": 0.3})  # below the threshold, but the last epoch
    assert not model.stop_training and reporter.stopped is None
    assert journal_study(tmp_path, "s").trials[0].intermediate_values == {1: 0.7, 2: 0.3}


def test_a_trial_reports_its_seconds_per_epoch_for_a_pruner_that_weighs_cost(tmp_path):
    from mnist_hydra.training.pruning import TrialReporter

    study = optuna.create_study(study_name="s", storage=storage_for(None, tmp_path), direction="maximize")
    study.ask()
    pruner = OmegaConf.create({"_target_": "mnist_hydra.search.pruners.CostAwareHalvingPruner"})
    reporter = TrialReporter(TrialAddress(0, "s", None, tmp_path, pruner, 1), "val_accuracy")
    reporter.set_model(Model())
    for epoch in range(2):
        reporter.on_epoch_begin(epoch)
        time.sleep(0.05)
        reporter.on_epoch_end(epoch, {"val_accuracy": 0.7})
    seconds = journal_study(tmp_path, "s").trials[0].user_attrs["seconds_per_epoch"]
    assert 0.05 <= seconds < 5.0


def test_the_summary_ranks_pruned_trials_after_the_completed_ones():
    rows = [
        {"job": "0", "status": "pruned", "val_accuracy": 0.99, "overrides": []},
        {"job": "1", "status": "ok", "val_accuracy": 0.5, "overrides": []},
        {"job": "2", "status": "failed", "overrides": []},
    ]
    assert [r["job"] for r in ranked(rows, "val_accuracy")] == ["1", "0", "2"]


# --- the command line -----------------------------------------------------------------------

SEARCH = ["-m", "hparams_search=optuna", *SMOKE]


def test_a_pruned_trial_keeps_its_model_runs_no_test_and_is_pruned_everywhere(cli, tmp_path):
    result = cli(
        "mnist_hydra.train",
        *SEARCH,
        "trainer.epochs=3",
        "hydra.sweeper.n_trials=2",
        "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.lower=1.01",  # no accuracy reaches it: every trial is pruned
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "No trial of the search completed (2 pruned, 0 failed)" in result.stderr + result.stdout
    record = metrics_of(tmp_path / "0")
    assert record["status"] == "pruned" and record["pruned"]["epoch"] == 1
    assert record["pruned"]["value"] == record["val_accuracy"] and "test_accuracy" not in record
    assert len(record["history"]["val_accuracy"]) == 1  # stopped at the end of that epoch
    assert (tmp_path / "0" / "model.keras").is_file() and (tmp_path / "0" / "learning_curves.png").is_file()
    assert not (tmp_path / "0" / "backup").exists()  # a requeued job does not resume it
    assert "| pruned |" in (tmp_path / "summary.md").read_text()
    trial = journal_study(tmp_path).trials[0]
    assert trial.state is TrialState.PRUNED and trial.value == pytest.approx(record["val_accuracy"])
    assert (tmp_path / "intermediate_values.png").is_file()


def test_a_trial_stopped_early_reports_the_epochs_it_trained_and_no_more(cli, tmp_path):
    """Early stopping and the pruner's reports agree on the epoch that ended the trial."""
    result = cli(
        "mnist_hydra.train",
        *SEARCH,
        "trainer.epochs=4",
        "hydra.sweeper.n_trials=1",
        "callbacks=[early_stopping]",
        "callbacks.early_stopping.monitor=val_accuracy",
        "callbacks.early_stopping.patience=0",
        "callbacks.early_stopping.min_delta=1.0",  # no epoch after the first is better enough: stop after 2
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    record = metrics_of(tmp_path / "0")
    assert record["status"] == "completed" and record["stopped_epoch"] == 2
    trial = journal_study(tmp_path).trials[0]
    assert trial.state is TrialState.COMPLETE and sorted(trial.intermediate_values) == [1, 2]
    assert trial.intermediate_values[2] == pytest.approx(record["history"]["val_accuracy"][-1])


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["objective=test_accuracy", "trainer.validation_split=0.0"],
            "objective=test_accuracy cannot be pruned",
        ),
        (["hydra/sweeper/pruner=none", "hydra.sweeper.storage=sqlite:///old.db"], "optuna storage upgrade"),
    ],
)
def test_a_search_that_cannot_start_says_why_in_one_line(cli, tmp_path, overrides, message):
    (tmp_path / "old.db").write_bytes(gzip.decompress((DATA / "optuna-2.10.db.gz").read_bytes()))
    result = cli("mnist_hydra.train", *SEARCH, *overrides, f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "s" / "0").exists()


def test_joblib_trials_start_as_others_end_and_share_the_journal(cli, tmp_path):
    # The study is the sweep folder's journal, written by the sweep and by each job's process.
    result = cli(
        "mnist_hydra.train",
        *SEARCH,
        "hydra/launcher=joblib",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "3 trials, 2 at once, each as soon as one ends" in result.stdout
    trials = journal_study(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(t.intermediate_values == {1: t.value} for t in trials)  # each job reported its epoch
    for name in ("optimization_history.png", "intermediate_values.png", "param_importances.png"):
        assert (tmp_path / name).is_file(), name


def test_optuna_search_survives_a_failing_trial_and_resumes_its_study(cli, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = [*SEARCH, f"hydra.sweeper.storage={storage}", "model.dropout=choice(0.3,1.5)"]
    # 1.5 is refused by the task: those trials fail
    first = cli(
        "mnist_hydra.train",
        *search,
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={tmp_path / 'first'}",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    rows = read_summary(tmp_path / "first")
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok", "failed"}
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["val_accuracy"] for r in ok), "the search needs validation numbers"
    assert "Ranked by val_accuracy" in (tmp_path / "first" / "summary.md").read_text()
    failed = [r for r in rows if r["status"] == "failed"]
    assert all(r["model.dropout"] == "1.5" and "model.dropout=1.5" in r["error"] for r in failed)

    again = cli(
        "mnist_hydra.train",
        *search,
        "hydra.sweeper.n_trials=1",
        f"hydra.sweep.dir={tmp_path / 'again'}",
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="mnist-hydra", storage=storage)
    states = [trial.state.name for trial in study.trials]
    assert len(states) == 4 and "FAIL" in states and "COMPLETE" in states
    # What each trial returned to Optuna is the job's validation accuracy, never its test accuracy.
    first_ok = min(ok, key=lambda r: int(r["job"]))
    assert study.trials[int(first_ok["job"])].value == pytest.approx(float(first_ok["val_accuracy"]))


@pytest.mark.slow
def test_a_killed_search_is_continued_and_its_abandoned_trial_does_not_block_it(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = ["hparams_search=optuna", "hydra/sweeper/pruner=none", f"hydra.sweeper.storage={storage}"]
    holds = tmp_path / "holds"
    sweep = sweep_started(
        tmp_path,
        *search,
        "trainer.epochs=2",
        f"hydra.sweep.dir={tmp_path / 'killed'}",
        env=hold_at("epoch", holds),
    )
    trial = wait_until_held(holds, sweep, job="0")  # trial 0, part-way
    os.kill(trial, signal.SIGKILL)  # the trial runs in the sweep's process: both die
    sweep.communicate(timeout=300)
    study = optuna.load_study(study_name="mnist-hydra", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]
    time.sleep(2.5)  # its heartbeat is now older than the 2 s the next sweep allows

    again = sweep_started(
        tmp_path,
        *search,
        "trainer.epochs=1",
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.abandoned_after=2",
        f"hydra.sweep.dir={tmp_path / 'again'}",
    )
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert (
        "Trial 0 was left running by a sweep that was killed (no heartbeat for 2 s): marked failed" in output
    )
    study = optuna.load_study(study_name="mnist-hydra", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    shutil.rmtree(tmp_path / "killed", ignore_errors=True)


@pytest.mark.parametrize(
    "launcher", ["submitit_local", pytest.param("ray", marks=pytest.mark.xdist_group("ray"))]
)
def test_trials_report_and_are_pruned_in_other_launchers_processes(cli, tmp_path, launcher):
    result = cli(
        "mnist_hydra.train",
        *SEARCH,
        f"hydra/launcher={launcher}",
        "trainer.epochs=2",
        "hydra.sweeper.n_trials=1",
        "hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.lower=1.01",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
        env=LOOPBACK_RAY if launcher == "ray" else None,
    )
    assert result.returncode == 1, result.stderr[-2000:]  # no trial completed: each was pruned
    assert metrics_of(tmp_path / "0")["status"] == "pruned"
    assert journal_study(tmp_path).trials[0].state is TrialState.PRUNED


@pytest.mark.parametrize(
    "sampler,space", [("grid", "model.dropout=0.3,0.5"), ("cmaes", "model.dropout=interval(0.2, 0.5)")]
)
def test_the_grid_and_cmaes_samplers_run_from_the_command_line(cli, tmp_path, sampler, space):
    """Hydra builds the sweeper from its config; the grid sampler needs the space first (our
    search builds it), and CMA-ES needs the cmaes package (a dependency)."""
    result = cli(
        "mnist_hydra.train",
        "-m",
        "hparams_search=optuna",
        f"hydra/sweeper/sampler={sampler}",
        "hydra/sweeper/pruner=none",
        "hydra.sweeper.params=null",
        space,
        "hydra.sweeper.n_trials=2",
        *SMOKE,
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    study = journal_study(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    if sampler == "grid":
        assert sorted(t.params["model.dropout"] for t in study.trials) == [0.3, 0.5]


def test_a_continued_study_proposes_new_points_the_same_for_the_same_seed(tmp_path):
    """The same command twice on a kept study: the second run explores, and does so reproducibly."""

    def proposals(folder: Path, runs: int) -> list:
        folder.mkdir()
        storage = f"sqlite:///{folder / 'optuna.db'}"
        for run in range(runs):
            (folder / str(run)).mkdir()  # each run's sweep folder, as Hydra makes it
            cfg = search_config(
                folder / str(run),
                "hydra/sweeper/sampler=random",
                f"hydra.sweeper.storage={storage}",
                "hydra.sweeper.n_trials=3",
            )
            Search(cfg, StandInLauncher({})).run([])
        return [t.params for t in optuna.load_study(study_name="mnist-hydra", storage=storage).trials]

    twice = proposals(tmp_path / "a", runs=2)
    assert twice[3:] != twice[:3]  # the second run's points are new
    assert proposals(tmp_path / "b", runs=2) == twice  # and the same for the same seed and study
