"""Your own images: class folders of PNG or JPEG files, decoded once and cached.

    path/train/<class>/*.png and path/test/<class>/*.png     (a split of your own), or
    path/<class>/*.png                                       (split here by test_split, seeded)

The class names are the folder names, sorted; or `class_names`, in its order, when given: then
every folder must be one of them, and a class may have no folder (no images; a folder of a
person's drawings need not hold every digit). Images are read as every image is
(data/images.py: full depth, EXIF orientation, transparency on white), converted to grayscale
or RGB (`channels`) and resized to `image_size` x `image_size` when they are not that size; with
`digits`, each is read as a digit instead, for training and for predictions alike: inverted when
dark on light, cropped, fitted into 20x20 and centred as MNIST's are (data/digits.py).
The decoded arrays are cached (a .npz file keyed by every file's name, size and modification
time, and the size and channels asked for), so a sweep's jobs decode a folder once.
"""

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Optional

import numpy as np

from mnist_hydra.data import Dataset, Split
from mnist_hydra.data.digits import load_digit
from mnist_hydra.data.images import MAX_PIXELS, read_image, resized
from mnist_hydra.errors import DataError, ImageError
from mnist_hydra.files import file_lock, write_atomically

log = logging.getLogger(__name__)
SUFFIXES = (".png", ".jpg", ".jpeg")
DECODER = 2  # in the cache's key: arrays decoded by an earlier version are decoded again


class ImageFolderDataset(Dataset):
    def __init__(
        self,
        name: str,
        path: str,
        image_size: int,
        channels: int,
        test_split: float,
        seed: int,
        class_names: Optional[list] = None,
        train_limit: Optional[int] = None,
        test_limit: Optional[int] = None,
        cache_dir: Optional[str] = None,
        digits: bool = False,
    ):
        super().__init__(name, image_size, channels, None, train_limit, test_limit)
        self.path, self.test_split, self.seed = Path(path).expanduser(), test_split, seed
        self.digits = digits
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else _default_cache()
        self.asked_names = list(class_names) if class_names is not None else None

    @property
    def parts(self) -> dict:
        if not self.path.is_dir():
            raise DataError(f"dataset.path={self.path}: no such folder")
        if (self.path / "train").is_dir() and (self.path / "test").is_dir():
            return {"train": self.path / "train", "test": self.path / "test"}
        return {"all": self.path}

    @property
    def class_names(self) -> list[str]:
        """The class folders' names, sorted, or the ones asked for (listed when first asked:
        predict needs no folder)."""
        if not self._class_names:
            parts = self.parts
            asked = self.asked_names
            classes = {
                part: _class_folders(folder, 2 if asked is None else 1) for part, folder in parts.items()
            }
            if asked is not None:
                for part, folder in parts.items():
                    unknown = [name for name in classes[part] if name not in asked]
                    if unknown:
                        raise DataError(
                            f"{folder}: the class folders {unknown} are not among "
                            f"dataset.class_names={asked}; name them there, or leave it null to take the "
                            f"folders' names"
                        )
                self._class_names = list(asked)
                return self._class_names
            if "test" in classes and classes["test"] != classes["train"]:
                raise DataError(
                    f"{parts['test']}: its classes {classes['test']} differ from "
                    f"{parts['train']}'s {classes['train']}"
                )
            self._class_names = next(iter(classes.values()))
        return self._class_names

    @class_names.setter
    def class_names(self, names: list) -> None:
        self._class_names = names

    def read(self) -> tuple[Split, Split]:
        arrays = self._decoded()
        if "all" in arrays["parts"]:
            train, test = self._held_out(arrays["all_images"], arrays["all_labels"])
        else:
            train = self._shuffled(arrays["train_images"], arrays["train_labels"])
            test = Split(arrays["test_images"], arrays["test_labels"])
        return train, self._interleaved(test)

    def _interleaved(self, test: Split) -> Split:
        """The test images in a seeded order in which the classes take turns in proportion to
        their size, so that `test_limit`'s first N images are a stratified sample."""
        rng = np.random.default_rng(self.seed)
        position = np.empty(len(test.labels))
        for label in np.unique(test.labels):
            members = np.flatnonzero(test.labels == label)
            position[rng.permutation(members)] = (np.arange(len(members)) + 0.5) / len(members)
        order = np.lexsort((test.labels, position))
        return Split(test.images[order], test.labels[order])

    def prepare(self, source, name=None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
        if self.digits:
            return load_digit(source, name, max_pixels)[..., np.newaxis]
        image, _ = _decode(source, self.image_shape, name, max_pixels)
        return image.astype(np.float32) / 255.0

    def _read_file(self, path: Path) -> tuple[np.ndarray, bool]:
        """One file of the folder as uint8 (height, width, channels), and whether it was resized."""
        if self.digits:
            digit = np.clip(np.rint(load_digit(path) * 255.0), 0, 255).astype(np.uint8)
            return digit[..., np.newaxis], False
        return _decode(path, self.image_shape)

    def _decoded(self) -> dict:
        """Every image of every part, from the cache when the files have not changed."""
        files = {
            part: _image_files(folder, self.class_names, self.asked_names is not None)
            for part, folder in self.parts.items()
        }
        key = hashlib.sha256(
            json.dumps(
                [
                    DECODER,
                    self.image_shape,
                    self.digits,
                    [
                        (str(path), stat.st_size, stat.st_mtime_ns)
                        for part in sorted(files)
                        for path, _ in files[part]
                        for stat in [path.stat()]  # one stat per file
                    ],
                ]
            ).encode()
        ).hexdigest()[:32]
        cached = self.cache_dir / f"{key}.npz"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.cache_dir / f"{key}.lock"):  # one job of a sweep decodes, the others wait
            if cached.is_file():
                log.info("Images of %s from the cache %s", self.path, cached)
                with np.load(cached) as stored:
                    return {**stored, "parts": list(files)}
            arrays, resized = {}, 0
            for part, listed in files.items():
                images = []
                for path, _ in listed:
                    try:
                        image, was_resized = self._read_file(path)
                    except ImageError as error:  # in the dataset itself: a data problem
                        raise DataError(str(error)) from None
                    images.append(image)
                    resized += was_resized
                if not images:
                    raise DataError(f"{self.parts[part]}: no images in any of its class folders")
                arrays[f"{part}_images"] = np.stack(images)
                arrays[f"{part}_labels"] = np.array([label for _, label in listed], dtype=np.int64)
            if resized:
                log.warning(
                    "%d of %d images in %s were not %dx%d: resized",
                    resized,
                    sum(map(len, files.values())),
                    self.path,
                    *self.image_shape[:2],
                )
            write_atomically(cached, lambda temporary: np.savez(temporary, **arrays))
            log.info(
                "Decoded %d images of %s; cached in %s", sum(map(len, files.values())), self.path, cached
            )
            return {**arrays, "parts": list(files)}

    def _shuffled(self, images: np.ndarray, labels: np.ndarray) -> Split:
        """In a seeded order: the files come class by class, and a validation split takes the last ones."""
        order = np.random.default_rng(self.seed).permutation(len(labels))
        return Split(images[order], labels[order])

    def _held_out(self, images: np.ndarray, labels: np.ndarray) -> tuple[Split, Split]:
        """test_split of each class's images for testing, chosen by the seed; the rest for training."""
        rng = np.random.default_rng(self.seed)
        test = []
        for label, name in enumerate(self.class_names):
            members = rng.permutation(np.flatnonzero(labels == label))
            if not len(members):  # a class named in class_names that has no images here
                continue
            count = round(self.test_split * len(members))
            if not 1 <= count < len(members):
                raise DataError(
                    f"{self.path / name}: {len(members)} images cannot be split by "
                    f"dataset.test_split={self.test_split} into training and test images"
                )
            test.extend(members[:count])
        is_test = np.zeros(len(labels), dtype=bool)
        is_test[test] = True
        return (self._shuffled(images[~is_test], labels[~is_test]), Split(images[is_test], labels[is_test]))


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mnist_hydra" / "image_folders"


