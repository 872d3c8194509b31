"""Shared fixtures: the real configs composed with Hydra's compose API, and CLI runs.

A test that starts a process is slow (`make test-fast` leaves it out): it asks for the `cli`
fixture (or `trained_run`, `server`, which start one), or carries @pytest.mark.slow. Any
other test that starts a process fails, so none is filed in the wrong set.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import mnist_hydra.train  # noqa: F401  (registers the schemas, resolvers and launchers)
from mnist_hydra.building import build

# The smallest data that still trains (conf/debug/smoke.yaml: 300 images, one epoch, no tracker).
SMOKE = ["debug=smoke"]
WARM_PYTHON = Path(__file__).parent / "warm_python.py"
# The warm Python starts with the worker's environment as the suite found it (a test's
# monkeypatched variables are its own).
ENVIRONMENT_AT_START = dict(os.environ)
_warm_servers: list = []


def compose_train(overrides=()) -> DictConfig:
    """The task's config as a run would see it: `${hydra:...}` resolves, the hydra node is gone."""
    with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def warm_server() -> str:
    """The socket of this worker's warm Python (tests/warm_python.py), started on first use."""
    if not _warm_servers:
        folder = Path(tempfile.mkdtemp(prefix="warm-python-"))  # 0700: this user's clients only
        socket_path = folder / "socket"
        with open(folder / "server.log", "w") as log:
            server = subprocess.Popen(
                [sys.executable, str(WARM_PYTHON), "serve", str(socket_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=ENVIRONMENT_AT_START,
            )
        # A server that never listens costs speed, not correctness: its clients run fresh.
        deadline = time.monotonic() + 120
        while not socket_path.exists() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        _warm_servers.append((server, folder))
    return str(_warm_servers[0][1] / "socket")


def pytest_sessionfinish():
    for server, folder in _warm_servers:
        server.kill()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def python_command(module: str, *args: str, fresh: bool = False) -> list[str]:
    """`python -m module args`. Unless `fresh`, it starts as a fork of this worker's warm Python,
    which loaded TensorFlow once (tests/warm_python.py: what differs, and what it refuses)."""
    if fresh:
        return [sys.executable, "-m", module, *args]
    return [sys.executable, str(WARM_PYTHON), warm_server(), module, *args]


def run_cli(
    module: str, *args: str, cwd: Path, env: dict | None = None, fresh: bool = False
) -> subprocess.CompletedProcess:
    """Run `python -m module args` as a user would, from `cwd` (`fresh`: python_command)."""
    return subprocess.run(
        python_command(module, *args, fresh=fresh),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HYDRA_FULL_ERROR": "", **(env or {})},
    )


def hold_at(point: str, folder: Path, job: str | None = None) -> dict:
    """The environment that holds a run (or only job `job` of a sweep) at `point`, until the test
    signals it or calls release(folder) (mnist_hydra/faults.py): a test acts at that point, never
    after a poll that a fast run could outpace."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    job_only = {"MNIST_HYDRA_TEST_HOLD_JOB": job} if job is not None else {}
    return {"MNIST_HYDRA_TEST_HOLD_AT": point, "MNIST_HYDRA_TEST_HOLD_DIR": str(folder), **job_only}


def wait_until_held(folder: Path, process: subprocess.Popen, job: str = "run", seconds: float = 600) -> int:
    """Until `process`'s run (or its sweep's job `job`) is held at its point; the held process's pid.
    Fails, saying what it waited for and what the process printed, if the process ends first."""
    marker, deadline = Path(folder) / f"held-{job}", time.monotonic() + seconds
    while not marker.exists():
        if process.poll() is not None:
            output = process.communicate(timeout=60)[0] or ""
            ended = f"the process ended (exit {process.returncode}) before {marker.name}"
            raise AssertionError(f"{ended}:\n{output[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker.name} within {seconds:.0f} s: the run never reached its hold")
        time.sleep(0.05)
    return int(marker.read_text())


def release(folder: Path) -> None:
    """Let every process held in `folder` go on."""
    (Path(folder) / "release").touch()


def metrics_of(run: Path) -> dict:
    return json.loads((Path(run) / "metrics.json").read_text())


def load_dataset(dataset_cfg: DictConfig):
    """(train, test) of a `dataset` config, built as the task builds it."""
    return build("dataset", dataset_cfg).load()


@pytest.fixture
def compose_cfg():
    return compose_train


@pytest.fixture
def cli():
    """run_cli, for a test that runs the command line (which marks it slow)."""
    return run_cli


def command_metrics(
    command: str, folder: Path, *overrides: str, env: dict | None = None, fresh: bool = False
) -> dict:
    """`python -m mnist_hydra.<command> <overrides>` into `folder`, as a user would run it; it
    must succeed; the metrics.json it wrote."""
    result = run_cli(
        f"mnist_hydra.{command}",
        *overrides,
        f"hydra.run.dir={folder}",
        cwd=Path(folder).parent,
        env=env,
        fresh=fresh,
    )
    assert result.returncode == 0, result.stderr
    return metrics_of(folder)


@pytest.fixture
def train_run(cli):
    """Train into a run folder: train_run(folder, *overrides) -> its metrics."""
    return lambda folder, *overrides, env=None, fresh=False: command_metrics(
        "train", folder, *overrides, env=env, fresh=fresh
    )


@pytest.fixture
def evaluate_run(cli):
    """Evaluate into a folder: evaluate_run(folder, f"ckpt_path={run}", ...) -> its metrics."""
    return lambda folder, *overrides, env=None, fresh=False: command_metrics(
        "evaluate", folder, *overrides, env=env, fresh=fresh
    )


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder that `make(folder)` fills once for the whole suite, whichever of pytest-xdist's
    workers asks first (the others wait for it), then copied into this worker's own temporary
    folder: each worker may change its copy. It lives in this session's temporary folder, so no
    session reuses another's."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the session's, for all workers
    made = shared / f"made-once-{name}"
    with FileLock(shared / f"made-once-{name}.lock"):
        if not (made / ".made").exists():
            shutil.rmtree(made, ignore_errors=True)
            make(made / "folder")
            (made / ".made").touch()
    copy = tmp_path_factory.mktemp(name) / "folder"
    shutil.copytree(made / "folder", copy, symlinks=True)
    return copy


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A run folder with a model good enough to read digits (about 90% on 2,000 images), trained
    once for the suite; each worker has a copy of its own."""

    def train(folder: Path) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
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

    return made_once(tmp_path_factory, "trained_run", train)


SLOW_FIXTURES = {"cli", "trained_run", "server"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _environment_as_it_was():
    """Each test ends with the worker's environment as it found it: a library a test imports may
    set variables for good (tf2onnx sets TF_CPP_MIN_LOG_LEVEL=3 as it loads), and every later
    command a test starts would inherit them."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture(autouse=True)
def _processes_only_in_slow_tests(request, monkeypatch):
    """Outside slow tests, starting Python (a command of ours, a server, a job) fails the test.
    (Other processes pass: the standard library itself runs `uname` for platform.processor().)"""
    if request.node.get_closest_marker("slow") is not None:
        return
    start = subprocess.Popen._execute_child

    def refuse_python(self, args, *rest, **keywords):
        program = str(args[0] if isinstance(args, (list, tuple)) else args)
        if Path(program).name.startswith(("python", "mnist-hydra")) or program == sys.executable:
            raise AssertionError("this test starts a process: ask for the cli fixture, or mark it slow")
        return start(self, args, *rest, **keywords)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse_python)
