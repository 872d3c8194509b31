"""Predicting people's images: MNIST-style preparation, top-3 output, bad files named."""

import csv

import numpy as np
import pytest
from conftest import compose_train, load_dataset
from PIL import Image

from mnist_hydra.data.digits import load_digit, to_mnist_style
from mnist_hydra.errors import ImageError


def mnist_test_images():
    _, test = load_dataset(compose_train().dataset)
    return test.images[..., 0], test.labels


def test_an_mnist_digit_comes_back_nearly_unchanged():
    images, _ = mnist_test_images()
    for image in images[:20]:
        prepared = to_mnist_style(image / 255.0)
        assert prepared.shape == (28, 28)
        assert np.abs(prepared - image / 255.0).mean() < 0.08


def test_dark_on_light_photo_is_inverted_cropped_and_centred():
    images, _ = mnist_test_images()
    digit = images[0] / 255.0
    photo = np.full((200, 150), 0.9)  # light grey paper, digit off-centre
    big = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((84, 84))) / 255.0
    photo[10:94, 50:134] -= 0.8 * big  # dark ink
    prepared = to_mnist_style(photo)
    assert prepared[0].max() == 0 and prepared[:, 0].max() == 0  # black background again
    ys, xs = np.indices(prepared.shape)
    assert abs((ys * prepared).sum() / prepared.sum() - 14) <= 1
    assert abs((xs * prepared).sum() / prepared.sum() - 14) <= 1
    assert np.abs(prepared - to_mnist_style(digit)).mean() < 0.1


def test_blank_and_non_images_are_named(tmp_path):
    with pytest.raises(ImageError, match="blank"):
        to_mnist_style(np.ones((30, 30)), "white.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageError, match="notes.png: not a readable image"):
        load_digit(tmp_path / "notes.png")


def test_predict_reads_digits_and_skips_bad_files(cli, trained_run, tmp_path):
    import keras

    # Twenty test images (outside the slice the run was evaluated on) that the model
    # reads right as they are: what is tested is the way from a file to the model.
    images, labels = mnist_test_images()
    model = keras.models.load_model(trained_run / "model.keras")
    pool = np.arange(9000, 9200)
    raw = model.predict(images[pool][..., None] / 255.0, verbose=0).argmax(axis=1)
    chosen = pool[raw == labels[pool]][:20]
    paths = []
    for index in chosen:
        png = tmp_path / f"digit{index}.png"
        Image.fromarray(images[index]).save(png)
        photo = tmp_path / f"photo{index}.jpg"  # dark on light, larger, in colour
        Image.fromarray(255 - images[index]).resize((140, 140)).convert("RGB").save(photo)
        paths += [png, photo]
    (tmp_path / "broken.png").write_bytes(b"")
    (tmp_path / "bomb.png").write_bytes(png_claiming(20000, 20000))
    specks = np.full((3000, 2000), 255, dtype=np.uint8)
    specks[100, 100] = specks[2900, 1900] = 0
    Image.fromarray(specks).save(tmp_path / "specks.png")
    bad = ["broken.png", "bomb.png", "specks.png"]
    paths += [tmp_path / name for name in bad]

    result = cli(
        "mnist_hydra.predict",
        f"ckpt_path={trained_run}",
        f"images=[{','.join(map(str, paths))}]",
        f"hydra.run.dir={tmp_path / 'out'}",
        cwd=tmp_path,
    )
    assert result.returncode == 1  # three images were bad ...
    assert all(name in result.stderr for name in bad) and "Traceback" not in result.stderr
    with open(tmp_path / "out" / "predictions.csv") as file:
        rows = {row["path"]: row for row in csv.DictReader(file)}
    assert len(rows) == 40  # ... and the other 40 were still predicted
    for kind in ("digit", "photo"):
        right = sum(
            rows[str(tmp_path / f"{kind}{i}.{'png' if kind == 'digit' else 'jpg'}")]["predicted"]
            == str(labels[i])
            for i in chosen
        )
        assert right >= (20 if kind == "digit" else 18), f"{kind}: only {right} of 20 right"
    row = next(iter(rows.values()))
    probabilities = [float(row[f"top{r}_probability"]) for r in (1, 2, 3)]
    assert probabilities == sorted(probabilities, reverse=True) and row["predicted"] == row["top1"]
    assert f"{paths[0]}: " in result.stdout


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("width,height", [(20000, 20000), (8000, 8000)])  # past Pillow's limit, past ours
def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path, width, height):
    (tmp_path / "bomb.png").write_bytes(png_claiming(width, height))
    with pytest.raises(ImageError, match=r"bomb.png: .*more than the 50,000,000 pixels allowed"):
        load_digit(tmp_path / "bomb.png")


def test_a_blank_page_with_a_few_specks_is_no_digit():
    page = np.ones((3000, 2000))
    page[100, 100] = page[2900, 1900] = 0.0  # two specks of dust, far apart
    with pytest.raises(ImageError, match="page.png: no digit found"):
        to_mnist_style(page, "page.png")


def test_a_16_bit_png_is_read_by_its_depth(tmp_path):
    images, _ = mnist_test_images()
    digit = images[0]
    Image.fromarray(digit.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 0..65535
    Image.fromarray(digit).save(tmp_path / "plain.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert np.abs(load_digit(tmp_path / "deep.png") - load_digit(tmp_path / "plain.png")).max() < 1e-6


def a_run_whose_model_does_not_fit(trained_run, tmp_path):
    """The trained run's config beside a model with 5 classes where the run's dataset has 10."""
    import keras

    run = tmp_path / "mismatched"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_bytes((trained_run / ".hydra" / "config.yaml").read_bytes())
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Flatten()(inputs))).save(run / "model.keras")
    return run


def test_predict_and_evaluate_refuse_a_model_that_does_not_fit_its_run(cli, trained_run, tmp_path):
    run = a_run_whose_model_does_not_fit(trained_run, tmp_path)
    Image.fromarray(mnist_test_images()[0][0]).save(tmp_path / "digit.png")
    for app, args in (("predict", [f"images=[{tmp_path / 'digit.png'}]"]), ("evaluate", [])):
        result = cli(
            f"mnist_hydra.{app}", f"ckpt_path={run}", *args, f"hydra.run.dir={tmp_path / app}", cwd=tmp_path
        )
        assert result.returncode == 1, app
        assert (
            "gives (None, 5), but its run's dataset mnist has 28x28x1 images and 10 classes" in result.stderr
        )
        assert "Traceback" not in result.stderr
