"""End to end through the real command line, on a few hundred images and one epoch."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import SMOKE, compose_train, load_dataset, metrics_of

METRIC_KEYS = {"test_loss", "test_accuracy", "params", "history", "epoch_seconds", "seed", "versions"}


def check_run_folder(folder: Path) -> dict:
    for name in ("model.keras", "metrics.json", "train.log", ".hydra/config.yaml", ".hydra/overrides.yaml"):
        assert (folder / name).is_file(), f"{folder} lacks {name}"
    assert not list(folder.glob("*.partial*")), "a temporary file was left behind"
    metrics = metrics_of(folder)
    assert metrics["status"] == "completed"
    assert METRIC_KEYS <= set(metrics)
    assert set(metrics["versions"]) >= {"python", "tensorflow", "keras", "hydra"}
    assert len(metrics["epoch_seconds"]) == len(metrics["history"]["loss"])
    # The process skips Python's teardown once the run has returned (mnist_hydra/process.py):
    # its log must still end with its last line.
    assert "Outputs in" in (folder / "train.log").read_text().splitlines()[-1]
    return metrics


TENSORFLOW_NOTICES = (
    "I0000",
    "E0000",
    "absl::InitializeLog",
    "cuInit",
    "cuda drivers",
    "oneDNN custom operations",
)


@pytest.mark.slow
def test_two_smoke_runs_at_once_get_their_own_folders_and_the_same_numbers(tmp_path):
    # Started together, so in the same second: the folders must still differ. Same
    # seed, so with op determinism on the two must agree to the last digit.
    # The first as a user runs it: TensorFlow's start-up notices are kept off the console. The
    # second's user asked for TensorFlow's lines (TF_CPP_MIN_LOG_LEVEL), and gets them.
    # (250 test images: three batches, which is what made TensorFlow log the error below.)
    command = [sys.executable, "-m", "mnist_hydra.train", *SMOKE, "dataset.test_limit=250"]
    plain = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "MNIST_HYDRA_SET_TF"))}
    runs = [
        subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for env in (plain, {**plain, "TF_CPP_MIN_LOG_LEVEL": "0"})
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs):
        assert run.returncode == 0, stderr
        assert "test accuracy" in stdout + stderr
    quiet, loud = (stdout + stderr for stdout, stderr in outputs)
    assert not [notice for notice in TENSORFLOW_NOTICES if notice in quiet], quiet[-2000:]
    assert "I0000" in loud
    # Not even then: an error TensorFlow logged when the test images went to model.predict as an
    # array under op determinism (harmless, but it read as a failure).
    assert "use_unbounded_threadpool" not in loud
    folders = sorted(path.parent for path in (tmp_path / "outputs").rglob("metrics.json"))
    assert len(folders) == 2
    first, second = (check_run_folder(folder) for folder in folders)
    assert first["params"] == 1_045_576 and first["seed"] == 42
    assert first["test_batch_size"] == 1000  # a smoke run trains in batches of 100
    assert first["test_accuracy"] == second["test_accuracy"]
    assert first["history"] == second["history"]


def test_saved_model_loads_in_plain_keras_and_scores_as_reported(trained_run):
    metrics = check_run_folder(trained_run)
    import keras

    from mnist_hydra.data import to_model_inputs

    model = keras.models.load_model(trained_run / "model.keras")
    _, test = load_dataset(compose_train(["dataset.test_limit=200"]).dataset)
    images, labels = to_model_inputs(test, 10)
    predicted = model.predict(images, verbose=0).argmax(axis=1)
    assert np.mean(predicted == labels.argmax(axis=1)) == pytest.approx(metrics["test_accuracy"])


# The two-job `-m` sweep is run once, with MLflow, in tests/test_tracking.py.


@pytest.mark.slow
def test_console_script_runs_from_any_folder(tmp_path):
    script = Path(sys.executable).with_name("mnist-hydra-train")
    result = subprocess.run(
        [str(script), "--cfg", "job", "trainer.epochs=3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["trainer"]["epochs"] == 3
