"""MNIST-style datasets from their four IDX files, verified before use.

MNIST ships inside the package (these machines cannot download it); Fashion-MNIST
is read from a folder, by default where Debian's `dataset-fashion-mnist` puts it.
Every file is checked twice: its IDX header must match its length, and the sha256
of its uncompressed bytes must match the canonical file's.
"""

import gzip
import hashlib
import importlib.resources
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
from omegaconf import DictConfig

from mnist_hydra.errors import DataError, first_line

SHIPPED_MNIST_DIR = importlib.resources.files("mnist_hydra") / "datasets" / "mnist"

# sha256 of each uncompressed IDX file. MNIST's are those of the canonical files
# (their md5s match the ones published with the original distribution); Fashion-MNIST's
# were taken from Debian's package, whose first labels match the published ones.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
# Bytes of each uncompressed file, the same for both datasets: reading stops there, so a
# wrong file (or a gzip bomb) in dataset.data_dir cannot fill the memory before its check.
IDX_BYTES = {
    "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}
IDX_UNSIGNED_BYTE = 0x08


class Split(NamedTuple):
    images: np.ndarray  # (n, height, width) uint8
    labels: np.ndarray  # (n,) uint8


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """The array in an IDX file's bytes; the header must describe exactly the bytes that follow."""
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != IDX_UNSIGNED_BYTE:
        raise DataError(f"{source}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{source}: truncated inside its IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = header_size + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{source}: its IDX header describes {'x'.join(map(str, shape))} "
            f"({expected} bytes) but the file has {len(raw)} bytes: truncated or corrupted"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def read_idx(path: Path, expected_sha256: str, expected_bytes: int) -> np.ndarray:
    """Read one IDX file (gzip-compressed or not), checking its size, header and checksum."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            raw = file.read(expected_bytes + 1)  # one more: to tell a longer file
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot be read or decompressed ({error})") from None
    if len(raw) > expected_bytes:
        raise DataError(f"{path}: longer than the {expected_bytes} bytes this file has: not the original")
    array = parse_idx(raw, str(path))
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256:
        raise DataError(
            f"{path}: sha256 {digest[:16]}... does not match the canonical "
            f"{expected_sha256[:16]}...: the file is corrupted or not the original"
        )
    return array


def _find(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _keras_fashion_mnist_dir() -> Path:
    """Let Keras download Fashion-MNIST, and return the folder it put the files in."""
    import keras

    keras.datasets.fashion_mnist.load_data()
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(keras_home) / "datasets" / "fashion-mnist"


def dataset_dir(cfg: DictConfig) -> Path:
    """The folder holding the dataset's four files, fetching Fashion-MNIST if it must."""
    if cfg.data_dir is None:
        if cfg.name != "mnist":
            raise DataError("dataset.data_dir is null, but only MNIST ships with the package")
        return Path(str(SHIPPED_MNIST_DIR))
    folder = Path(cfg.data_dir)
    missing = [stem for stem in CHECKSUMS[cfg.name] if _find(folder, stem) is None]
    if not missing or cfg.name != "fashion_mnist":
        return folder
    if len(missing) < len(CHECKSUMS[cfg.name]):  # a partial copy is a mistake to report, not to replace
        raise DataError(f"{folder} holds only some of {cfg.name}'s files: "
                        f"{', '.join(stem + '(.gz)' for stem in missing)} missing")
    try:
        return _keras_fashion_mnist_dir()
    except Exception as error:  # any failure to download means the same advice
        raise DataError(
            f"Fashion-MNIST is not in {folder} and Keras could not download it "
            f"({first_line(error)}). Install it with `apt-get install dataset-fashion-mnist`, "
            f"or set dataset.data_dir to a folder holding its four IDX files"
        ) from None


def _load_split(folder: Path, name: str, prefix: str, num_classes: int, size: int) -> Split:
    arrays = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        stem = f"{prefix}-{kind}"
        path = _find(folder, stem)
        if path is None:
            raise DataError(f"{folder / stem}(.gz) is missing: dataset {name} needs it")
        arrays.append(read_idx(path, CHECKSUMS[name][stem], IDX_BYTES[stem]))
    images, labels = arrays
    if images.shape[1:] != (size, size):
        raise DataError(f"{folder}: the {prefix} images are {images.shape[1]}x{images.shape[2]} pixels, "
                        f"but dataset.image_size={size}")
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels")
    if labels.max() >= num_classes:
        raise DataError(f"{folder}: {prefix} labels go up to {labels.max()}, beyond {num_classes} classes")
    return Split(images, labels)


def load_dataset(cfg: DictConfig) -> tuple[Split, Split]:
    """The (train, test) splits named by a `dataset` config, cut to its limits."""
    folder = dataset_dir(cfg)
    num_classes = len(cfg.class_names)
    train = _load_split(folder, cfg.name, "train", num_classes, cfg.image_size)
    test = _load_split(folder, cfg.name, "t10k", num_classes, cfg.image_size)
    return (
        Split(train.images[: cfg.train_limit], train.labels[: cfg.train_limit]),
        Split(test.images[: cfg.test_limit], test.labels[: cfg.test_limit]),
    )


def to_model_inputs(split: Split, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels scaled to [0, 1] with a channel axis, and one-hot labels, as the recipe has them."""
    images = (split.images.astype(np.float32) / 255.0)[..., np.newaxis]
    one_hot = np.eye(num_classes, dtype=np.float32)[split.labels]
    return images, one_hot
