"""A run folder may come from anyone: nothing it says chooses code for evaluate, predict, serve
or export to run, unless the user says trust_run_code=true for that command."""

import json
import sys
from pathlib import Path

import keras
import pytest
from conftest import compose_train
from omegaconf import OmegaConf

from mnist_hydra.errors import CheckpointError
from mnist_hydra.inference.loading import open_run


def received_run(folder: Path, dataset: dict | None = None, model_target: str | None = None) -> Path:
    """A run folder as someone could send it: a small model of Keras' own layers, the record,
    and a .hydra/config.yaml saying whatever its author chose."""
    (folder / ".hydra").mkdir(parents=True)
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs))).save(
        folder / "model.keras"
    )
    config = OmegaConf.to_container(compose_train(["debug=smoke"]))
    config["dataset"] = dataset or config["dataset"]
    config["model"]["_target_"] = model_target or config["model"]["_target_"]
    OmegaConf.save(OmegaConf.create(config), folder / ".hydra" / "config.yaml")
    record = {"status": "completed", "class_names": [str(d) for d in range(10)], "image_shape": [28, 28, 1]}
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


def test_our_own_run_opens_without_trust(tmp_path):
    run = open_run(received_run(tmp_path / "run"))
    assert run.dataset.name == "mnist" and run.model.count_params() == 7850


@pytest.mark.parametrize(
    "where",
    ["dataset._target_", "dataset.files.train_images._target_", "dataset.class_names.0._target_"],
)
def test_a_dataset_target_of_the_authors_choosing_is_refused_and_never_called(tmp_path, where):
    payload = {"_target_": "os.makedirs", "name": str(tmp_path / "made-by-the-run")}
    dataset = OmegaConf.to_container(compose_train(["debug=smoke"]).dataset)
    if where == "dataset._target_":
        dataset = payload
    elif where.startswith("dataset.files"):
        dataset["files"]["train_images"] = payload
    else:
        dataset["class_names"][0] = payload
    folder = received_run(tmp_path / "run", dataset=dataset)
    with pytest.raises(
        CheckpointError, match=rf"^{where}=os.makedirs in .*config.yaml is not one of .*trust_run_code=true"
    ):
        open_run(folder)
    assert not (tmp_path / "made-by-the-run").exists()


def test_the_model_module_is_imported_only_with_trust(tmp_path, monkeypatch):
    (tmp_path / "code").mkdir()
    marker = tmp_path / "imported"
    (tmp_path / "code" / "authors_model.py").write_text(f"open({str(marker)!r}, 'w').close()\nbuild = None\n")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    monkeypatch.delitem(sys.modules, "authors_model", raising=False)
    folder = received_run(tmp_path / "run", model_target="authors_model.build")
    open_run(folder)
    assert not marker.exists()
    open_run(folder, trust_run_code=True)
    assert marker.exists()


def test_the_command_line_refuses_in_one_line_and_trust_run_code_lets_it_run(cli, tmp_path):
    dataset = {"_target_": "os.makedirs", "name": str(tmp_path / "made-by-the-run")}
    folder = received_run(tmp_path / "run", dataset=dataset)
    for command in ("evaluate", "predict images=[x.png]", "export", "serve port=0"):
        module, *args = command.split()
        result = cli(f"mnist_hydra.{module}", f"ckpt_path={folder}", *args, cwd=tmp_path)
        assert result.returncode == 1, (command, result.stderr)
        assert "dataset._target_=os.makedirs in" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "made-by-the-run").exists()
    trusted = cli("mnist_hydra.evaluate", f"ckpt_path={folder}", "trust_run_code=true", cwd=tmp_path)
    assert (tmp_path / "made-by-the-run").is_dir(), trusted.stderr  # the user said so: it ran


def test_a_received_image_folder_run_writes_its_cache_where_this_machine_keeps_it(tmp_path):
    dataset = OmegaConf.to_container(
        compose_train(["dataset=image_folder", f"dataset.path={tmp_path / 'images'}"]).dataset
    )
    dataset["cache_dir"] = str(tmp_path / "chosen-by-the-run")
    folder = received_run(tmp_path / "run", dataset=dataset)
    assert open_run(folder).dataset.cache_dir != tmp_path / "chosen-by-the-run"
    assert open_run(folder, trust_run_code=True).dataset.cache_dir == tmp_path / "chosen-by-the-run"
