"""Evaluating a run: the same accuracy as training reported, a report, the plots, and
refusal of files that are not safe to load."""

import json
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train, load_dataset, metrics_of
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from PIL import Image

from mnist_hydra.errors import CheckpointError
from mnist_hydra.inference.loading import load_model
from mnist_hydra.received_run import read_saved_config
from mnist_hydra.reporting.evaluation import classification_report
from mnist_hydra.trained_runs import RunFiles

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 300, f"{path} is too small to read"


def test_training_writes_readable_plots(trained_run):
    assert_png(trained_run / "learning_curves.png")
    assert_png(trained_run / "confusion_matrix.png")


def test_evaluate_matches_training_and_reports_per_class(evaluate_run, trained_run, tmp_path):
    trained = metrics_of(trained_run)
    evaluated = evaluate_run(tmp_path / "eval", f"ckpt_path={trained_run}")
    assert evaluated["test_accuracy"] == trained["test_accuracy"]
    assert evaluated["test_accuracy"] > 0.8  # the model really learned something
    assert set(evaluated["per_class"]) == {str(d) for d in range(10)}
    assert sum(c["support"] for c in evaluated["per_class"].values()) == 200
    for name in ("confusion_matrix.png", "misclassified.png"):
        assert_png(tmp_path / "eval" / name)


def test_evaluate_takes_a_model_file_too(cli, trained_run, tmp_path):
    result = cli(
        "mnist_hydra.evaluate",
        f"ckpt_path={trained_run / 'model.keras'}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_classification_report_counts():
    labels = np.array([0, 0, 1, 1, 2])
    probabilities = np.eye(3)[[0, 1, 1, 1, 0]]  # one 0 taken for a 1, the 2 taken for a 0
    report = classification_report(labels, probabilities, ["a", "b", "c"])
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "accuracy": 0.6, "support": 2}
    assert report["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert report["per_class"]["c"]["recall"] == 0.0


def test_a_model_that_would_run_code_is_refused(tmp_path):
    import keras

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "unsafe.keras")
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_train(["debug=smoke"]), run / ".hydra" / "config.yaml")
    with pytest.raises(CheckpointError, match="unsafe.keras: refused or unreadable"):
        load_model(
            RunFiles(tmp_path / "unsafe.keras", tmp_path, read_saved_config(run), list("01"), (2,), None, 32)
        )


