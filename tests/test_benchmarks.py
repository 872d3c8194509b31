"""The benchmarks a reader runs from docs/performance.md end as they should: each prints its
figures and exits 0, on a small run (the measurements themselves are not tests)."""

import shutil
import subprocess
import sys
from pathlib import Path

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
