"""Opening a trained run for any command that reads one: its model, loaded safely, and the
dataset it was trained on (which prepares a person's images the way it prepared its own).

evaluate, predict, serve and export all start here; evaluate, predict and serve open a sweep's
completed runs the same way, one by one, as one ensemble (mnist_hydra/trained_runs.py finds them).

A run folder may have come from anyone, so nothing it says chooses code to run: its config is
read as data (mnist_hydra/received_run.py) and our dataset class is constructed from those
checked values, never by Hydra's instantiate; its model's size is read from the model's config
before any weight is allocated (`max_parameters`, and a sweep's members together against the
machine's memory); the model loads with Keras' safe mode set for that load, whatever any global
flag says; its model's module is not imported. Nor where to write: an image folder's cache goes
to this machine's default cache folder, not to the run's `cache_dir`. `trust_run_code=true` (the
user's word, for one command) lifts these, for a run of one's own model or dataset
(docs/guarantees.md: Reading a run).
"""

import importlib
import json
import logging
import zipfile
from pathlib import Path
from typing import NamedTuple, Optional

import keras
from keras.src.backend.common import global_state
from keras.src.backend.common.stateless_scope import StatelessScope
from keras.src.saving.serialization_lib import SafeModeScope, deserialize_keras_object

from mnist_hydra.building import build
from mnist_hydra.data import Dataset
from mnist_hydra.errors import CheckpointError, first_line
from mnist_hydra.machine import machine_memory
from mnist_hydra.received_run import SavedConfig
from mnist_hydra.trained_runs import RunFiles, locate_run, locate_runs

log = logging.getLogger(__name__)


def _not_a_retrace_warning(record: logging.LogRecord) -> bool:
    """An ensemble's members each trace a predict function of their own, which TensorFlow counts as
    one function traced again and again: its "triggered tf.function retracing" warning, for nothing."""
    return "triggered tf.function retracing" not in record.getMessage()


class TrainedRun(NamedTuple):
    """A run's files (mnist_hydra/trained_runs.py: RunFiles), its model, and its dataset."""

    model_path: Path
    folder: Path
    config: SavedConfig
    class_names: list[str]
    image_shape: tuple
    test_set_sha256: Optional[str]
    test_batch_size: int
    model: keras.Model
    dataset: Dataset


OUR_MODELS = ("mnist_hydra.models.cnn.build_cnn",)  # of Keras' own layers: nothing to import
DEFAULT_MAX_PARAMETERS = 50_000_000  # conf/evaluate.yaml and the others: 40x our largest preset
MAX_MODEL_CONFIG_BYTES = 16 << 20  # a .keras file's config.json: a model of thousands of layers fits
MAX_MEMBERS, MAX_OTHER_MEMBER_BYTES = 8, 1 << 20  # a .keras zip: its config, metadata and weights
# Keras' own layers that a received model may have without trust_run_code: what our builder and
# common CNNs use, whose memory is their weights' and their input's (no layer that multiplies its
# input's size by a factor of its config, as UpSampling2D, RepeatVector or Resizing do).
RECEIVED_LAYERS = {
    "InputLayer", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Dense",
    "Dropout", "SpatialDropout2D", "Flatten", "MaxPooling2D", "AveragePooling2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "BatchNormalization", "LayerNormalization",
    "Activation", "ReLU", "LeakyReLU", "Softmax", "Add", "Concatenate", "Multiply", "Average",
    "Rescaling", "Functional", "Sequential", "Model",
}  # fmt: skip
BYTES_PER_PARAMETER = 12  # float32 weights, as loaded, plus what loading and predicting hold beside them


def open_runs(
    ckpt_path, trust_run_code: bool = False, max_parameters: int = DEFAULT_MAX_PARAMETERS
) -> tuple[list[TrainedRun], list[str]]:
    """The run of `ckpt_path`, or a sweep's completed runs; and the jobs skipped (with why).
    Every member's size is read, and their total checked against the machine's memory, before
    any member's weights load."""
    located, skipped = locate_runs(ckpt_path, trust_run_code)
    sizes = [model_parameters(files, trust_run_code, max_parameters) for files in located]
    needed, memory = sum(sizes) * BYTES_PER_PARAMETER, machine_memory()
    if needed > memory // 2:
        raise CheckpointError(
            f"{ckpt_path}: its {len(located)} models have {sum(sizes):,} parameters together, about "
            f"{needed / 2**30:.1f} GB to load: more than half of this machine's {memory / 2**30:.0f} GB"
        )
    if len(located) > 1:
        logging.getLogger("tensorflow").addFilter(_not_a_retrace_warning)  # once: the same function
    return [open_located(files, trust_run_code) for files in located], skipped


