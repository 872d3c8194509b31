"""Finding and loading a trained model, and the config of the run that made it."""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mnist_hydra.errors import CheckpointError, first_line


def find_checkpoint(cfg: DictConfig) -> tuple[Path, Path]:
    """(model file, run folder) for `cfg.ckpt_path`: a run folder or a model file inside one."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise CheckpointError("ckpt_path is required: a training run's folder or its model.keras, "
                              "e.g. ckpt_path=outputs/2026-01-31/12-00-00-000000")
    ckpt_path = cfg.ckpt_path
    path = Path(ckpt_path).expanduser()
    model_path = path / "model.keras" if path.is_dir() else path
    if not model_path.is_file():
        raise CheckpointError(f"ckpt_path={ckpt_path}: no such model file (expected a run folder "
                              f"holding model.keras, or a .keras file)")
    return model_path, model_path.parent


def load_run_config(run_dir: Path) -> DictConfig:
    """The composed config a training run saved in its .hydra folder."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: cannot tell which dataset the model was trained on")
    return OmegaConf.load(path)


def load_model(model_path: Path):
    """Load with Keras' safe_mode on: a file that would run code when loaded is refused, not run."""
    import keras

    try:
        return keras.models.load_model(model_path, safe_mode=True)
    except Exception as error:  # Keras raises several kinds; each means the same to a user
        raise CheckpointError(f"{model_path}: refused or unreadable as a Keras model: "
                              f"{first_line(error)}") from None
