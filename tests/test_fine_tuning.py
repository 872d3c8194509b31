"""Fine-tuning: init_from=<a trained run> starts from its weights (read as evaluate reads a run),
trainer.freeze keeps the first layers as they come, init_from_head=new gives other classes a
fresh classifier."""

import keras
import numpy as np
import pytest
from conftest import SMOKE, metrics_of
from test_docs import image_folder

ALL_TUTORIAL_LAYERS = 7  # Conv, Conv, MaxPool, Dropout, Flatten, Dense, Dense


@pytest.fixture
def source_run(trained_run):
    """The suite's trained run (the tutorial's model, 2 epochs on 2,000 images, 200 test images)."""
    return trained_run


def weights_of(run):
    return [layer.get_weights() for layer in keras.models.load_model(run / "model.keras").layers]


def test_a_run_started_from_another_with_every_layer_frozen_is_that_run(train_run, source_run, tmp_path):
    record = train_run(
        tmp_path / "tuned",
        *SMOKE,
        "dataset.test_limit=200",  # the source run's test images
        f"init_from={source_run}",
        f"trainer.freeze={ALL_TUTORIAL_LAYERS}",
    )
    assert record["init_from"] == str(source_run)
    for mine, its in zip(weights_of(tmp_path / "tuned"), weights_of(source_run)):
        assert all(np.array_equal(a, b) for a, b in zip(mine, its))  # copied, then never trained
    assert record["test_accuracy"] == metrics_of(source_run)["test_accuracy"]


def test_a_new_head_learns_other_classes_on_the_frozen_features(train_run, source_run, tmp_path):
    image_folder(tmp_path / "shapes", channels=1, size=28)
    record = train_run(
        tmp_path / "tuned",
        "dataset=image_folder",
        f"dataset.path={tmp_path / 'shapes'}",
        "trainer.epochs=1",
        "trainer.batch_size=16",
        f"init_from={source_run}",
        "init_from_head=new",
        f"trainer.freeze={ALL_TUTORIAL_LAYERS - 1}",
    )
    assert record["class_names"] == ["bar", "cross", "square"]
    tuned, source = weights_of(tmp_path / "tuned"), weights_of(source_run)
    for mine, its in zip(tuned[:-1], source[:-1]):
        assert all(np.array_equal(a, b) for a, b in zip(mine, its))
    assert tuned[-1][0].shape == (250, 3) and source[-1][0].shape == (250, 10)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["init_from={tmp}/nowhere"], "no such model file"),
        (["init_from={source}", "init_from_head=fresh"], "init_from_head=fresh is not allowed"),
    ],
)
def test_the_command_line_refuses_before_tensorflow_loads(cli, source_run, tmp_path, overrides, message):
    given = [o.format(tmp=tmp_path, source=source_run) for o in overrides]
    result = cli("mnist_hydra.train", *SMOKE, *given, cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert "oneDNN" not in result.stdout + result.stderr and not (tmp_path / "outputs").exists()


def test_another_model_and_too_many_frozen_layers_are_refused_in_one_line(source_run):
    from conftest import compose_train

    from mnist_hydra.errors import ConfigError
    from mnist_hydra.models import build_model
    from mnist_hydra.training.fine_tuning import freeze, start_from

    other = build_model(compose_train(["model=keras_example"]).model, (28, 28, 1), 10)
    with pytest.raises(ConfigError, match=r"its layer 3 with weights is dense.* not the same model"):
        start_from(other, str(source_run), "same")
    ours = build_model(compose_train().model, (28, 28, 1), 10)
    with pytest.raises(ConfigError, match=r"trainer.freeze=99 is not allowed: the model has 7 layers"):
        freeze(ours, 99)
    start_from(ours, str(source_run), "same")  # the same model: taken whole


def test_a_fine_tuned_run_resumes_from_its_backup_when_the_run_it_started_from_is_gone(
    cli, source_run, tmp_path
):
    import shutil

    source = tmp_path / "source"
    shutil.copytree(source_run, source)
    args = [*SMOKE, "trainer.epochs=3", f"init_from={source}", "hydra.run.dir=tuned"]
    killed = cli("mnist_hydra.train", *args, cwd=tmp_path, env={"MNIST_HYDRA_TEST_KILL_AT": "batch@5"})
    assert killed.returncode != 0 and (tmp_path / "tuned" / "backup" / "state.json").is_file()
    shutil.rmtree(source)  # the run it started from, gone: its weights are in the backup
    resumed = cli("mnist_hydra.train", *args, "resume=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    record = metrics_of(tmp_path / "tuned")
    assert record["status"] == "completed" and record["init_from"] == str(source)
    assert len(record["history"]["accuracy"]) == 3  # each epoch once
