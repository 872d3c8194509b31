"""What the suite itself relies on: pytest-xdist's loadgroup keeps an xdist_group on one worker
(the Ray tests share one: two Ray instances at once are too much for two cores)."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_loadgroup_runs_a_group_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(
        "import pytest\n"
        "@pytest.mark.xdist_group('ray')\n"
        "def test_a(): pass\n"
        "@pytest.mark.parametrize('x', [1, pytest.param(2, marks=pytest.mark.xdist_group('ray'))])\n"
        "def test_b(x): pass\n"
        "@pytest.mark.xdist_group('ray')\n"
        "def test_c(): pass\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    workers = {line.split()[0] for line in result.stdout.splitlines() if "@ray" in line and "PASSED" in line}
    grouped = [line for line in result.stdout.splitlines() if "@ray" in line and "PASSED" in line]
    assert len(grouped) == 3 and len(workers) == 1, result.stdout[-2000:]  # pytest 9.2 broke this
