"""What a run needs around the training itself: seeding, per-epoch records, the run's
status on disk, and writes that never leave half a file."""

import json
import logging
import os
import platform
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import hydra
import keras
import numpy
import tensorflow as tf

from mnist_hydra.errors import first_line
from mnist_hydra.faults import fault_point, requested
from mnist_hydra.files import write_atomically, write_json

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; optionally make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        # Without it, multi-threaded reductions may add in a different order from
        # run to run, and the same seed can end a few test images apart.
        tf.config.experimental.enable_op_determinism()


def library_versions() -> dict:
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "hydra": hydra.__version__,
        "numpy": numpy.__version__,
    }


def save_model(model: keras.Model, path: Path) -> None:
    """Save through a temporary file, so that an interrupted save leaves no model that looks whole."""
    write_atomically(path, model.save)


class BatchFaultPoint(keras.callbacks.Callback):
    """Tests only (mnist_hydra.faults): a kill or a hold at the end of a training batch."""

    def on_train_batch_end(self, batch, logs=None):
        fault_point("batch")


def fault_point_callbacks() -> list:
    """Per-batch hooks cost a little on every step: added only when a test asks for them."""
    return [BatchFaultPoint()] if requested("batch") else []


class EpochRecorder(keras.callbacks.Callback):
    """Keras' metrics and the wall time of each epoch, kept in a file when given one.

    A resumed run starts again at the epoch after the last backup; anything recorded
    from that epoch on is dropped first, so that the history has each epoch once.
    """

    def __init__(self, path: Optional[Path] = None):
        super().__init__()
        self.path = path
        self.epochs: list[dict] = json.loads(path.read_text()) if path and path.is_file() else []

    def on_epoch_begin(self, epoch, logs=None):
        del self.epochs[epoch:]
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        self.epochs.append({"seconds": seconds, **{k: float(v) for k, v in (logs or {}).items()}})
        if self.path:
            write_json(self.path, self.epochs)

    @property
    def seconds(self) -> list[float]:
        return [epoch["seconds"] for epoch in self.epochs]

    @property
    def history(self) -> dict:
        names = [name for name in self.epochs[0] if name != "seconds"] if self.epochs else []
        return {name: [epoch[name] for epoch in self.epochs] for name in names}


class RunRecord:
    """metrics.json through a run's life: `running`, then `completed`, `pruned` (a search's trial
    stopped early), `failed` or `interrupted`.

    A run killed outright (SIGKILL, power loss) cannot write; it stays `running`.
    """

    def __init__(self, path: Path, **fields):
        self.path = path
        # The process, so that a scheduler's job or a stuck run can be found (and signalled).
        self.fields = {"status": "running", "host": platform.node(), "pid": os.getpid(), **fields}
        write_json(path, self.fields)

    def update(self, **fields) -> dict:
        self.fields.update(fields)
        write_json(self.path, self.fields)
        return self.fields

    @contextmanager
    def watching(self, start_tracker):
        """Start the tracker, record how the block ends, and close the tracker with that status."""
        status, tracker = "failed", None
        restore = _sigterm_as_interrupt()
        try:
            tracker = start_tracker()  # inside: a tracker that cannot start is a failed run too
            yield tracker
            status = "pruned" if self.fields["status"] == "pruned" else "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            self.update(status=status, error="interrupted (Ctrl-C or SIGTERM)")
            log.error("Interrupted; the last completed epoch is kept: resume with resume=true")
            raise
        except Exception as error:
            self.update(status=status, error=f"{type(error).__name__}: {first_line(error)}")
            raise
        finally:
            restore()
            if tracker is not None:
                tracker.close(status)


def _sigterm_as_interrupt():
    """Make SIGTERM (a scheduler's stop, `kill`) end the run like Ctrl-C, so it is recorded."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # only the main thread may set signal handlers
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return lambda: None  # someone else's (e.g. submitit's, which requeues preempted jobs)

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)
