"""Fault injection's hold (mnist_hydra/faults.py): a run waits at its point until released."""

import threading
import time

from conftest import hold_at, release

from mnist_hydra import faults


def test_a_held_run_waits_at_its_point_until_released_and_is_held_once(tmp_path, monkeypatch):
    for name, value in hold_at("epoch", tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(faults, "_reached", {})
    run = threading.Thread(target=faults.fault_point, args=("epoch",))
    run.start()
    deadline = time.monotonic() + 60
    while not (tmp_path / "held-run").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (tmp_path / "held-run").read_text().strip().isdigit()  # held, its pid named
    assert run.is_alive()  # and it waits: only release() or a signal ends the hold
    release(tmp_path)
    run.join(timeout=60)
    assert not run.is_alive()

    (tmp_path / "release").unlink()
    monkeypatch.setenv("MNIST_HYDRA_TEST_HOLD_AT", "epoch@2")  # the same job reaches its point again:
    faults.fault_point("epoch")  # its marker exists, so it goes on (a requeued process)
    faults.fault_point("batch")  # another point: never held


def test_only_the_named_job_is_held(tmp_path, monkeypatch):
    for name, value in hold_at("epoch", tmp_path, job="1").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(faults, "_reached", {})
    faults.fault_point("epoch")  # a single run is not job 1: it goes on
    assert not list(tmp_path.iterdir())
