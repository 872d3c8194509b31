"""Seconds per epoch: `python -m mnist_hydra.train` against a plain Keras script.

Both train the documented recipe on the full MNIST training set (the framework with
all its defaults: TensorBoard logging, per-epoch backups, records), in the same run,
alternating (plain, framework, framework, plain, ...) so that a machine that speeds
up or slows down during the run does not favour either. The first epoch of each run
(graph tracing, warm-up) is left out; the ratio is of the medians of the others.

    python benchmarks/epoch_overhead.py [--epochs 3] [--rounds 2]     (or: make bench)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mnist_hydra.machine import reported_flags

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_plain(epochs: int, seed: int = 42) -> dict:
    result = subprocess.run(
        # Op determinism on, as in the framework's default recipe: like for like.
        [
            sys.executable,
            str(HERE / "plain_keras.py"),
            "--epochs",
            str(epochs),
            "--seed",
            str(seed),
            "--deterministic",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_framework(epochs: int, folder: Path) -> dict:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_hydra.train",
            f"trainer.epochs={epochs}",
            f"hydra.run.dir={folder}",
            "trainer.verbose=0",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    )
    return json.loads((folder / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is not timed)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, alternating")
    args = parser.parse_args()
    print("CPU flags:", " ".join(reported_flags()) or "(none of note)", flush=True)

    seconds = {"plain Keras": [], "mnist_hydra": []}
    accuracy = {"plain Keras": [], "mnist_hydra": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            order = ["plain Keras", "mnist_hydra"][:: 1 if round_ % 2 == 0 else -1]
            for name in order:
                if name == "plain Keras":
                    record = run_plain(args.epochs)
                else:
                    record = run_framework(args.epochs, Path(scratch) / f"run{round_}")
                seconds[name] += record["epoch_seconds"][1:]
                accuracy[name].append(record["test_accuracy"])
                print(
                    f"round {round_ + 1}, {name}: epochs {[round(s, 1) for s in record['epoch_seconds']]} s,"
                    f" test accuracy {record['test_accuracy']:.4f}",
                    flush=True,
                )

    print(
        f"\n{'':12} {'median s/epoch':>15} {'min':>7} {'max':>7}"
        f"   (epochs 2..{args.epochs} of {args.rounds} runs)"
    )
    for name, values in seconds.items():
        print(f"{name:12} {statistics.median(values):15.2f} {min(values):7.2f} {max(values):7.2f}")
    ratio = statistics.median(seconds["mnist_hydra"]) / statistics.median(seconds["plain Keras"])
    print(f"\nratio mnist_hydra / plain Keras: {ratio:.3f}  (target <= 1.02)")


if __name__ == "__main__":
    main()
