"""Reading one image file, the one way every dataset and command does: MNIST's digit
preparation (digits.py), an image folder's training images and a person's own alike.

An image becomes float pixels in [0, 1] at its full depth (a 16-bit PNG keeps its 16 bits,
so two images that differ only in brightness stay different), upright as its EXIF says, with
transparent parts on white paper. Its cost is bounded before it is decoded: the pixels its
header declares are counted first, and a JPEG larger than needed is decoded at a reduced
scale (Pillow's draft, up to 8 times smaller a side). Whatever goes wrong inside a decoder
(Pillow raises OSError, ValueError, SyntaxError, struct.error, EOFError, ... for a broken
file) is one NotAnImage naming the file.
"""

from pathlib import Path
from typing import BinaryIO, Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_hydra.config.validate import MAX_PIXELS
from mnist_hydra.errors import ImageError, ImageTooLarge, NotAnImage, first_line

SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L")
TRANSPARENT = ("RGBA", "LA", "PA", "P")

ImageSource = Union[Path, str, BinaryIO]  # a file's path, or its bytes (io.BytesIO) as a server gets them


def read_image(
    source: ImageSource,
    name: Optional[str] = None,
    channels: int = 1,
    max_pixels: int = MAX_PIXELS,
    needed_side: Optional[int] = None,
) -> np.ndarray:
    """(height, width) grayscale, or (height, width, 3) RGB, floats in [0, 1].

    `name` tells the image in errors (the path by default); `needed_side` is the smallest side
    its user needs, which lets a large JPEG be decoded smaller."""
    path = name or str(source)
    try:
        with Image.open(source) as image:
            if needed_side and image.format == "JPEG":
                image.draft("L" if channels == 1 else "RGB", (needed_side, needed_side))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"{path}: {width}x{height}, more than the {max_pixels:,} pixels allowed: "
                    f"scale it down first"
                )
            return _pixels(ImageOps.exif_transpose(image), channels)
    except ImageError:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, a few times ours, hit while opening
        raise ImageTooLarge(
            f"{path}: more than the {max_pixels:,} pixels allowed "
            f"(its header claims a decompression bomb's size)"
        ) from None
    except Exception as error:  # any decoder's failure means the same: not an image we can read
        raise NotAnImage(f"{path}: not a readable image ({unreadable_reason(error)})") from None


def _pixels(image: Image.Image, channels: int) -> np.ndarray:
    if image.mode in SIXTEEN_BIT:  # 16-bit grayscale: keep its depth (Pillow's convert would clip at 255)
        gray = np.asarray(image, dtype=np.float32) / 65535.0
        return gray if channels == 1 else np.repeat(gray[..., np.newaxis], 3, axis=2)
    if image.mode in TRANSPARENT:  # transparent parts become white paper
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    return np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0


def resized(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Float pixels resized (bilinear) channel by channel, at their full depth."""
    if pixels.shape[:2] == (height, width):
        return pixels
    planes = pixels[..., np.newaxis] if pixels.ndim == 2 else pixels
    out = [
        np.asarray(Image.fromarray(planes[..., c], mode="F").resize((width, height), Image.BILINEAR))
        for c in range(planes.shape[2])
    ]
    return np.stack(out, axis=2).reshape((height, width, *pixels.shape[2:]))


def unreadable_reason(error: Exception) -> str:
    """Why a decoder could not read an image, without Pillow's repr of an in-memory file."""
    if isinstance(error, UnidentifiedImageError):
        return "not a PNG, JPEG or other format Pillow reads"
    return f"{type(error).__name__}: {first_line(error)}"
