"""A preset's test accuracy and time over several seeds, against the plain Keras recipe.

Runs `python -m mnist_hydra.train experiment=<preset> seed=<s>` once per seed, then the
documented recipe as a plain Keras script (benchmarks/plain_keras.py) in the same run, and
prints, for each: test accuracy (mean and spread), seconds of training (the sum of the
epochs, first included), seconds of the whole process, and the training throughput in
FLOP/s against the CPU's peak.

    python benchmarks/presets.py --preset fast --seeds 3
    python benchmarks/presets.py --preset tutorial --seeds 1 --baseline-epochs 0 \
        trainer.precision=bf16 trainer.epochs=2

Extra arguments are overrides for every preset run. `--baseline-epochs N` trains the plain
baseline for N epochs (12 is the whole recipe; fewer gives its seconds per epoch, and its
12-epoch time is then extrapolated and marked so); 0 leaves it out.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from epoch_overhead import run_plain as plain_keras_run  # benchmarks/ is on the path of its scripts

sys.path.insert(0, str(Path(__file__).parents[1]))
from mnist_hydra.machine import reported_flags  # noqa: E402

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
RECIPE_EPOCHS = 12
# conv1 26*26*32*3*3*1*2 + conv2 24*24*64*3*3*32*2 + dense 4096*250*2 + 250*10*2, as training_flops counts
DOCUMENTED_MODEL_FORWARD_FLOPS = 389_376 + 21_233_664 + 2_048_000 + 5_000


def run_preset(preset: str, seed: int, overrides: list[str], folder: Path) -> dict:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_hydra.train",
            f"experiment={preset}",
            f"seed={seed}",
            "tracker=none",
            "trainer.verbose=0",
            *overrides,
            f"hydra.run.dir={folder}",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    )
    record = json.loads((folder / "metrics.json").read_text())
    return {
        "seed": seed,
        "process_seconds": time.perf_counter() - start,
        "train_seconds": sum(record["epoch_seconds"]),
        "epoch_seconds": record["epoch_seconds"],
        "test_accuracy": record["test_accuracy"],
        "history": record["history"],
        "onednn": record.get("onednn"),
        "train_images": record["train_images"],
        "flops_per_example": training_flops(folder / "model.keras"),
    }


def run_plain(epochs: int, seed: int) -> dict:
    start = time.perf_counter()
    record = plain_keras_run(epochs, seed)
    seconds = sum(record["epoch_seconds"])
    return {
        "seed": seed,
        "process_seconds": time.perf_counter() - start,
        "train_seconds": seconds,
        "epoch_seconds": record["epoch_seconds"],
        "test_accuracy": record["test_accuracy"],
        "train_images": 60000,
        "flops_per_example": 3 * DOCUMENTED_MODEL_FORWARD_FLOPS,
        "recipe_seconds": seconds * RECIPE_EPOCHS / epochs,
        "extrapolated": epochs != RECIPE_EPOCHS,
    }


def training_flops(model_path: Path) -> int:
    """Multiply-adds x 2 of one image's forward pass through the convs and denses, x 3 for
    training (the backward pass costs about twice the forward). Pooling, activations and
    normalization are left out: they are small next to these."""
    import keras

    model = keras.models.load_model(model_path, compile=False)
    forward = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, filters = layer.output.shape
            kh, kw = layer.kernel_size
            forward += 2 * kh * kw * layer.input.shape[-1] * filters * height * width
        elif isinstance(layer, keras.layers.Dense):
            forward += 2 * layer.input.shape[-1] * layer.units
    return 3 * forward


def peak_flops() -> tuple[float, str]:
    """fp32 FLOP/s at the nominal clock, assuming two FMA units per core: AVX-512 does 16 fp32
    lanes per FMA, AVX2 8 (x 2 for the multiply and the add)."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    flags = next(line for line in cpuinfo.splitlines() if line.startswith("flags")).split()
    mhz = float(next(line for line in cpuinfo.splitlines() if "MHz" in line).split(":")[1])
    lanes, isa = (16, "AVX-512") if "avx512f" in flags else (8, "AVX2+FMA") if "fma" in flags else (4, "SSE")
    cores = len(os.sched_getaffinity(0))
    return (
        cores * mhz * 1e6 * 2 * lanes * 2,
        f"{cores} cores x {mhz:.0f} MHz x 2 FMA x {lanes} lanes x 2 ({isa})",
    )


def spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {deviation:.4f} (min {min(values):.4f}, max {max(values):.4f})"


def describe(name: str, runs: list[dict], peak: float) -> dict:
    accuracy = [run["test_accuracy"] for run in runs]
    train = [run["train_seconds"] for run in runs]
    process = [run["process_seconds"] for run in runs]
    throughput = [
        run["train_images"] * len(run["epoch_seconds"]) * run["flops_per_example"] / run["train_seconds"]
        for run in runs
    ]
    print(f"\n{name} ({len(runs)} run{'s' * (len(runs) > 1)}, seeds {[run['seed'] for run in runs]})")
    print(f"  test accuracy     {spread(accuracy)}")
    print(
        f"  training seconds  {spread(train)}   epochs: "
        + "; ".join(", ".join(f"{s:.1f}" for s in run["epoch_seconds"]) for run in runs)
    )
    print(f"  process seconds   {spread(process)}")
    print(
        f"  throughput        {statistics.mean(throughput) / 1e9:.1f} GFLOP/s "
        f"({runs[0]['flops_per_example'] / 1e6:.1f} MFLOP per training example), "
        f"{100 * statistics.mean(throughput) / peak:.0f}% of peak"
    )
    return {
        "name": name,
        "test_accuracy": accuracy,
        "train_seconds": train,
        "process_seconds": process,
        "throughput_flops": throughput,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fast", help="an experiment=<name> (conf/experiment/)")
    parser.add_argument("--seeds", type=int, default=3, help="runs, with seeds 1..N")
    parser.add_argument(
        "--baseline-epochs",
        type=int,
        default=RECIPE_EPOCHS,
        help="epochs of the plain Keras baseline (0: none)",
    )
    parser.add_argument("overrides", nargs="*", help="overrides for every preset run")
    args = parser.parse_args()

    peak, how = peak_flops()
    print(f"CPU peak (fp32): {peak / 1e9:.0f} GFLOP/s = {how}")
    print("CPU flags:", " ".join(reported_flags()) or "(none of note)")
    with tempfile.TemporaryDirectory() as scratch:
        runs = [
            run_preset(args.preset, seed, args.overrides, Path(scratch) / f"seed{seed}")
            for seed in range(1, args.seeds + 1)
        ]
    results = {"preset": describe(f"experiment={args.preset} {' '.join(args.overrides)}".strip(), runs, peak)}
    print(f"  oneDNN            {', '.join('on' if run['onednn'] else 'off' for run in runs)}")
    if args.baseline_epochs:
        plain = run_plain(args.baseline_epochs, seed=1)
        results["plain"] = describe(
            f"plain Keras, documented recipe, {args.baseline_epochs} epochs", [plain], peak
        )
        recipe = plain["recipe_seconds"]
        note = f" (extrapolated from {args.baseline_epochs} epochs)" if plain["extrapolated"] else ""
        ratio = statistics.mean(results["preset"]["train_seconds"]) / recipe
        print(
            f"\nTraining time, preset / plain documented recipe (12 epochs: {recipe:.1f} s{note}): "
            f"{ratio:.3f}"
        )
        results["ratio_train_seconds"] = ratio
        # The plain script keeps TensorFlow's defaults, as a user's script would (its oneDNN is
        # TensorFlow's own choice for this CPU); its fastest epoch is the yardstick of `fast`.
        epoch = min(plain["epoch_seconds"])
        one_epoch = statistics.mean(results["preset"]["train_seconds"]) / epoch
        print(
            f"Training time, preset / ONE epoch of the plain script ({epoch:.1f} s, its fastest): "
            f"{one_epoch:.3f}"
        )
        results["ratio_to_one_plain_epoch"] = one_epoch
        # What a user waits for: the whole `python -m mnist_hydra.train` process, start to exit.
        whole = statistics.mean(results["preset"]["process_seconds"]) / epoch
        print(f"Whole process, preset / ONE epoch of the plain script: {whole:.3f}")
        results["ratio_process_to_one_plain_epoch"] = whole
    print(json.dumps(results))


if __name__ == "__main__":
    main()
