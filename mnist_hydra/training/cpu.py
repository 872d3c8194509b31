"""What a job asks of TensorFlow on the CPU: its threads, the precision it computes in, and
whether its oneDNN kernels run (chosen before TensorFlow loaded: mnist_hydra/machine.py)."""

import logging

import keras
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port

from mnist_hydra.console import start_devices_quietly
from mnist_hydra.machine import native_bf16

log = logging.getLogger(__name__)


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels in this process."""
    return bool(_pywrap_util_port.IsMklEnabled())


def use_threads(threads: int) -> None:
    """Give TensorFlow `threads` threads for each op, and at most two ops at once."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:  # TensorFlow already started in this process (an earlier job of the basic launcher)
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            log.warning(
                "TensorFlow already runs with %s threads in this process; %d asked for", current, threads
            )
        return
    start_devices_quietly()
    log.info("TensorFlow threads: %d per op", threads)


def use_precision(precision: str) -> None:
    """fp32, or bf16 as Keras' mixed_bfloat16; set for every job, since a process may run several."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    if precision == "bf16" and not native_bf16():
        log.warning(
            "trainer.precision=bf16, but this CPU has no native bfloat16 (no avx512_bf16 or "
            "amx_bf16 in /proc/cpuinfo): expect training to be slower than in fp32"
        )
