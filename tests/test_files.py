"""Every output is written whole or not at all: a failed or full-disk write leaves the old file."""

import errno
import json

import pytest

from mnist_hydra.files import remove_temporaries, temporary_name, write_atomically, write_csv, write_json


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"status": "completed"})

    def disk_fills_up(temporary):
        temporary.write_text('{"status": "runn')  # half a record, then no space left
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, disk_fills_up)
    assert json.loads(path.read_text()) == {"status": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_temporary_names_are_unique_hidden_and_keep_the_extensions_keras_checks(tmp_path):
    names = {temporary_name(tmp_path / "epoch-3.weights.h5").name for _ in range(20)}
    assert len(names) == 20
    assert all(name.startswith(".epoch-3.") and name.endswith(".partial.weights.h5") for name in names)


def test_leftover_temporaries_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "model.keras").write_text("kept")
    temporary_name(tmp_path / "model.keras").write_text("a killed writer's")
    remove_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_csv_rows_keep_only_the_columns(tmp_path):
    write_csv(tmp_path / "rows.csv", ["a", "b"], [{"a": 1, "b": 2, "c": 3}])
    assert (tmp_path / "rows.csv").read_text().splitlines() == ["a,b", "1,2"]
