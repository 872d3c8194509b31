"""Keras callbacks by config (conf/callbacks/): none by default, several at once, checked before
TensorFlow loads, and their state kept across a kill and a resume."""

import json

import pytest
from conftest import SMOKE, compose_train, metrics_of

from mnist_hydra.config.validate import validate
from mnist_hydra.errors import ConfigError

# Stops after epoch 3 of 6 whatever the data: no epoch after the first improves the loss by 10.
STOPS_AT_3 = [
    "trainer.epochs=6",
    "callbacks=[early_stopping,best_checkpoint]",
    "callbacks.early_stopping.monitor=loss",
    "callbacks.early_stopping.min_delta=10",
    "callbacks.early_stopping.patience=2",
    "callbacks.best_checkpoint.monitor=loss",
]


def test_none_by_default_and_several_compose_each_under_its_name():
    assert compose_train().callbacks is None  # the documented recipe is unchanged
    cfg = compose_train(
        ["callbacks=[early_stopping,reduce_on_plateau]", "callbacks.early_stopping.patience=5"]
    )
    assert list(cfg.callbacks) == ["early_stopping", "reduce_on_plateau"]
    assert cfg.callbacks.early_stopping.patience == 5
    assert cfg.callbacks.early_stopping._target_ == "keras.callbacks.EarlyStopping"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["callbacks=[early_stopping]"],
            "callbacks.early_stopping.monitor=val_loss is not allowed: loss or accuracy, unless "
            "trainer.validation_split > 0",
        ),
        (
            [
                "callbacks=[best_checkpoint]",
                "callbacks.best_checkpoint.monitor=val_acc",
                "trainer.validation_split=0.1",
            ],
            "callbacks.best_checkpoint.monitor=val_acc is not allowed: one of loss, accuracy, val_loss, "
            "val_accuracy",
        ),
        (
            ["callbacks=[reduce_on_plateau]", "callbacks.reduce_on_plateau.monitor=loss", "schedule=cosine"],
            "callbacks.reduce_on_plateau=reduce_on_plateau is not allowed: only with schedule=constant",
        ),
    ],
)
def test_a_callback_that_could_not_work_is_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as refused:
        validate(compose_train(overrides))
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_the_command_line_refuses_before_tensorflow_loads(cli, tmp_path):
    result = cli("mnist_hydra.train", "callbacks=[early_stopping]", *SMOKE, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "callbacks.early_stopping.monitor=val_loss is not allowed" in result.stderr
    assert "oneDNN" not in result.stderr + result.stdout and not (tmp_path / "outputs").exists()


def test_a_run_killed_and_resumed_stops_at_the_same_epoch_as_one_never_killed(train_run, cli, tmp_path):
    # The run never killed also has a callback of the user's own, from a plain YAML file.
    (tmp_path / "mine" / "callbacks").mkdir(parents=True)
    (tmp_path / "mine" / "callbacks" / "csv_history.yaml").write_text(
        "csv_history:\n"
        "  _target_: keras.callbacks.CSVLogger\n"
        "  filename: ${hydra:runtime.output_dir}/epochs-by-keras.csv  # in the run's folder\n"
    )
    whole = train_run(
        tmp_path / "whole",
        "--config-dir",  # Hydra's options before the overrides
        str(tmp_path / "mine"),
        *SMOKE,
        *STOPS_AT_3,
        "callbacks=[early_stopping,best_checkpoint,csv_history,terminate_on_nan]",
    )
    assert (whole["status"], whole["stopped_epoch"], whole["best_epoch"]) == ("completed", 3, 3)
    assert len(whole["history"]["loss"]) == 3
    lines = (tmp_path / "whole" / "epochs-by-keras.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,") and len(lines) == 4  # a header and three epochs

    killed_run = tmp_path / "killed"
    killed = cli(
        "mnist_hydra.train",
        *SMOKE,
        *STOPS_AT_3,
        f"hydra.run.dir={killed_run}",
        cwd=tmp_path,
        env={"MNIST_HYDRA_TEST_KILL_AT": "epoch@2"},  # after epoch 2's backup: wait 1 of patience 2
    )
    assert killed.returncode == -9, killed.stderr
    state = json.loads((killed_run / "backup" / "state.json").read_text())
    assert state["callbacks"]["early_stopping"]["state"]["wait"] == 1
    resumed = cli("mnist_hydra.train", *SMOKE, *STOPS_AT_3, f"hydra.run.dir={killed_run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    record = metrics_of(killed_run)
    # Without its state, EarlyStopping would start again at resume and stop at epoch 5.
    assert (record["status"], record["stopped_epoch"], record["best_epoch"]) == ("completed", 3, 3)
    assert len(record["history"]["loss"]) == 3  # epochs 1-2 before the kill, 3 after: each once


def test_a_sweeps_summary_says_which_jobs_stopped_early_and_when(tmp_path):
    from mnist_hydra.reporting.sweep_summary import markdown_table, write_summary

    rows = [
        {"job": "0", "overrides": ["seed=1"], "status": "ok", "test_accuracy": 0.9, "stopped_epoch": 3},
        {"job": "1", "overrides": ["seed=2"], "status": "ok", "test_accuracy": 0.8},
    ]
    table = markdown_table(rows, ["seed"], "test_accuracy")
    assert "| params | stopped_epoch | seconds |" in table and "| 3 |" in table.splitlines()[2]
    write_summary(tmp_path, rows, "test_accuracy")
    header = (tmp_path / "summary.csv").read_text().splitlines()[0]
    assert header.endswith(",params,stopped_epoch,seconds,overrides,error")
    # A sweep without callbacks keeps its columns as they were.
    assert "stopped_epoch" not in markdown_table(rows[1:], ["seed"], "test_accuracy")
