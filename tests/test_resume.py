"""A run killed at any moment resumes with each epoch once; a run folder belongs to one run:
a live run's folder, a completed run and a run of another config are refused, unchanged."""

import fcntl
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import hold_at, metrics_of, python_command, wait_until_held

# Three steps per epoch, three epochs: small, and still with a middle to be killed in.
ARGS = [
    "dataset.train_limit=300",
    "dataset.test_limit=100",
    "trainer.epochs=3",
    "trainer.batch_size=100",
    "tracker=csv",
]
KILL_AT = "MNIST_HYDRA_TEST_KILL_AT"


def run_folder(cwd: Path) -> Path:
    (folder,) = {path.parent for path in cwd.glob("outputs/*/*/.hydra")}
    return folder


def killed_run(cli, cwd: Path, point: str) -> Path:
    """A run that killed itself with SIGKILL at `point` (mnist_hydra.faults), and its folder."""
    result = cli("mnist_hydra.train", *ARGS, cwd=cwd, env={KILL_AT: point})
    assert result.returncode == -signal.SIGKILL, result.stderr
    return run_folder(cwd)


def files_of(folder: Path) -> dict:
    """Every file below `folder`, hidden ones too, with its bytes and modification time."""
    return {
        path.relative_to(folder).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    "point,epochs_kept",
    [
        ("batch@5", 1),  # in the middle of epoch 2
        ("write:epoch-2.weights.h5", 1),  # while the backup's weights are written
        ("write:state.json@2", 1),  # between the weights and the epoch count
        ("write:model.keras", 3),  # while the trained model is saved
        ("write:metrics.json@2", 3),  # while the final metrics.json is written
    ],
)
def test_a_kill_at_any_point_resumes_with_each_epoch_once(cli, tmp_path, point, epochs_kept):
    folder = killed_run(cli, tmp_path, point)
    before = json.loads((folder / "epochs.json").read_text())
    assert metrics_of(folder)["status"] == "running"
    assert (folder / "model.keras").exists() == (point == "write:metrics.json@2")  # saved just before

    result = cli("mnist_hydra.train", *ARGS, "resume=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert run_folder(tmp_path) == folder  # no new folder
    metrics = metrics_of(folder)
    assert metrics["status"] == "completed"
    assert len(metrics["history"]["loss"]) == len(metrics["epoch_seconds"]) == 3
    # The epochs the backup held were not run again: their records are the killed run's.
    assert metrics["epoch_seconds"][:epochs_kept] == [epoch["seconds"] for epoch in before[:epochs_kept]]
    assert f"Resumed from the backup of epoch {epochs_kept}" in result.stdout + result.stderr
    with open(folder / "history.csv") as file:
        assert [line.split(",")[0] for line in file.read().split()[1:]] == ["0", "1", "2"]
    assert not (folder / "backup").exists()
    assert not list(folder.glob(".*partial*")), "a killed writer's temporary file was left"


@pytest.mark.slow
def test_sigterm_is_recorded_as_interrupted(tmp_path):
    holds = tmp_path / "holds"
    run = subprocess.Popen(
        python_command("mnist_hydra.train", *ARGS),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **hold_at("epoch", holds)},  # after epoch 1's backup, of 3
    )
    wait_until_held(holds, run)
    run.send_signal(signal.SIGTERM)
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 130, output
    folder = run_folder(tmp_path)
    metrics = metrics_of(folder)
    assert metrics["status"] == "interrupted"
    assert "interrupted" in (folder / "train.log").read_text().lower()
    assert not (folder / "model.keras").exists()


def test_resume_without_an_unfinished_run_says_so(cli, tmp_path):
    result = cli("mnist_hydra.train", *ARGS, "resume=true", cwd=tmp_path)
    assert result.returncode == 1
    assert "resume=true: no unfinished run" in result.stderr and "Traceback" not in result.stderr


