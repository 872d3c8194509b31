"""Before a training run writes anything: its values checked and its folder claimed, or the run
refused in one line.

`RunFolderGuard` is a Hydra callback (train.yaml's hydra.callbacks): it checks a single run's
values (config/validate.py) before its folder exists, so that a refused command leaves nothing
behind, then claims the folder before Hydra writes into it (mnist_hydra/run_folders.py says
what that guarantees) and refuses what a sweep cannot do. `resume=true` finds the folder of the
run to continue through the `mnist_hydra.run_folder` resolver on `hydra.run.dir`.

A sweep's job is claimed where Hydra asks, for each job, where to save its config: the
`mnist_hydra.job_folder` resolver on `hydra.output_subdir` runs in the job's process before
anything is written into its folder, whatever `hydra.sweep.subdir` says. So two jobs that would
share a folder (a fixed subdir), or a job sent into a finished run's folder, are refused there.
"""

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from mnist_hydra.config.validate import validate
from mnist_hydra.errors import CheckpointError, ConfigError, RunFolderError, underlying
from mnist_hydra.run_folders import FINISHED, claim, live_holder, run_status
from mnist_hydra.trained_runs import locate_run


def job_folder(subdir: str, *, _root_: DictConfig) -> str:
    """`subdir` (.hydra), once a sweep's job has claimed its folder; refused in one line if not."""
    if _root_.hydra.mode == RunMode.MULTIRUN:
        task = OmegaConf.masked_copy(_root_, [key for key in _root_ if key != "hydra"])
        try:
            claim(Path(_root_.hydra.runtime.output_dir), task)
        except RunFolderError as error:
            raise SystemExit(f"Refused: {error}") from None  # not wrapped by OmegaConf: one line
    return subdir


def _without_resume(overrides) -> list[str]:
    return sorted(o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra.")))


def run_folder(resume: bool, new_folder: str, overrides) -> str:
    """`new_folder`, unless resuming: then the newest unfinished run with the same overrides.

    Runs live in `<root>/<date>/<time>/`; `<root>` is taken from `new_folder`.
    """
    if not resume:
        return new_folder
    wanted = _without_resume(list(overrides))
    root = Path(new_folder).parents[1]
    for record in sorted(root.glob("*/*/.hydra/overrides.yaml"), reverse=True):
        run = record.parent.parent
        if _without_resume(OmegaConf.load(record)) == wanted and run_status(run) not in FINISHED:
            holder = live_holder(run)
            if holder:
                raise RunFolderError(
                    f"resume=true: the newest unfinished run of this command, {run}, "
                    f"is still running ({holder}); wait for it to end or stop it"
                )
            return str(run)
    raise RunFolderError(
        f"resume=true: no unfinished run in {root}/ was started with the overrides {wanted}; "
        f"point hydra.run.dir at the run folder to resume it"
    )


class RunFolderGuard(Callback):
    """Claims a single run's folder before Hydra writes into it; refuses what a sweep cannot do.

    Hydra turns a callback's exceptions into warnings and carries on, so a refusal here
    exits the process itself (SystemExit: the message, one line, and exit code 1).
    """

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)  # as the job will have it: ${hydra:...} resolves
        task = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
        try:
            validate(task)  # a bad value: one line, and no run folder (a sweep's jobs: in main())
            if task.get("init_from") and not task.get("resume"):  # resumed: its backup has the weights
                locate_run(task.init_from)  # the run to start from, read as data (received_run.py)
        except (ConfigError, CheckpointError) as error:
            raise SystemExit(str(error)) from None
        try:
            claim(Path(config.hydra.run.dir), task)  # resolving run.dir finds the run resume=true means
        except RunFolderError as error:
            raise SystemExit(f"Refused: {error}") from None
        except InterpolationResolutionError as error:
            reason = underlying(error)  # OmegaConf wraps what the resolver raised
            if isinstance(reason, RunFolderError):
                raise SystemExit(f"Refused: {reason}") from None
            raise

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            _refuse_sweep(config)
        except RunFolderError as error:
            raise SystemExit(f"Refused: {error}") from None


def _refuse_sweep(config: DictConfig) -> None:
    if any(
        o.replace(" ", "").lower() not in ("resume=false", "resume=0")
        for o in config.hydra.overrides.task
        if o.lstrip("+~").startswith("resume=")
    ):
        raise RunFolderError(
            "resume=true does not apply to -m sweeps: resume a sweep's job one at a "
            "time with hydra.run.dir=<its job folder> (and its overrides)"
        )
    sweep_dir = Path(config.hydra.sweep.dir)
    others = list(sweep_dir.glob("*/.hydra")) + list(sweep_dir.glob("multirun.yaml"))
    if others:
        raise RunFolderError(
            f"hydra.sweep.dir={sweep_dir} already holds another sweep's jobs, "
            f"which its summary would mix with this one's: choose a new folder"
        )
