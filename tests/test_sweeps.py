"""Sweeps: the summary (failed jobs included), experiment presets, each launcher (Optuna: test_search.py)."""

import csv
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from conftest import SMOKE, compose_train, hold_at, metrics_of, python_command, wait_until_held

from mnist_hydra.reporting.sweep_summary import collect_rows, ranked, swept_keys, write_summary

TINY = SMOKE


def read_summary(sweep: Path) -> list[dict]:
    with open(sweep / "summary.csv", newline="") as file:
        return list(csv.DictReader(file))


def run_record(job: Path) -> dict:
    return metrics_of(job)


# --- the summary, on made-up rows -------------------------------------------------------


def row(job, status="ok", **metrics):
    return {
        "job": job,
        "status": status,
        "overrides": [f"model.dropout=0.{job}", "trainer.epochs=1"],
        **metrics,
    }


def test_ranked_puts_the_best_first_and_jobs_without_the_metric_last():
    rows = [
        row("1", test_accuracy=0.5, test_loss=0.9),
        row("2", "failed", error="ValueError: x"),
        row("3", test_accuracy=0.7, test_loss=0.4),
        row("10", test_accuracy=float("nan")),
    ]
    assert [r["job"] for r in ranked(rows, "test_accuracy")] == ["3", "1", "2", "10"]
    assert [r["job"] for r in ranked(rows, "test_loss")] == ["3", "1", "2", "10"]  # lowest loss first


def test_swept_keys_are_the_overrides_that_differ():
    rows = [row("1"), row("2")]
    assert swept_keys(rows) == ["model.dropout"]
    assert swept_keys(rows[:1]) == ["model.dropout", "trainer.epochs"]  # one job: all of them


def test_summary_files_name_the_failure(tmp_path):
    rows = [
        row("1", test_accuracy=0.5, params=10, seconds=2.0),
        row("2", "failed", error="ConfigError: model.dropout=1.5 is not allowed"),
    ]
    table = write_summary(tmp_path, rows, "test_accuracy")
    written = read_summary(tmp_path)
    assert [(r["job"], r["model.dropout"], r["status"]) for r in written] == [
        ("1", "0.1", "ok"),
        ("2", "0.2", "failed"),
    ]
    assert written[1]["error"] == "ConfigError: model.dropout=1.5 is not allowed"
    assert table in (tmp_path / "summary.md").read_text()
    assert "| 2 | 0.2 | failed |" in table
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def unended_job(sweep: Path, status: str) -> Path:
    job = sweep / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- model.dropout=0.3\n")
    (job / "metrics.json").write_text(f'{{"status": "{status}", "params": 5}}')
    (job / ".lock").write_text("host h, pid 1\n")
    return job


def test_jobs_that_never_ended_are_listed_by_their_run_status(tmp_path):
    unended_job(tmp_path, "interrupted")
    assert collect_rows(tmp_path) == [
        {
            "job": "0",
            "overrides": ["model.dropout=0.3"],
            "status": "interrupted",
            "params": 5,
            "run_status": "interrupted",
        }
    ]


def test_a_running_job_whose_process_is_gone_is_listed_as_crashed(tmp_path):
    job = unended_job(tmp_path, "running")
    with open(job / ".lock") as lock:  # a live process holds the run: it is running
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert collect_rows(tmp_path)[0]["status"] == "running"
    (row,) = collect_rows(tmp_path)  # the lock died with its holder: it crashed
    assert row["status"] == "crashed" and "died" in row["error"]


# --- experiment presets -----------------------------------------------------------------

PRESETS = {  # name: (parameters, the keys that make the recipe)
    "tutorial": (
        1_045_576,
        {
            "trainer.batch_size": 500,
            "trainer.epochs": 12,
            "optimizer.learning_rate": 1.0,
            "model.pool_size": 3,
            "model.dense_activation": "sigmoid",
        },
    ),
    "keras_example": (
        1_199_882,
        {
            "trainer.batch_size": 128,
            "trainer.epochs": 12,
            "model.pool_size": 2,
            "model.dropout": 0.25,
            "model.dense_units": 128,
            "model.dense_dropout": 0.5,
            "optimizer.learning_rate": 1.0,
        },
    ),
    "keras_io_convnet": (
        34_826,
        {
            "trainer.batch_size": 128,
            "trainer.epochs": 15,
            "trainer.validation_split": 0.1,
            "model.pool_every": 1,
            "model.dense_units": None,
            "optimizer._target_": "keras.optimizers.Adam",
        },
    ),
    "fast": (
        106_602,
        {
            "trainer.batch_size": 128,
            "trainer.epochs": 1,
            "loss.label_smoothing": 0.1,
            "schedule._target_": "mnist_hydra.training.schedules.cosine",
            "model.filters": [8, 16],
            "model.kernel_size": [5, 3],
            "trainer.tta_shift": 1,
        },
    ),
    "best": (
        331_306,
        {
            "trainer.epochs": 25,
            "trainer.tta_shift": 1,
            "model.batch_norm": True,
            "trainer.augment.shift": 0.1,
            "trainer.augment.rotation": 10.0,
            "model.filters": [32, 32, 64, 64],
        },
    ),
    "robust": (
        331_306,
        {
            "trainer.epochs": 15,
            "model.batch_norm": True,
            "trainer.augment.shift": 0.1,
            "trainer.augment.thickness": 0.3,
            "trainer.augment.low_resolution": 0.3,
        },
    ),
}


