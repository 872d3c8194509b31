"""`hydra/launcher=joblib` in which a job that dies outright fails alone.

The joblib plugin runs jobs in loky's worker pool, and when a worker dies (SIGKILL, the
kernel's OOM killer, a segfault) loky breaks the whole pool: every queued job is lost and
the sweep ends. Here joblib only schedules (`n_jobs` at once, on threads of the sweep
process); each job runs in a fresh Python process of its own, given the job exactly as
the plugin's workers get it. A process that dies leaves no result: its job is returned
as failed (`JobCrashed`, with the signal or exit code), Hydra's job-end callbacks are
told (so the sweep summary lists it as `crashed`), and the other jobs run on.

A search (hydra/sweeper=optuna) may instead start each trial as soon as a running one ends:
`jobs_one_by_one` and `run_job`, which several of the sweeper's threads call at once.

SIGTERM to the sweep is passed on to the jobs' processes (each records itself `interrupted`);
the queued jobs do not start, and the sweep ends once its jobs have (_stopping.py).
"""

import logging
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

from hydra_plugins.mnist_hydra_launchers._crashes import crashed_job
from hydra_plugins.mnist_hydra_launchers._stopping import STOPPED_STATUS, stop_on_sigterm
from mnist_hydra.errors import JobInterrupted
from mnist_hydra.run_folders import write_plan

log = logging.getLogger(__name__)
JOB, RESULT = "job.pickle", "result.pickle"


@dataclass
class ProcessPerJobJoblibConf:
    """`hydra/launcher=joblib`: stored in place of the joblib plugin's own config (register())."""

    _target_: str = "hydra_plugins.mnist_hydra_launchers.joblib_processes.ProcessPerJobJoblibLauncher"
    n_jobs: int = -1  # jobs at once; -1: one per core, -2: all cores but one, ...
    verbose: int = 0  # joblib's progress messages when > 0


def jobs_at_once(n_jobs: int, jobs: int) -> int:
    """How many of `jobs` joblib runs at once for `n_jobs` (-1: one per core, -2: all but one...)."""
    from joblib import effective_n_jobs

    return min(effective_n_jobs(n_jobs), jobs)


class ProcessPerJobJoblibLauncher(JoblibLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from joblib import Parallel, delayed  # here, not at import: Hydra imports every plugin at start

        n_jobs = self.joblib.get("n_jobs", -1)
        with self.jobs_one_by_one() as stopping:
            log.info(
                "joblib: %d jobs, %d at once, each in a process of its own",
                len(job_overrides),
                jobs_at_once(n_jobs, len(job_overrides)),
            )
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            write_plan(self.sweep_dir, initial_job_idx, job_overrides)
            returns = Parallel(n_jobs=n_jobs, backend="threading", verbose=self.joblib.get("verbose", 0))(
                delayed(self._run_in_own_process)(idx, list(overrides))
                for idx, overrides in enumerate(job_overrides, start=initial_job_idx)
            )
        if stopping.is_set():
            stopped = [
                r
                for r in returns
                if r.status is JobStatus.FAILED and isinstance(r._return_value, JobInterrupted)
            ]
            log.error(
                "Stopped by SIGTERM: %d job(s) interrupted, %d not run",
                len(stopped),
                len(returns) - len(stopped),
            )
            raise SystemExit(STOPPED_STATUS)  # the summary is written as the sweep exits
        return returns

    @contextmanager
    def jobs_one_by_one(self):
        """For the block, `run_job` may be called from several threads, each starting one job as
        soon as it is called: a search starts a trial whenever another ends (no batches). Yields
        the event that SIGTERM sets (then no job starts, and the running ones are told)."""
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        self.sweep_dir = Path(str(self.config.hydra.sweep.dir))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Sweep output dir: %s", self.sweep_dir)
        self._singleton_state = Singleton.get_state()
        self._running: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        with stop_on_sigterm(self._pass_sigterm_on) as self._stopping:
            yield self._stopping

    def run_job(self, idx: int, overrides: Sequence[str]) -> JobReturn:
        """Job `idx`, added to the sweep's plan and run in a process of its own (jobs_one_by_one)."""
        with self._lock:
            write_plan(self.sweep_dir, idx, [overrides])
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        return self._run_in_own_process(idx, list(overrides))

    def _pass_sigterm_on(self) -> None:
        with self._lock:
            for process in self._running.values():
                process.send_signal(signal.SIGTERM)

    def _run_in_own_process(self, idx: int, overrides: list) -> JobReturn:
        from joblib.externals import cloudpickle

        job = (idx, overrides, self.hydra_context, self.config, self.task_function, self._singleton_state)
        with tempfile.TemporaryDirectory(prefix="mnist-hydra-job-") as scratch:
            (Path(scratch) / JOB).write_bytes(cloudpickle.dumps(job))
            with self._lock:  # a job not started when the sweep was told to stop never starts
                if self._stopping.is_set():
                    return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=None)
                child = subprocess.Popen([sys.executable, "-m", f"{__package__}.job_process", scratch])
                self._running[idx] = child
            code = child.wait()
            with self._lock:
                del self._running[idx]
            try:
                return cloudpickle.loads((Path(scratch) / RESULT).read_bytes())
            except (OSError, EOFError):  # no result: the process died before it could write one
                how, interrupted = self._how_it_ended(code), self._stopping.is_set()
                return crashed_job(self.hydra_context, self.config, idx, overrides, how, interrupted)

    def _how_it_ended(self, code: int) -> str:
        if self._stopping.is_set():
            return "stopped with the sweep (SIGTERM)"
        if code < 0:
            return f"its process was killed by {signal.Signals(-code).name} (signal {-code})"
        return f"its process exited with code {code} without a result"