def open_ensemble(
    ckpt_path, trust_run_code: bool = False, max_parameters: int = DEFAULT_MAX_PARAMETERS
) -> list[TrainedRun]:
    """The run of `ckpt_path`, or a sweep's completed runs to answer together (predict, serve):
    they must read an image the same way and name the same classes. Skipped jobs are logged."""
    members, skipped = open_runs(ckpt_path, trust_run_code, max_parameters)
    for name in skipped:
        log.warning("Skipped %s", name)

    def preparation(run: TrainedRun) -> tuple:
        return run.class_names, tuple(run.image_shape), run.config.dataset_target

    for run in members[1:]:
        if preparation(run) != preparation(members[0]):
            raise CheckpointError(
                f"an ensemble needs one dataset: {run.folder.name} was trained on other images or "
                f"classes than {members[0].folder.name}"
            )
    return members


def open_run(
    ckpt_path, trust_run_code: bool = False, max_parameters: int = DEFAULT_MAX_PARAMETERS
) -> TrainedRun:
    """The run of `ckpt_path`: a run folder, or a model file inside one."""
    files = locate_run(ckpt_path, trust_run_code)
    model_parameters(files, trust_run_code, max_parameters)
    return open_located(files, trust_run_code)


def open_located(files: RunFiles, trust_run_code: bool = False) -> TrainedRun:
    """Its model and dataset, once its size was checked (model_parameters)."""
    if files.config.trusted:
        dataset = build("dataset", files.config.dataset)
    else:
        dataset = our_dataset(files.config.dataset)
    return TrainedRun(*files, load_model(files, trust_run_code), dataset)


def our_dataset(checked) -> Dataset:
    """One of our two dataset classes, constructed from a received run's checked values
    (received_run.py): never through instantiate, which would follow what the values name."""
    from mnist_hydra.data.idx import IDXDataset
    from mnist_hydra.data.image_folder import ImageFolderDataset

    classes = {
        "mnist_hydra.data.idx.IDXDataset": IDXDataset,
        "mnist_hydra.data.image_folder.ImageFolderDataset": ImageFolderDataset,
    }
    arguments = {key: checked[key] for key in checked if key != "_target_"}
    if "cache_dir" in arguments:  # where to write is this machine's choice, not the run's
        arguments["cache_dir"] = None
    return classes[checked._target_](**arguments)


def model_parameters(files: RunFiles, trust_run_code: bool, max_parameters: int) -> int:
    """How many parameters the model's config gives it, counted without allocating a weight (the
    config is built in a stateless scope, whose variables stay uninitialized and are dropped);
    refused above `max_parameters`. A small file can describe a huge model (zeros deflate well)."""
    if trust_run_code:
        _import_model_module(files.config.model_target)  # its custom layers register themselves there
    config = _model_config(files.model_path)
    config.pop("compile_config", None)  # its optimizer and metrics: not loaded (compile=False)
    if not trust_run_code:
        _refuse_unknown_layers(config, files)
    pending = global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)
    before = len(pending)
    try:
        with StatelessScope(initialize_variables=False), SafeModeScope(True):
            count = deserialize_keras_object(config, safe_mode=True).count_params()
    except Exception as error:  # Keras raises several kinds; each means the same to a user
        raise CheckpointError(
            f"{files.model_path}: refused or unreadable as a Keras model: {first_line(error)}"
            f"{_module_hint(files, trust_run_code)}"
        ) from None
    finally:
        del pending[before:]  # never to be initialized by a later scope
    if count > max_parameters:
        raise CheckpointError(
            f"{files.model_path}: its model has {count:,} parameters, more than max_parameters="
            f"{max_parameters:,}; pass a larger max_parameters= if you expect a model this large"
        )
    _refuse_oversized_members(files.model_path, count)
    return count