@pytest.mark.parametrize("name", PRESETS)
def test_experiment_presets_compose_to_their_recipe(name):
    cfg = compose_train([f"experiment={name}"])
    from omegaconf import OmegaConf

    for key, value in PRESETS[name][1].items():
        assert OmegaConf.select(cfg, key) == value, key
    assert compose_train([f"experiment={name}", "trainer.epochs=1"]).trainer.epochs == 1  # overridable


def test_every_preset_trains_for_an_epoch(cli, tmp_path):
    result = cli(
        "mnist_hydra.train",
        "-m",
        f"experiment={','.join(PRESETS)}",
        *TINY,
        "trainer.validation_split=0.1",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = {r["experiment"]: r for r in read_summary(tmp_path)}
    assert {name: int(rows[name]["params"]) for name in PRESETS} == {n: p for n, (p, _) in PRESETS.items()}
    assert all(r["status"] == "ok" and float(r["test_accuracy"]) > 0 for r in rows.values())
    assert f"Sweep summary ({len(PRESETS)} jobs, 0 not ok)" in result.stdout  # printed at the end


# --- launchers -------------------------------------------------------------------------

# Kill one job of a sweep outright (SIGKILL, as the OOM killer does), in the middle of training.
KILL_JOB_1 = {"MNIST_HYDRA_TEST_KILL_AT": "batch@2", "MNIST_HYDRA_TEST_KILL_JOB": "1"}


def test_joblib_runs_each_job_in_its_own_process_and_a_killed_one_fails_alone(cli, tmp_path):
    result = cli(
        "mnist_hydra.train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *TINY,
        "seed=7,8,7",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
        env=KILL_JOB_1,
    )
    assert result.returncode == 1  # a job crashed: the sweep says so
    assert "job #1 crashed: its process was killed by SIGKILL (signal 9)" in result.stderr
    records = [run_record(tmp_path / job) for job in "012"]
    assert len({record["pid"] for record in records}) == 3  # a process per job
    for job in "02":
        assert "TensorFlow threads: 1 per op" in (tmp_path / job / "train.log").read_text()
    assert records[2]["history"] == records[0]["history"]  # the same seed, the same numbers
    assert records[2]["test_accuracy"] == records[0]["test_accuracy"]
    rows = {r["job"]: r for r in read_summary(tmp_path)}
    assert (rows["0"]["status"], rows["1"]["status"], rows["2"]["status"]) == ("ok", "crashed", "ok")
    assert "SIGKILL" in rows["1"]["error"]
    assert "Sweep summary (3 jobs, 1 not ok)" in result.stdout


def test_submitit_local_runs_jobs_and_a_failing_or_killed_one_fails_alone(cli, tmp_path):
    result = cli(
        "mnist_hydra.train",
        "-m",
        "hydra/launcher=submitit_local",
        *TINY,
        "model.dropout=0.3,0.4,1.5",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
        env=KILL_JOB_1,
    )
    assert result.returncode != 0  # a job failed: the sweep says so
    rows = {r["job"]: r for r in read_summary(tmp_path)}
    assert rows["0"]["status"] == "ok" and run_record(tmp_path / "0")["status"] == "completed"
    assert rows["1"]["status"] == "crashed" and "without a result" in rows["1"]["error"]
    assert rows["2"]["status"] == "failed" and "model.dropout=1.5" in rows["2"]["error"]
    assert "Sweep summary (3 jobs, 2 not ok)" in result.stdout  # printed though Hydra stopped early


def sweep_started(
    folder: Path, *overrides: str, env: dict | None = None, sigint_ignored: bool = False
) -> subprocess.Popen:
    """`python -m mnist_hydra.train -m` on 300 images, started and not waited for; with
    `sigint_ignored`, as a script's `cmd &` starts it (SIGINT ignored, inherited by what it starts)."""
    return subprocess.Popen(
        python_command("mnist_hydra.train", "-m", *TINY, "tracker=none", *overrides),
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
    )


@pytest.mark.slow
def test_submitit_job_preempted_is_requeued_and_resumes_from_its_last_epoch(tmp_path):
    job, holds = tmp_path / "0", tmp_path / "holds"
    sweep = sweep_started(
        tmp_path,
        "hydra/launcher=submitit_local",
        "trainer.epochs=3",
        f"hydra.sweep.dir={tmp_path}",
        env=hold_at("epoch", holds),  # held after epoch 1's backup; its requeued process is not held
    )
    first_pid = wait_until_held(holds, sweep, job="0")
    before = json.loads((job / "epochs.json").read_text())
    os.kill(first_pid, signal.SIGUSR2)  # what SLURM sends before preempting (submitit's signal)
    output, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, output

    record = run_record(job)
    assert record["status"] == "completed" and record["pid"] != first_pid  # finished by a new process
    assert len(record["history"]["loss"]) == 3
    epochs = json.loads((job / "epochs.json").read_text())
    assert len(epochs) == 3
    logs = "".join(path.read_text() for path in tmp_path.glob(".submitit/*/*_log.*"))
    assert "Requeued job" in logs, "the job was not preempted part-way"
    assert len(before) == 1
    assert epochs[0]["seconds"] == before[0]["seconds"]  # epoch 1 was not run again


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Ray's one-machine mode: without it, Ray registers its nodes under the machine's external address.
# Token authentication off: the cluster listens on loopback only, and `ray start` and its clients
# disagree on the token when one is left in ~/.ray from an earlier private instance. Workers at
# normal priority, as the private instance has them (_ray_loopback.py): at Ray's nice 15 they
# starve beside the suite's other worker.
LOOPBACK_RAY = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_worker_niceness": "0",
}


