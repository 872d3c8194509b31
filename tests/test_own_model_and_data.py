"""Bring your own: a model of the user's (examples/small_resnet) and a folder of their images."""

import logging
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train, load_dataset, metrics_of
from omegaconf import OmegaConf
from PIL import Image

from mnist_hydra.config.validate import validate
from mnist_hydra.errors import ConfigError, DataError

EXAMPLE = Path(__file__).parents[1] / "examples" / "small_resnet"
CLASSES = {0: "zero", 1: "one", 7: "seven"}


def write_digits(folder: Path, per_class: int = 40, first: int = 0) -> None:
    """MNIST test digits as class folders of PNGs (a few JPEGs, a few 32x32 that need resizing)."""
    _, test = load_dataset(compose_train().dataset)
    for digit, name in CLASSES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for number, index in enumerate(np.flatnonzero(test.labels == digit)[first : first + per_class]):
            image = Image.fromarray(test.images[index, ..., 0])
            if number % 10 == 0:
                image = image.resize((32, 32))
            image.save(folder / name / f"{number}.{'jpg' if number % 5 == 1 else 'png'}")


@pytest.fixture(scope="session")
def digit_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digits")
    write_digits(folder)
    return folder


def folder_dataset(path, **keys):
    cfg = compose_train(["dataset=image_folder", f"dataset.path={path}"]).dataset
    cfg.cache_dir = str(Path(path).parent / f"cache-{Path(path).name}")
    for key, value in keys.items():
        cfg[key] = value
    return cfg


# --- image folders ----------------------------------------------------------------------


def test_a_folder_of_classes_is_split_by_class_and_seed(digit_folder, caplog):
    with caplog.at_level(logging.WARNING):
        train, test = load_dataset(folder_dataset(digit_folder))
    assert train.images.shape == (96, 28, 28, 1) and test.images.shape == (24, 28, 28, 1)
    assert list(np.bincount(test.labels)) == [8, 8, 8]  # a fifth of each class
    assert sorted(np.bincount(train.labels)) == [32, 32, 32]
    again, _ = load_dataset(folder_dataset(digit_folder))
    assert np.array_equal(again.labels, train.labels)  # the same seed, the same split and order
    other, _ = load_dataset(folder_dataset(digit_folder, seed=7))
    assert not np.array_equal(other.labels, train.labels)


def test_the_classes_are_the_folder_names_sorted(digit_folder):
    from mnist_hydra.building import build

    assert build("dataset", folder_dataset(digit_folder)).class_names == ["one", "seven", "zero"]


def test_mixed_sizes_are_resized_and_said_once(tmp_path, caplog):
    write_digits(tmp_path / "digits", per_class=20)
    with caplog.at_level(logging.WARNING, logger="mnist_hydra.data.image_folder"):
        load_dataset(folder_dataset(tmp_path / "digits"))
    assert [r.message for r in caplog.records] == [
        f"6 of 60 images in {tmp_path / 'digits'} were not 28x28: resized"
    ]


def test_decoded_once_then_read_from_the_cache_until_a_file_changes(tmp_path, monkeypatch):
    from mnist_hydra.data import image_folder

    write_digits(tmp_path / "digits", per_class=10)
    decoded = []
    original = image_folder._decode
    monkeypatch.setattr(image_folder, "_decode", lambda *a: decoded.append(a) or original(*a))
    first = load_dataset(folder_dataset(tmp_path / "digits"))
    assert len(decoded) == 30
    second = load_dataset(folder_dataset(tmp_path / "digits"))
    assert len(decoded) == 30 and np.array_equal(first[0].images, second[0].images)
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "digits" / "one" / "extra.png")
    load_dataset(folder_dataset(tmp_path / "digits"))
    assert len(decoded) == 61  # the folder changed: decoded again


def test_train_and_test_folders_and_colour(tmp_path):
    write_digits(tmp_path / "split" / "train", per_class=10)
    write_digits(tmp_path / "split" / "test", per_class=5, first=10)
    train, test = load_dataset(folder_dataset(tmp_path / "split", channels=3))
    assert train.images.shape == (30, 28, 28, 3) and test.images.shape == (15, 28, 28, 3)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda root: (root / "zero").mkdir(), "an empty class folder"),
        (lambda root: None, "1 class folder (one); a classifier needs at least two"),
        (
            lambda root: (root / "zero").mkdir() or (root / "zero" / "bad.png").write_text("no image"),
            "bad.png: not a readable image",
        ),
        (
            lambda root: (
                [(root / "train" / n).mkdir(parents=True) for n in ("a", "b")]
                and [(root / "test" / n).mkdir(parents=True) for n in ("a", "c")]
            ),
            "its classes ['a', 'c'] differ",
        ),
    ],
)
def test_a_bad_folder_is_named_in_one_line(tmp_path, make, message):
    root = tmp_path / "images"
    (root / "one").mkdir(parents=True)
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(root / "one" / "a.png")
    make(root)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_dataset(folder_dataset(root))


