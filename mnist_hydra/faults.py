"""Fault injection, for tests only: kill this process outright at a named point, or hold it there.

    MNIST_HYDRA_TEST_KILL_AT=<point>[@<n>]   kill with SIGKILL the n-th time (default: the 1st)
                                             this process reaches <point>
    MNIST_HYDRA_TEST_KILL_JOB=<k>            ... only in job number k of a -m sweep
    MNIST_HYDRA_TEST_HOLD_AT=<point>[@<n>]   the n-th time this process reaches <point>, write
                                             `<folder>/held-<job>` and wait there until
                                             `<folder>/release` exists (or a signal ends it)
    MNIST_HYDRA_TEST_HOLD_DIR=<folder>       ... that folder (required with HOLD_AT)
    MNIST_HYDRA_TEST_HOLD_JOB=<k>            ... only in job number k of a -m sweep

Points: `write:<file name>` (the file is written under its temporary name, not yet renamed:
e.g. `write:metrics.json@2`, `write:model.keras`, `write:state.json`, the backup's epoch
count), `batch` (the end of a training batch), `epoch` (the end of an epoch, once its backup is
whole). A test that signals a run at a point holds it there, so that no run, however fast the
machine, has passed the point before the test acts. A hold is taken once per job: a job whose
`held-<job>` file exists (a requeued or resumed process) goes on. Never set these outside a test:
a kill looks like the kernel's OOM killer, a hold like a hung run.
"""

import os
import signal
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

KILL, KILL_JOB = "MNIST_HYDRA_TEST_KILL_AT", "MNIST_HYDRA_TEST_KILL_JOB"
HOLD, HOLD_DIR = "MNIST_HYDRA_TEST_HOLD_AT", "MNIST_HYDRA_TEST_HOLD_DIR"
HOLD_JOB = "MNIST_HYDRA_TEST_HOLD_JOB"
HOLD_AT_MOST = 600  # seconds: a test that forgot to release its hold does not leave a run behind forever
_reached: dict[tuple[str, str], int] = {}


def requested(point: str) -> bool:
    """Whether a kill or a hold names this point at all (to add per-batch hooks only when asked)."""
    return point in (os.environ.get(KILL, "").partition("@")[0], os.environ.get(HOLD, "").partition("@")[0])


def fault_point(point: str) -> None:
    """Kill or hold this process here, if a test asked for it."""
    if _due(KILL, KILL_JOB, point):
        os.kill(os.getpid(), signal.SIGKILL)
    if _due(HOLD, HOLD_JOB, point):
        _hold(Path(os.environ[HOLD_DIR]))


def _due(variable: str, job_variable: str, point: str) -> bool:
    name, _, count = os.environ.get(variable, "").partition("@")
    if name != point or not _in_the_named_job(job_variable):
        return False
    _reached[variable, point] = _reached.get((variable, point), 0) + 1
    return _reached[variable, point] == int(count or 1)


def _hold(folder: Path) -> None:
    marker = folder / f"held-{_job_number() or 'run'}"
    if marker.exists():  # this job was held once already (now requeued or resumed)
        return
    written = folder / f".{marker.name}.{os.getpid()}"
    written.write_text(f"{os.getpid()}\n")
    written.rename(marker)  # whole when the test sees it: it reads the pid to signal
    deadline = time.monotonic() + HOLD_AT_MOST
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # a signal's handler (SIGTERM, SIGINT) raises from here, as from training


def _job_number() -> str | None:
    """This job's number in its sweep; None for a single run (Hydra gives it none)."""
    number = HydraConfig.get().job.get("num") if HydraConfig.initialized() else None
    return None if number is None else str(number)


def _in_the_named_job(job_variable: str) -> bool:
    job = os.environ.get(job_variable)
    return job is None or _job_number() == job
