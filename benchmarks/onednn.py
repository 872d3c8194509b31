"""oneDNN on against off, for a preset: seconds per epoch, test accuracy, determinism.

Alternates `python -m mnist_hydra.train experiment=<preset> trainer.onednn=on|off` for
`--rounds` rounds (on first in even rounds, off first in odd ones), all with the same seed,
and prints for each setting the fastest and median epoch (the first epoch of each run left
out: it includes tracing), the test accuracy, and whether the runs of a setting gave
bit-identical histories (op determinism is on by default), then the ratio on/off of the
median epochs. The CPU's flags head the output: the result depends on them.

    python benchmarks/onednn.py --preset tutorial --epochs 3 --rounds 2
    python benchmarks/onednn.py --preset fast --rounds 2 dataset.train_limit=20000
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from presets import run_preset  # benchmarks/ is on the path of its scripts

sys.path.insert(0, str(Path(__file__).parents[1]))
from mnist_hydra.machine import reported_flags  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="tutorial")
    parser.add_argument("--epochs", type=int, default=None, help="trainer.epochs (the preset's own if unset)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args, overrides = parser.parse_known_args()
    if args.epochs:
        overrides.append(f"trainer.epochs={args.epochs}")
    print("CPU flags:", " ".join(reported_flags()) or "(none of note)")

    runs = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for setting in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                folder = Path(scratch) / f"{setting}-{round_}"
                run = run_preset(args.preset, args.seed, [f"trainer.onednn={setting}", *overrides], folder)
                runs[setting].append(run)
                print(
                    f"round {round_ + 1} oneDNN {setting:3}: epochs "
                    + " ".join(f"{s:.1f}" for s in run["epoch_seconds"])
                    + f" s, test accuracy {run['test_accuracy']:.4f}",
                    flush=True,
                )

    print(f"\n{args.preset}, {args.rounds} runs each, seed {args.seed}, overrides {overrides}")
    medians = {}
    for setting, done in runs.items():
        timed = [s for run in done for s in run["epoch_seconds"][1:]] or [
            run["epoch_seconds"][0] for run in done
        ]
        medians[setting] = statistics.median(timed)
        identical = all(run["history"] == done[0]["history"] for run in done)
        accuracies = ", ".join(f"{run['test_accuracy']:.4f}" for run in done)
        print(
            f"oneDNN {setting:3}: fastest epoch {min(timed):.2f} s, median {medians[setting]:.2f} s; "
            f"test accuracy {accuracies}; "
            f"repeated runs bit-identical: {identical}"
        )
    print(f"ratio of median epochs, on / off: {medians['on'] / medians['off']:.3f}")


if __name__ == "__main__":
    main()
