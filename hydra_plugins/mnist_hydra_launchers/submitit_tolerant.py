"""`hydra/launcher=submitit_local` and `=submitit_slurm` (and `slurm`) in which a job that
dies outright fails alone.

The submitit plugin submits every job, then collects their results in one expression that
raises for the first job without a result (its process was killed, or the node lost): the
sweep then ends there, before the later jobs are collected. This launcher's `launch()` is the
plugin's, with the collection made job by job: a job without a result is returned as crashed,
with its own index, and the others are still collected. It builds the executor as the
plugin's `launch()` does, from the plugin's settings, so pyproject.toml pins the plugin's
minor version (1.2.x), whose settings and job call (`BaseSubmititLauncher.__call__`) it uses.

SIGTERM to the sweep cancels its jobs (submitit sends a local job SIGINT: it records itself
`interrupted`; SLURM's are `scancel`ed), collects what they left, and ends the sweep (_stopping.py).
SIGINT is restored before any job starts (_stopping.let_jobs_be_interrupted).
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, LocalQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
from omegaconf import OmegaConf

from hydra_plugins.mnist_hydra_launchers._crashes import crashed_job
from hydra_plugins.mnist_hydra_launchers._stopping import (
    STOPPED_STATUS,
    let_jobs_be_interrupted,
    stop_on_sigterm,
)
from mnist_hydra.run_folders import write_plan

log = logging.getLogger(__name__)
EXECUTOR_KEYS = {"max_num_timeout"}  # the settings that go to the executor, not to each job


class _CrashTolerant:
    # Seconds submitit waits for the result file of a job that has ended without one (a killed or
    # cancelled job): 15 by default, for a cluster's shared filesystem; None keeps that.
    _RESULT_WAIT = None

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import UncompletedJobError  # here, not at import: Hydra imports every plugin

        let_jobs_be_interrupted()
        executor = self._executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info("Submitit '%s' sweep output dir: %s", self._EXECUTOR, sweep_dir)
        indices = range(initial_job_idx, initial_job_idx + len(job_overrides))
        for idx, overrides in zip(indices, job_overrides):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        state = Singleton.get_state()
        write_plan(sweep_dir, initial_job_idx, job_overrides)
        jobs = executor.map_array(
            self,  # BaseSubmititLauncher.__call__ runs one job
            [list(overrides) for overrides in job_overrides],
            ["hydra.sweep.dir"] * len(job_overrides),
            list(indices),
            [f"job_id_for_{idx}" for idx in indices],
            [state] * len(job_overrides),
        )
        if self._RESULT_WAIT is not None:
            for job in jobs:
                job._results_timeout_s = self._RESULT_WAIT
        returns = []
        with stop_on_sigterm(lambda: [job.cancel(check=False) for job in jobs]) as stopping:
            for idx, overrides, job in zip(indices, job_overrides, jobs):
                try:
                    returns.append(job.results()[0])
                except Exception as error:  # no result (UncompletedJobError), or cancelled with the sweep
                    if not (stopping.is_set() or isinstance(error, UncompletedJobError)):
                        raise
                    how = f"its process ended without a result (submitit job {job.job_id}, state {job.state})"
                    returns.append(
                        crashed_job(
                            self.hydra_context, self.config, idx, list(overrides), how, stopping.is_set()
                        )
                    )
        if stopping.is_set():
            log.error("Stopped by SIGTERM: the sweep's %d submitit jobs were cancelled", len(jobs))
            raise SystemExit(STOPPED_STATUS)  # the summary is written as the sweep exits
        return returns

    def _executor(self):
        """submitit's executor with the launcher's settings, named as the plugin names them."""
        import submitit

        prefix = f"{self._EXECUTOR}_"
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=self.params["submitit_folder"],
            **{prefix + key: value for key, value in self.params.items() if key in EXECUTOR_KEYS},
        )
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in shared else prefix + key: value
                for key, value in self.params.items()
                if key not in EXECUTOR_KEYS | {"submitit_folder"}
            }
        )
        return executor


class TolerantLocalLauncher(_CrashTolerant, LocalLauncher):
    # A local job writes its result before its process ends, on this machine's disk: a job ended
    # without one has none to wait for (submitit's 15 s each made a stopped sweep take 30 s more).
    _RESULT_WAIT = 1


class TolerantSlurmLauncher(_CrashTolerant, SlurmLauncher):
    pass


@dataclass
class TolerantLocalQueueConf(LocalQueueConf):
    _target_: str = "hydra_plugins.mnist_hydra_launchers.submitit_tolerant.TolerantLocalLauncher"


@dataclass
class TolerantSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.mnist_hydra_launchers.submitit_tolerant.TolerantSlurmLauncher"
