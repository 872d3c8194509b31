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

import keras

from mnist_hydra.errors import CheckpointError, first_line
from mnist_hydra.faults import fault_point
from mnist_hydra.files import write_atomically, write_json

log = logging.getLogger(__name__)
STATE = "state.json"


class EpochBackup(keras.callbacks.Callback):
    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)

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
        # What Keras' own BackupAndRestore sets: fit() starts from this epoch.
        self.model._initial_epoch = state["epoch"]
        log.info("Resumed from the backup of epoch %d", state["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = f"epoch-{epoch + 1}.weights.h5"
        write_atomically(self.folder / weights, lambda temporary: self.model.save_weights(temporary))
        write_json(self.folder / STATE, {"epoch": epoch + 1, "weights": weights})
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != weights:
                old.unlink(missing_ok=True)
        fault_point("epoch")  # tests only: the epoch is backed up whole
