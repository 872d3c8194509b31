"""Trackers: TensorBoard files TensorBoard can read, MLflow runs MLflow can find, CSV rows."""

import csv

from conftest import SMOKE, run_cli


def test_tensorboard_is_the_default_and_readable(tmp_path):
    result = run_cli("mnist_hydra.train", *SMOKE, "trainer.epochs=2", f"hydra.run.dir={tmp_path / 'run'}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "train"))
    events.Reload()
    assert "epoch_loss" in events.Tags()["tensors"]
    assert [event.step for event in events.Tensors("epoch_loss")] == [0, 1]


def test_mlflow_sweep_records_each_job_in_a_sqlite_store(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("mnist_hydra.train", "-m", "model.dropout=0.3,0.5", *SMOKE, "logger=mlflow",
                     f"logger.tracking_uri={store}", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import mlflow

    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=["mnist-hydra"])
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}
    assert sorted(runs["params.model.dropout"]) == ["0.3", "0.5"]
    assert runs["metrics.test_accuracy"].notna().all() and runs["metrics.loss"].notna().all()
    artifacts = mlflow.MlflowClient().list_artifacts(runs["run_id"][0])
    assert "model.keras" in {artifact.path for artifact in artifacts}


def test_csv_logger_writes_a_row_per_epoch(tmp_path):
    result = run_cli("mnist_hydra.train", *SMOKE, "trainer.epochs=2", "logger=csv",
                     f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "run" / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["0", "1"] and "loss" in rows[0]
