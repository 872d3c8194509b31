"""Where a training run writes, and what a run folder guarantees.

- One live run per folder: a run holds an OS lock on `<run>/.lock` for its whole life
  (the kernel drops it when the process dies, however it dies).
- A completed run is never written again.
- A run is continued only by the same run: the config composed now must equal the one
  the run saved (`resume` aside), not just the command line.

All of it is checked before Hydra writes anything into the folder (`RunFolderGuard`, a
Hydra callback), so a refused run leaves the folder as it was. `resume=true` finds the
folder through a resolver on `hydra.run.dir`.
"""

import fcntl
import json
import os
import platform
from pathlib import Path
from typing import IO, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from mnist_hydra.errors import RunFolderError, underlying
from mnist_hydra.files import remove_temporaries

LOCK = ".lock"
_held: dict[Path, IO] = {}  # the run folders this process holds, by absolute path


def record_status(path: Path) -> Optional[str]:
    """The `status` in a JSON record (metrics.json, a sweep's job.json), if it can be read."""
    try:
        return json.loads(path.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def run_status(run: Path) -> Optional[str]:
    """The status in a run's metrics.json (running, completed, failed, interrupted), if any."""
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


def _refuse_completed(run: Path) -> None:
    if run_status(run) == "completed":
        raise RunFolderError(
            f"{run} holds a completed run, which is never overwritten: "
            f"leave hydra.run.dir unset (or point it at a new folder) to start a new run"
        )


def _refuse_another_config(run: Path, task_config: DictConfig) -> None:
    saved_file = run / ".hydra" / "config.yaml"
    if not saved_file.is_file():
        return
    saved = _flat(OmegaConf.to_container(OmegaConf.load(saved_file), resolve=False))
    now = _flat(OmegaConf.to_container(task_config, resolve=False))
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


def _flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tree}


def _without_resume(overrides) -> list[str]:
    return sorted(o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra.")))


def run_folder(resume: bool, new_folder: str, overrides) -> str:
    """`new_folder`, unless resuming: then the newest unfinished run with the same overrides.

    Runs live in `<root>/<date>/<time>/`; `<root>` is taken from `new_folder`.
    """
    if not resume:
        return new_folder
    wanted = _without_resume(list(overrides))
    root = Path(new_folder).parents[1]
    for record in sorted(root.glob("*/*/.hydra/overrides.yaml"), reverse=True):
        run = record.parent.parent
        if _without_resume(OmegaConf.load(record)) == wanted and run_status(run) != "completed":
            holder = live_holder(run)
            if holder:
                raise RunFolderError(
                    f"resume=true: the newest unfinished run of this command, {run}, "
                    f"is still running ({holder}); wait for it to end or stop it"
                )
            return str(run)
    raise RunFolderError(
        f"resume=true: no unfinished run in {root}/ was started with the overrides {wanted}; "
        f"point hydra.run.dir at the run folder to resume it"
    )


class RunFolderGuard(Callback):
    """Claims a single run's folder before Hydra writes into it; refuses what a sweep cannot do.

    Hydra turns a callback's exceptions into warnings and carries on, so a refusal here
    exits the process itself (SystemExit: the message, one line, and exit code 1).
    """

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        task = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
        try:
            claim(Path(config.hydra.run.dir), task)  # resolving run.dir finds the run resume=true means
        except RunFolderError as error:
            raise SystemExit(f"Refused: {error}") from None
        except InterpolationResolutionError as error:
            reason = underlying(error)  # OmegaConf wraps what the resolver raised
            if isinstance(reason, RunFolderError):
                raise SystemExit(f"Refused: {reason}") from None
            raise

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            _refuse_sweep(config)
        except RunFolderError as error:
            raise SystemExit(f"Refused: {error}") from None


def _refuse_sweep(config: DictConfig) -> None:
    if any(
        o.replace(" ", "").lower() not in ("resume=false", "resume=0")
        for o in config.hydra.overrides.task
        if o.lstrip("+~").startswith("resume=")
    ):
        raise RunFolderError(
            "resume=true does not apply to -m sweeps: resume a sweep's job one at a "
            "time with hydra.run.dir=<its job folder> (and its overrides)"
        )
    sweep_dir = Path(config.hydra.sweep.dir)
    others = list(sweep_dir.glob("*/.hydra")) + list(sweep_dir.glob("multirun.yaml"))
    if others:
        raise RunFolderError(
            f"hydra.sweep.dir={sweep_dir} already holds another sweep's jobs, "
            f"which its summary would mix with this one's: choose a new folder"
        )
