"""Where a training run writes: a new folder, or with `resume=true` the unfinished
folder of the same command, found again so that the run continues where it stopped."""

import json
from pathlib import Path

from hydra.errors import CompactHydraException
from omegaconf import OmegaConf


def _without_resume(overrides) -> list[str]:
    return sorted(o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra.")))


def _finished(run: Path) -> bool:
    try:
        return json.loads((run / "metrics.json").read_text()).get("status") == "completed"
    except (OSError, ValueError):
        return False


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
        if _without_resume(OmegaConf.load(record)) == wanted and not _finished(run):
            return str(run)
    raise CompactHydraException(
        f"resume=true: no unfinished run in {root}/ was started with the overrides {wanted}; "
        f"point hydra.run.dir at the run folder to resume it"
    )


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("mnist_hydra.run_folder", run_folder, replace=True)