def test_a_broken_checkpoint_is_one_line(cli, trained_run, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_bytes((trained_run / ".hydra" / "config.yaml").read_bytes())
    with zipfile.ZipFile(run / "model.keras", "w") as archive:
        archive.writestr("junk.txt", "not a model")
    for ckpt, expected in ((run, "refused or unreadable"), (tmp_path / "nowhere", "no such model file")):
        result = cli(
            "mnist_hydra.evaluate", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path
        )
        assert result.returncode != 0
        assert expected in result.stderr and "Traceback" not in result.stderr


def test_a_sweep_is_evaluated_as_an_ensemble_of_its_completed_runs(cli, evaluate_run, tmp_path):
    sweep = tmp_path / "sweep"
    result = cli(
        "mnist_hydra.train",
        "-m",
        "debug=smoke",
        "optimizer=adam",
        "model.dropout=0.2,1.5,0.4",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 1  # job 1's dropout is refused: it fails alone
    metrics = evaluate_run(tmp_path / "eval", f"ckpt_path={sweep}")
    assert [member["run"] for member in metrics["members"]] == [str(sweep / "0"), str(sweep / "2")]
    assert metrics["skipped"] == ["1 (failed)"]

    # The ensemble is the mean of the members' softmax outputs, on the runs' test images.
    import keras

    from mnist_hydra.data import to_model_inputs

    _, test = load_dataset(compose_train(["debug=smoke"]).dataset)
    images, _ = to_model_inputs(test, 10)
    outputs = [
        keras.models.load_model(sweep / job / "model.keras").predict(images, verbose=0) for job in "02"
    ]
    assert metrics["test_accuracy"] == pytest.approx(
        np.mean(np.mean(outputs, axis=0).argmax(axis=1) == test.labels)
    )
    for member, output in zip(metrics["members"], outputs):
        assert member["test_accuracy"] == pytest.approx(np.mean(output.argmax(axis=1) == test.labels))
        run = metrics_of(Path(member["run"]))
        assert member["test_accuracy"] == pytest.approx(run["test_accuracy"])  # as each run reported
    assert_png(tmp_path / "eval" / "confusion_matrix.png")


def test_the_ensemble_preset_composes_five_seeds_of_robust_that_evaluate_and_predict_take_together(
    cli, tmp_path, capfd
):
    # The preset's five members, as its sweep composes them: experiment=robust's recipe at 20
    # epochs, seeds 1 to 5.
    compose_train(["experiment=ensemble"])
    seeds = HydraConfig.get().sweeper.params.seed.split(",")
    configs = [compose_train(["experiment=ensemble", f"seed={seed}"]) for seed in seeds]
    robust = compose_train(["experiment=robust"])
    assert [config.seed for config in configs] == [1, 2, 3, 4, 5]
    for config in configs:
        assert config.trainer.epochs == 20 and config.model == robust.model
        assert config.trainer.augment == robust.trainer.augment and config.trainer.augment.low_resolution > 0
        assert config.trainer.tta_shift == 1 and config.loss.label_smoothing == 0.1

    # The README's command, on a tiny slice (debug=smoke: 300 images, one epoch each); the docs'
    # test leaves it to this one.
    sweep = tmp_path / "sweep"
    result = cli(
        "mnist_hydra.train",
        "-m",
        "experiment=ensemble",
        "debug=smoke",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    trained = [OmegaConf.load(sweep / str(job) / ".hydra" / "config.yaml") for job in range(5)]
    assert [config.seed for config in trained] == [config.seed for config in configs]
    assert [metrics_of(sweep / str(job))["status"] for job in range(5)] == ["completed"] * 5

    # evaluate and predict in this process: their command lines on a sweep are tested above and
    # in test_predict; here, what they make of the preset's five members.
    from mnist_hydra.inference.prediction import predict
    from mnist_hydra.reporting.evaluation import evaluate

    metrics = evaluate(sweep, tmp_path / "eval")
    assert [member["run"] for member in metrics["members"]] == [str(sweep / str(job)) for job in range(5)]
    for member in metrics["members"]:  # each scored as its run scored itself
        assert member["test_accuracy"] == pytest.approx(metrics_of(Path(member["run"]))["test_accuracy"])
    assert metrics["skipped"] == [] and metrics["tta_shift"] == 1  # best's test-time shifts, all five

    # predict answers for the sweep with the mean of its members' outputs.
    import keras

    from mnist_hydra.data.digits import to_mnist_style

    _, test = load_dataset(trained[0].dataset)
    paths = [tmp_path / f"digit{index}.png" for index in (0, 1)]
    for path, image in zip(paths, test.images):
        Image.fromarray(image[..., 0]).save(path)
    (tmp_path / "predict").mkdir()  # Hydra makes the run folder for the command line
    rows = predict(sweep, paths, tmp_path / "predict")
    assert "retracing" not in capfd.readouterr().err  # the members' predict functions: no warning
    inputs = np.stack([to_mnist_style(image[..., 0] / 255.0)[..., None] for image in test.images[:2]])
    outputs = [
        keras.models.load_model(sweep / str(job) / "model.keras").predict(inputs, verbose=0)
        for job in range(5)
    ]
    for row, probabilities in zip(rows, np.mean(outputs, axis=0)):
        assert row["predicted"] == str(probabilities.argmax())
        assert float(row["top1_probability"]) == pytest.approx(probabilities.max(), abs=1e-5)


def test_an_ensemble_of_runs_on_different_test_sets_is_refused(cli, trained_run, tmp_path):
    # A sweep of two runs of one recipe: job 1 tested on its first 50 test images, not 200 (a run
    # from before test sets were fingerprinted: evaluate compares the test sets themselves).
    sweep = tmp_path / "sweep"
    for job in "01":
        shutil.copytree(trained_run, sweep / job)
    config = OmegaConf.load(sweep / "1" / ".hydra" / "config.yaml")
    config.dataset.test_limit = 50
    OmegaConf.save(config, sweep / "1" / ".hydra" / "config.yaml")
    record = metrics_of(sweep / "1")
    del record["test_set_sha256"]
    (sweep / "1" / "metrics.json").write_text(json.dumps(record))
    result = cli(
        "mnist_hydra.evaluate", f"ckpt_path={sweep}", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "an ensemble needs one dataset and one test set: 1 differ from 0" in result.stderr


def test_images_are_moved_with_black_coming_in():
    from mnist_hydra.reporting.evaluation import moved

    images = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    assert moved(images, 1, 0)[0, :, :, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert moved(images, 0, -1)[0, :, :, 0].tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]
    assert np.array_equal(moved(images, 0, 0), images)


def test_test_time_augmentation_averages_the_moved_views(train_run, evaluate_run, tmp_path):
    """A smoke run with trainer.tta_shift=1: its test accuracy is that of the mean of the
    model's outputs for each image and its four one-pixel moves, and evaluate agrees."""
    import keras

    run = tmp_path / "run"
    record = train_run(run, "debug=smoke", "trainer.tta_shift=1")

    _, test = load_dataset(compose_train(["debug=smoke"]).dataset)
    images = test.images.astype(np.float32) / 255.0
    model = keras.models.load_model(run / "model.keras")
    views = [images]
    for axis, step in ((1, 1), (1, -1), (2, 1), (2, -1)):  # rolled, then the wrapped edge blacked out
        view = np.roll(images, step, axis=axis)
        edge = [slice(None)] * 4
        edge[axis] = 0 if step == 1 else -1
        view[tuple(edge)] = 0
        views.append(view)
    mean = np.mean([model.predict(view, verbose=0) for view in views], axis=0)
    assert record["test_accuracy"] == pytest.approx(np.mean(mean.argmax(axis=1) == test.labels))
    plain = np.mean(model.predict(images, verbose=0).argmax(axis=1) == test.labels)
    assert record["test_accuracy_without_tta"] == pytest.approx(plain)

    assert evaluate_run(tmp_path / "eval", f"ckpt_path={run}")["test_accuracy"] == record["test_accuracy"]
    # tta_shift=0 evaluates each image as it is, whatever the run had: the run's own figure without it.
    plain = evaluate_run(tmp_path / "plain", f"ckpt_path={run}", "tta_shift=0")
    assert (plain["tta_shift"], plain["test_accuracy"]) == (0, record["test_accuracy_without_tta"])


def test_an_evaluate_tta_shift_out_of_range_is_one_line(cli, trained_run, tmp_path):
    result = cli("mnist_hydra.evaluate", f"ckpt_path={trained_run}", "tta_shift=14", cwd=tmp_path)
    assert result.returncode != 0
    assert (
        "tta_shift=14 is not allowed: pixels from 0 (off) to 13" in result.stderr
        and "Traceback" not in result.stderr
    )
