"""The data: the shipped MNIST is the canonical one, and bad files are named and refused."""

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train, load_dataset

from mnist_hydra.data import Split, idx, to_model_inputs
from mnist_hydra.data.idx import parse_idx
from mnist_hydra.errors import DataError

# The .gz files' own sha256s, from shared/datasets/mnist/README.md.
SHIPPED_GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    "train-labels-idx1-ubyte.gz": "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
    "t10k-images-idx3-ubyte.gz": "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    "t10k-labels-idx1-ubyte.gz": "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
}
MNIST_DIR = Path(str(idx.SHIPPED / "mnist"))


def mnist_cfg(**changes):
    cfg = compose_train().dataset
    for key, value in changes.items():
        cfg[key] = value
    return cfg


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_shipped_files_are_the_canonical_ones():
    for name, expected in SHIPPED_GZ_SHA256.items():
        assert hashlib.sha256((MNIST_DIR / name).read_bytes()).hexdigest() == expected


def test_mnist_loads_with_the_known_facts():
    train, test = load_dataset(mnist_cfg())
    assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert list(train.labels[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert list(test.labels[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert list(np.bincount(train.labels)) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_limits_take_the_first_images():
    train, test = load_dataset(mnist_cfg(train_limit=300, test_limit=50))
    assert (len(train.images), len(train.labels), len(test.images)) == (300, 300, 50)
    assert list(train.labels[:3]) == [5, 0, 4]


def test_model_inputs_are_scaled_and_one_hot():
    split = Split(np.array([[[[0], [255]]]], dtype=np.uint8), np.array([3], dtype=np.uint8))
    images, labels = to_model_inputs(split, 10)
    assert images.shape == (1, 1, 2, 1) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert list(labels[0]) == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_parse_idx_checks_magic_and_length():
    good = idx_bytes(np.zeros((2, 3, 3)))
    assert parse_idx(good, "x").shape == (2, 3, 3)
    with pytest.raises(DataError, match="bad magic"):
        parse_idx(b"\x1f\x8b" + good[2:], "x")
    with pytest.raises(DataError, match="x: its IDX header describes 2x3x3 .* truncated"):
        parse_idx(good[:-1], "x")


@pytest.fixture
def mnist_copy(tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(MNIST_DIR, folder)
    return folder


def test_a_copy_loads_from_a_data_dir(mnist_copy):
    train, _ = load_dataset(mnist_cfg(data_dir=str(mnist_copy), train_limit=10))
    assert len(train.images) == 10


def test_a_corrupted_file_is_named(mnist_copy):
    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one label changed: header intact, content not
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: sha256 .* does not match"):
        load_dataset(mnist_cfg(data_dir=str(mnist_copy)))


def test_a_truncated_file_is_named(mnist_copy):
    path = mnist_copy / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: cannot be read or decompressed"):
        load_dataset(mnist_cfg(data_dir=str(mnist_copy)))


def test_a_truncated_uncompressed_file_is_named(mnist_copy):
    path = mnist_copy / "train-labels-idx1-ubyte"
    path.write_bytes(gzip.decompress((mnist_copy / "train-labels-idx1-ubyte.gz").read_bytes())[:-10])
    (mnist_copy / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: its IDX header describes 60000"):
        load_dataset(mnist_cfg(data_dir=str(mnist_copy)))


def test_a_missing_file_is_named(mnist_copy):
    (mnist_copy / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\(.gz\) is missing"):
        load_dataset(mnist_cfg(data_dir=str(mnist_copy)))


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    def no_network():
        raise ConnectionError("no route")

    monkeypatch.setattr(idx, "_keras_download", lambda module: no_network())
    cfg = compose_train(["dataset=fashion_mnist", f"dataset.data_dir={tmp_path}"]).dataset
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset(cfg)


def test_fashion_mnist_falls_back_to_keras_download(tmp_path, monkeypatch):
    # Keras' download, stood in for by an empty folder: the fallback must read
    # from the folder Keras filled, and check what it finds there like any other.
    downloaded = tmp_path / "keras"
    downloaded.mkdir()
    monkeypatch.setattr(idx, "_keras_download", lambda module: downloaded)
    cfg = compose_train(["dataset=fashion_mnist", f"dataset.data_dir={tmp_path / 'absent'}"]).dataset
    with pytest.raises(DataError, match=str(downloaded)):
        load_dataset(cfg)


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_debian_fashion_mnist_loads():
    train, test = load_dataset(compose_train(["dataset=fashion_mnist"]).dataset)
    assert train.images.shape == (60000, 28, 28, 1) and len(test.labels) == 10000
    assert list(train.labels[:10]) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


def test_a_new_idx_dataset_is_one_yaml_file(tmp_path):
    """KMNIST-style: the shipped MNIST files under another name, described by a file of the user's."""
    (tmp_path / "dataset").mkdir()
    mnist_yaml = (Path(__file__).parents[1] / "conf" / "dataset" / "mnist.yaml").read_text()
    (tmp_path / "dataset" / "digits_again.yaml").write_text(
        mnist_yaml.replace("name: mnist", "name: digits_again").replace(
            "data_dir: null", f"data_dir: {MNIST_DIR}"
        )
    )
    cfg = compose_train(["dataset=digits_again", f"hydra.searchpath=[file://{tmp_path}]"])
    train, test = load_dataset(cfg.dataset)
    assert (len(train.labels), len(test.labels)) == (60000, 10000)


def test_a_file_longer_than_the_original_is_refused_without_reading_it_whole(mnist_copy):
    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    # A gzip bomb in miniature: 100 MB of zeros in about 100 KB. Reading stops one byte past
    # the 10,008 bytes the file has.
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()) + bytes(100_000_000)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: longer than the 10008 bytes"):
        load_dataset(mnist_cfg(data_dir=str(mnist_copy)))


def test_a_folder_with_only_some_files_is_named_not_downloaded_over(tmp_path, monkeypatch):
    def download():
        raise AssertionError("a partial folder must not start a download")

    monkeypatch.setattr(idx, "_keras_download", lambda module: download())
    shutil.copy(MNIST_DIR / "train-labels-idx1-ubyte.gz", tmp_path)  # one of the four
    cfg = compose_train(["dataset=fashion_mnist", f"dataset.data_dir={tmp_path}"]).dataset
    with pytest.raises(
        DataError,
        match=r"holds only some of fashion_mnist's files: train-images-idx3-ubyte\(.gz\), "
        r"t10k-images-idx3-ubyte\(.gz\), t10k-labels-idx1-ubyte\(.gz\) missing",
    ):
        load_dataset(cfg)


def test_an_image_size_that_is_not_the_files_is_named():
    with pytest.raises(DataError, match="the train images are 28x28 pixels, but dataset.image_size=32"):
        load_dataset(mnist_cfg(image_size=32))
