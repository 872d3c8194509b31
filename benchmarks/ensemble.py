"""experiment=ensemble's figures in one command: each member's and the ensemble's test accuracy,
what each member adds, and their accuracy on digits that are not MNIST's.

    python benchmarks/ensemble.py                     (trains the preset: about 70 min on 2 cores)
    python benchmarks/ensemble.py --sweep DIR         (scores a sweep trained before)
    python benchmarks/ensemble.py debug=smoke         (overrides for the sweep: a quick try)

Trains with `python -m mnist_hydra.train -m experiment=ensemble`, scores with `python -m
mnist_hydra.evaluate ckpt_path=<sweep>` (into <sweep>-evaluation), then, from the members'
test outputs: the ensemble without each member in turn, the mean of log-probabilities beside
evaluate's mean of probabilities, the test images every member misreads (no way of combining
reads those), and `predict`'s accuracy on benchmarks/handwriting/ for each member and for the
ensemble. Any sweep's folder will do for --sweep (e.g. seeds of one recipe). Prints the CPU
with the figures.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from handwriting import HERE, score  # benchmarks/ is on the path of its scripts

from mnist_hydra.machine import cpu_name, reported_flags

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def train(sweep: Path, overrides: list[str]) -> None:
    command = [sys.executable, "-m", "mnist_hydra.train", "-m", "experiment=ensemble", *overrides]
    subprocess.run([*command, f"hydra.sweep.dir={sweep}"], check=True, env=ENV)


def evaluate(sweep: Path) -> dict:
    folder = sweep.with_name(sweep.name + "-evaluation")
    result = subprocess.run(
        [sys.executable, "-m", "mnist_hydra.evaluate", f"ckpt_path={sweep}", f"hydra.run.dir={folder}"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    if result.returncode != 0:  # evaluate's own one-line reason, not a traceback of this script
        lines = [
            line for line in result.stderr.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line
        ]
        sys.exit(f"evaluate could not score {sweep}: {lines[-1] if lines else 'no reason printed'}")
    return json.loads((folder / "metrics.json").read_text())


def member_answers(sweep: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Each member's test answers (the mean of its test-time views, as evaluate averages them)
    and the test labels, by evaluate's own code."""
    from mnist_hydra.console import tensorflow_start_quieted

    with tensorflow_start_quieted():
        from mnist_hydra.data import to_model_inputs
        from mnist_hydra.inference.loading import open_runs
        from mnist_hydra.reporting.evaluation import one_test_set, tta_of, views_probabilities

    members, _ = open_runs(sweep)
    test = one_test_set(members)
    images, _ = to_model_inputs(test, len(members[0].class_names))
    answers = [
        views_probabilities(run.model, images, run.test_batch_size, tta_of(run, None)).mean(axis=0)
        for run in members
    ]
    return answers, test.labels


def accuracy(answers: list[np.ndarray], labels: np.ndarray, rule: str = "mean") -> float:
    """The ensemble's accuracy under a rule: `mean` (of probabilities: evaluate's) or `log` (of
    log-probabilities, a geometric mean: a class that any member rules out is ruled out)."""
    if rule == "log":
        combined = sum(np.log(np.clip(answer, 1e-12, 1.0)) for answer in answers)
    else:
        combined = sum(answers)
    return float((combined.argmax(axis=1) == labels).mean())


def combinations(answers: list[np.ndarray], labels: np.ndarray) -> dict:
    """What the issue asks of an ensemble: each rule, each member left out, and the test images
    every member misreads (no rule of combining can read those)."""
    wrong = [answer.argmax(axis=1) != labels for answer in answers]
    return {
        "mean": accuracy(answers, labels),
        "log": accuracy(answers, labels, "log"),
        "without": [accuracy(answers[:i] + answers[i + 1 :], labels) for i in range(len(answers))],
        "missed_by_all": int(np.logical_and.reduce(wrong).sum()),
        "missed_by_any": int(np.logical_or.reduce(wrong).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sweep", type=Path, help="a sweep of experiment=ensemble trained before")
    parser.add_argument("overrides", nargs="*", help="overrides for the sweep it trains")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; flags: {' '.join(reported_flags())}", flush=True)
    sweep = args.sweep or Path("multirun") / f"ensemble-{time.strftime('%Y-%m-%d-%H-%M-%S')}"
    if args.sweep is None:
        train(sweep.resolve(), args.overrides)
    metrics = evaluate(sweep.resolve())
    answers, labels = member_answers(sweep.resolve())
    combined = combinations(answers, labels)
    images = sorted((HERE / "handwriting").glob("*/*/*.png"))

    print(f"\n{sweep}: {len(metrics['members'])} members")
    columns = f"{'test':>8}{'train s':>9}{'median epoch x n':>18}{'ensemble without it':>21}"
    print(f"{'member':<40}{columns}  not MNIST (predict)")
    for member, without in zip(metrics["members"], combined["without"]):
        run = Path(member["run"])
        record = json.loads((run / "metrics.json").read_text())
        epochs = record["epoch_seconds"]
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        name = " ".join([run.name, *(o for o in overrides if o.startswith(("ensemble_member=", "seed=")))])
        print(
            f"{name:<40}{100 * member['test_accuracy']:>7.2f}%{sum(epochs):>9.0f}"
            f"{statistics.median(epochs) * len(epochs):>18.0f}{100 * without:>20.2f}%  "
            + json.dumps(score(run, images)),
            flush=True,
        )
    print(
        f"{'the ensemble':<40}{100 * metrics['test_accuracy']:>7.2f}%"
        f"{'':>48}  " + json.dumps(score(sweep.resolve(), images))
    )
    print(
        f"  without test-time shifts {100 * metrics.get('test_accuracy_without_tta', float('nan')):.2f}%; "
        f"members' mean {100 * statistics.mean(m['test_accuracy'] for m in metrics['members']):.2f}%"
    )
    print(
        f"  mean of probabilities (evaluate's) {100 * combined['mean']:.2f}%; mean of log-probabilities "
        f"{100 * combined['log']:.2f}%; test images every member misreads: {combined['missed_by_all']}, "
        f"any member: {combined['missed_by_any']}"
    )


if __name__ == "__main__":
    main()
