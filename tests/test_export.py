"""Exports: each format gives the Keras model's outputs on 200 test images; bad input and
a killed export lose nothing."""

import shutil

import numpy as np
import pytest
from conftest import python_command
from test_predict import mnist_test_images


@pytest.fixture(scope="module")
def run_copy(trained_run, tmp_path_factory):
    """The trained run, copied: exports write into a run's folder."""
    copy = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(trained_run, copy)
    return copy


@pytest.fixture(scope="module")
def reference(run_copy):
    """200 test images and the Keras model's outputs for them."""
    import keras

    images, _ = mnist_test_images()
    x = (images[:200, ..., None] / 255.0).astype(np.float32)
    model = keras.models.load_model(run_copy / "model.keras")
    return x, model.predict(x, verbose=0)


def saved_model_outputs(path, x):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held: its function needs the object's variables alive
    return np.asarray(loaded.serve(x))


def tflite_outputs(path, x):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    (given,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(given["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def onnx_outputs(path, x):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize(
    "format, name, outputs, tolerance",
    [
        ("saved_model", "saved_model", saved_model_outputs, 1e-5),
        ("tflite", "model.tflite", tflite_outputs, 1e-3),
        ("onnx", "model.onnx", onnx_outputs, 1e-5),
    ],
)
def test_an_export_gives_the_keras_models_outputs(run_copy, reference, format, name, outputs, tolerance):
    if format == "onnx":
        pytest.importorskip("tf2onnx", reason="the [onnx] extra is not installed")
    from mnist_hydra.inference.exporting import export

    path = export(run_copy, format)
    assert path == run_copy / "export" / name
    x, expected = reference
    got = outputs(path, x)
    assert got.shape == expected.shape == (200, 10)
    assert np.abs(got - expected).max() <= tolerance
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_the_command_exports_and_names_a_bad_format(cli, run_copy, tmp_path):
    done = cli("mnist_hydra.export", f"ckpt_path={run_copy}", "format=tflite", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"Exported to {run_copy / 'export' / 'model.tflite'}" in done.stdout

    wrong = cli("mnist_hydra.export", f"ckpt_path={run_copy}", "format=pickle", cwd=tmp_path)
    assert wrong.returncode != 0
    assert "format=pickle is not allowed: one of saved_model, tflite, onnx" in wrong.stderr


def test_a_killed_export_leaves_the_earlier_one_and_the_next_cleans_up(cli, run_copy, reference, tmp_path):
    from mnist_hydra.inference.exporting import export

    first = export(run_copy, "saved_model")
    before = sorted(p.relative_to(first) for p in first.rglob("*"))
    killed = cli(
        "mnist_hydra.export",
        f"ckpt_path={run_copy}",
        "format=saved_model",
        cwd=tmp_path,
        env={"MNIST_HYDRA_TEST_KILL_AT": "write:saved_model"},  # after writing, before the swap
    )
    assert killed.returncode != 0
    assert sorted(p.relative_to(first) for p in first.rglob("*")) == before
    x, expected = reference
    assert np.abs(saved_model_outputs(first, x) - expected).max() <= 1e-5
    assert list((run_copy / "export").glob(".*partial*"))  # the killed one's leftovers ...
    export(run_copy, "saved_model")
    assert not list((run_copy / "export").glob(".*partial*"))  # ... gone after the next export


@pytest.mark.slow
def test_two_exports_at_once_take_turns_and_leave_one_whole_export(run_copy, reference, tmp_path):
    import subprocess

    command = python_command("mnist_hydra.export", f"ckpt_path={run_copy}", "format=saved_model")
    both = [subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert [process.wait(timeout=300) for process in both] == [0, 0], [p.stderr.read() for p in both]
    x, expected = reference
    assert np.abs(saved_model_outputs(run_copy / "export" / "saved_model", x) - expected).max() <= 1e-5
    assert not list((run_copy / "export").glob(".*partial*"))


def test_a_run_one_may_only_read_is_one_line_and_output_dir_exports_elsewhere(
    run_copy, reference, tmp_path, monkeypatch
):
    from pathlib import Path

    from mnist_hydra.errors import ExportError
    from mnist_hydra.inference.exporting import export

    shared = tmp_path / "shared" / "run"
    shutil.copytree(run_copy, shared, ignore=shutil.ignore_patterns("export"))
    make_folder = Path.mkdir

    def read_only(
        path, *args, **kwargs
    ):  # as the kernel answers for a folder one may only read (tests run as root)
        if shared in Path(path).parents or Path(path) == shared:
            raise PermissionError(13, "Permission denied", str(path))
        return make_folder(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(
        ExportError, match=r"run/export: cannot write there \(Permission denied\): export elsewhere"
    ):
        export(shared, "tflite")
    written = export(shared, "tflite", output_dir=str(tmp_path / "mine"))
    assert written == tmp_path / "mine" / "model.tflite"
    assert np.abs(tflite_outputs(written, reference[0]) - reference[1]).max() < 1e-3
