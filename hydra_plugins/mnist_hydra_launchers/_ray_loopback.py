"""`hydra/launcher=ray` whose private Ray instance stays on 127.0.0.1, and whose jobs fail alone.

- On Linux, Ray registers a node under the machine's external address even when told
  127.0.0.1, unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (its one-machine mode) is set
  before Ray is imported. A private instance for one machine's sweep has no reason to
  listen elsewhere, so it gets that mode and 127.0.0.1. Joining a running cluster
  (`hydra/launcher=ray_cluster`, an address) leaves both to the cluster.
- The Ray plugin collects the jobs' results in one pass that raises at the first job whose
  worker died, ending the sweep. Here each job's result is taken on its own: a job whose
  worker died is returned as crashed, and the others run on.
- SIGTERM to the sweep cancels its tasks and ends the sweep (_stopping.py).
- A private instance's jobs run at the sweep's own priority, not at Ray's nice 15 for workers.
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra_plugins.hydra_ray_launcher._config import RayLauncherConf
from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher
from omegaconf import open_dict

from hydra_plugins.mnist_hydra_launchers._crashes import crashed_job
from hydra_plugins.mnist_hydra_launchers._stopping import (
    STOPPED_STATUS,
    let_jobs_be_interrupted,
    stop_on_sigterm,
)
from mnist_hydra.run_folders import write_plan

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


@dataclass
class LoopbackRayLauncherConf(RayLauncherConf):
    """`hydra/launcher=ray`: stored in place of the Ray plugin's own config (register())."""

    _target_: str = "hydra_plugins.mnist_hydra_launchers._ray_loopback.LoopbackRayLauncher"


class LoopbackRayLauncher(RayLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        private = not self.ray_cfg.init.get("address")
        if private:
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported
            # Ray starts its workers at nice 15, and a sweep's workers are its training: beside any
            # busy process they got a few percent of a core (a 16 s sweep took 248 s beside two
            # busy loops on 2 cores). A private instance's jobs run at the sweep's own priority.
            os.environ.setdefault("RAY_worker_niceness", "0")
        import ray
        from hydra_plugins.hydra_ray_launcher._launcher_util import launch_job_on_ray, start_ray

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with open_dict(self.ray_cfg):
            if private:
                self.ray_cfg.init.setdefault("_node_ip_address", LOOPBACK)
                # Ray's dashboard: seconds of start-up and another server, for a sweep's private instance.
                self.ray_cfg.init.setdefault("include_dashboard", False)
            # As the plugin does: Ray's default object store is too small on small machines.
            self.ray_cfg.init.setdefault("object_store_memory", 78643200)
        let_jobs_be_interrupted()  # before Ray starts its workers: ray.cancel interrupts them
        start_ray(self.ray_cfg.init)
        addresses = sorted({node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]})
        log.info(
            "Ray: %d job%s on the nodes at %s; sweep output dir: %s",
            len(job_overrides),
            "" if len(job_overrides) == 1 else "s",
            ", ".join(addresses),
            sweep_dir,
        )

        write_plan(sweep_dir, initial_job_idx, job_overrides)
        launched = []
        # SIGTERM is ours from the first launch on: it cancels what was launched, launches no more
        # (a job started first may be well on while the others are still being composed).
        with stop_on_sigterm(lambda: [ray.cancel(result) for *_, result in launched]) as stopping:
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                if stopping.is_set():
                    break
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
                sweep_config = self.hydra_context.config_loader.load_sweep_config(
                    self.config, list(overrides)
                )
                with open_dict(sweep_config):
                    sweep_config.hydra.job.id = f"job_id_for_{idx}"
                    sweep_config.hydra.job.num = idx
                job = launch_job_on_ray(
                    self.hydra_context,
                    self.ray_cfg.remote,
                    sweep_config,
                    self.task_function,
                    Singleton.get_state(),
                )
                launched.append((idx, overrides, job))
            return self._collect(launched, stopping)

    def _collect(self, launched: list, stopping) -> list[JobReturn]:
        """Each job's result on its own. SIGTERM (`stopping`) has cancelled them all (a running task
        gets a KeyboardInterrupt: it records itself `interrupted`); then the sweep ends (_stopping.py)."""
        import ray

        returns = []
        for idx, overrides, result in launched:
            try:
                returns.append(ray.get(result))
            except (
                ray.exceptions.RayError
            ) as error:  # the worker died, Ray lost the task, or it was cancelled
                how = f"its Ray worker failed: {type(error).__name__}"
                returns.append(
                    crashed_job(self.hydra_context, self.config, idx, overrides, how, stopping.is_set())
                )
        if stopping.is_set():
            log.error("Stopped by SIGTERM: the sweep's %d Ray tasks were cancelled", len(launched))
            raise SystemExit(STOPPED_STATUS)  # the summary is written as the sweep exits
        return returns
