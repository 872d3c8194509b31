"""What this machine offers a job, read before TensorFlow loads: the CPU's flags, its memory,
the cores a job may use, and whether TensorFlow should run its oneDNN kernels (which must be
decided before TensorFlow is imported: mnist_hydra/training/cpu.py does the rest)."""

import logging
import os
import sys
from functools import cache
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

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


def cpu_name() -> str:
    """The CPU's model name, for the figures a benchmark prints."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def reported_flags() -> list[str]:
    return [flag for flag in REPORTED_FLAGS if flag in cpu_flags()]


def native_bf16() -> bool:
    return "avx512_bf16" in cpu_flags() or "amx_bf16" in cpu_flags()


def machine_memory() -> int:
    """Bytes of physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def use_onednn(setting: str) -> str:
    """Turn TensorFlow's oneDNN kernels on or off; call before TensorFlow is imported.

    TensorFlow turns them on by itself only on CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI
    or AMX. `auto` also turns them on with AVX2 (measured faster there: docs/performance.md)
    and otherwise leaves TensorFlow's choice; `on` and `off` force it. A value the user put in
    TF_ENABLE_ONEDNN_OPTS always wins. Returns what decided it, for the log.
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


def cpu_share(launcher: DictConfig, searching: Optional[int] = None) -> int:
    """The cores one job may use: those this process may run on (a scheduler's allotment),
    divided among the jobs the launcher runs at once (for a search, at most its `searching`
    trials at once)."""
    cores = len(os.sched_getaffinity(0))
    if "ray" in str(launcher.get("_target_", "")).lower():
        # Ray reserves one core per task unless the launcher asks for more.
        return int(OmegaConf.select(launcher, "ray.remote.num_cpus", default=None) or 1)
    if launcher.get("cpus_per_task"):  # submitit
        return min(cores, int(launcher.cpus_per_task))
    n_jobs = launcher.get("n_jobs")  # joblib: -1 is every core, -2 all but one, ...
    if isinstance(n_jobs, int) and n_jobs != 0:
        at_once = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
        return max(1, cores // min(at_once, searching or at_once))
    return cores