# --- a model of the user's ---------------------------------------------------------------


def module_model(target: str):
    return OmegaConf.create({"_target_": target, "_partial_": True})


def returns_a_number(input_shape, num_classes):
    return 42


def raises(input_shape, num_classes):
    raise ValueError("this model cannot take 28x28 images")


@pytest.mark.parametrize(
    "target,message",
    [
        (
            "nowhere.build",
            "model._target_=nowhere.build cannot be found: ModuleNotFoundError: No module named 'nowhere'",
        ),
        (
            "test_own_model_and_data.raises",
            "model._target_=test_own_model_and_data.raises raised ValueError: "
            "this model cannot take 28x28 images",
        ),
        ("test_own_model_and_data.returns_a_number", "returned a int, not a Keras model"),
    ],
)
def test_a_model_target_that_cannot_build_is_one_line_naming_it(target, message):
    from mnist_hydra.config.model_checks import check_model
    from mnist_hydra.models import build_model

    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        check_model(module_model(target), (28, 28, 1), 10)
        build_model(module_model(target), (28, 28, 1), 10)


def test_the_example_model_composes_with_its_own_sweepable_keys(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    cfg = compose_train(
        [f"hydra.searchpath=[file://{EXAMPLE / 'conf'}]", "model=small_resnet", "model.width=8"]
    )
    assert (cfg.model._target_, cfg.model.width, cfg.model.blocks) == (
        "small_resnet.build_small_resnet",
        8,
        2,
    )
    validate(cfg)


def test_own_plain_yaml_model_and_optimizer_on_own_images_train_resume_evaluate_predict_and_sweep(
    cli, digit_folder, tmp_path
):
    """As the README shows it: the example model and optimizer (plain YAML files in the user's
    folder) on a folder of images."""
    env = {"PYTHONPATH": str(EXAMPLE), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [
        "--config-dir",
        str(EXAMPLE / "conf"),
        "model=small_resnet",
        "model.width=8",
        "dataset=image_folder",
        f"dataset.path={digit_folder}",
        "optimizer=adamw",  # plain YAML files of the user's, model and optimizer
        "debug=smoke",
        "trainer.batch_size=16",
        "trainer.epochs=2",
    ]
    killed = cli(
        "mnist_hydra.train", *command, cwd=tmp_path, env={**env, "MNIST_HYDRA_TEST_KILL_AT": "batch@8"}
    )  # in epoch 2
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = cli("mnist_hydra.train", *command, "resume=true", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    (run,) = tmp_path.glob("outputs/*/*/model.keras")
    metrics = metrics_of(run.parent)
    assert metrics["status"] == "completed" and len(metrics["history"]["loss"]) == 2
    assert metrics["class_names"] == ["one", "seven", "zero"] and metrics["image_shape"] == [28, 28, 1]

    # Its custom layer needs its module: imported only when the user trusts the run's code.
    untrusted = cli("mnist_hydra.evaluate", f"ckpt_path={run.parent}", cwd=tmp_path, env=env)
    assert untrusted.returncode == 1
    assert "model._target_=small_resnet.build_small_resnet, may need its own module" in untrusted.stderr
    evaluated = cli(
        "mnist_hydra.evaluate",
        f"ckpt_path={run.parent}",
        "trust_run_code=true",
        f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path,
        env=env,
    )  # loads the custom layer under safe_mode
    assert evaluated.returncode == 0, evaluated.stderr
    assert metrics_of(tmp_path / "eval")["test_accuracy"] == metrics["test_accuracy"]

    predicted = cli(
        "mnist_hydra.predict",
        f"ckpt_path={run.parent}",
        f"images=[{digit_folder / 'one' / '2.png'}]",
        "trust_run_code=true",
        f"hydra.run.dir={tmp_path / 'predict'}",
        cwd=tmp_path,
        env=env,
    )
    assert predicted.returncode == 0, predicted.stderr
    assert (
        "2.png: " in predicted.stdout and predicted.stdout.split(": ")[1].split()[0] in metrics["class_names"]
    )

    swept = cli(
        "mnist_hydra.train",
        "-m",
        *command,
        "model.width=4,8",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
        env=env,
    )
    assert swept.returncode == 0, swept.stderr
    assert "Sweep summary (2 jobs, 0 not ok)" in swept.stdout
    assert "from the cache" in (tmp_path / "sweep" / "1" / "train.log").read_text()
