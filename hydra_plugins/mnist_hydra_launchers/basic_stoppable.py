"""`hydra/launcher=basic` (the default: jobs one after the other, in the sweep's process) that
a SIGTERM stops whole: the running job records itself `interrupted`, the jobs after it do not
start and the summary lists them as `not run` (their plan is written first), and the sweep
exits with status 143 once its summary is written (_stopping.py)."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.core_plugins.basic_launcher import BasicLauncher, BasicLauncherConf
from hydra.core.utils import JobReturn

from hydra_plugins.mnist_hydra_launchers._stopping import STOPPED_STATUS, stop_on_sigterm
from mnist_hydra.run_folders import write_plan


@dataclass
class StoppableBasicLauncherConf(BasicLauncherConf):
    """`hydra/launcher=basic`: stored in place of Hydra's own config (register())."""

    _target_: str = "hydra_plugins.mnist_hydra_launchers.basic_stoppable.StoppableBasicLauncher"


class StoppableBasicLauncher(BasicLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_plan(sweep_dir, initial_job_idx, job_overrides)
        with stop_on_sigterm(_interrupt) as stopping:
            try:
                return super().launch(job_overrides, initial_job_idx)
            except (KeyboardInterrupt, SystemExit):  # the job in this process, interrupted
                if stopping.is_set():
                    raise SystemExit(STOPPED_STATUS) from None
                raise


def _interrupt() -> None:
    """In the job that runs (it records itself `interrupted`, as on Ctrl-C), or between jobs."""
    raise KeyboardInterrupt("SIGTERM")
