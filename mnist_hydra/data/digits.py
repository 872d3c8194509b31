"""Turning a person's picture of a digit into an MNIST-style 28x28 input.

MNIST digits are light on a black background, fitted into a 20x20 box that keeps
their aspect ratio, then placed in a 28x28 image so that their centre of mass is
at the centre. A photo or a drawing needs the same treatment to be read sensibly.
"""

from typing import Optional

import numpy as np
from PIL import Image

from mnist_hydra.data.images import MAX_PIXELS, ImageSource, read_image
from mnist_hydra.errors import BlankImage

SIZE = 28
BOX = 20  # the digit's longer side, as in MNIST
INK_LEVEL = 0.1  # below this share of the way from paper to ink, a pixel is paper or noise
# A photo's digit is found and scaled into 20x20: a JPEG larger than this a side is decoded smaller.
NEEDED_SIDE = 512


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


def load_digit(source: ImageSource, name: Optional[str] = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any PNG or JPEG of a digit as MNIST's 28x28 floats (data/images.py reads it)."""
    pixels = read_image(source, name, channels=1, max_pixels=max_pixels, needed_side=NEEDED_SIDE)
    return to_mnist_style(pixels, name or str(source))
