"""The page's corrections (serving/collect.py): each kept whole or not at all, numbered once
whichever server writes, bounded per label; the folder they make is a dataset as it stands."""

import errno
import threading

import numpy as np
import pytest
from PIL import Image

from mnist_hydra.data.image_folder import ImageFolderDataset
from mnist_hydra.errors import ConfigError, DataError
from mnist_hydra.serving import collect
from mnist_hydra.serving.collect import Collector, LabelFull

DIGITS = [str(digit) for digit in range(10)]


def a_view(seed: int = 0) -> np.ndarray:
    """A 28x28 view as the model reads it: a light stroke on black, floats in [0, 1]."""
    view = np.zeros((28, 28, 1), np.float32)
    view[4:24, 12 + seed % 4 : 16 + seed % 4] = 1.0
    return view


def a_drawing() -> np.ndarray:
    drawing = np.ones((280, 280), np.float32)  # the page's canvas: dark ink on white
    drawing[40:240, 130:150] = 0.0
    return drawing


def files_in(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_a_correction_keeps_the_view_and_the_drawing_under_its_label(tmp_path):
    collector = Collector(tmp_path / "mine", DIGITS, max_per_label=10)
    saved = collector.save("7", a_view(), a_drawing())
    assert saved == {
        "label": "7",
        "view": str(tmp_path / "mine" / "7" / "0.png"),
        "drawing": str(tmp_path / "mine" / "7" / "drawings" / "0.png"),
        "count": 1,
    }
    view = np.asarray(Image.open(saved["view"]))
    assert view.shape == (28, 28) and np.array_equal(view, np.rint(a_view()[..., 0] * 255).astype(np.uint8))
    assert Image.open(saved["drawing"]).size == (280, 280)
    assert collector.save("7", a_view(1), a_drawing())["view"].endswith("7/1.png")
    assert files_in(tmp_path / "mine") == ["7/0.png", "7/1.png", "7/drawings/0.png", "7/drawings/1.png"]


def test_a_drawing_larger_than_the_page_is_kept_scaled_down(tmp_path):
    noise = np.random.default_rng(0).random((3000, 1500)).astype(np.float32)  # what compresses worst
    saved = Collector(tmp_path, DIGITS, max_per_label=1).save("4", a_view(), noise)
    assert Image.open(saved["drawing"]).size == (512, 1024)


def test_a_label_is_bounded_and_a_label_that_is_no_class_is_refused(tmp_path):
    collector = Collector(tmp_path, DIGITS, max_per_label=2)
    for _ in range(2):
        collector.save("3", a_view(), a_drawing())
    with pytest.raises(LabelFull, match="label 3 holds 2 drawings already"):
        collector.save("3", a_view(), a_drawing())
    with pytest.raises(ValueError, match="label='x' is not one of the run's classes: 0, 1, 2"):
        collector.save("x", a_view(), a_drawing())
    assert len(files_in(tmp_path)) == 4


def test_two_servers_on_one_folder_never_take_one_number_and_keep_the_bound(tmp_path):
    """Two collectors (each with its own lock, as two processes have) saving at once."""
    servers = [Collector(tmp_path, DIGITS, max_per_label=30) for _ in range(2)]
    outcomes: list = []

    def save_many(collector):
        for index in range(20):
            try:
                outcomes.append(collector.save("4", a_view(index), a_drawing())["view"])
            except LabelFull:
                outcomes.append("full")

    threads = [threading.Thread(target=save_many, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    views = [outcome for outcome in outcomes if outcome != "full"]
    assert len(views) == 30 == len(set(views)) and outcomes.count("full") == 10
    assert len(list((tmp_path / "4").glob("*.png"))) == 30
    assert len(list((tmp_path / "4" / "drawings").glob("*.png"))) == 30
    assert not list(tmp_path.rglob(".*"))  # no temporary file left


@pytest.mark.parametrize("failing", ["drawing", "view"])
def test_a_full_disk_leaves_no_file_and_no_number_taken(tmp_path, monkeypatch, failing):
    collector = Collector(tmp_path, DIGITS, max_per_label=10)
    real_link, links = collect.os.link, []

    def full_disk(source, target):
        links.append(target)
        if len(links) == (1 if failing == "drawing" else 2):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_link(source, target)

    monkeypatch.setattr(collect.os, "link", full_disk)
    with pytest.raises(OSError, match="No space left"):
        collector.save("5", a_view(), a_drawing())
    assert files_in(tmp_path) == []  # neither file, nor a temporary one
    monkeypatch.setattr(collect.os, "link", real_link)
    assert collector.save("5", a_view(), a_drawing())["view"].endswith("5/0.png")


def test_a_kill_between_the_two_files_leaves_a_drawing_the_dataset_never_reads(tmp_path):
    collector = Collector(tmp_path, DIGITS, max_per_label=10)
    (tmp_path / "2" / "drawings").mkdir(parents=True)
    Image.new("L", (280, 280), 255).save(tmp_path / "2" / "drawings" / "0.png")  # its view never written
    for index in range(3):
        collector.save("2", a_view(index), a_drawing())
        collector.save("9", a_view(index), a_drawing())
    assert files_in(tmp_path / "2") == ["1.png", "2.png", "3.png", *(f"drawings/{n}.png" for n in range(4))]
    dataset = ImageFolderDataset(
        "mine",
        str(tmp_path),
        28,
        1,
        0.34,
        0,
        class_names=DIGITS,
        cache_dir=str(tmp_path.parent / "cache"),
        digits=True,
    )
    train, test = dataset.load()
    assert len(train.labels) + len(test.labels) == 6  # the views only: not the drawings beside them
    assert sorted(set(train.labels)) == [2, 9] and sorted(test.labels) == [2, 9]
    assert dataset.class_names == DIGITS  # the ten digits, though only two have folders


def test_a_folder_of_digits_is_read_as_mnist_reads_a_digit_and_names_a_folder_that_is_no_class(tmp_path):
    for label in ("1", "8"):
        (tmp_path / label).mkdir()
        for index in range(2):
            Image.fromarray(np.rint(a_drawing() * 255).astype(np.uint8)).save(
                tmp_path / label / f"{index}.png"
            )
    dataset = ImageFolderDataset(
        "mine",
        str(tmp_path),
        28,
        1,
        0.5,
        0,
        class_names=DIGITS,
        cache_dir=str(tmp_path / ".cache"),
        digits=True,
    )
    train, _ = dataset.load()
    image = train.images[0, ..., 0]
    assert image.shape == (28, 28) and image[0, 0] == 0 and image.max() == 255  # inverted: ink light on black
    assert dataset.prepare(tmp_path / "1" / "0.png").shape == (28, 28, 1)

    (tmp_path / "one").mkdir()
    with pytest.raises(DataError, match=r"the class folders \['one'\] are not among dataset.class_names"):
        _ = ImageFolderDataset("mine", str(tmp_path), 28, 1, 0.5, 0, class_names=DIGITS).class_names


def test_classes_that_cannot_be_folders_and_a_linked_folder_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"the run's classes \['T-shirt/top'\] cannot be folder names"):
        Collector(tmp_path, ["T-shirt/top", "Trouser"], 10)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="is a symbolic link"):
        Collector(tmp_path / "link", DIGITS, 10)