def test_a_live_runs_folder_is_refused_and_left_alone(cli, tmp_path):
    folder = killed_run(cli, tmp_path, "batch@5")
    with open(folder / ".lock", "a+") as lock:  # this test process plays the run still training
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.truncate(0)
        lock.write("host test-host, pid 4242\n")
        lock.flush()
        before = files_of(folder)
        for how in (["resume=true"], [f"hydra.run.dir={folder}"]):
            result = cli("mnist_hydra.train", *ARGS, *how, cwd=tmp_path)
            assert result.returncode == 1, how
            assert "still running (host test-host, pid 4242)" in result.stderr, how
            assert "Traceback" not in result.stderr
        assert files_of(folder) == before
    # The lock dies with its holder: then the same command resumes.
    result = cli("mnist_hydra.train", *ARGS, "resume=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_two_resumes_at_once_never_share_the_folder(cli, tmp_path):
    folder = killed_run(cli, tmp_path, "batch@5")
    command = python_command("mnist_hydra.train", *ARGS, "resume=true")
    runs = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = sorted((run.wait(timeout=300), run.stderr.read()) for run in runs)
    (finished, _), (refused, message) = outcomes
    assert (finished, refused) == (0, 1), message
    # Refused while the other held the folder, or after it had completed it.
    assert "still running" in message or "no unfinished run" in message, message
    metrics = metrics_of(folder)
    assert metrics["status"] == "completed" and len(metrics["history"]["loss"]) == 3


def test_a_completed_run_is_refused_and_left_byte_identical(cli, tmp_path):
    folder = tmp_path / "run"
    assert (
        cli(
            "mnist_hydra.train", *ARGS, "trainer.epochs=1", f"hydra.run.dir={folder}", cwd=tmp_path
        ).returncode
        == 0
    )
    before = files_of(folder)
    for how in ([], ["trainer.epochs=2"]):
        result = cli(
            "mnist_hydra.train", *ARGS, "trainer.epochs=1", *how, f"hydra.run.dir={folder}", cwd=tmp_path
        )
        assert result.returncode == 1
        assert "holds a completed run, which is never overwritten" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert files_of(folder) == before


def test_a_config_file_changed_since_the_kill_is_refused_naming_each_key(cli, tmp_path):
    user_conf = tmp_path / "my_conf" / "trainer"
    user_conf.mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "conf" / "trainer" / "default.yaml", user_conf / "mine.yaml")
    mine = ["--config-dir", str(tmp_path / "my_conf"), "trainer=mine"]
    result = cli("mnist_hydra.train", *mine, *ARGS, cwd=tmp_path, env={KILL_AT: "batch@5"})
    assert result.returncode == -signal.SIGKILL, result.stderr
    folder = run_folder(tmp_path)
    before = files_of(folder)

    text = (user_conf / "mine.yaml").read_text()
    (user_conf / "mine.yaml").write_text(
        text.replace("deterministic: true", "deterministic: false").replace("verbose: auto", "verbose: 2")
    )
    result = cli("mnist_hydra.train", *mine, *ARGS, "resume=true", cwd=tmp_path)
    assert result.returncode == 1
    assert "holds a run with another config" in result.stderr
    assert "trainer.deterministic: True -> False" in result.stderr
    assert "trainer.verbose: auto -> 2" in result.stderr
    assert files_of(folder) == before

    (user_conf / "mine.yaml").write_text(text)  # the file as it was: the same run again
    result = cli("mnist_hydra.train", *mine, *ARGS, "resume=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_value_an_interpolation_gives_differently_since_the_kill_is_refused(cli, tmp_path):
    """The config's text is the same, but an environment variable it reads has changed."""
    epochs = ["trainer.epochs=${oc.env:MNIST_HYDRA_TEST_EPOCHS}"]
    args = [a for a in ARGS if not a.startswith("trainer.epochs")] + epochs
    killed = cli(
        "mnist_hydra.train", *args, cwd=tmp_path, env={KILL_AT: "batch@5", "MNIST_HYDRA_TEST_EPOCHS": "3"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder = run_folder(tmp_path)
    before = files_of(folder)
    changed = cli(
        "mnist_hydra.train", *args, "resume=true", cwd=tmp_path, env={"MNIST_HYDRA_TEST_EPOCHS": "2"}
    )
    assert changed.returncode == 1
    assert "holds a run with another config" in changed.stderr and "trainer.epochs: 3 -> 2" in changed.stderr
    assert files_of(folder) == before
    same = cli("mnist_hydra.train", *args, "resume=true", cwd=tmp_path, env={"MNIST_HYDRA_TEST_EPOCHS": "3"})
    assert same.returncode == 0, same.stderr
    assert len(metrics_of(folder)["history"]["loss"]) == 3


def test_a_sweep_refuses_resume_and_another_sweeps_folder(cli, tmp_path):
    result = cli("mnist_hydra.train", "-m", *ARGS, "model.dropout=0.3,0.5", "resume=true", cwd=tmp_path)
    assert result.returncode == 1 and "resume=true does not apply to -m sweeps" in result.stderr
    sweep = tmp_path / "sweep"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    before = files_of(sweep)
    result = cli(
        "mnist_hydra.train", "-m", *ARGS, "model.dropout=0.3,0.5", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert result.returncode == 1 and "already holds another sweep's jobs" in result.stderr
    assert files_of(sweep) == before and not (sweep / "summary.csv").exists()


def test_a_run_leaves_sigterm_to_a_handler_that_was_there_first(tmp_path):
    """Under submitit, SIGTERM is submitit's (it requeues preempted jobs): a run must not take it."""
    from mnist_hydra.training.records import RunRecord
    from mnist_hydra.training.tracking import Tracker

    def submitits(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, submitits)
    try:
        record = RunRecord(tmp_path / "metrics.json")
        with record.watching(lambda: Tracker(tmp_path, None)):
            assert signal.getsignal(signal.SIGTERM) is submitits
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with record.watching(lambda: Tracker(tmp_path, None)):  # nobody's: the run takes it
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # and gives it back
    finally:
        signal.signal(signal.SIGTERM, previous)
