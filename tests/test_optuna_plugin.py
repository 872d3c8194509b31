"""hydra/sweeper=optuna in any Hydra app, as hydra-optuna-sweeper's own tests use it.

The cases of that plugin's test suite that go through its public interface (facebookresearch/
hydra, plugins/hydra_optuna_sweeper/tests/), run against our sweeper, on small apps of our own
that play its example apps (tests/optuna_apps/). Where we differ on purpose, the case says so:
`range(a, b)` is half-open, as in Hydra's basic sweeper (README: Search).
"""

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from mnist_hydra.search.space import search_space

APPS = Path(__file__).parent / "optuna_apps"


def run_app(app: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python tests/optuna_apps/<app>.py --multirun <overrides>`, as a user of that app runs it."""
    return subprocess.run(
        [sys.executable, str(APPS / f"{app}.py"), "--multirun", *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def results(sweep: Path):
    return OmegaConf.load(sweep / "optimization_results.yaml")


@pytest.mark.slow
def test_hydras_plugin_scan_finds_the_sweeper_without_our_app(tmp_path):
    """Not imported by mnist-hydra's code (which registers it): found by the scan of hydra_plugins."""
    code = (
        "from hydra.core.plugins import Plugins\nfrom hydra.plugins.sweeper import Sweeper\n"
        "print(sorted(f'{c.__module__}.{c.__name__}' for c in Plugins.instance().discover(Sweeper)))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert "hydra_plugins.mnist_hydra_launchers.optuna_sweeper.OptunaSweeper" in found.stdout, found.stderr


@pytest.mark.parametrize(
    "written,expected",
    [
        ("choice(1,2)", CategoricalDistribution([1, 2])),
        ("choice(true, false)", CategoricalDistribution([True, False])),
        ("choice('hello', 'world')", CategoricalDistribution(["hello", "world"])),
        ("shuffle(range(1,3))", CategoricalDistribution((1, 2))),
        ("range(1,3)", IntDistribution(1, 2)),  # differs on purpose: the plugin's is 1 to 3
        ("interval(1, 5)", FloatDistribution(1, 5)),
        ("int(interval(1, 5))", IntDistribution(1, 5)),
        ("tag(log, interval(1, 5))", FloatDistribution(1, 5, log=True)),
        ("tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True)),
        ("range(0.5, 5.5, step=1)", FloatDistribution(0.5, 4.5, step=1)),  # differs on purpose: to 5.5
    ],
)
def test_each_override_becomes_the_plugins_distribution(written, expected):
    (swept,) = search_space([f"key={written}"])[0].values()
    if isinstance(expected, CategoricalDistribution):  # shuffle() orders the choices at random
        assert isinstance(swept, CategoricalDistribution) and set(swept.choices) == set(expected.choices)
    else:
        assert swept == expected


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["key=choice(1,2)"], ({"key": CategoricalDistribution([1, 2])}, {}, [])),
        (["key=5"], ({}, {"key": "5"}, [])),
        (["key1=choice(1,2)", "key2=5"], ({"key1": CategoricalDistribution([1, 2])}, {"key2": "5"}, [])),
        (
            ["key1=choice(1,2)", "key2=5", "key3=range(1,3)"],
            ({"key1": CategoricalDistribution([1, 2]), "key3": IntDistribution(1, 2)}, {"key2": "5"}, []),
        ),
        (["~z"], ({}, {}, ["~z"])),
        (["~z=10"], ({}, {}, ["~z=10"])),
    ],
)
def test_overrides_split_into_the_space_the_fixed_values_and_the_deletions(overrides, expected):
    assert search_space(overrides) == expected


def test_an_app_of_hydras_own_tests_is_searched(hydra_sweep_runner):
    """hydra.test_utils.a_module: an app whose task returns 100 and has no `objective`."""
    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        config_path="configs",
        config_name="compose.yaml",
        task_function=None,
        overrides=[
            "hydra/sweeper=optuna",
            "hydra/launcher=basic",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.n_jobs=3",
        ],
    )
    with sweep:
        assert sweep.returns is None
        assert results(Path(sweep.temp_dir)).trials.complete == 8


@pytest.mark.slow
@pytest.mark.parametrize("with_commandline", [True, False])
def test_the_sphere_example_finds_its_minimum(tmp_path, with_commandline):
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    command = [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=test-optuna-example",
        "hydra/sweeper/sampler=tpe",
        "hydra.sweeper.sampler.seed=123",
        "~z",
    ]
    if with_commandline:
        command += ["x=choice(0, 1, 2)", "y=0"]  # y: a fixed parameter
    result = run_app("sphere", *command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    returns = results(tmp_path / "sweep")
    best = optuna.load_study(storage=storage, study_name="test-optuna-example").best_trial
    assert returns.name == "optuna" and returns.best_params.x == best.params["x"]
    if with_commandline:
        assert "y" not in returns.best_params and "y" not in best.params
    else:
        assert returns.best_params.y == best.params["y"]
    assert returns.best_value == best.value
    assert returns.best_value <= 2.27  # the plugin's bound: the 95th percentile over 1,000 seeds


@pytest.mark.slow
@pytest.mark.parametrize("n_trials", [10, 1])
def test_the_grid_sampler_walks_the_space(tmp_path, n_trials):
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    result = run_app(
        "sphere",
        "--config-name=grid",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.sweeper.n_trials={n_trials}",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=test-grid-sampler",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    best = results(tmp_path / "sweep").best_params
    assert best.x in (-1, 1) and best.y in (-1, 0) and best.z in ("foo", "bar")
    assert len(optuna.load_study(storage=storage, study_name="test-grid-sampler").trials) == min(n_trials, 8)


def dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


@pytest.mark.slow
@pytest.mark.parametrize("with_commandline", [True, False])
def test_a_search_of_two_objectives_keeps_its_pareto_front(tmp_path, with_commandline):
    command = [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=20",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
    ]
    if with_commandline:
        command += ["x=range(0, 5)", "y=range(0, 3)"]
    result = run_app("multi_objective", *command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    solutions = results(tmp_path / "sweep").solutions
    steps = {0} if with_commandline else {0, 0.5}
    for one in solutions:
        assert one.params.x % 1 in steps and one.params.y % 1 in steps
        assert not any(dominates(other["values"], one["values"]) for other in solutions)
    assert (tmp_path / "sweep" / "pareto_front.png").is_file()


@pytest.mark.slow
def test_a_custom_search_space_adds_parameters_that_depend_on_others(tmp_path):
    result = run_app(
        "custom_space",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.job.chdir=True",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        "max_z_difference_from_x=0.3",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    best = results(tmp_path / "sweep").best_params
    assert abs(best.x - best.z) <= 0.3 and 0 <= best["+w"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("max_failure_rate", [0.5, 1.0])
def test_failed_trials_end_the_search_past_max_failure_rate(tmp_path, max_failure_rate):
    result = run_app(
        "sphere",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        f"hydra.sweeper.max_failure_rate={max_failure_rate}",
        "error=true",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    if max_failure_rate < 1.0:  # the search stops, naming the first failure
        assert "RuntimeError: cfg.error is True" in result.stderr
    else:  # every trial failed and was logged; the search says none completed
        assert "RuntimeError: cfg.error is True" not in result.stderr
        assert "No trial of the search completed (0 pruned, 20 failed)" in result.stdout


@pytest.mark.slow
def test_a_sampler_we_do_not_have_is_refused_naming_those_we_do(tmp_path):
    """The plugin's `motpe` (removed in Optuna 4): differs on purpose, Hydra's own one-line refusal."""
    result = run_app("multi_objective", "hydra/sweeper/sampler=motpe", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'hydra/sweeper/sampler/motpe'" in result.stderr
    assert "cmaes" in result.stderr and "nsgaii" in result.stderr and "tpe" in result.stderr
