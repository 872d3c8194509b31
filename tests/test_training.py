"""The training task, called in process as the entry point calls it (as flax's train_test.py
does): what a run writes, its record, its epoch backup and resuming from it, and the plain
YAML files a user writes for every group."""

import json
import re
from pathlib import Path

import keras
import pytest
from conftest import compose_train, metrics_of
from omegaconf import OmegaConf

import mnist_hydra
from mnist_hydra.config.validate import validate
from mnist_hydra.errors import ConfigError
from mnist_hydra.training.task import train
from mnist_hydra.training.tracking import Tracker

LAUNCHER = OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"})


def test_a_run_writes_its_model_record_and_plots_and_removes_its_backup(tmp_path):
    run = tmp_path / "run"
    returned = train(compose_train(["debug=smoke"]), run, LAUNCHER)
    metrics = metrics_of(run)
    assert returned == metrics
    assert metrics["status"] == "completed" and metrics["params"] == 1_045_576
    assert (metrics["train_images"], metrics["test_images"]) == (300, 100)
    assert metrics["class_names"] == [str(d) for d in range(10)] and metrics["image_shape"] == [28, 28, 1]
    assert len(metrics["history"]["loss"]) == 1 == len(metrics["epoch_seconds"])
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert sum(map(sum, metrics["confusion_matrix"])) == 100  # every test image, once
    assert json.loads((run / "epochs.json").read_text())[0]["loss"] == metrics["history"]["loss"][0]
    assert keras.models.load_model(run / "model.keras").count_params() == 1_045_576
    for name in ("learning_curves.png", "confusion_matrix.png"):
        assert (run / name).stat().st_size > 1000
    assert not (run / "backup").exists()  # removed once the run is completed


class InterruptingTracker(Tracker):
    """A user's own tracker (a plain YAML file names it) that stops the run as epoch 2 begins,
    once, as a Ctrl-C would: epoch 1 is trained and backed up."""

    interrupted = False

    def callbacks(self) -> list:
        class Interrupt(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == 1 and not InterruptingTracker.interrupted:
                    InterruptingTracker.interrupted = True
                    raise KeyboardInterrupt

        return [Interrupt()]


def test_an_interrupted_run_is_recorded_and_resumes_from_its_backup(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setattr(InterruptingTracker, "interrupted", False)
    run = tmp_path / "run"
    cfg = compose_train(["debug=smoke", "trainer.epochs=2"])
    cfg.tracker = {"_target_": "test_training.InterruptingTracker"}
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, LAUNCHER)
    assert metrics_of(run)["status"] == "interrupted"
    assert json.loads((run / "backup" / "state.json").read_text())["epoch"] == 1
    first_epoch = json.loads((run / "epochs.json").read_text())
    assert len(first_epoch) == 1

    metrics = train(cfg, run, LAUNCHER)  # the same run again: it continues from its backup
    assert metrics["status"] == "completed" and len(metrics["history"]["loss"]) == 2
    assert metrics["epoch_seconds"][0] == first_epoch[0]["seconds"]  # epoch 1 was not trained again
    assert not (run / "backup").exists()


def test_a_run_is_continued_only_with_the_config_it_started_with(tmp_path):
    from mnist_hydra.errors import RunFolderError

    run = tmp_path / "run"
    train(compose_train(["debug=smoke"]), run, LAUNCHER)
    (run / "metrics.json").write_text(json.dumps({"status": "interrupted"}))  # as if it had stopped
    with pytest.raises(
        RunFolderError, match=r"holds a run with another config, .*\(model.dropout: 0.5 -> 0.3\)"
    ):
        train(compose_train(["debug=smoke", "model.dropout=0.3"]), run, LAUNCHER)


def tiny_net(input_shape, num_classes, width):
    """A user's model: a function of the input shape, the number of classes and its own keys."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(width, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def constant_rate(learning_rate, steps_per_epoch, epochs, factor):
    return learning_rate * factor


PLAIN_FILES = {  # what a user writes in their own config folder: a _target_ and its keys
    "model/tiny.yaml": "_target_: test_training.tiny_net\nwidth: 8\n",
    "optimizer/adadelta_copy.yaml": "_target_: keras.optimizers.Adadelta\nlearning_rate: 1.0\nrho: 0.9\n",
    "schedule/scaled.yaml": "_target_: test_training.constant_rate\nfactor: 0.5\n",
    "loss/smooth.yaml": "_target_: keras.losses.CategoricalCrossentropy\nlabel_smoothing: 0.05\n",
    "tracker/quiet.yaml": "_target_: mnist_hydra.training.tracking.Tracker\n",
    "dataset/digits.yaml": None,  # MNIST's file without its schema line, under another name
}


@pytest.fixture
def user_folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    folder = tmp_path / "my_conf"
    for name, text in PLAIN_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text or digits_file())
    return folder


def digits_file() -> str:
    mnist = (Path(__file__).parents[1] / "conf" / "dataset" / "mnist.yaml").read_text()
    plain = "_target_:" + mnist.split("_target_:", 1)[1]  # the defaults list (the schema line) left out
    shipped = Path(mnist_hydra.__file__).parent / "datasets" / "mnist"
    return plain.replace("name: mnist", "name: digits").replace("data_dir: null", f"data_dir: {shipped}")


def user_config(folder: Path, *overrides: str):
    groups = [f"{name.split('/')[0]}={Path(name).stem}" for name in PLAIN_FILES]
    return compose_train([f"hydra.searchpath=[file://{folder}]", "debug=smoke", *groups, *overrides])


def test_plain_yaml_files_of_a_users_own_train_in_every_group(user_folder, tmp_path):
    cfg = user_config(user_folder, "model.width=4", "optimizer.rho=0.8")
    assert (cfg.model.width, cfg.optimizer.rho) == (4, 0.8)  # their keys override like ours
    metrics = train(cfg, tmp_path / "run", LAUNCHER)
    assert metrics["status"] == "completed" and metrics["dataset"] == "digits"
    assert metrics["params"] == 3 * 3 * 4 + 4 + 4 * 10 + 10
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert float(model.optimizer.learning_rate) == pytest.approx(0.5)  # the user's schedule: half of 1.0
    assert type(model.optimizer).__name__ == "Adadelta" and model.optimizer.rho == pytest.approx(0.8)


@pytest.mark.parametrize(
    "group,key,line",
    [("optimizer", "learning_rate", "learning_rate: 0.001"), ("dataset", "image_size", "image_size: 28")],
)
def test_a_plain_file_without_a_key_the_task_reads_names_the_line_to_add(user_folder, group, key, line):
    (name,) = [n for n in PLAIN_FILES if n.startswith(group)]
    path = user_folder / name
    path.write_text("\n".join(row for row in path.read_text().splitlines() if not row.startswith(key)))
    with pytest.raises(
        ConfigError, match=f"^{group}.{key} is required: add a line `{line}` to the {group}'s file$"
    ):
        validate(user_config(user_folder))


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "+model.depth=3",
            "model.depth is not an argument of test_training.tiny_net: its arguments are width",
        ),
        (
            "~model.width",
            "model.width is required by test_training.tiny_net: add a line `width: ...` to its file",
        ),
    ],
)
def test_a_users_model_keys_are_checked_against_its_builders_arguments(user_folder, override, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        validate(user_config(user_folder, override))


def test_a_plain_file_without_a_target_names_the_line_to_add(user_folder):
    (user_folder / "model" / "tiny.yaml").write_text("width: 8\n")
    with pytest.raises(ConfigError, match=r"^model: its file has no _target_: add a line `_target_: "):
        validate(user_config(user_folder))
