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


def load_model(model_path: Path, run_cfg: DictConfig):
    """Load with Keras' safe_mode on (a file that would run code when loaded is refused, not
    run), and check that it takes the run's images and gives one output per class."""
    import keras

    try:
        model = keras.models.load_model(model_path, safe_mode=True)
    except Exception as error:  # Keras raises several kinds; each means the same to a user
        raise CheckpointError(f"{model_path}: refused or unreadable as a Keras model: "
                              f"{first_line(error)}") from None
    size, classes = run_cfg.dataset.image_size, len(run_cfg.dataset.class_names)
    expected_input = (None, size, size, 1)
    if tuple(model.input_shape) != expected_input or tuple(model.output_shape) != (None, classes):
        raise CheckpointError(
            f"{model_path}: takes {tuple(model.input_shape)} and gives {tuple(model.output_shape)}, "
            f"but its run's dataset {run_cfg.dataset.name} has {size}x{size}x1 images and {classes} "
            f"classes: not the model of this run")
    return model
