"""A run interrupted or killed continues from its last completed epoch, and says how it ended."""

import json
import signal
import subprocess
import sys
import time

from conftest import run_cli

# Big enough that an epoch takes a moment, so the run can be stopped in the middle.
ARGS = ["dataset.train_limit=2000", "dataset.test_limit=100", "trainer.epochs=3",
        "trainer.batch_size=100", "logger=csv"]


def backed_up_epochs(cwd) -> int:
    """Epochs in the run's backup (Keras writes its metadata in place: it may be half-written)."""
    for path in cwd.glob("outputs/*/*/backup/training_metadata.json"):
        try:
            return json.loads(path.read_text())["epoch"]
        except (ValueError, KeyError, OSError):
            pass
    return 0


def start_and_stop_after_first_epoch(cwd, how):
    run = subprocess.Popen([sys.executable, "-m", "mnist_hydra.train", *ARGS], cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        if backed_up_epochs(cwd) >= 1:
            run.send_signal(how)
            break
        time.sleep(0.05)
    run.communicate(timeout=120)
    (folder,) = {path.parent for path in cwd.glob("outputs/*/*/.hydra")}
    return folder


def test_killed_run_resumes_in_its_folder_with_each_epoch_once(tmp_path):
    folder = start_and_stop_after_first_epoch(tmp_path, signal.SIGKILL)
    before = json.loads((folder / "epochs.json").read_text())
    assert 1 <= len(before) < 3, "the run was not stopped part-way"
    assert not (folder / "model.keras").exists()
    assert json.loads((folder / "metrics.json").read_text())["status"] == "running"

    result = run_cli("mnist_hydra.train", *ARGS, "resume=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("outputs/*/*/.hydra"))) == 1  # no new folder
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert len(metrics["history"]["loss"]) == len(metrics["epoch_seconds"]) == 3
    assert metrics["epoch_seconds"][0] == before[0]["seconds"]  # epoch 1 was not run again
    assert not (folder / "backup").exists()
    with open(folder / "history.csv") as file:
        assert len(file.read().strip().splitlines()) == 1 + 3  # header, then each epoch once


def test_sigterm_is_recorded_as_interrupted(tmp_path):
    folder = start_and_stop_after_first_epoch(tmp_path, signal.SIGTERM)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    assert "interrupted" in (folder / "train.log").read_text().lower()
    assert not (folder / "model.keras").exists()


def test_resume_without_an_unfinished_run_says_so(tmp_path):
    result = run_cli("mnist_hydra.train", *ARGS, "resume=true", cwd=tmp_path)
    assert result.returncode != 0
    assert "resume=true: no unfinished run" in result.stderr


def test_a_run_leaves_sigterm_to_a_handler_that_was_there_first(tmp_path):
    """Under submitit, SIGTERM is submitit's (it requeues preempted jobs): a run must not take it."""
    from mnist_hydra.runtime import RunRecord
    from mnist_hydra.tracking import Tracker

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
