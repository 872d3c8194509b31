"""The Optuna study a search keeps: where it is stored, its sampler and pruner, and the trials a
killed sweep left `RUNNING` (told by their heartbeat). Shared by the sweep process (which asks
and tells) and each trial's job (which reports its objective after every epoch and asks whether
to stop).

Where a study lives (`hydra.sweeper.storage`):
- null: a journal file in the sweep folder, `optuna.journal`. Optuna's journal storage is made for
  several processes on one machine writing at once (file locks, appends only).
- `sqlite:///optuna.db`: a database file, kept across sweeps on one machine.
- an RDB server's URL (`postgresql://user@host/db`, `mysql+pymysql://...`): several machines
  (submitit_slurm); that server's driver must be installed.
"""

import logging
import threading
import time
from pathlib import Path
from typing import Optional

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from mnist_hydra.errors import ConfigError, first_line
from mnist_hydra.search.pruners import CostAwareHalvingPruner

log = logging.getLogger(__name__)
JOURNAL = "optuna.journal"
HEARTBEAT = "heartbeat"  # a trial's attribute: when its sweep last said it runs (Unix seconds)


# Optuna's own packages (and our one pruner): a config chooses a sampler and a pruner by
# `_target_`, only among these.
def storage_for(url: Optional[str], sweep_dir: Path) -> BaseStorage:
    """The study's storage: `url`, or with none a journal file in the sweep folder."""
    if not url:
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(Path(sweep_dir).absolute() / JOURNAL)))
    try:
        if url.startswith("sqlite:"):  # trials telling at once wait for the file's lock, not fail
            return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        return RDBStorage(url)
    except RuntimeError as error:
        if "storage upgrade" in str(error):  # a study written by an older Optuna (2.x: 2021)
            raise ConfigError(
                f"hydra.sweeper.storage={url} holds a study of an older Optuna; upgrade it once with: "
                f".venv/bin/optuna storage upgrade --storage {url}"
            ) from None
        raise ConfigError(f"hydra.sweeper.storage={url}: {first_line(error)}") from None
    except Exception as error:  # SQLAlchemy's errors for a bad URL or a missing driver
        raise ConfigError(
            f"hydra.sweeper.storage={url} cannot be opened ({type(error).__name__}: {first_line(error)}); "
            "give null (a journal file in the sweep folder), sqlite:///FILE or a database server's URL"
        ) from None


# Ours, beside Optuna's, each by its one name.
OURS = {"sampler": (), "pruner": (CostAwareHalvingPruner,)}


def optuna_classes(role: str) -> dict[str, type]:
    """Optuna's own samplers (or pruners) by the names a config may give them: `optuna.samplers.X`
    as Optuna exports it, and the module where X is defined; and OURS. A table, not a prefix: a
    prefix also reaches whatever those modules import (`optuna.pruners._percentile.np.memmap`)."""
    package, base = {
        "sampler": (optuna.samplers, optuna.samplers.BaseSampler),
        "pruner": (optuna.pruners, optuna.pruners.BasePruner),
    }[role]
    table = {}
    for name in dir(package):
        cls = getattr(package, name)
        if (
            isinstance(cls, type)
            and issubclass(cls, base)
            and cls is not base
            and cls.__module__.startswith("optuna.")
        ):
            table[f"{package.__name__}.{name}"] = cls
            table[f"{cls.__module__}.{cls.__qualname__}"] = cls
    table.update({f"{cls.__module__}.{cls.__qualname__}": cls for cls in OURS[role]})
    return table


def optuna_object(role: str, node):
    """A sampler or pruner from its config node (or that node as a dict), whose keys are its own
    arguments. Only Optuna's classes, looked up by name: a config (perhaps someone else's) never
    chooses other code to run this way."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    target = str(node.get("_target_", ""))
    classes = optuna_classes(role)
    if target not in classes:
        public = sorted(name.rsplit(".", 1)[1] for name in classes if name.startswith(f"optuna.{role}s."))
        choices = [f"optuna.{role}s.{{{','.join(dict.fromkeys(public))}}}"]
        choices += [f"{cls.__module__}.{cls.__qualname__}" for cls in OURS[role]]
        raise ConfigError(
            f"hydra.sweeper.{role}._target_={target} is not one of Optuna's {role}s "
            f"({' or '.join(choices)}); pick one with hydra/sweeper/{role}=NAME"
        )
    given = {k: v for k, v in node.items() if not k.startswith("_")}
    try:
        return classes[target](**given)
    except Exception as error:
        raise ConfigError(f"hydra.sweeper.{role} ({target}) cannot be built: {first_line(error)}") from None


def abandoned_trials(study: optuna.Study, after: float, now: Optional[float] = None) -> list:
    """Trials still `RUNNING` whose sweep has not written their heartbeat for `after` seconds: it
    was killed outright (or its machine lost), and no one will ever tell how they ended. Time, not
    host name and pid: those tell nothing across PID namespaces (containers), or between machines
    that share a name, where a live trial would look dead."""
    now = time.time() if now is None else now
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [trial for trial in running if now - _last_beat(trial) > after]


def _last_beat(trial) -> float:
    beat = trial.user_attrs.get(HEARTBEAT)
    if isinstance(beat, (int, float)) and not isinstance(beat, bool):
        return float(beat)
    return trial.datetime_start.timestamp() if trial.datetime_start else 0.0  # a sweep of before


class Heartbeat:
    """For the block, a thread writes the time into each trial this sweep runs (its `heartbeat`
    attribute), four times per `after` seconds, until the trial is told. Optuna's own heartbeat
    belongs to RDB storages and to study.optimize; this one works with the journal too, and with
    trials asked and told by hand."""

    def __init__(self, after: float) -> None:
        self.every = after / 4
        self.trials: dict[int, optuna.Trial] = {}
        self.lock, self.stopped = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._beat, name="trial heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=60)

    def add(self, trial: optuna.Trial) -> None:
        trial.set_user_attr(HEARTBEAT, time.time())
        with self.lock:
            self.trials[trial.number] = trial

    def _beat(self) -> None:
        while not self.stopped.wait(self.every):
            with self.lock:
                trials = list(self.trials.values())
            for trial in trials:
                try:
                    trial.set_user_attr(HEARTBEAT, time.time())
                except Exception:  # told (finished trials cannot be updated), or the storage gone
                    with self.lock:
                        self.trials.pop(trial.number, None)
