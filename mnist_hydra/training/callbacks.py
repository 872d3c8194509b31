"""The run's Keras callbacks, from config, and what of them every epoch's backup keeps.

`callbacks=[early_stopping,best_checkpoint]` selects configs of the group conf/callbacks/; each
is built from its `_target_`: a Keras callback, ours (BestCheckpoint), or a user's own named in a
plain YAML file. None by default: the documented recipe is unchanged.

A run killed and resumed stops where one never killed would: each callback's state
(EarlyStopping's best and wait, a plateau's wait and cooldown, the best epoch and its weights)
goes into every epoch's backup and is put back when the run resumes (backup.py).
"""

from pathlib import Path
from typing import Optional

import keras
import numpy as np
from omegaconf import DictConfig

from mnist_hydra.building import build
from mnist_hydra.files import write_atomically

# The attributes Keras' own callbacks keep between epochs (EarlyStopping, ReduceLROnPlateau) and ours.
STATE = ("wait", "best", "best_epoch", "stopped_epoch", "cooldown_counter")


def best_weights_file(epoch: int) -> str:
    """In the run's backup folder: the weights of the best epoch so far, by its number."""
    return f"best-{epoch}.weights.h5"


def configured_callbacks(cfg: DictConfig, backup_folder: Path) -> dict[str, keras.callbacks.Callback]:
    """Each selected callback, by its name in the config (checked before: config/validate.py)."""
    callbacks = {}
    for name, node in (cfg.get("callbacks") or {}).items():
        callback = build(f"callbacks.{name}", node)
        if isinstance(callback, BestCheckpoint):
            callback.folder = backup_folder
        callbacks[name] = callback
    return callbacks


def state_of(callback: keras.callbacks.Callback) -> dict:
    """What a backup keeps of a callback: plain numbers (JSON), and where its weights are."""
    state = {}
    for attribute in STATE:
        value = getattr(callback, attribute, None)
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            state[attribute] = float(value) if isinstance(value, (float, np.floating)) else int(value)
    return state


def restore(callback: keras.callbacks.Callback, state: dict, best_weights: Optional[list]) -> None:
    for attribute, value in state.items():
        if attribute in STATE:
            setattr(callback, attribute, value)
    if best_weights is not None:
        callback.best_weights = best_weights


class BestCheckpoint(keras.callbacks.Callback):
    """The run ends with the weights of its best epoch by `monitor` (highest for an accuracy,
    lowest for a loss): each better epoch's weights go to the backup folder, and the model takes
    them back when training ends, before it is tested and saved. `best_epoch` counts from 1."""

    def __init__(self, monitor: str = "val_loss"):
        super().__init__()
        self.monitor = monitor
        self.higher_is_better = "accuracy" in monitor
        self.best: Optional[float] = None
        self.best_epoch = 0
        self.folder: Optional[Path] = None  # the run's backup folder (configured_callbacks)

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None or self.folder is None:
            return
        current = float(current)
        if self.best is None or (current > self.best if self.higher_is_better else current < self.best):
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / best_weights_file(epoch + 1)
            write_atomically(path, lambda temporary: self.model.save_weights(temporary))
            # The backup's state.json still names the one before until this epoch's backup is whole.
            keep = {path.name, best_weights_file(self.best_epoch)}
            for old in self.folder.glob("best-*.weights.h5"):
                if old.name not in keep:
                    old.unlink(missing_ok=True)
            self.best, self.best_epoch = current, epoch + 1

    def on_train_end(self, logs=None):
        path = self.folder / best_weights_file(self.best_epoch) if self.folder else None
        if self.best_epoch and path is not None and path.is_file():
            self.model.load_weights(path)
