"""What the suite itself relies on: pytest-xdist's loadgroup keeps an xdist_group on one worker
(the Ray tests share one: two Ray instances at once are too much for two cores), and the warm
Python most commands start from (tests/warm_python.py) runs them as a fresh one would."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import python_command


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


# --- tests/warm_python.py: commands forked from a Python that loaded TensorFlow once ---------

PROBE = """\
import os, signal, sys, time
from pathlib import Path

print("warm" if type(sys.meta_path[0]).__name__ == "HiddenModules" else "fresh")
print(sys.path[0] == os.getcwd(), sys.argv[1:], os.environ.get("PROBE"), sys.stdin.read())
print("tensorflow" in sys.modules, "keras" in sys.modules)
if sys.argv[1] == "tensorflow":
    import tensorflow as tf

    print(int(tf.constant(1) + 1))
if sys.argv[1] == "wait":
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(f"got signal {number}"))
    Path("pid").write_text(str(os.getpid()))
    time.sleep(600)
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[2]))
"""


def probe(tmp_path, *args, env=None, fresh=False, stdin="") -> subprocess.CompletedProcess:
    (tmp_path / "probe.py").write_text(PROBE)
    return subprocess.run(
        python_command("probe", *args, fresh=fresh),
        cwd=tmp_path,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def warm_or_skip(tmp_path) -> None:
    if probe(tmp_path, "nothing", "0").stdout.startswith("fresh"):
        pytest.skip("on this CPU TensorFlow leaves oneDNN off by itself: every command runs fresh")


@pytest.mark.slow
def test_a_warm_command_runs_as_python_dash_m_runs_it(tmp_path):
    warm_or_skip(tmp_path)
    warm, fresh = (
        probe(tmp_path, "tensorflow", "3", env={"PROBE": "set"}, stdin="typed", fresh=fresh)
        for fresh in (False, True)
    )
    assert warm.stdout.startswith("warm\n") and fresh.stdout.startswith("fresh\n")
    assert (
        warm.stdout.split("\n", 1)[1]
        == fresh.stdout.split("\n", 1)[1]
        == (
            "True ['tensorflow', '3'] set typed\nFalse False\n2\n"  # TensorFlow hidden until imported
        )
    )
    # Less TensorFlow's notices: those it prints as it loads went to the warm Python's stderr.
    assert (warm.returncode, without_notices(warm.stderr)) == (
        fresh.returncode,
        without_notices(fresh.stderr),
    )
    assert (warm.returncode, without_notices(warm.stderr)) == (3, "to stderr\n")


def without_notices(stderr: str) -> str:
    from mnist_hydra.console import NOTICES

    return "".join(line for line in stderr.splitlines(keepends=True) if not NOTICES.search(line))


def pid_written(folder: Path, process: subprocess.Popen) -> int:
    deadline = time.monotonic() + 300
    while not (folder / "pid").exists() or not (folder / "pid").read_text():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the probe never wrote its pid"
        time.sleep(0.05)
    return int((folder / "pid").read_text())


def gone(pid: int, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_a_warm_commands_signals_and_end_are_its_clients(tmp_path):
    warm_or_skip(tmp_path)
    (tmp_path / "probe.py").write_text(PROBE)
    start = lambda: subprocess.Popen(  # noqa: E731
        python_command("probe", "wait", "0"),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = start()
    command = pid_written(tmp_path, client)
    assert command != client.pid
    client.terminate()  # passed on: the command's handler ends it
    assert client.wait(timeout=300) == 1 and "got signal 15" in client.stderr.read()

    (tmp_path / "pid").unlink()
    client = start()
    os.kill(pid_written(tmp_path, client), signal.SIGKILL)  # the command killed: so is its client
    assert client.wait(timeout=300) == -signal.SIGKILL

    (tmp_path / "pid").unlink()
    client = start()
    command = pid_written(tmp_path, client)
    client.kill()  # the client killed: its command goes with it
    assert client.wait(timeout=300) == -signal.SIGKILL
    assert gone(command), f"the command (pid {command}) outlived its killed client"


@pytest.mark.slow
def test_a_command_that_would_load_tensorflow_otherwise_is_refused_or_runs_fresh(tmp_path):
    warm_or_skip(tmp_path)
    refused = probe(tmp_path, "tensorflow", "0", env={"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert refused.returncode == 1
    assert "imports tensorflow under TF_ENABLE_ONEDNN_OPTS=0 (oneDNN off)" in refused.stderr
    assert "run the command with fresh=True" in refused.stderr
    for other in (
        {"PYTHONPATH": str(tmp_path)},
        {"TF_CPP_MIN_LOG_LEVEL": "1"},
        {"KERAS_HOME": str(tmp_path)},
    ):
        assert probe(tmp_path, "nothing", "0", env=other).stdout.startswith("fresh\n"), other
