"""What pruning and the absence of a batch barrier buy a search (hparams_search=optuna).

1. Pruning: the same 20-trial search (the preset's space, the same seed, one slice of MNIST)
   with the default median pruner (or those of --pruners) and with hydra/sweeper/pruner=none:
   wall time, trials pruned, the best validation accuracy found and the test accuracy of the
   best trial. Goal: within 0.2 points of the unpruned best in at most half its time.
   --two-at-once runs the pruned searches two trials at once (hydra/launcher=joblib,
   hydra.sweeper.n_jobs=2, one TensorFlow thread each); the unpruned one stays as the preset
   runs it, one trial at a time on every core.
2. The batch barrier: a search of two trials at once under hydra/launcher=joblib (each job
   one thread), with trials started as others end and in batches (hydra.sweeper.batches=true):
   wall time, and the cores' idle time, 2 x wall minus the CPU time all the jobs used.

    python benchmarks/search_pruning.py [--trials 20] [--epochs 5] [--train-limit 12000]
        [--pruners median,successive_halving:reduction_factor=4] [--two-at-once] [--skip barrier]
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from mnist_hydra.machine import cpu_name, reported_flags

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# Two trials at once, each in a process of its own on one core.
TWO_AT_ONCE = ["hydra/launcher=joblib", "hydra.sweeper.n_jobs=2", "trainer.threads=1"]


def search(folder: Path, args, *overrides: str) -> dict:
    """One search, run to its end; its wall time, the CPU time of every process it ran, and its numbers."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_hydra.train",
            "-m",
            "hparams_search=optuna",
            f"dataset.train_limit={args.train_limit}",
            f"dataset.test_limit={args.test_limit}",
            f"trainer.epochs={args.epochs}",
            "trainer.batch_size=100",
            "trainer.verbose=0",
            "tracker=none",
            f"seed={args.seed}",
            f"hydra.sweep.dir={folder}",
            *overrides,
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"the search in {folder} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    results = OmegaConf.to_container(OmegaConf.load(folder / "optimization_results.yaml"))
    best = json.loads((folder / str(results["best_trial"]) / "metrics.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "trials": results["trials"],
        "best_val_accuracy": results["best_value"],
        "best_test_accuracy": best["test_accuracy"],
        "best_params": results["best_params"],
    }


def pruner_overrides(pruner: str) -> list[str]:
    """`successive_halving:reduction_factor=4`: the overrides choosing that pruner and its arguments."""
    name, *arguments = pruner.split(":")
    return [f"hydra/sweeper/pruner={name}", *(f"hydra.sweeper.pruner.{a}" for a in arguments)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--barrier-trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-limit", type=int, default=12000)
    parser.add_argument("--test-limit", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--pruners",
        default="median",
        help="pruners to compare with none, comma-separated; name:key=value sets an argument",
    )
    parser.add_argument("--skip", choices=["pruning", "barrier"], help="leave one part out")
    parser.add_argument(
        "--two-at-once", action="store_true", help="the pruned searches run two one-thread trials at once"
    )
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"CPU: {cpu_name()}, {cores} cores; flags: {' '.join(reported_flags())}", flush=True)
    print(
        f"Slice: {args.train_limit} training images (a tenth held out for validation), "
        f"{args.test_limit} test; {args.epochs} epochs; seed {args.seed}",
        flush=True,
    )
    figures = {"cpu": cpu_name(), "cores": cores, "pruned_two_at_once": args.two_at_once}
    with tempfile.TemporaryDirectory(prefix="search-bench-") as scratch:
        scratch = Path(scratch)
        if args.skip != "pruning":
            trials = f"hydra.sweeper.n_trials={args.trials}"
            runs = {}
            for pruner in [*args.pruners.split(","), "none"]:
                launcher = TWO_AT_ONCE if args.two_at_once and pruner != "none" else []
                runs[pruner] = search(
                    scratch / re.sub(r"[^\w.-]", "_", pruner),
                    args,
                    trials,
                    *pruner_overrides(pruner),
                    *launcher,
                )
                print(f"pruner={pruner}:", json.dumps(runs[pruner]), flush=True)
            unpruned = runs.pop("none")
            for pruner, pruned in runs.items():
                print(
                    f"Pruning ({pruner}{', two trials at once' if args.two_at_once else ''}): "
                    f"{pruned['trials']['pruned']} of {args.trials} trials pruned; time "
                    f"{pruned['wall_s'] / unpruned['wall_s']:.2f} of the unpruned search's; best validation "
                    f"accuracy {100 * pruned['best_val_accuracy']:.2f}% against "
                    f"{100 * unpruned['best_val_accuracy']:.2f}% "
                    f"({100 * (pruned['best_val_accuracy'] - unpruned['best_val_accuracy']):+.2f} points); "
                    f"its test accuracy {100 * pruned['best_test_accuracy']:.2f}% against "
                    f"{100 * unpruned['best_test_accuracy']:.2f}%",
                    flush=True,
                )
            figures["pruning"] = {**runs, "none": unpruned}
        if args.skip != "barrier":
            parallel = [f"hydra.sweeper.n_trials={args.barrier_trials}", *TWO_AT_ONCE]
            runs = {
                "as_they_end": search(scratch / "free", args, *parallel),
                "batches": search(scratch / "batches", args, *parallel, "hydra.sweeper.batches=true"),
            }
            for name, run in runs.items():
                run["idle_core_s"] = round(2 * run["wall_s"] - run["cpu_s"], 1)
                run["idle_share"] = round(run["idle_core_s"] / (2 * run["wall_s"]), 3)
                print(f"n_jobs=2 {name}:", json.dumps(run), flush=True)
            free, batches = runs["as_they_end"], runs["batches"]
            print(
                f"Barrier: two trials at once, {args.barrier_trials} trials: started as others end, "
                f"{free['wall_s']:.0f} s with the cores idle {100 * free['idle_share']:.0f}% of the time; in "
                f"batches, {batches['wall_s']:.0f} s, idle {100 * batches['idle_share']:.0f}% "
                f"(time {free['wall_s'] / batches['wall_s']:.2f} of the batches')",
                flush=True,
            )
            figures["barrier"] = runs
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
