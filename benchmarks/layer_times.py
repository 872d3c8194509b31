"""Where a preset's training step spends its time, layer by layer.

Builds the preset's model as training would, then times, for each layer alone, the forward
pass and the gradients with respect to its input and weights on one batch (the work that
layer does in a training step), and the whole step of the compiled model (forward, backward
and the optimizer's update). Prints each layer's share of the sum, its multiply-adds and
its GFLOP/s, so that a lever is chosen for the layers that take the time. Last, the input
pipeline alone (training's own `tf.data` pipeline on random pixels, with the preset's
augmentation): its time per batch, which the next batch's prefetching hides only while it is
shorter than a step and the cores are not both busy with the step.

    python benchmarks/layer_times.py --preset fast
    python benchmarks/layer_times.py --preset fast model.kernel_size=[5,3] trainer.batch_size=128
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parents[1]))


def compose(preset: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import mnist_hydra.train  # noqa: F401  (registers the schemas)

    with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
        return hydra_compose(config_name="train", overrides=[f"experiment={preset}", *overrides])


def best_of(function, repeats: int) -> float:
    function()  # tracing and warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def multiply_adds(layer) -> int:
    """Multiply-adds of one image through a conv or dense layer (0 for the others)."""
    import numpy as np

    kind = type(layer).__name__
    if kind == "Conv2D":
        kernel = np.prod(layer.kernel.shape)  # kh * kw * in * out
        return int(kernel * np.prod(layer.output.shape[1:3]))
    if kind == "Dense":
        return int(np.prod(layer.kernel.shape))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--repeats", type=int, default=20)
    args, overrides = parser.parse_known_args()
    cfg = compose(args.preset, overrides)

    from mnist_hydra.machine import reported_flags, use_onednn

    use_onednn(cfg.trainer.onednn)
    import keras
    import numpy as np
    import tensorflow as tf

    from mnist_hydra.training.cpu import onednn_enabled, use_threads
    from mnist_hydra.training.task import compiled_model

    use_threads(cfg.trainer.threads or os.cpu_count())
    batch = cfg.trainer.batch_size
    shape = (cfg.dataset.image_size, cfg.dataset.image_size, cfg.dataset.channels)
    model = compiled_model(cfg, shape, 10, steps_per_epoch=100)
    flags = " ".join(reported_flags())
    print(f"CPU flags: {flags}; oneDNN {'on' if onednn_enabled() else 'off'}")
    print(
        f"experiment={args.preset} {' '.join(overrides)}: batch {batch}, {model.count_params():,} parameters"
    )

    rows = []
    for index, layer in enumerate(model.layers[1:]):
        alone = type(layer).from_config(layer.get_config())
        x = tf.random.uniform((batch, *layer.input.shape[1:]))
        alone.build(x.shape)

        # Training needs no gradient with respect to the images, only to later layers' inputs.
        # The input is an argument and the output is returned: a captured constant input would
        # be folded away, and an unused forward pass pruned (conv2 then "ran" at 4 TFLOP/s).
        @tf.function
        def step(x, alone=alone, index=index):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = alone(x, training=True)
            sources = alone.trainable_variables if index == 0 else [x, *alone.trainable_variables]
            return tf.reduce_sum(y), tape.gradient(y, sources)

        rows.append((layer.name, best_of(lambda step=step, x=x: step(x), args.repeats), multiply_adds(layer)))

    images = tf.constant(np.random.rand(batch, *shape).astype("float32"))
    labels = tf.constant(keras.utils.to_categorical(np.random.randint(0, 10, batch), 10))

    @tf.function
    def training_step():
        with tf.GradientTape() as tape:
            loss = model.loss(labels, model(images, training=True))
        model.optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    whole = best_of(training_step, args.repeats)

    total = sum(seconds for _, seconds, _ in rows)
    print(f"{'layer':<22}{'ms/batch':>10}{'share':>8}{'MMAC/img':>10}{'GFLOP/s':>9}")
    for name, seconds, macs in rows:
        flops = 3 * 2 * macs * batch / seconds / 1e9 if macs else 0  # forward + 2 backward
        print(f"{name:<22}{1000 * seconds:>10.2f}{seconds / total:>8.0%}{macs / 1e6:>10.2f}{flops:>9.1f}")
    print(f"{'sum of layers':<22}{1000 * total:>10.2f}")
    print(f"{'whole training step':<22}{1000 * whole:>10.2f}  (layers, loss and the optimizer's update)")
    pipeline = pipeline_seconds(cfg, shape)
    print(f"{'input pipeline':<22}{1000 * pipeline:>10.2f}  (a batch drawn alone: {augmentation(cfg)})")


def augmentation(cfg) -> str:
    levers = {name: value for name, value in cfg.trainer.augment.items() if value}
    return ", ".join(f"{name} {value}" for name, value in levers.items()) or "no augmentation"


def pipeline_seconds(cfg, shape: tuple, batches: int = 100) -> float:
    """Seconds per batch of training's own pipeline, drawn with no model (median of 3 rounds)."""
    import statistics

    import numpy as np

    from mnist_hydra.data import one_hot
    from mnist_hydra.data.pipeline import training_batches

    count = batches * cfg.trainer.batch_size
    pixels = np.random.default_rng(0).integers(0, 256, (count, *shape), dtype=np.uint8)
    labels = one_hot(np.arange(count) % 10, 10)
    stream = iter(training_batches(pixels, labels, cfg.trainer.batch_size, 0, cfg.trainer.augment)[0])
    next(stream)  # tracing and warm-up
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(batches):
            next(stream)
        rounds.append((time.perf_counter() - start) / batches)
    return statistics.median(rounds)


if __name__ == "__main__":
    main()
