"""mnist-hydra's Hydra launchers and its Optuna sweeper (Hydra finds plugins only under the
`hydra_plugins` package)."""


def register() -> None:
    """Make our launchers and sweeper known to Hydra. `hydra/launcher=basic` (the default),
    `joblib`, `submitit_local`, `submitit_slurm` (so `slurm`) and `ray` pick ours: in each a job
    that dies fails alone, and basic and joblib stop whole on SIGTERM. `hydra/sweeper=optuna` is
    ours (hydra-optuna-sweeper is not installed: it holds Optuna at 2.x).

    Hydra's plugin scan walks the `hydra_plugins` folders on sys.path, and finds ours in a regular
    install and in `make`'s (strict) editable one; it then registers the sweeper by itself, for
    any app. The scan (Plugins.instance()) also stores the plugins' own launcher configs, so ours
    are stored after it, under the same names.
    """
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    from hydra_plugins.mnist_hydra_launchers.basic_stoppable import (
        StoppableBasicLauncher,
        StoppableBasicLauncherConf,
    )
    from hydra_plugins.mnist_hydra_launchers.joblib_processes import (
        ProcessPerJobJoblibConf,
        ProcessPerJobJoblibLauncher,
    )
    from hydra_plugins.mnist_hydra_launchers.optuna_sweeper import OptunaSweeper
    from hydra_plugins.mnist_hydra_launchers.submitit_tolerant import (
        TolerantLocalLauncher,
        TolerantLocalQueueConf,
        TolerantSlurmLauncher,
        TolerantSlurmQueueConf,
    )

    plugins, store = Plugins.instance(), ConfigStore.instance()
    for launcher, name, node in (
        (StoppableBasicLauncher, "basic", StoppableBasicLauncherConf),
        (ProcessPerJobJoblibLauncher, "joblib", ProcessPerJobJoblibConf),
        (TolerantLocalLauncher, "submitit_local", TolerantLocalQueueConf),
        (TolerantSlurmLauncher, "submitit_slurm", TolerantSlurmQueueConf),
    ):
        plugins.register(launcher)
        store.store(group="hydra/launcher", name=name, node=node, provider="mnist_hydra")
    plugins.register(OptunaSweeper)  # its configs are stored as it is imported
    try:  # Ray is an optional extra
        from hydra_plugins.mnist_hydra_launchers._ray_loopback import (
            LoopbackRayLauncher,
            LoopbackRayLauncherConf,
        )
    except ImportError:
        return
    plugins.register(LoopbackRayLauncher)
    store.store(group="hydra/launcher", name="ray", node=LoopbackRayLauncherConf, provider="mnist_hydra")
