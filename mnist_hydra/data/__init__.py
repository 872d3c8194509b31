"""Datasets. A `dataset` config names a class (`_target_`) that reads one dataset: the IDX
files of MNIST-like sets (`idx.py`) or class folders of images (`image_folder.py`). The rest
of the package sees only what `Dataset` promises.
"""

import hashlib
from typing import NamedTuple, Optional

import numpy as np

from mnist_hydra.config.validate import MAX_PIXELS


class Split(NamedTuple):
    images: np.ndarray  # (n, height, width, channels) uint8
    labels: np.ndarray  # (n,) class indices

    def sha256(self) -> str:
        """A fingerprint of these images and labels, as evaluated: what a run records of its test
        set (`test_set_sha256`), so that a changed test set, or an ensemble of runs tested on
        different images, is told rather than scored."""
        digest = hashlib.sha256(repr((self.images.shape, str(self.images.dtype))).encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(np.asarray(self.labels, dtype=np.int64).tobytes())
        return digest.hexdigest()


class Dataset:
    """What a dataset gives the training task, evaluate and predict."""

    name: str
    class_names: list[str]
    image_shape: tuple[int, int, int]  # height, width, channels

    def __init__(
        self,
        name: str,
        image_size: int,
        channels: int,
        class_names: Optional[list] = None,
        train_limit: Optional[int] = None,
        test_limit: Optional[int] = None,
    ):
        self.name = name
        self.image_shape = (image_size, image_size, channels)
        self.class_names = list(class_names) if class_names is not None else []
        self.limits = (train_limit, test_limit)

    def load(self) -> tuple[Split, Split]:
        """The (train, test) splits, each cut to its limit (the first N images)."""
        train, test = self.read()
        return tuple(
            Split(split.images[:limit], split.labels[:limit])
            for split, limit in zip((train, test), self.limits)
        )

    def read(self) -> tuple[Split, Split]:
        raise NotImplementedError

    def prepare(self, source, name: Optional[str] = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
        """A person's image as the model takes it: (height, width, channels) floats in [0, 1].

        `source` is a file's path or its bytes (io.BytesIO); `name` tells it in errors; an image
        of more than `max_pixels` is refused before it is decoded (data/images.py).
        Raises an ImageError (NotAnImage, ImageTooLarge, BlankImage) naming what is wrong."""
        raise NotImplementedError


def to_model_inputs(split: Split, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels scaled to [0, 1], and one-hot labels, as the recipe has them."""
    return split.images.astype(np.float32) / 255.0, one_hot(split.labels, num_classes)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]
