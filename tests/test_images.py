"""One decoder for every image (mnist_hydra/data/images.py), and image folders that tell the
truth: full depth, EXIF orientation, broken files named, a test set that stays put."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train, load_dataset
from PIL import Image, ImageFile
from test_own_model_and_data import folder_dataset, write_digits

from mnist_hydra.data.images import read_image
from mnist_hydra.errors import DataError, NotAnImage


def test_a_16_bit_folder_keeps_shades_that_8_bits_would_clip(tmp_path):
    """Two classes that differ only in brightness, as 16-bit PNGs: both above 255 out of 65535."""
    for name, level in (("dim", 20_000), ("bright", 40_000)):
        (tmp_path / "deep" / name).mkdir(parents=True)
        for number in range(5):
            Image.fromarray(np.full((28, 28), level, np.uint16)).save(
                tmp_path / "deep" / name / f"{number}.png"
            )
    train, test = load_dataset(folder_dataset(tmp_path / "deep"))
    levels = {int(label): set(np.unique(image)) for image, label in zip(train.images, train.labels)}
    assert levels == {0: {round(40_000 / 257)}, 1: {round(20_000 / 257)}}  # bright, dim: 156 and 78


@pytest.mark.parametrize(
    "failure", [SyntaxError("broken PNG file"), struct.error("unpack"), EOFError(), zlib.error("bad")]
)
def test_any_decoder_failure_is_not_an_image_naming_the_file(tmp_path, monkeypatch, failure):
    path = tmp_path / "broken.png"
    Image.new("L", (8, 8)).save(path)

    def broken_load(self):
        raise failure

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken_load)  # as Pillow fails on a broken chunk
    with pytest.raises(NotAnImage, match=rf"^{path}: not a readable image \({type(failure).__name__}"):
        read_image(path)


def test_exif_orientation_is_applied_to_folder_images_too(tmp_path):
    from mnist_hydra.building import build

    upright = np.zeros((28, 28), np.uint8)
    upright[:6] = 255  # white at the top
    stored = Image.fromarray(upright).transpose(
        Image.Transpose.ROTATE_90
    )  # as a camera stores it, lying down
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    write_digits(tmp_path / "digits", per_class=5)
    seen = build("dataset", folder_dataset(tmp_path / "digits")).prepare(tmp_path / "photo.jpg")[..., 0]
    assert seen[:5].mean() > 0.8 and seen[8:].mean() < 0.2


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    Image.new("L", (4000, 3000), 200).save(tmp_path / "big.jpg")
    assert read_image(tmp_path / "big.jpg", needed_side=512).shape == (750, 1000)  # an eighth a side
    assert read_image(tmp_path / "big.jpg").shape == (3000, 4000)


def test_a_broken_link_in_a_folder_is_named(tmp_path):
    write_digits(tmp_path / "digits", per_class=5)
    (tmp_path / "digits" / "one" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DataError, match=r"gone.png: not a file \(a broken link\?\)"):
        load_dataset(folder_dataset(tmp_path / "digits"))


def test_test_limit_takes_every_class_in_proportion(digit_folder):
    _, test = load_dataset(folder_dataset(digit_folder, test_limit=6))
    assert sorted(np.bincount(test.labels)) == [2, 2, 2]


def test_the_split_does_not_follow_the_training_seed(digit_folder):
    def test_split(seed):
        cfg = compose_train(["dataset=image_folder", f"dataset.path={digit_folder}", f"seed={seed}"]).dataset
        cfg.cache_dir = str(Path(digit_folder).parent / "cache-seeds")
        return load_dataset(cfg)[1]

    assert test_split(1).sha256() == test_split(2).sha256()


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digits")
    write_digits(folder)
    return folder


def test_a_test_set_changed_since_training_is_told_not_scored(tmp_path):
    from conftest import metrics_of
    from omegaconf import OmegaConf

    from mnist_hydra.errors import CheckpointError
    from mnist_hydra.reporting.evaluation import evaluate
    from mnist_hydra.training.task import train

    write_digits(tmp_path / "digits" / "train", per_class=10)
    write_digits(tmp_path / "digits" / "test", per_class=3, first=10)
    cfg = compose_train(["debug=smoke", "trainer.batch_size=8", "model.filters=[4]", "model.dense_units=8"])
    cfg.dataset = folder_dataset(tmp_path / "digits")
    run = tmp_path / "run"
    train(cfg, run, OmegaConf.create({}))
    (run / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")  # what Hydra saves beside a run
    recorded = metrics_of(run)["test_set_sha256"]
    assert recorded == load_dataset(cfg.dataset)[1].sha256()
    assert evaluate(run, tmp_path / "eval")["test_accuracy"] == metrics_of(run)["test_accuracy"]

    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digits" / "test" / "one" / "added.png")
    with pytest.raises(CheckpointError, match=r"run: its test set has changed since it was trained"):
        evaluate(run, tmp_path / "eval-again")
