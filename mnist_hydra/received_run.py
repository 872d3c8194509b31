"""A run folder's saved config and metrics.json, read as data: nothing in them chooses code to run.

A run folder may have come from anyone (a colleague's sweep, a download), and evaluate, predict,
serve, export and fine-tuning read it. Its files are therefore read as plain values, never handed
to a loader that can build or import:

- `.hydra/config.yaml` goes through YAML's safe loader (bounded in size); no interpolation is
  resolved (a `${` anywhere in it is refused, since resolving one can build any `_target_` it
  names); of it, only what a reading command uses is taken, each value checked for its type: the
  dataset's arguments against the schema of one of our two dataset classes (an unknown key or a
  wrong type is refused, naming the key), the trainer's batch size and test-time shifts, the
  model's `_target_` (a string, never imported here).
- `metrics.json`: the classes and image shape the model was trained for, the test set's
  fingerprint and batch size, each of its type and within bounds.

Refusals are one line naming the file and the key. `trust_run_code=true` (the user's word, for one
command) reads the config the old way instead: Hydra resolves it and may build what it names, for
a run of one's own dataset class (docs/guarantees.md: Reading a run).
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, OmegaConf

from mnist_hydra.config.schema import IDXDatasetConfig, ImageFolderConfig
from mnist_hydra.errors import CheckpointError, first_line

# The datasets a run folder may name without trust_run_code: ours, whose arguments are data.
OUR_DATASETS = {
    "mnist_hydra.data.idx.IDXDataset": IDXDatasetConfig,
    "mnist_hydra.data.image_folder.ImageFolderDataset": ImageFolderConfig,
}
MAX_CONFIG_BYTES = 1 << 20  # a composed config is a few KB
MAX_METRICS_BYTES = 16 << 20  # metrics.json holds every epoch's history: well under this
MAX_CLASSES = 10_000
MAX_IMAGE_SIDE = 4096
MAX_BATCH = 1 << 20
SHA256 = re.compile(r"[0-9a-f]{64}")
NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
MAX_IDX_BYTES = 1 << 30  # MNIST's largest file is 47 MB


@dataclass(frozen=True)
class SavedConfig:
    """What a reading command takes from a run's `.hydra/config.yaml`."""

    dataset: DictConfig  # our dataset's arguments, typed by its schema (trusted: the run's own node)
    batch_size: int
    tta_shift: int
    model_target: Optional[str]
    trusted: bool

    @property
    def dataset_target(self) -> str:
        return self.dataset._target_

    @property
    def dataset_name(self) -> str:
        return str(self.dataset.name)


