"""What a job asks of the CPU: its share of the cores, and the precision it computes in."""

import logging
import os
from pathlib import Path

import keras
import tensorflow as tf
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def cpu_share(launcher) -> int:
    """The cores one job may use: those this process may run on (a scheduler's allotment),
    divided among the jobs the launcher runs at once."""
    cores = len(os.sched_getaffinity(0))
    if "ray" in str(launcher.get("_target_", "")).lower():
        # Ray reserves one core per task unless the launcher asks for more.
        return int(OmegaConf.select(launcher, "ray.remote.num_cpus", default=None) or 1)
    if launcher.get("cpus_per_task"):  # submitit
        return min(cores, int(launcher.cpus_per_task))
    n_jobs = launcher.get("n_jobs")  # joblib: -1 is every core, -2 all but one, ...
    if isinstance(n_jobs, int) and n_jobs != 0:
        at_once = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
        return max(1, cores // at_once)
    return cores


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
    log.info("TensorFlow threads: %d per op", threads)


def use_precision(precision: str) -> None:
    """fp32, or bf16 as Keras' mixed_bfloat16; set for every job, since a process may run several."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    if precision == "bf16" and not native_bf16():
        log.warning(
            "trainer.precision=bf16, but this CPU has no native bfloat16 (no avx512_bf16 or "
            "amx_bf16 in /proc/cpuinfo): expect training to be slower than in fp32"
        )


def native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
