"""A non-editable install carries the configs and the data, so it works from any folder."""

import subprocess
import sys
import zipfile

import pytest


@pytest.mark.slow
def test_wheel_carries_conf_and_mnist(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        check=True,
        timeout=300,
        cwd=__file__.rsplit("/tests/", 1)[0],
    )
    (wheel,) = tmp_path.glob("mnist_hydra-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "mnist_hydra/conf/__init__.py",
        "mnist_hydra/conf/train.yaml",
        "mnist_hydra/conf/model/tutorial_cnn.yaml",
        "mnist_hydra/conf/optimizer/adadelta.yaml",
        "mnist_hydra/conf/dataset/fashion_mnist.yaml",
        "mnist_hydra/conf/trainer/default.yaml",
        "mnist_hydra/conf/tracker/mlflow.yaml",
        "mnist_hydra/conf/evaluate.yaml",
        "mnist_hydra/conf/predict.yaml",
        "mnist_hydra/conf/serve.yaml",
        "mnist_hydra/conf/export.yaml",
        "hydra_plugins/mnist_hydra_launchers/optuna_sweeper.py",  # where Hydra's plugin scan looks
        "hydra_plugins/mnist_hydra_launchers/conf/sampler/tpe.yaml",  # the sweeper's own groups
        "hydra_plugins/mnist_hydra_launchers/conf/pruner/median.yaml",
        "mnist_hydra/serving/page/index.html",
        "mnist_hydra/serving/page/page.js",
        "mnist_hydra/serving/page/page.css",
        "mnist_hydra/datasets/mnist/train-images-idx3-ubyte.gz",
        "mnist_hydra/datasets/mnist/t10k-labels-idx1-ubyte.gz",
        "mnist_hydra/conf/debug/smoke.yaml",
        "mnist_hydra/training/task.py",
        "mnist_hydra/data/image_folder.py",
        "hydra_plugins/mnist_hydra_launchers/joblib_processes.py",
    }
    assert expected <= names

    # Installed on its own, it composes its packaged config from an unrelated folder.
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    # ... and trains from there: every subpackage and our launchers are in the wheel.
    code = (
        "import mnist_hydra, sys; print(mnist_hydra.__file__); "
        "sys.argv = ['x', 'debug=smoke', 'hydra.run.dir=run']; import runpy; "
        "runpy.run_module('mnist_hydra.train', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(site))
    assert '"status": "completed"' in (tmp_path / "run" / "metrics.json").read_text()
