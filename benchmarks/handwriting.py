"""predict's accuracy on digits that are not MNIST's (benchmarks/handwriting/, made by
handwriting_set.py): drawn on the page, rendered from fonts, and at low resolution.

    python benchmarks/handwriting.py RUN [RUN ...]      (run folders of train, or sweeps)

Each image goes through `predict` as a user's file would (the run's own preparation: dark on
light inverted, cropped, fitted into 20x20, centred by mass). Prints each run's accuracy per
source and in all, with the run's MNIST test accuracy beside it. A sweep's folder is read as
`predict` reads it: one ensemble of its completed runs (its MNIST figure is evaluate's).

`--deskew` measures a preparation lever that is not in the product: each prepared digit also
straightened by its image moments (its slant sheared away) and centred again.
"""

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_hydra.console import tensorflow_start_quieted
from mnist_hydra.data import digits
from mnist_hydra.machine import cpu_name, reported_flags

with tensorflow_start_quieted():
    from mnist_hydra.inference.prediction import predict

HERE = Path(__file__).resolve().parent


def deskewed(image: np.ndarray) -> np.ndarray:
    """A 28x28 digit sheared so that its main axis stands upright (its moments' slant: 0)."""
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    total = image.sum()
    cy, cx = (ys * image).sum() / total, (xs * image).sum() / total
    slant = (((ys - cy) * (xs - cx)) * image).sum() / (((ys - cy) ** 2) * image).sum()
    # PIL maps each output pixel (x, y) back to the input's (x + slant (y - cy), y).
    sheared = Image.fromarray(image.astype(np.float32), mode="F").transform(
        image.shape[::-1], Image.AFFINE, (1, slant, -slant * cy, 0, 1, 0), resample=Image.BILINEAR
    )
    return np.clip(np.asarray(sheared, dtype=np.float32), 0.0, 1.0)


def use_deskewing() -> None:
    plain = digits.to_mnist_style
    digits.to_mnist_style = lambda pixels, source="image": digits._centre_by_mass(
        deskewed(plain(pixels, source))
    )


def score(run: Path, images: list[Path]) -> dict:
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(io.StringIO()):
        rows = predict(run, images, Path(scratch))
    right: dict[str, list[bool]] = {}
    for image, row in zip(images, rows):
        source, digit = image.parts[-3], image.parts[-2]
        right.setdefault(source, []).append(row["predicted"] == digit)
    every = [r for rs in right.values() for r in rs]
    accuracy = {source: round(sum(rs) / len(rs), 4) for source, rs in sorted(right.items())}
    return {"all": round(sum(every) / len(every), 4), **accuracy, "images": len(every)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--set", type=Path, default=HERE / "handwriting")
    parser.add_argument("--deskew", action="store_true", help="straighten each digit by its moments")
    args = parser.parse_args()
    if args.deskew:
        use_deskewing()
    images = sorted(args.set.glob("*/*/*.png"))
    print(f"CPU: {cpu_name()}; flags: {' '.join(reported_flags())}; {len(images)} images in {args.set}")
    for run in args.runs:
        figures = score(run, images)
        record = run / "metrics.json"  # a sweep's folder has none
        mnist = json.loads(record.read_text())["test_accuracy"] if record.is_file() else None
        said = f"{100 * mnist:.2f}%" if mnist is not None else "(a sweep: see evaluate)"
        print(f"{run}: MNIST test {said}; not MNIST: " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