def read_saved_config(folder: Path, trust_run_code: bool = False) -> SavedConfig:
    path = folder / ".hydra" / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: cannot tell which dataset the model was trained on")
    tree = _load_bounded(path, MAX_CONFIG_BYTES, lambda text: yaml.load(text, _PlainYAML), "YAML")
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path}: not a config (a YAML mapping of keys)")
    if trust_run_code:
        return _trusted(OmegaConf.create(tree), path)
    for key, value in _leaves(tree, ""):
        if "${" in f"{key}{value}":
            raise CheckpointError(
                f"{key.lstrip('.') or 'a key'} in {path} is an interpolation (${{...}}): a run folder's "
                f"config is read as data, and resolving one can run code; pass trust_run_code=true if you "
                f"trust whoever made the run"
            )
    dataset, trainer, model = (_section(tree, name, path) for name in ("dataset", "trainer", "model"))
    return SavedConfig(
        dataset=_checked_dataset(dataset, path),
        batch_size=_int_in(trainer.get("batch_size"), "trainer.batch_size", path, 1, MAX_BATCH),
        tta_shift=_int_in(trainer.get("tta_shift", 0), "trainer.tta_shift", path, 0, MAX_IMAGE_SIDE // 2),
        model_target=_optional_str(model.get("_target_"), "model._target_", path),
        trusted=False,
    )


def _trusted(config: DictConfig, path: Path) -> SavedConfig:
    """The run's config as Hydra gives it (interpolations resolved on use): trust_run_code=true."""
    try:
        return SavedConfig(
            dataset=config.dataset,
            batch_size=int(config.trainer.batch_size),
            tta_shift=int(config.trainer.get("tta_shift", 0)),
            model_target=config.get("model", {}).get("_target_"),
            trusted=True,
        )
    except Exception as error:  # OmegaConf raises several kinds; each means the same here
        raise CheckpointError(f"{path}: {first_line(error)}") from None


def _checked_dataset(dataset: dict, path: Path) -> DictConfig:
    targets = [(key, value) for key, value in _leaves(dataset, "dataset") if key.endswith("._target_")]
    for key, target in targets:
        if key != "dataset._target_" or not isinstance(target, str) or target not in OUR_DATASETS:
            raise CheckpointError(
                f"{key}={target} in {path} is not one of mnist-hydra's datasets, and a run folder may not "
                f"choose code to run: pass trust_run_code=true if you trust whoever made the run (your "
                f"own dataset class)"
            )
    if not targets:
        raise CheckpointError(
            f"dataset._target_ in {path}: missing, so it names none of mnist-hydra's datasets"
        )
    schema = OUR_DATASETS[dataset["_target_"]]
    try:
        checked = OmegaConf.merge(OmegaConf.structured(schema), dataset)
        OmegaConf.to_container(checked, throw_on_missing=True)  # every argument present
    except Exception as error:  # ValidationError, ConfigKeyError, MissingMandatoryValue
        key = getattr(error, "full_key", None)
        named = f"dataset.{key}" if key else "dataset"
        raise CheckpointError(f"{named} in {path}: {first_line(error)}") from None
    for key in ("image_size", "channels"):
        _int_in(checked[key], f"dataset.{key}", path, 1, MAX_IMAGE_SIDE)
    if not NAME.fullmatch(str(checked.name)):  # a folder's name under the package's datasets/
        raise CheckpointError(
            f"dataset.name in {path}: {checked.name!r} is not a plain name (letters, digits, _ and -)"
        )
    for role, file in (checked.get("files") or {}).items():  # an IDX file is decompressed up to this
        _int_in(file.bytes, f"dataset.files.{role}.bytes", path, 1, MAX_IDX_BYTES)
    return checked


def read_metrics(folder: Path) -> Optional[dict]:
    """The run's metrics.json, its keys that reading commands use checked; None when it has none
    (a folder put together by hand: the config's word then)."""
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    record = _load_bounded(path, MAX_METRICS_BYTES, json.loads, "JSON")
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: not a run's record (a JSON object of keys)")
    names = record.get("class_names")
    if not (
        isinstance(names, list)
        and 0 < len(names) <= MAX_CLASSES
        and all(isinstance(name, str) and len(name) <= 200 for name in names)
    ):
        raise CheckpointError(f"class_names in {path}: not a list of 1 to {MAX_CLASSES} class names")
    shape = record.get("image_shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(type(side) is int and 0 < side <= MAX_IMAGE_SIDE for side in shape)
    ):
        raise CheckpointError(f"image_shape in {path}: not [height, width, channels] of positive integers")
    sha = record.get("test_set_sha256")
    if sha is not None and not (isinstance(sha, str) and SHA256.fullmatch(sha)):
        raise CheckpointError(f"test_set_sha256 in {path}: not a SHA-256 in hex")
    if record.get("test_batch_size") is not None:
        _int_in(record["test_batch_size"], "test_batch_size", path, 1, MAX_BATCH)
    return record


class _PlainYAML(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases (`&a`, `*a`), which a saved config never
    has: a few lines of them can stand for a tree too large to walk."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("it uses an alias (*name), which a saved config never does")
        if getattr(self.peek_event(), "anchor", None):
            raise yaml.YAMLError("it uses an anchor (&name), which a saved config never does")
        return super().compose_node(parent, index)


def _load_bounded(path: Path, limit: int, parse, kind: str) -> Any:
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise CheckpointError(f"{path}: larger than {limit // 1024} KB, more than a run writes")
    try:
        return parse(data.decode("utf-8"))
    except (ValueError, yaml.YAMLError) as error:  # UnicodeDecodeError and JSONDecodeError included
        raise CheckpointError(f"{path}: not {kind}: {first_line(error)}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: nested deeper than a run's {kind} ever is") from None


def _section(tree: dict, name: str, path: Path) -> dict:
    section = tree.get(name, {})
    if not isinstance(section, dict):
        raise CheckpointError(f"{name} in {path}: not a mapping of keys")
    return section


def _leaves(tree, prefix: str):
    """(dotted key, value) of every key and leaf of a YAML tree, in mappings and lists alike."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        dotted = f"{prefix}.{key}"
        if isinstance(value, (dict, list)):
            yield dotted, ""
            yield from _leaves(value, dotted)
        else:
            yield dotted, value


def _int_in(value, key: str, path: Path, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise CheckpointError(f"{key} in {path}: {value!r} is not an integer from {low} to {high}")
    return value


def _optional_str(value, key: str, path: Path) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise CheckpointError(f"{key} in {path}: {value!r} is not a string")
    return value
