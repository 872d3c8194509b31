"""What a user sees on the console: our log lines and Keras' progress, not TensorFlow's start-up.

TensorFlow's C++ code prints its start-up notices to the process's stderr as it loads, before
it reads TF_CPP_MIN_LOG_LEVEL, and twice: its profiler plugin (a shared object imported by
`import tensorflow`, 6 ms of it) carries its own copy of that start-up code. Then, at its
first op, an error for the CUDA driver a CPU machine does not have. None of it is news to a
user, and "E0000 ... failed call to cuInit" reads like a failure.

So, unless the user set TF_CPP_MIN_LOG_LEVEL (then they see everything TensorFlow says), the
entry points import their heavy part inside `tensorflow_start_quieted()`: stderr (the file
descriptor, which C++ writes to) goes to a file for that moment, and every line of it but the
known notices is written back. TensorFlow's later C++ messages are kept to errors
(TF_CPP_MIN_LOG_LEVEL=2, set as the package loads; it reaches the jobs a launcher starts).
"""

import ctypes
import os
import re
import sys
import tempfile
from contextlib import contextmanager

LEVEL = "TF_CPP_MIN_LOG_LEVEL"
OURS = "MNIST_HYDRA_SET_TF_CPP_MIN_LOG_LEVEL"  # the level is ours, not the user's: quiet again
_C = ctypes.CDLL(None)
NOTICES = re.compile(
    r"absl::InitializeLog\(\)"
    r"|port\.cc:\d+\] oneDNN custom operations are on"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|cuda_executor\.cc:\d+\] .*(NUMA|kernel driver)"
)


def user_wants_tensorflow_lines() -> bool:
    return LEVEL in os.environ and OURS not in os.environ


def keep_tensorflow_to_errors() -> None:
    """TensorFlow's C++ messages from here on: errors only, unless the user chose a level."""
    if LEVEL not in os.environ:
        os.environ[LEVEL], os.environ[OURS] = "2", "1"


def start_devices_quietly() -> None:
    """Let TensorFlow set up its devices now (after the threads are set), without its notices."""
    with tensorflow_start_quieted(start_devices=True):
        pass


@contextmanager
def tensorflow_start_quieted(start_devices: bool = True):
    """For the block (the import of a command's heavy part): TensorFlow's start-up notices
    dropped, anything else it prints kept. At the end, with `start_devices`, TensorFlow's
    devices are set up (its first op would do it, with the cuInit error) while stderr is held;
    training sets its threads first, which must come before that (training/cpu.py)."""
    if user_wants_tensorflow_lines():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
            tensorflow = sys.modules.get("tensorflow")  # imported by the block, if at all
            if start_devices and tensorflow is not None:
                tensorflow.config.list_logical_devices()
        finally:
            sys.stderr.flush()
            _C.fflush(None)  # C's stdio may still hold some: it goes to the file too
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [
                line
                for line in held.read().decode(errors="replace").splitlines(True)
                if not NOTICES.search(line)
            ]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
