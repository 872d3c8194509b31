"""A job whose process died outright: returned as failed, and told to Hydra's callbacks."""

import logging
import threading
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext
from omegaconf import DictConfig, open_dict

from mnist_hydra.errors import JobCrashed, JobInterrupted

log = logging.getLogger(__name__)
_composing = threading.Lock()  # Hydra's config loader is not made for threads


def crashed_job(
    hydra_context: HydraContext,
    config: DictConfig,
    idx: int,
    overrides: list,
    how: str,
    interrupted: bool = False,
) -> JobReturn:
    """The JobReturn of job `idx`, which died (`how`: what is known of its end) before it
    could report. Its job-end callbacks run here, in the sweep's process, so that the
    sweep summary lists it as crashed (or `interrupted`, when the sweep was told to stop);
    the sweep goes on and ends with its error."""
    error = (
        JobInterrupted(f"job #{idx} interrupted: {how}")
        if interrupted
        else JobCrashed(f"job #{idx} crashed: {how}")
    )
    log.error("%s", error)
    with _composing:
        job_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(job_config):
        job_config.hydra.job.num = idx
        job_config.hydra.job.id = f"{job_config.hydra.job.name}_{idx}"
        job_dir = Path(job_config.hydra.sweep.dir, str(job_config.hydra.sweep.subdir)).absolute()
        job_config.hydra.runtime.output_dir = str(job_dir)
    crashed = JobReturn(
        overrides=list(overrides),
        cfg=job_config,
        hydra_cfg=job_config,
        status=JobStatus.FAILED,
        _return_value=error,
    )
    hydra_context.callbacks.on_job_end(config=job_config, job_return=crashed)
    return crashed
