"""The README's "Teach it your handwriting", measured: a run fine-tuned on a few dozen digits of
one writer, and what it gained on that writer's other digits and cost on MNIST's test set.

    python benchmarks/fine_tune_writer.py --run <a robust run> [--epochs 20] [--freeze 0]

The writer is synthetic (no person's digits ship here), drawn as the page draws: the page's pen
(a round stroke 1/14 of the 280-pixel canvas), dark on white, in one hand that MNIST does not
have: wide digits with a strong backhand slant, a 1 with a flag and a foot, a crossed 7, a
closed 4, a 9 with a curled tail, with a hand's jitter from drawing to drawing. Each drawing is
kept as the page keeps a correction (serving/collect.py: the 28x28 view the model read, and the
drawing): 4 of each digit to fine-tune on (<out>/train/), 6 of each held out (<out>/test/). Then:

1. before: the run's answers for the held-out drawings, as the page and `predict` read them,
   and its accuracy on MNIST's 10,000 test images (its own test-time shifts);
2. the README's command: `python -m mnist_hydra.train experiment=robust init_from=<run>
   dataset=digit_folder dataset.path=<out> ...` (timed; the held-out drawings are its test set);
3. after: the same two figures for the fine-tuned run.
"""

import argparse
import contextlib
import io
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mnist_hydra.console import tensorflow_start_quieted
from mnist_hydra.data.digits import load_digit
from mnist_hydra.machine import cpu_name, reported_flags
from mnist_hydra.serving.collect import Collector

with tensorflow_start_quieted():
    from mnist_hydra.inference.prediction import predict

CANVAS, PEN = 280, 20  # the page's canvas and pen (page.js: lineWidth = width / 14)
WIDTH = 1.6  # this writer's digits are wide
DIGITS = [str(digit) for digit in range(10)]


def line(*points, steps=8):
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        out += [(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t) for t in np.linspace(0, 1, steps)[1:]]
    return out


def arc(cx, cy, rx, ry, start, end, steps=16):
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in np.linspace(start, end, steps)
    ]


# This writer's digits, strokes in a unit box (x right, y down, height 1).
HAND = {
    "0": [arc(0, 0, 0.32, 0.5, -100, 265)],
    "1": [line((-0.22, -0.28), (0.04, -0.5), (0.04, 0.5)), line((-0.2, 0.5), (0.28, 0.5))],
    "2": [arc(0, -0.2, 0.28, 0.28, 180, 370) + line((0.26, -0.1), (-0.3, 0.5), (0.34, 0.46))],
    "3": [line((-0.28, -0.5), (0.28, -0.5), (-0.02, -0.08)) + arc(0, 0.2, 0.28, 0.3, 270, 510)],
    "4": [line((0.12, 0.5), (0.12, -0.5), (-0.32, 0.14), (0.34, 0.14))],
    "5": [line((0.3, -0.5), (-0.22, -0.5), (-0.26, -0.04)) + arc(0, 0.2, 0.3, 0.3, 230, 500)],
    "6": [arc(0.28, 0.05, 0.55, 0.55, 250, 175) + arc(0, 0.24, 0.26, 0.26, 180, 540)],
    "7": [line((-0.3, -0.42), (-0.26, -0.5), (0.32, -0.5), (-0.04, 0.5)), line((-0.2, 0.0), (0.24, 0.0))],
    "8": [arc(0, -0.26, 0.22, 0.23, 90, 450), arc(0, 0.24, 0.28, 0.26, -90, 270)],
    "9": [
        arc(0, -0.24, 0.26, 0.26, 0, 360) + line((0.26, -0.24), (0.22, 0.3)) + arc(0, 0.3, 0.22, 0.2, 0, 160)
    ],
}


def drawing(digit: str, rng: random.Random) -> Image.Image:
    """One drawing of `digit` in this hand: wide, with a strong backhand slant, sized and placed
    as a person does (robust read 88% of these before fine-tuning; with the slant halved and
    the usual width, all)."""
    size = rng.uniform(150, 200)
    slant = rng.uniform(0.7, 0.9)  # the top leans left
    dx, dy = rng.uniform(-25, 25), rng.uniform(-20, 20)
    image = Image.new("L", (CANVAS, CANVAS), 255)
    pen = ImageDraw.Draw(image)
    for stroke in HAND[digit]:
        points = []
        for x, y in stroke:
            x = WIDTH * x + slant * y  # backhand: y up (negative) moves left
            points.append(
                (
                    CANVAS / 2 + x * size + dx + rng.gauss(0, size * 0.01),
                    CANVAS / 2 + y * size + dy + rng.gauss(0, size * 0.01),
                )
            )
        pen.line(points, fill=0, width=PEN, joint="curve")
        for x, y in (points[0], points[-1]):  # round caps, as the page's pen has
            pen.ellipse((x - PEN / 2, y - PEN / 2, x + PEN / 2, y + PEN / 2), fill=0)
    return image


