"""A trained model in a format for deployment, by Keras' own exporters (`Model.export`).

    saved_model  export/saved_model/   a TensorFlow SavedModel with a `serve` endpoint
                                       (TensorFlow Serving, tf.saved_model.load)
    tflite       export/model.tflite   LiteRT (TensorFlow Lite), for phones and small devices
    onnx         export/model.onnx     ONNX, with the [onnx] extra (tf2onnx)

Every format takes the model's input, (batch, height, width, channels) float32 pixels in
[0, 1] prepared like the run's dataset, and gives each class's probability.
"""

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from mnist_hydra.errors import ConfigError, ExportError, first_line
from mnist_hydra.files import (
    file_lock,
    refuse_links,
    remove_temporaries,
    write_atomically,
    write_folder_atomically,
)
from mnist_hydra.inference.loading import DEFAULT_MAX_PARAMETERS, open_run

log = logging.getLogger(__name__)
KERAS_FORMAT = {"saved_model": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}
EXPORTED_NAME = {"saved_model": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}


def export(
    ckpt_path,
    format: str,
    trust_run_code: bool = False,
    output_dir: Optional[str] = None,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
) -> Path:
    """Write the run's model in `format` (checked: config/validate.py) into `output_dir`, by
    default the run's export/ folder; return its path."""
    if format == "onnx":
        _require_onnx()
    run = open_run(ckpt_path, trust_run_code, max_parameters)
    model = run.model
    model(np.zeros((1, *run.image_shape), np.float32))  # Keras' ONNX exporter wants a model once called
    folder = Path(output_dir).expanduser() if output_dir else run.folder / "export"
    target = folder / EXPORTED_NAME[format]
    try:
        # The run's folder may have come from anyone: its export/ (or what is in yours) may not be a
        # link that leads elsewhere, where the export would replace and clean up files.
        for written in (target, folder / ".lock"):
            refuse_links(written, folder if output_dir else run.folder)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a"):
            pass
    except OSError as error:  # a run folder one may read but not write (a shared one, a mounted copy)
        raise ExportError(
            f"{folder}: cannot write there ({error.strerror or first_line(error)}): "
            f"export elsewhere with output_dir=<a folder of yours>"
        ) from None
    with file_lock(folder / ".lock"):  # two exports at once take turns
        remove_temporaries(folder)  # what a killed export left
        write = write_folder_atomically if format == "saved_model" else write_atomically
        try:
            write(
                target,
                lambda temporary: model.export(str(temporary), format=KERAS_FORMAT[format], verbose=False),
            )
        except OSError as error:  # a full disk, a read-only folder: the earlier export stays
            raise ExportError(f"{target}: could not be written ({first_line(error)})") from None
        except Exception as error:  # a converter's failure, whatever its kind: one line
            raise ExportError(f"{run.model_path}: the {format} export failed: {first_line(error)}") from None
    log.info("Exported %s as %s", run.model_path, target)
    return target


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"format=onnx needs the optional ONNX converter ({first_line(error)}): "
            f"pip install 'mnist-hydra[onnx]'"
        ) from None
