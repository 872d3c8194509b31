"""What a job asks of the CPU: oneDNN's kernels, its share of the cores, and the precision
it computes in. TensorFlow is imported inside the functions: oneDNN must be chosen before it is."""

import logging
import os
import sys
from functools import cache
from pathlib import Path

from omegaconf import OmegaConf

log = logging.getLogger(__name__)
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
# What a run records of the CPU it ran on: the flags that decide TensorFlow's kernels.
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
_ONEDNN_SET_HERE: list = []  # the value this process put in the environment, if it did


@cache
def cpu_flags() -> frozenset:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def use_onednn(setting: str) -> str:
    """Turn TensorFlow's oneDNN kernels on or off; call before TensorFlow is imported.

    TensorFlow turns them on by itself only on CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI
    or AMX. `auto` also turns them on with AVX2 (measured faster there: README, Speed and
    accuracy) and otherwise leaves TensorFlow's choice; `on` and `off` force it. A value the
    user put in TF_ENABLE_ONEDNN_OPTS always wins. Returns what decided it, for the log.
    """
    user_value = os.environ.get(ONEDNN_VARIABLE)
    if user_value is not None and user_value not in _ONEDNN_SET_HERE:
        return f"{ONEDNN_VARIABLE}={user_value} from the environment"
    wanted = {"on": "1", "off": "0"}.get(setting) or ("1" if "avx2" in cpu_flags() else None)
    if wanted is None:
        return "TensorFlow's own choice"
    if "tensorflow" in sys.modules and os.environ.get(ONEDNN_VARIABLE) != wanted:
        log.warning(
            "trainer.onednn=%s comes too late: TensorFlow already runs in this process "
            "(an earlier job of the basic launcher)",
            setting,
        )
        return "unchanged: TensorFlow was already imported"
    os.environ[ONEDNN_VARIABLE] = wanted
    _ONEDNN_SET_HERE.append(wanted)
    return f"trainer.onednn={setting}"


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels in this process."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


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
    import tensorflow as tf

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
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    if precision == "bf16" and not native_bf16():
        log.warning(
            "trainer.precision=bf16, but this CPU has no native bfloat16 (no avx512_bf16 or "
            "amx_bf16 in /proc/cpuinfo): expect training to be slower than in fp32"
        )


def native_bf16() -> bool:
    return "avx512_bf16" in cpu_flags() or "amx_bf16" in cpu_flags()
