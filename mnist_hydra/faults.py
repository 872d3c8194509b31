"""Fault injection, for tests only: kill this process outright at a named point.

    MNIST_HYDRA_TEST_KILL_AT=<point>[@<n>]   kill with SIGKILL the n-th time (default: the 1st)
                                             this process reaches <point>
    MNIST_HYDRA_TEST_KILL_JOB=<k>            ... only in job number k of a -m sweep

Points: `write:<file name>` (the file is written under its temporary name, not yet renamed:
e.g. `write:metrics.json@2`, `write:model.keras`, `write:state.json`, the backup's epoch
count), `batch` (the end of a training batch). Never set them outside a test: the process
dies without a word, as under the kernel's OOM killer.
"""

import os
import signal

from hydra.core.hydra_config import HydraConfig

VARIABLE, JOB_VARIABLE = "MNIST_HYDRA_TEST_KILL_AT", "MNIST_HYDRA_TEST_KILL_JOB"
_reached: dict[str, int] = {}


def kill_requested(point: str) -> bool:
    """Whether the variable names this point at all (to add per-batch hooks only when asked)."""
    return os.environ.get(VARIABLE, "").partition("@")[0] == point


def kill_point(point: str) -> None:
    wanted = os.environ.get(VARIABLE)
    if not wanted:
        return
    name, _, count = wanted.partition("@")
    if name != point or not _in_the_named_job():
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _in_the_named_job() -> bool:
    job = os.environ.get(JOB_VARIABLE)
    if job is None:
        return True
    return HydraConfig.initialized() and str(HydraConfig.get().job.get("num")) == job
