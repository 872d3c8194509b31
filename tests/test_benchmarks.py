"""The benchmarks a reader runs from docs/performance.md end as they should: each prints its
figures and exits 0, on a small run (the measurements themselves are not tests)."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.slow
def test_serve_load_prints_its_figures_and_ends_cleanly(trained_run):
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "serve_load.py"),
            "--ckpt",
            str(trained_run),
            "--requests",
            "20",
            "--clients",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the model call, in a batch of 4" in result.stdout  # its last figures, after the load


def test_the_handwriting_set_without_chromium_says_what_to_install(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import handwriting_set

    monkeypatch.setattr(shutil, "which", lambda program: None)
    with pytest.raises(SystemExit, match="chromium and chromedriver not found: install Debian's chromium"):
        handwriting_set.browser()


def test_the_ensemble_benchmark_combines_members_by_each_rule(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from ensemble import combinations

    labels = np.array([0, 1, 0])
    sure_of_a_mistake = np.array([[0.01, 0.99], [0.8, 0.2], [0.7, 0.3]])
    right_but_unsure = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    figures = combinations([sure_of_a_mistake, right_but_unsure, right_but_unsure], labels)
    # image 0: the mean reads it (0.60 against 0.40), the geometric mean follows the member sure of a
    # mistake; image 1: every member misreads it; image 2: all read it.
    assert figures["mean"] == pytest.approx(2 / 3) and figures["log"] == pytest.approx(1 / 3)
    assert figures["without"] == pytest.approx([2 / 3, 1 / 3, 1 / 3])  # one unsure member is outvoted
    assert (figures["missed_by_all"], figures["missed_by_any"]) == (1, 2)


def test_the_ensemble_benchmark_stops_with_evaluates_reason_in_one_line(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import ensemble

    refused = subprocess.CompletedProcess(
        [],
        1,
        stdout="",
        stderr="Error executing job with overrides: []\nckpt_path=x: no such model file\n\n"
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n",
    )
    monkeypatch.setattr(ensemble.subprocess, "run", lambda *args, **keywords: refused)
    with pytest.raises(SystemExit, match=r"^evaluate could not score .*: ckpt_path=x: no such model file$"):
        ensemble.evaluate(tmp_path / "sweep")
