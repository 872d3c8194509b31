"""Drawings a person corrects on the page, kept as a dataset of their handwriting
(`serve collect_dir=<folder>`; off by default).

    <folder>/<label>/<n>.png            the 28x28 view the model read: what training reads
    <folder>/<label>/drawings/<n>.png   the drawing itself, beside it (at most 1024 pixels a side)

The folder is an image folder as it stands (`dataset=digit_folder dataset.path=<folder>`:
the class folders are the labels; `drawings/` is not a class's image, the dataset skips it).

What a kill, a second server or a full disk leaves behind: each file is written to a hidden
temporary name, flushed, then linked to its number, which fails rather than replaces when the
number is taken (by another server on the same folder), and the next number is tried; the
drawing first, the view last, so the dataset never sees a view whose drawing failed (a kill in
between leaves a drawing without its view, which the dataset ignores). A label holds at most
`max_per_label` numbered views, numbers 0 to max_per_label - 1: the bound holds whichever
process wrote them. A full disk (any OSError) leaves no temporary file and no number taken.
"""

import io
import os
import threading
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from mnist_hydra.errors import ConfigError
from mnist_hydra.files import refuse_links, temporary_name

DRAWINGS = "drawings"
# A kept drawing is scaled down to this many pixels a side at most (the page's canvas is 280), so
# that a label's folder stays under about max_per_label MB (3x in colour) whatever is uploaded.
DRAWING_SIDE = 1024


class LabelFull(Exception):
    """The label holds its most drawings already."""


class Collector:
    def __init__(self, folder: Path, class_names: list[str], max_per_label: int):
        self.folder, self.class_names, self.max_per_label = (
            Path(folder).absolute(),
            class_names,
            max_per_label,
        )
        unusable = [name for name in class_names if not folder_name(name)]
        if unusable:
            raise ConfigError(
                f"collect_dir={folder}: the run's classes {unusable} cannot be folder names "
                f"(a class's drawings go into a folder of its name)"
            )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            refuse_links(self.folder, self.folder.parent)  # its own name may not lead elsewhere
        except OSError as error:
            raise ConfigError(f"collect_dir={folder}: {error.strerror or error}") from None
        self._lock = threading.Lock()  # this server's requests number their drawings in turn

    def describe(self) -> dict:
        return {"folder": str(self.folder), "max_per_label": self.max_per_label}

    def check_label(self, label: str) -> None:
        if label not in self.class_names:
            raise ValueError(
                f"label={label!r} is not one of the run's classes: {', '.join(self.class_names)}"
            )

    def save(self, label: str, view: np.ndarray, drawing: np.ndarray) -> dict:
        """Save `view` (the model's input, floats in [0, 1]) and `drawing` (the full-size image,
        floats in [0, 1]) under `label`; their paths, and how many the label holds now."""
        self.check_label(label)
        label_folder = self.folder / label
        with self._lock:
            (label_folder / DRAWINGS).mkdir(parents=True, exist_ok=True)
            refuse_links(label_folder / DRAWINGS, self.folder)
            for number in range(self.max_per_label):
                view_path = label_folder / f"{number}.png"
                drawing_path = label_folder / DRAWINGS / f"{number}.png"
                if view_path.exists() or drawing_path.exists():
                    continue
                try:
                    write_new(drawing_path, png_of(drawing, DRAWING_SIDE))
                except FileExistsError:  # another server took the number first
                    continue
                try:
                    write_new(view_path, png_of(view))
                except FileExistsError:  # a view without its drawing (put there by hand): skipped
                    drawing_path.unlink(missing_ok=True)
                    continue
                except BaseException:  # a full disk: neither is left
                    drawing_path.unlink(missing_ok=True)
                    raise
                return {
                    "label": label,
                    "view": str(view_path),
                    "drawing": str(drawing_path),
                    "count": len(list(label_folder.glob("*.png"))),
                }
        raise LabelFull(
            f"label {label} holds {self.max_per_label} drawings already (serve's collect_max_per_label): "
            f"train on them, or move them out of {label_folder}"
        )


def folder_name(name: str) -> bool:
    """A class name that names one folder, inside the collect folder, and is not hidden."""
    return (
        bool(name) and "/" not in name and "\\" not in name and "\0" not in name and not name.startswith(".")
    )


def png_of(pixels: np.ndarray, largest_side: Optional[int] = None) -> bytes:
    """Floats in [0, 1], (h, w), (h, w, 1) or (h, w, 3), as an 8-bit PNG: pixels re-encoded, never
    the bytes a client sent; scaled down to `largest_side` pixels a side at most."""
    values = np.clip(np.rint(np.asarray(pixels, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    image = Image.fromarray(values)
    if largest_side and max(image.size) > largest_side:
        image.thumbnail((largest_side, largest_side), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_new(path: Path, data: bytes) -> None:
    """`data` as the new file `path`, whole or not at all; FileExistsError if `path` exists (it is
    left as it was). On any error no temporary file is left."""
    temporary = temporary_name(path)
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)  # unlike a rename, fails when the name is taken
    finally:
        temporary.unlink(missing_ok=True)
