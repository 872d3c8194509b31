"""Finding a trained run's files and a sweep's completed runs (mnist_hydra/trained_runs.py)."""

import json

from test_trust import received_run

from mnist_hydra.trained_runs import locate_run, locate_runs


def test_a_sweeps_crashed_job_is_skipped_as_crashed_as_its_summary_says(tmp_path):
    sweep = tmp_path / "sweep"
    received_run(sweep / "0")
    for job, status in (("1", "running"), ("2", "failed")):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "overrides.yaml").write_text("[]\n")
        (sweep / job / "metrics.json").write_text(json.dumps({"status": status}))
        (sweep / job / ".lock").write_text("host h, pid 1\n")  # held by no live process: its job died
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text("[]\n")
    members, skipped = locate_runs(sweep)
    assert [run.folder.name for run in members] == ["0"]
    assert skipped == ["1 (crashed)", "2 (failed)"]


def test_a_run_is_scored_in_the_batches_it_recorded_or_else_its_training_batches(tmp_path):
    # A run from before test_batch_size was recorded scored its test set in its training batches
    # (debug=smoke: 100); evaluate must score it the same way to get the same accuracy.
    old = received_run(tmp_path / "old")
    new = received_run(tmp_path / "new")
    record = json.loads((new / "metrics.json").read_text())
    (new / "metrics.json").write_text(json.dumps({**record, "test_batch_size": 1000}))
    assert [locate_run(old).test_batch_size, locate_run(new).test_batch_size] == [100, 1000]
