"""What a run folder guarantees, and how its status is read: the contract every command that
writes or reads a run keeps (no TensorFlow here).

- One live run per folder: a run holds an OS lock on `<run>/.lock` for its whole life
  (the kernel drops it when the process dies, however it dies).
- A completed run is never written again.
- A run is continued only by the same run: the config composed now must equal the one
  the run started with (`resume` aside), value by value as resolved, not just the command line.
- A sweep's job folders come in one order: by job number; its plan lists every job it was given.

The training command claims its folder, a single run's or a sweep job's, before Hydra writes
into it (mnist_hydra/training/guard.py), so a refused run leaves the folder as it was.
"""

import fcntl
import json
import os
import platform
from pathlib import Path
from typing import IO, Optional

from omegaconf import DictConfig, OmegaConf

from mnist_hydra.config.dotted import dotted_keys
from mnist_hydra.errors import RunFolderError
from mnist_hydra.files import remove_temporaries, write_json, write_text

LOCK = ".lock"
PLAN = ".jobs.json"  # in a sweep's folder: every job its launcher was given
RESOLVED = Path(".hydra") / "resolved.yaml"  # the run's config as its values were when it started
_held: dict[Path, IO] = {}  # the run folders this process holds, by absolute path


MAX_RECORD_BYTES = 16 << 20  # metrics.json holds every epoch's history: well under this


def record_status(path: Path) -> Optional[str]:
    """The `status` in a JSON record (metrics.json, a sweep's job.json), if it can be read: a
    regular file (not a device or a pipe someone linked there) of at most 16 MB."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_RECORD_BYTES:
            return None
        with open(path, "rb") as file:
            status = json.loads(file.read(MAX_RECORD_BYTES)).get("status")
        return status if isinstance(status, str) else None
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


def run_status(run: Path) -> Optional[str]:
    """The status in a run's metrics.json (running, completed, pruned, failed, interrupted), if any."""
    return record_status(run / "metrics.json")


def live_holder(run: Path) -> Optional[str]:
    """'host H, pid P' of another live process holding the run's lock; None if none does."""
    path = run / LOCK
    if Path(run).absolute() in _held or not path.is_file():
        return None
    with open(path) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return lock.read().strip() or "another process"
    return None


def crashed(run: Path) -> bool:
    """A run whose metrics.json says `running` but whose process is gone (killed outright)."""
    return run_status(run) == "running" and (run / LOCK).is_file() and live_holder(run) is None


def hold(run: Path) -> None:
    """Take the run's lock until `release` (or this process's end); refuse a live run's folder."""
    key = Path(run).absolute()
    if key in _held:
        return
    key.mkdir(parents=True, exist_ok=True)
    lock = open(key / LOCK, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise RunFolderError(
            f"{run} belongs to a run that is still running ({holder}): "
            f"wait for it to end or stop it; nothing was changed"
        ) from None
    lock.truncate(0)
    lock.write(f"host {platform.node()}, pid {os.getpid()}\n")
    lock.flush()
    _held[key] = lock


def release(run: Path) -> None:
    lock = _held.pop(Path(run).absolute(), None)
    if lock is not None:
        lock.close()


def claim(run: Path, task_config: DictConfig) -> None:
    """Make `run` this process's run folder, or refuse in one line and change nothing in it."""
    if Path(run).absolute() in _held:
        return
    _refuse_completed(run)
    _refuse_another_config(run, task_config)
    hold(run)  # the first write into the folder: a refusal above leaves it as it was
    try:
        _refuse_completed(run)  # it may have finished between the look and the lock
    except RunFolderError:
        release(run)
        raise
    remove_temporaries(run)  # a killed writer's leftovers; nobody else writes here now
    if not (run / RESOLVED).is_file():  # the first start: what a resume must match
        (run / RESOLVED).parent.mkdir(exist_ok=True)
        write_text(run / RESOLVED, OmegaConf.to_yaml(_resolved(task_config)))


FINISHED = ("completed", "pruned")  # a pruned trial ended as its search wanted: never run again


def _refuse_completed(run: Path) -> None:
    if run_status(run) in FINISHED:
        raise RunFolderError(
            f"{run} holds a {run_status(run)} run, which is never overwritten: "
            f"leave hydra.run.dir unset (or point it at a new folder) to start a new run"
        )


def _refuse_another_config(run: Path, task_config: DictConfig) -> None:
    """Compare the values, resolved: an interpolation (an environment variable, `${now:}`) may
    give another value now than at the run's start, which `.hydra/resolved.yaml` recorded.
    (A run from before that file existed is compared as Hydra saved its config, unresolved.)"""
    if (run / RESOLVED).is_file():
        saved = dotted_keys(OmegaConf.to_container(OmegaConf.load(run / RESOLVED)))
        now = dotted_keys(_resolved(task_config))
    elif (run / ".hydra" / "config.yaml").is_file():
        saved = dotted_keys(
            OmegaConf.to_container(OmegaConf.load(run / ".hydra" / "config.yaml"), resolve=False)
        )
        now = dotted_keys(OmegaConf.to_container(task_config, resolve=False))
    else:
        return
    differences = [
        f"{key}: {saved.get(key, '(absent)')} -> {now.get(key, '(absent)')}"
        for key in sorted(saved.keys() | now.keys())
        if key not in ("resume", "hydra") and saved.get(key, "(absent)") != now.get(key, "(absent)")
    ]
    if differences:
        raise RunFolderError(
            f"{run} holds a run with another config, so continuing it would mix two runs "
            f"({'; '.join(differences)}): start a new run instead"
        )


def _resolved(task_config: DictConfig) -> dict:
    return OmegaConf.to_container(task_config, resolve=True, throw_on_missing=False)


def job_order(job: str) -> list:
    """A sort key for a job's folder name, relative to its sweep (`2`, `10`, or `3/1`): by number."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in job.split("/")]


def job_folders(sweep_dir: Path) -> list[Path]:
    """Every job folder of a sweep (any folder under it with Hydra's .hydra/overrides.yaml), in job order."""
    folders = [record.parent.parent for record in Path(sweep_dir).glob("**/.hydra/overrides.yaml")]
    return sorted(folders, key=lambda job: job_order(job.relative_to(sweep_dir).as_posix()))


def write_plan(sweep_dir: Path, initial_job_idx: int, job_overrides) -> None:
    """Add these jobs (number and overrides) to the sweep's plan, written by its launcher before
    any of them starts: the summary lists a planned job that never started as `not run`. (A
    search launches its trials in several batches: each is added.)"""
    plan = read_plan(sweep_dir)
    # As a job's .hydra/overrides.yaml has them: its own, not Hydra's (a search's `hydra.sweeper.trial`).
    plan += [
        {"job": initial_job_idx + i, "overrides": [x for x in o if not x.startswith("hydra.")]}
        for i, o in enumerate(job_overrides)
    ]
    write_json(Path(sweep_dir) / PLAN, plan)


def read_plan(sweep_dir: Path) -> list[dict]:
    try:
        return json.loads((Path(sweep_dir) / PLAN).read_text())
    except (OSError, ValueError):
        return []
