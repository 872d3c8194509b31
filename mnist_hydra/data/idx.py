"""MNIST-like datasets from their four IDX files, each file checked before use.

One class for all of them: a dataset's YAML file names the four files, their sizes and
the sha256 of their uncompressed bytes (conf/dataset/mnist.yaml), so another IDX dataset
(KMNIST, EMNIST, ...) is one more YAML file. Every file is checked three ways: reading
stops one byte past its size, its IDX header must match its length, and its sha256 must
match. MNIST ships inside the package (these machines cannot download it).
"""

import gzip
import hashlib
import importlib
import importlib.resources
import os
import struct
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
from omegaconf import DictConfig

from mnist_hydra.data import Dataset, Split
from mnist_hydra.data.digits import load_digit
from mnist_hydra.data.images import MAX_PIXELS
from mnist_hydra.errors import DataError, first_line

SHIPPED = importlib.resources.files("mnist_hydra") / "datasets"
IDX_UNSIGNED_BYTE = 0x08
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


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


class IDXDataset(Dataset):
    """`data_dir` (null: the copy shipped in the package under `datasets/<name>/`) holds the
    four `files`, each as named or gzipped (`.gz`). `keras_download`, the name of a
    keras.datasets module, is tried when none of them are there."""

    def __init__(
        self,
        name: str,
        image_size: int,
        channels: int,
        files: DictConfig,
        class_names: list,
        data_dir: Optional[str] = None,
        train_limit: Optional[int] = None,
        test_limit: Optional[int] = None,
        keras_download: Optional[str] = None,
    ):
        super().__init__(name, image_size, channels, class_names, train_limit, test_limit)
        self.data_dir, self.files, self.keras_download = data_dir, files, keras_download

    def read(self) -> tuple[Split, Split]:
        folder = self.folder()
        return self._split(folder, "train"), self._split(folder, "test")

    def prepare(self, source, name=None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
        return load_digit(source, name, max_pixels)[
            ..., np.newaxis
        ]  # MNIST's own preparation (data/digits.py)

    def folder(self) -> Path:
        if self.data_dir is None:
            folder = Path(str(SHIPPED / self.name))
            if not folder.is_dir():
                raise DataError(
                    f"dataset.data_dir is null, but only MNIST ships with the package, not {self.name}"
                )
            return folder
        folder = Path(self.data_dir)
        missing = [self.files[role].file for role in ROLES if _find(folder, self.files[role].file) is None]
        if not missing or not self.keras_download:
            return folder
        if len(missing) < len(ROLES):  # a partial copy is a mistake to report, not to download over
            raise DataError(
                f"{folder} holds only some of {self.name}'s files: "
                f"{', '.join(stem + '(.gz)' for stem in missing)} missing"
            )
        try:
            return _keras_download(self.keras_download)
        except Exception as error:  # any failure to download means the same advice
            raise DataError(
                f"{self.name} is not in {folder} and Keras could not download it ({first_line(error)}). "
                f"Set dataset.data_dir to a folder holding its four IDX files"
                + (
                    " (`apt-get install dataset-fashion-mnist` puts them in the default one)"
                    if self.name == "fashion_mnist"
                    else ""
                )
            ) from None

    def _split(self, folder: Path, split: str) -> Split:
        arrays = []
        for role in (f"{split}_images", f"{split}_labels"):
            spec = self.files[role]
            path = _find(folder, spec.file)
            if path is None:
                raise DataError(f"{folder / spec.file}(.gz) is missing: dataset {self.name} needs it")
            arrays.append(read_idx(path, spec.sha256, spec.bytes))
        images, labels = arrays
        size = self.image_shape[0]
        if images.shape[1:] != (size, size):
            raise DataError(
                f"{folder}: the {split} images are {images.shape[1]}x{images.shape[2]} pixels, "
                f"but dataset.image_size={size}"
            )
        if len(images) != len(labels):
            raise DataError(f"{folder}: {len(images)} {split} images but {len(labels)} labels")
        if labels.max() >= len(self.class_names):
            raise DataError(
                f"{folder}: {split} labels go up to {labels.max()}, beyond {len(self.class_names)} classes"
            )
        return Split(images[..., np.newaxis], labels)


def _find(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


KERAS_DOWNLOADS = ("mnist", "fashion_mnist")  # keras.datasets' modules of IDX files, by name


def _keras_download(module: str) -> Path:
    """Let Keras download a dataset (e.g. fashion_mnist), and return the folder it put the files in.
    Only from a table: the name comes from a config, which may be a received run's."""
    if module not in KERAS_DOWNLOADS:
        raise ValueError(f"keras_download={module} is not one of {', '.join(KERAS_DOWNLOADS)}")
    loader = importlib.import_module(f"keras.datasets.{module}")
    loader.load_data()
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(keras_home) / "datasets" / module.replace("_", "-")
