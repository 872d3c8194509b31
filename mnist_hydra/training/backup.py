"""A per-epoch backup that a kill at any moment leaves usable, and the restore from it.

Keras' BackupAndRestore writes its epoch count in place after the weights, so a kill
between or during the two writes leaves an empty or stale count. Here each epoch's
weights (with the optimizer's state) go to a file of their own; only then does
`state.json`, written atomically, name that file and the epoch count, and only then are
older weight files removed. Whatever moment a kill hits, `state.json` is the last whole
backup and names a whole weights file.
"""

import json
import logging
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from mnist_hydra.errors import CheckpointError, first_line
from mnist_hydra.faults import fault_point
from mnist_hydra.files import write_atomically, write_json
from mnist_hydra.training.callbacks import restore, state_of

log = logging.getLogger(__name__)
STATE = "state.json"


def has_backup(folder: Path) -> bool:
    """Whether a run's backup folder holds an epoch to resume from."""
    return (Path(folder) / STATE).is_file()


class EpochBackup(keras.callbacks.Callback):
    """`keeping`: the run's configured callbacks (callbacks.py), whose state each backup holds and
    a resumed run gets back. They come before this one in fit()'s list: Keras resets them at the
    start of training, then this puts their state back; at an epoch's end they have updated it
    before this writes it."""

    def __init__(self, folder: Path, keeping: Optional[dict] = None):
        super().__init__()
        self.folder = Path(folder)
        self.keeping = keeping or {}

    def on_train_begin(self, logs=None):
        try:
            state = json.loads((self.folder / STATE).read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{self.folder / STATE}: unreadable backup ({first_line(error)})") from None
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # its state is loaded too
        try:
            self.model.load_weights(self.folder / state["weights"])
        except Exception as error:  # h5py and Keras raise several kinds for a bad file
            raise CheckpointError(
                f"{self.folder / state['weights']}: unreadable backup ({first_line(error)})"
            ) from None
        for name, callback in self.keeping.items():
            kept = state.get("callbacks", {}).get(name, {})
            weights = kept.get("best_weights")
            restore(callback, kept.get("state", {}), _read_arrays(self.folder / weights) if weights else None)
        # What Keras' own BackupAndRestore sets: fit() starts from this epoch.
        self.model._initial_epoch = state["epoch"]
        log.info("Resumed from the backup of epoch %d", state["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = f"epoch-{epoch + 1}.weights.h5"
        write_atomically(self.folder / weights, lambda temporary: self.model.save_weights(temporary))
        kept = {name: self._keep(name, callback, epoch + 1) for name, callback in self.keeping.items()}
        write_json(self.folder / STATE, {"epoch": epoch + 1, "weights": weights, "callbacks": kept})
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != weights:
                old.unlink(missing_ok=True)
        for old in self.folder.glob("*.best-weights-*.npz"):
            if old.name not in {k.get("best_weights") for k in kept.values()}:
                old.unlink(missing_ok=True)
        fault_point("epoch")  # tests only: the epoch is backed up whole

    def _keep(self, name: str, callback, epoch: int) -> dict:
        """A callback's state; an EarlyStopping's best weights (restore_best_weights) in a file of
        this epoch's beside it."""
        kept = {"state": state_of(callback)}
        best = getattr(callback, "best_weights", None)
        if best is not None:
            kept["best_weights"] = f"{name}.best-weights-{epoch}.npz"
            arrays = {f"a{i}": array for i, array in enumerate(best)}
            write_atomically(
                self.folder / kept["best_weights"], lambda temporary: np.savez(temporary, **arrays)
            )
        return kept


def _read_arrays(path: Path) -> list:
    try:
        with np.load(path, allow_pickle=False) as stored:
            return [stored[f"a{i}"] for i in range(len(stored.files))]
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path}: unreadable backup ({first_line(error)})") from None