def _refuse_unknown_layers(model, files: RunFiles) -> None:
    """Every layer of a received model (nested models' too) is one of RECEIVED_LAYERS, and its
    activation a name: a layer whose config sets the size of what it allocates, or a function
    where a name goes (`keras.utils.plot_model` as an activation), needs trust_run_code."""
    model_path = files.model_path
    layers = model.get("config", {}).get("layers") if isinstance(model, dict) else None
    if model.get("class_name") not in RECEIVED_LAYERS or not isinstance(layers, list):
        raise CheckpointError(
            f"{model_path}: its model, a {model.get('class_name')}, is not a Keras model's config"
        )
    for layer in layers:
        name = layer.get("class_name") if isinstance(layer, dict) else None
        config = layer.get("config") if isinstance(layer, dict) else None
        if name not in RECEIVED_LAYERS or not isinstance(config, dict):
            raise CheckpointError(
                f"{model_path}: its layer class {name} is not one a received model may have (Keras' "
                f"{', '.join(sorted(RECEIVED_LAYERS - {'Functional', 'Sequential', 'Model'}))}); pass "
                f"trust_run_code=true if you trust whoever made the run{_module_hint(files, False)}"
            )
        if "layers" in config:
            _refuse_unknown_layers(layer, files)
        elif not isinstance(config.get("activation", ""), str):
            raise CheckpointError(
                f"{model_path}: its layer {config.get('name')} has an activation that is not a name "
                f"({str(config['activation'])[:80]}); pass trust_run_code=true if you trust whoever made "
                f"the run"
            )


def _refuse_oversized_members(model_path: Path, parameters: int) -> None:
    """The .keras zip holds its config, metadata and weights: no more members than that, and weights
    no larger than its parameters and their optimizer state. Keras would extract each member (into
    a temporary folder, when there are more than three) before reading it: a few KB of zeros
    compressed can stand for gigabytes."""
    with zipfile.ZipFile(model_path) as archive:
        members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise CheckpointError(f"{model_path}: {len(members)} files in its archive, more than a model's")
    for member in members:
        limit = parameters * 16 + (1 << 20) if member.filename.endswith(".h5") else MAX_OTHER_MEMBER_BYTES
        if member.filename != "config.json" and member.file_size > limit:
            raise CheckpointError(
                f"{model_path}: its {member.filename} is {member.file_size:,} bytes once extracted, more "
                f"than the {parameters:,} parameters of its config need"
            )


def _model_config(model_path: Path) -> dict:
    """The model's config.json from its .keras file (a zip), read within bounds."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_MODEL_CONFIG_BYTES:
                raise CheckpointError(
                    f"{model_path}: its config.json is {info.file_size:,} bytes, more than a model's config"
                )
            with archive.open(info) as file:
                config = json.loads(file.read(MAX_MODEL_CONFIG_BYTES + 1))
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, RuntimeError) as error:
        raise CheckpointError(
            f"{model_path}: refused or unreadable as a Keras model (.keras): {first_line(error)}"
        ) from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{model_path}: its config.json is not a model's config")
    return config


def load_model(files: RunFiles, trust_run_code: bool = False) -> keras.Model:
    """Load with Keras' safe mode on for this load (a file that would run code when loaded is
    refused, not run, even if something turned Keras' global flag off), and check that it takes the
    run's images and gives one output per class. With `trust_run_code`, the module of the run's
    model builder is imported first (a custom layer registers itself with Keras there)."""
    if trust_run_code:
        _import_model_module(files.config.model_target)
    try:
        with SafeModeScope(True):  # not compiled: its metrics could allocate what was not counted
            model = keras.models.load_model(files.model_path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises several kinds; each means the same to a user
        raise CheckpointError(
            f"{files.model_path}: refused or unreadable as a Keras model: {first_line(error)}"
            f"{_module_hint(files, trust_run_code)}"
        ) from None
    expected_input, classes = (None, *files.image_shape), len(files.class_names)
    if tuple(model.input_shape) != expected_input or tuple(model.output_shape) != (None, classes):
        raise CheckpointError(
            f"{files.model_path}: takes {tuple(model.input_shape)} and gives {tuple(model.output_shape)}, "
            f"but its run's dataset {files.config.dataset_name} has "
            f"{'x'.join(map(str, files.image_shape))} images and {classes} classes: not the model of this run"
        )
    return model


def _module_hint(files: RunFiles, trust_run_code: bool) -> str:
    target = files.config.model_target
    if target in OUR_MODELS or trust_run_code:
        return ""
    return (
        f" (its model, model._target_={target}, may need its own module, which is imported "
        f"only with trust_run_code=true)"
    )


def _import_model_module(target) -> None:
    """Import the module of the run's model builder: a user's custom layers register themselves
    with Keras there (keras.saving.register_keras_serializable), which loading needs."""
    if not target or "." not in target:
        return
    try:
        importlib.import_module(target.rsplit(".", 1)[0])
    except ImportError as error:
        raise CheckpointError(
            f"model._target_={target}: its module cannot be imported ({first_line(error)}); "
            f"put it on the Python path (PYTHONPATH) to load this run's model"
        ) from None