def make_writer(out: Path, per_digit_train: int, per_digit_test: int, seed: int) -> list[Path]:
    """The writer's drawings kept as the page keeps corrections; the held-out drawings' files."""
    rng = random.Random(seed)
    parts = {part: Collector(out / part, DIGITS, 1000) for part in ("train", "test")}
    for digit in DIGITS:
        for index in range(per_digit_train + per_digit_test):
            image = drawing(digit, rng)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
            drawn = io.BytesIO()
            image.save(drawn, format="PNG")
            view = load_digit(drawn)[..., None]  # as the page's upload is read
            parts["train" if index < per_digit_train else "test"].save(digit, view, pixels)
    return sorted((out / "test").glob("*/drawings/*.png"))


def page_reads(run: Path, drawings: list[Path], scratch: Path) -> float:
    """The share of `drawings` that `predict` (the page's reading) gets right."""
    with contextlib.redirect_stdout(io.StringIO()):  # predict prints a line per image
        rows = predict(run, drawings, scratch)
    return float(np.mean([row["predicted"] == path.parent.parent.name for row, path in zip(rows, drawings)]))


def mnist_accuracy(run: Path) -> float:
    """The run's model on MNIST's 10,000 test images, with the run's own test-time shifts."""
    from hydra import compose, initialize_config_module

    from mnist_hydra.building import build
    from mnist_hydra.config.schema import register_schemas
    from mnist_hydra.inference.loading import open_run
    from mnist_hydra.reporting.evaluation import views_probabilities

    register_schemas()
    with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
        _, test = build("dataset", compose("train", overrides=["dataset=mnist"]).dataset).load()
    trained = open_run(run)
    views = views_probabilities(
        trained.model, test.images.astype(np.float32) / 255.0, 500, trained.config.tta_shift
    )
    return float(np.mean(views.mean(axis=0).argmax(axis=1) == test.labels))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="a run of experiment=robust")
    parser.add_argument("--out", type=Path, default=Path("fine_tune_writer"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", default="3e-4")
    parser.add_argument("--freeze", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; flags: {' '.join(reported_flags())}", flush=True)
    out = args.out.absolute()
    held_out = make_writer(out / "my_digits", 4, 6, args.seed)
    print(
        f"The writer: {len(list((out / 'my_digits' / 'train').glob('*/*.png')))} drawings to fine-tune on, "
        f"{len(held_out)} held out",
        flush=True,
    )

    before = {"page": page_reads(args.run, held_out, out), "mnist": mnist_accuracy(args.run)}
    command = [
        sys.executable,
        "-m",
        "mnist_hydra.train",
        "experiment=robust",
        f"init_from={args.run.absolute()}",
        "dataset=digit_folder",
        f"dataset.path={out / 'my_digits'}",
        f"dataset.cache_dir={out / 'cache'}",
        f"optimizer.learning_rate={args.learning_rate}",
        f"trainer.epochs={args.epochs}",
        f"trainer.freeze={args.freeze}",
        "tracker=none",
        f"hydra.run.dir={out / 'tuned'}",
    ]
    print("$", " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=out, capture_output=True)
    seconds = time.perf_counter() - start
    tuned = out / "tuned"
    after = {"page": page_reads(tuned, held_out, out), "mnist": mnist_accuracy(tuned)}
    own = json.loads((tuned / "metrics.json").read_text())["test_accuracy"]
    print(
        f"held-out drawings of the writer read by the page: {before['page']:.1%} -> {after['page']:.1%} "
        f"(the fine-tuned run's own test on them: {own:.1%}); MNIST test: {before['mnist']:.2%} -> "
        f"{after['mnist']:.2%}; fine-tuning took {seconds:.0f} s (the command, start to end)",
        flush=True,
    )


if __name__ == "__main__":
    main()
