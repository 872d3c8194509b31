"""`hydra/launcher=submitit_local` and `=submitit_slurm` (and `slurm`) in which a job that
dies outright fails alone.

The submitit plugin submits every job, then collects their results in order with
`Job.results()`, which raises for a job that produced no result (its process was killed,
or the node lost): the sweep then ends there, before the later jobs are collected. Here,
for the length of a launch, a job without a result is returned as crashed instead, and
the collection goes on. (The plugin gives no other way in than that one call.)
"""

from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

from hydra_plugins.mnist_hydra_launchers._crashes import crashed_job


class _CrashTolerant:
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.core import Job
        from submitit.core.utils import UncompletedJobError

        results = Job.results
        collected = iter(range(len(job_overrides)))  # the plugin collects the jobs in order

        def results_or_crashed(job):
            position = next(collected)
            try:
                return results(job)
            except UncompletedJobError:
                how = f"its process ended without a result (submitit job {job.job_id}, state {job.state})"
                return [
                    crashed_job(
                        self.hydra_context,
                        self.config,
                        initial_job_idx + position,
                        list(job_overrides[position]),
                        how,
                    )
                ]

        Job.results = results_or_crashed
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            Job.results = results


class TolerantLocalLauncher(_CrashTolerant, LocalLauncher):
    pass


class TolerantSlurmLauncher(_CrashTolerant, SlurmLauncher):
    pass


@dataclass
class TolerantLocalQueueConf(LocalQueueConf):
    _target_: str = "hydra_plugins.mnist_hydra_launchers.submitit_tolerant.TolerantLocalLauncher"


@dataclass
class TolerantSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.mnist_hydra_launchers.submitit_tolerant.TolerantSlurmLauncher"
