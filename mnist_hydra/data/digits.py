"""Turning a person's picture of a digit into an MNIST-style 28x28 input.

MNIST digits are light on a black background, fitted into a 20x20 box that keeps
their aspect ratio, then placed in a 28x28 image so that their centre of mass is
at the centre. A photo or a drawing needs the same treatment to be read sensibly.
"""

from pathlib import Path
from typing import BinaryIO, Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_hydra.errors import BlankImage, ImageTooLarge, NotAnImage, first_line

SIZE = 28
BOX = 20  # the digit's longer side, as in MNIST
INK_LEVEL = 0.1  # below this share of the way from paper to ink, a pixel is paper or noise
# Pixels an image may have, read from its header before anything is decoded: a 50-megapixel
# photo is about 200 MB as floats; a tiny file claiming 20000x20000 is a decompression bomb.
MAX_PIXELS = 50_000_000


ImageSource = Union[Path, str, BinaryIO]  # a file's path, or its bytes (io.BytesIO) as a server gets them


def read_grayscale(source: ImageSource, name: Optional[str] = None) -> np.ndarray:
    """Any PNG or JPEG as grayscale floats in [0, 1], upright as its EXIF says.

    `name` tells the image in errors (the path by default)."""
    path = name or str(source)
    try:
        with Image.open(source) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageTooLarge(
                    f"{path}: {width}x{height}, more than the {MAX_PIXELS:,} pixels "
                    f"allowed: scale it down first"
                )
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grayscale: keep its depth
                return np.asarray(image, dtype=np.float32) / 65535.0
            if image.mode in ("RGBA", "LA", "P"):  # transparent parts become white paper
                image = image.convert("RGBA")
                paper = Image.new("RGBA", image.size, "white")
                image = Image.alpha_composite(paper, image)
            pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except Image.DecompressionBombError:  # Pillow's own limit, a few times ours, hit while opening
        raise ImageTooLarge(
            f"{path}: more than the {MAX_PIXELS:,} pixels allowed "
            f"(its header claims a decompression bomb's size)"
        ) from None
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise NotAnImage(f"{path}: not a readable image ({unreadable_reason(error)})") from None
    return pixels


def unreadable_reason(error: Exception) -> str:
    """Why Pillow could not read an image, without its repr of an in-memory file."""
    if isinstance(error, UnidentifiedImageError):
        return "not a PNG, JPEG or other format Pillow reads"
    return first_line(error)


def to_mnist_style(pixels: np.ndarray, source: str = "image") -> np.ndarray:
    """A 28x28 float image: ink light on black, cropped, scaled into 20x20, centred by mass."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = float(np.median(border))
    if background > 0.5:  # dark ink on light paper: flip to MNIST's light on dark
        pixels, background = 1.0 - pixels, 1.0 - background
    contrast = float(pixels.max()) - background
    if contrast < 0.1:
        raise BlankImage(f"{source}: no digit found (the image is blank)")
    ink = np.clip((pixels - background) / contrast, 0.0, 1.0)

    ink[ink < INK_LEVEL] = 0.0
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    height, width = digit.shape
    scale = BOX / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray((digit * 255).astype(np.uint8)).resize(new_size, Image.LANCZOS)
    digit = np.asarray(resized, dtype=np.float32) / 255.0
    if digit.max() < INK_LEVEL:  # a few specks far apart: scaled into 20x20, nothing is left
        raise BlankImage(f"{source}: no digit found (only specks, too small to read)")

    canvas = np.zeros((SIZE, SIZE), dtype=np.float32)
    top, left = (SIZE - digit.shape[0]) // 2, (SIZE - digit.shape[1]) // 2
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return _centre_by_mass(canvas)


def _centre_by_mass(canvas: np.ndarray) -> np.ndarray:
    total = canvas.sum()
    ys, xs = np.indices(canvas.shape)
    # MNIST's centres of mass sit at pixel (14, 14) (measured on its test set).
    shift_y = int(round(SIZE / 2 - (ys * canvas).sum() / total))
    shift_x = int(round(SIZE / 2 - (xs * canvas).sum() / total))
    # Shift only as far as the digit stays whole inside the 28x28 frame.
    rows = np.flatnonzero(canvas.any(axis=1))
    cols = np.flatnonzero(canvas.any(axis=0))
    shift_y = int(np.clip(shift_y, -rows[0], SIZE - 1 - rows[-1]))
    shift_x = int(np.clip(shift_x, -cols[0], SIZE - 1 - cols[-1]))
    return np.roll(canvas, (shift_y, shift_x), axis=(0, 1))


def load_digit(source: ImageSource, name: Optional[str] = None) -> np.ndarray:
    return to_mnist_style(read_grayscale(source, name), name or str(source))
