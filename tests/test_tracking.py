"""Trackers: TensorBoard files TensorBoard can read, MLflow runs MLflow can find."""

import yaml
from conftest import SMOKE, metrics_of
from test_train_cli import check_run_folder


def test_tensorboard_is_the_default_and_readable(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run / "tensorboard" / "train"))
    events.Reload()
    assert "epoch_loss" in events.Tags()["tensors"]
    assert [event.step for event in events.Tensors("epoch_loss")] == [0, 1]


def test_sweep_writes_a_run_per_job_and_mlflow_records_each(cli, tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli(
        "mnist_hydra.train",
        "-m",
        "model.dropout=0.3,0.5",
        *SMOKE,
        "tracker=mlflow",
        f"tracker.tracking_uri={store}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    dropouts = []
    for job in ("0", "1"):  # one run folder per job
        check_run_folder(tmp_path / "sweep" / job)
        config = yaml.safe_load((tmp_path / "sweep" / job / ".hydra" / "config.yaml").read_text())
        dropouts.append(config["model"]["dropout"])
    assert dropouts == [0.3, 0.5]
    with open(tmp_path / "sweep" / "summary.csv") as summary:  # every sweep gets one
        assert [row.split(",")[:3] for row in summary.read().splitlines()[1:]] in (
            [["0", "0.3", "ok"], ["1", "0.5", "ok"]],
            [["1", "0.5", "ok"], ["0", "0.3", "ok"]],
        )

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("mnist-hydra").experiment_id])
    assert len(runs) == 2 and {run.info.status for run in runs} == {"FINISHED"}
    assert sorted(run.data.params["model.dropout"] for run in runs) == ["0.3", "0.5"]
    assert all({"test_accuracy", "loss"} <= set(run.data.metrics) for run in runs)
    artifacts = client.list_artifacts(runs[0].info.run_id)
    assert "model.keras" in {artifact.path for artifact in artifacts}


# tracker=csv is checked by tests/test_resume.py, which trains with it.


def test_a_tracker_that_cannot_start_fails_the_run_on_record(cli, tmp_path):
    result = cli(
        "mnist_hydra.train",
        *SMOKE,
        "tracker=mlflow",
        "tracker.tracking_uri=sqlite:////nonexistent/folder/mlflow.db",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    metrics = metrics_of(tmp_path / "run")
    assert metrics["status"] == "failed" and metrics["error"]
    assert not (tmp_path / "run" / "model.keras").exists()