def ray_cluster_on_loopback(port: int, ray_files: str) -> subprocess.Popen:
    """`ray start --head --block` on 127.0.0.1: a cluster of its own, which SIGTERM to this
    process ends (`ray stop` would end every Ray instance of the machine); once it has started."""
    cluster = subprocess.Popen(
        [
            Path(sys.executable).with_name("ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={ray_files}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **LOOPBACK_RAY},
    )
    printed = []
    for line in cluster.stdout:  # until it says it started; it prints nothing more while it blocks
        printed.append(line)
        if "Ray runtime started" in line:
            threading.Thread(target=cluster.stdout.read, daemon=True).start()
            return cluster
    cluster.wait(timeout=120)
    raise AssertionError(
        f"`ray start --head --block` ended (exit {cluster.returncode}):\n{''.join(printed)[-3000:]}"
    )


@pytest.mark.xdist_group("ray")  # one worker runs the Ray tests in turn: two cores are few for two
def test_ray_stays_on_loopback_and_a_killed_job_fails_alone(cli, tmp_path):
    """One test for both Ray launchers."""
    port = free_port()
    ray_files = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # its socket paths must stay short
    cluster = ray_cluster_on_loopback(port, ray_files)
    try:
        joined = cli(
            "mnist_hydra.train",
            "-m",
            "hydra/launcher=ray_cluster",
            f"hydra.launcher.ray.init.address=127.0.0.1:{port}",
            *TINY,
            "model.dropout=0.3",  # one job: the cluster's is a second TensorFlow start on two cores
            f"hydra.sweep.dir={tmp_path / 'joined'}",
            cwd=tmp_path,
            env=LOOPBACK_RAY,
        )
    finally:
        cluster.terminate()  # ray start --block stops the processes it started
        try:
            cluster.wait(timeout=120)
        except subprocess.TimeoutExpired:
            cluster.kill()
        shutil.rmtree(ray_files, ignore_errors=True)
    assert joined.returncode == 0, joined.stderr
    assert "Connected to Ray cluster" in joined.stderr + joined.stdout
    # The launcher logs the addresses of the cluster's live nodes, as ray.nodes() gives them.
    assert "Ray: 1 job on the nodes at 127.0.0.1;" in joined.stdout + joined.stderr
    rows = read_summary(tmp_path / "joined")
    assert [(r["model.dropout"], r["status"]) for r in rows] == [("0.3", "ok")]
    for job in "0":
        assert "TensorFlow threads: 1 per op" in (tmp_path / "joined" / job / "train.log").read_text()

    # A private instance (hydra/launcher=ray) is put on 127.0.0.1 by the launcher itself. Ray would
    # run a task whose worker died again (max_retries); with none, the job is listed as crashed.
    private = cli(
        "mnist_hydra.train",
        "-m",
        "hydra/launcher=ray",
        "+hydra.launcher.ray.remote.max_retries=0",
        *TINY,
        "model.dropout=0.3,0.5",
        f"hydra.sweep.dir={tmp_path / 'private'}",
        cwd=tmp_path,
        env=KILL_JOB_1,
    )
    assert private.returncode == 1
    assert "Ray: 2 jobs on the nodes at 127.0.0.1;" in private.stdout + private.stderr
    rows = {r["job"]: r for r in read_summary(tmp_path / "private")}
    assert (rows["0"]["status"], rows["1"]["status"]) == ("ok", "crashed")


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher",
    ["basic", "joblib", "submitit_local", pytest.param("ray", marks=pytest.mark.xdist_group("ray"))],
)
def test_sigterm_stops_a_sweep_whole_and_its_summary_says_so(tmp_path, launcher):
    """`kill`, `timeout` or a scheduler stopping the sweep: its running job is told and records
    itself interrupted, the queued jobs never start, no process or scratch file is left."""
    from mnist_hydra.run_folders import live_holder

    (tmp_path / "tmp").mkdir()
    holds = tmp_path / "holds"
    sweep = sweep_started(
        tmp_path,
        f"hydra/launcher={launcher}",
        *(["hydra.launcher.n_jobs=1"] if launcher == "joblib" else []),
        "trainer.epochs=2",
        "model.dropout=0.1,0.2",  # two jobs: one told to stop, one that never starts (basic, joblib)
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        # joblib's scratch files go to TMPDIR (Ray's sockets would not fit a path this long).
        # Every job is held after its first epoch's backup: none can end before the signal.
        env={
            **hold_at("epoch", holds),
            **(LOOPBACK_RAY if launcher == "ray" else {}),
            **({"TMPDIR": str(tmp_path / "tmp")} if launcher == "joblib" else {}),
        },
        sigint_ignored=True,  # started as from a script's background: submitit and Ray cancel by SIGINT
    )
    wait_until_held(holds, sweep, job="0")
    sweep.send_signal(signal.SIGTERM)
    output, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 128 + signal.SIGTERM, output

    rows = {row["job"]: row["status"] for row in read_summary(tmp_path / "sweep")}
    assert run_record(tmp_path / "sweep" / "0")["status"] == "interrupted"
    if launcher in ("submitit_local", "ray"):  # jobs start together: each is cancelled where it is
        assert rows["0"] == "interrupted" and set(rows.values()) <= {"interrupted", "not run"}, output
    else:
        assert rows == {"0": "interrupted", "1": "not run"}, output
        assert not (tmp_path / "sweep" / "1").exists()
    for job in (tmp_path / "sweep").glob("[0-9]"):
        assert live_holder(job) is None  # no process of the sweep is left
    assert not list((tmp_path / "tmp").glob("mnist-hydra-job-*"))  # the jobs' scratch files
    assert "Sweep summary (2 jobs, 2 not ok)" in output
    assert "summary.md (no job has a value to plot)" in output  # and no summary.png promised
    assert not (tmp_path / "sweep" / "summary.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_job_sent_into_a_finished_runs_folder_is_refused_before_anything_is_written(
    cli, tmp_path, launcher
):
    """A fixed hydra.sweep.subdir: both jobs would share one folder. The first finishes there;
    the second is refused before Hydra writes its config, and the finished run stays whole."""
    swept = [
        "-m",
        f"hydra/launcher={launcher}",
        *(["hydra.launcher.n_jobs=1"] if launcher == "joblib" else []),
        *TINY,
        "model.dropout=0.3,0.4",
        "hydra.sweep.subdir=shared",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    result = cli("mnist_hydra.train", *swept, cwd=tmp_path)
    assert result.returncode != 0
    assert (
        "Refused: " in result.stdout + result.stderr
        and "holds a completed run" in result.stdout + result.stderr
    )
    shared = tmp_path / "sweep" / "shared"
    assert "model.dropout=0.3" in (shared / ".hydra" / "overrides.yaml").read_text()  # the first job's, still
    assert run_record(shared)["status"] == "completed"
    assert json.loads((shared / "job.json").read_text())["status"] == "ok"
    rows = {row["overrides"].split()[-1]: row["status"] for row in read_summary(tmp_path / "sweep")}
    assert rows == {"model.dropout=0.3": "ok", "model.dropout=0.4": "not run"}


def test_joblib_says_how_many_jobs_run_at_once_in_numbers():
    from joblib import cpu_count

    from hydra_plugins.mnist_hydra_launchers.joblib_processes import jobs_at_once

    assert jobs_at_once(-1, 10) == min(cpu_count(), 10)  # -1: one per core, not "-1 at once"
    assert jobs_at_once(-1, 1) == 1 and jobs_at_once(2, 5) == 2