def _class_folders(folder: Path, fewest: int) -> list[str]:
    names = sorted(
        entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")
    )
    if not names:
        raise DataError(f"{folder}: no class folders (the images of each class go into a folder of its name)")
    if len(names) < fewest:
        raise DataError(f"{folder}: 1 class folder ({names[0]}); a classifier needs at least two")
    return names


def _image_files(folder: Path, class_names: list[str], named: bool) -> list[tuple[Path, int]]:
    """Each class's image files and its label; with `named` class names, a class may have none."""
    listed = []
    for label, name in enumerate(class_names):
        if named and not (folder / name).is_dir():
            continue
        files = sorted(
            path
            for path in (folder / name).iterdir()
            if path.suffix.lower() in SUFFIXES and not path.name.startswith(".")
        )
        if not files and not named:
            raise DataError(f"{folder / name}: an empty class folder (no {', '.join(SUFFIXES)} files)")
        for path in files:
            if not path.is_file():  # a link to nothing, or a folder named like an image
                raise DataError(f"{path}: not a file (a broken link?): remove it or make it an image")
        listed += [(path, label) for path in files]
    return listed


def _decode(
    source, shape: tuple, name: Optional[str] = None, max_pixels: int = MAX_PIXELS
) -> tuple[np.ndarray, bool]:
    """One image (a path or its bytes) as uint8 (height, width, channels), and whether it had
    to be resized. Resized at its full depth, then rounded: a 16-bit image keeps its shades."""
    height, width, channels = shape
    pixels = read_image(source, name, channels, max_pixels, needed_side=4 * max(height, width))
    was_resized = pixels.shape[:2] != (height, width)
    pixels = np.clip(np.rint(resized(pixels, height, width) * 255.0), 0, 255).astype(np.uint8)
    return pixels.reshape(height, width, channels), was_resized
