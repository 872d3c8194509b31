"""The documented recipe as a plain Keras script, with no framework around it.

The baseline that benchmarks/epoch_overhead.py times mnist_hydra against. It reads
the same shipped MNIST files and prints one JSON line: its epoch times and accuracy.

    python benchmarks/plain_keras.py [--epochs N] [--seed S] [--deterministic]
"""

import argparse
import json
from pathlib import Path

import keras
from keras import layers
from omegaconf import OmegaConf

from mnist_hydra.data.idx import SHIPPED, read_idx
from mnist_hydra.training.records import EpochRecorder

FILES = OmegaConf.load(Path(__file__).parents[1] / "conf" / "dataset" / "mnist.yaml").files


def load(split):
    """The shipped MNIST files, read and checked as the framework does (not timed)."""

    def read(role):
        spec = FILES[f"{split}_{role}"]
        return read_idx(Path(str(SHIPPED / "mnist")) / f"{spec.file}.gz", spec.sha256, spec.bytes)

    images, labels = read("images"), read("labels")
    return (images.astype("float32") / 255)[..., None], keras.utils.to_categorical(labels, 10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="enable TensorFlow's op determinism, as the framework's default does",
    )
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    if args.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()

    x_train, y_train = load("train")
    x_test, y_test = load("test")
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(3, 3)),
            layers.Dropout(0.5),
            layers.Flatten(),
            layers.Dense(250, activation="sigmoid"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    # learning_rate=1.0: Keras <= 2.3's default for Adadelta, which the tutorial relied on.
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adadelta(learning_rate=1.0),
        metrics=["accuracy"],
    )
    timer = EpochRecorder()  # the framework's own, so that both are timed alike
    model.fit(x_train, y_train, batch_size=500, epochs=args.epochs, verbose=2, callbacks=[timer])
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(json.dumps({"epoch_seconds": timer.seconds, "test_loss": loss, "test_accuracy": accuracy}))


if __name__ == "__main__":
    main()
