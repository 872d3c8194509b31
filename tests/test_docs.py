"""The docs say what the code does: the README's configuration table against the configs, its
quoted refusal, and its Python snippet, run as a reader would."""

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train, made_once, python_command, run_cli
from doc_commands import doc_commands
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from test_serve import serving_address

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def readme_section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def configuration_table() -> dict[str, tuple[str, set[str], str]]:
    """The README's configuration table: group -> (default, options, keys' text)."""
    rows = {}
    for line in readme_section("Configuration").splitlines():
        found = re.match(r"\| `([\w/]+)` \(([^)]*)\) \| ([^|]*) \| (.*) \|$", line)
        if found:
            group, default, options, keys = found.groups()
            rows[group] = (default.strip("`"), set(re.findall(r"`(\w+)`", options)), keys)
    return rows


def groups_in_help(cli, tmp_path) -> dict[str, set[str]]:
    """`python -m mnist_hydra.train --help`: its configuration groups and their options."""
    result = cli("mnist_hydra.train", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    groups = {}
    for line in listed.splitlines():
        group, colon, options = line.partition(": ")
        if colon and not group.startswith("schema/"):  # the schemas are ours, not choices for users
            groups[group] = {option.strip() for option in options.split(",")}
    return groups


def test_the_configuration_table_lists_every_group_and_option_that_help_does(cli, tmp_path):
    table = configuration_table()
    assert {group: options for group, (_, options, _) in table.items()} == groups_in_help(cli, tmp_path)
    with initialize_config_module(config_module="mnist_hydra.conf", version_base="1.3"):
        choices = compose("train", return_hydra_config=True).hydra.runtime.choices
    defaults = {group: default for group, (default, _, _) in table.items()}
    assert defaults == {group: choices.get(group) or "none" for group in table}


def leaf_keys(node, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        keys += leaf_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


def test_the_configuration_table_names_every_trainer_key():
    trainer = OmegaConf.to_container(compose_train().trainer)
    keys_text = configuration_table()["trainer"][2]
    missing = [key for key in leaf_keys(trainer) if f"`{key}`" not in keys_text]
    assert not missing, f"README's trainer row lacks {missing}"


def test_the_quoted_refusal_is_what_the_command_prints(cli, tmp_path):
    quoted = re.search(r"\$ python -m mnist_hydra.train (\S+)\n\s+(.+)\n", README)
    result = cli("mnist_hydra.train", quoted.group(1), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == quoted.group(2).strip()  # the whole of it: one line


@pytest.mark.slow
def test_the_saved_model_snippet_runs_as_written(trained_run, tmp_path):
    """The README's Python block, on a real export: its placeholder run folder replaced by one."""
    export = subprocess.run(
        python_command("mnist_hydra.export", f"ckpt_path={trained_run}", f"output_dir={tmp_path}"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert export.returncode == 0, export.stderr
    (snippet,) = re.findall(r"```python\n(.*?)```", readme_section("A tour"), re.S)
    placeholder = re.search(r'"(outputs/[^"]+/export/saved_model)"', snippet).group(1)
    code = snippet.replace(placeholder, str(tmp_path / "saved_model")) + "\nprint(probabilities.shape)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("(1, 10)")


# --- every command the docs show, run as a reader would run it --------------------------------

COMMANDS = doc_commands()
RUN = "outputs/2026-11-26/09-05-34-582492"  # the docs' run folder, made real in the workspace
SWEEP = "multirun/2026-11-28/10-00-00-000000"  # and their sweep
PLACEHOLDERS = {
    "<run folder or model.keras>": RUN,
    "<a run you may only read>": RUN,
    "<run>": RUN,
    "multirun/<date>/<time>": SWEEP,
    "<sweep folder>": SWEEP,
    "<sweep of experiment=ensemble>": SWEEP,
    "seed=<s>": "seed=1",
    "dataset.path=/data/": "dataset.path=data/",
}
# Appended to every command that trains: the smallest data that still trains (conf/debug/smoke.yaml).
SMALL_DATA = ["debug=smoke"]
SERVERS = ("mnist_hydra.serve", "tensorboard ")  # run until they say where they listen, then stopped


def image_folder(folder: Path, channels: int, size: int) -> None:
    """Three classes of twenty images each: bars, crosses and squares, drawn with a little noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, draw in {
        "bar": (slice(8, 20), slice(12, 16)),
        "cross": (slice(12, 16), slice(4, 24)),
        "square": (slice(6, 22), slice(6, 22)),
    }.items():
        (folder / name).mkdir(parents=True)
        for index in range(20):
            pixels = rng.integers(0, 40, (28, 28), dtype=np.uint8)
            pixels[draw] = 255
            image = Image.fromarray(pixels).resize((size, size))
            (image.convert("RGB") if channels == 3 else image).save(folder / name / f"{index}.png")


@pytest.fixture(scope="session")
def docs_workspace(trained_run, tmp_path_factory) -> Path:
    """A folder a reader runs the docs' commands from: the run and sweep their paths name, images,
    image folders, and the repository's examples/ and benchmarks/ (their commands name them).
    Made once for the suite; each worker runs the commands in a copy of its own."""
    return made_once(tmp_path_factory, "docs_workspace", lambda folder: make_workspace(folder, trained_run))


def make_workspace(workspace: Path, trained_run: Path) -> None:
    from PIL import Image
    from test_predict import mnist_test_images

    workspace.mkdir(parents=True)
    for name in ("examples", "benchmarks"):
        (workspace / name).symlink_to(ROOT / name)
    (workspace / ".venv").symlink_to(Path(sys.executable).parent.parent)
    shutil.copytree(trained_run, workspace / RUN)
    sweep = run_cli(  # the README's `python -m mnist_hydra.train -m model.dropout=0.3,0.5`, into SWEEP
        "mnist_hydra.train",
        "-m",
        "model.dropout=0.3,0.5",
        *SMALL_DATA,
        f"hydra.sweep.dir={SWEEP}",
        cwd=workspace,
    )
    assert sweep.returncode == 0, sweep.stderr
    images, labels = mnist_test_images()
    seven = images[list(labels).index(7)]
    Image.fromarray((255 - seven).astype(np.uint8)).save(
        workspace / "seven.png"
    )  # dark on light, as on paper
    Image.fromarray(seven.astype(np.uint8)).convert("RGB").save(workspace / "photo.jpg")
    image_folder(workspace / "data" / "shapes", channels=1, size=28)
    image_folder(workspace / "data" / "photos", channels=3, size=32)


def as_run_here(command: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    command = re.sub(r"\bRUN\b", RUN, command)
    trains = re.search(r"mnist_hydra\.train|mnist-hydra-train", command)
    if trains and not re.search(r"--cfg|--help|--info|-sc ", command):
        command += "".join(f" {override}" for override in SMALL_DATA if override not in command.split())
        if "hparams_search=optuna" in command:
            command += " hydra.sweeper.n_trials=1"  # the command runs; its search is measured elsewhere
    if "mnist_hydra.serve" in command:
        command += " port=0"
    if command.startswith("tensorboard "):
        command += " --port 0"
    return command


def shell(command: str, workspace: Path) -> subprocess.Popen:
    """bash -c `command` in the workspace, this Python's environment first on the PATH."""
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return subprocess.Popen(
        ["bash", "-c", command],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PATH": path, "HYDRA_FULL_ERROR": ""},
    )


def served_until_it_listens(command: str, workspace: Path) -> tuple[str, str]:
    """A server's command: started, read until it prints the address it serves, then stopped
    (Ctrl+C); its address and what it printed."""
    process, printed = shell(command, workspace), []
    try:
        for line in process.stdout:
            printed.append(line)
            found = re.search(r"http://[\w.:-]+/", line)
            if found:
                threading.Thread(target=process.stdout.read, daemon=True).start()
                return found.group(0), "".join(printed)
        raise AssertionError(f"{command} ended without serving:\n{''.join(printed)[-3000:]}")
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (a server that ignores it is killed after a minute)."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def docs_server(docs_workspace):
    """The README's server, for its curl commands."""
    command = as_run_here(f"python -m mnist_hydra.serve ckpt_path={RUN}")
    process = shell(command, docs_workspace)
    address = serving_address(process)  # test_serve's: the line serve prints once it listens
    assert address, "the server ended before it served"
    yield address
    stop(process)


def check_quoted(quoted: list[str], printed: str) -> None:
    """What the docs quote of a command's output: each line printed, a table's rows with their
    numbers free to differ (they are measurements)."""
    lines = [line.strip() for line in printed.splitlines()]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    for line in quoted:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            pattern = [None if re.fullmatch(r"[\d.,]+", cell) else cell for cell in cells]
            assert any(
                len(row) == len(pattern) and all(p is None or p == c for p, c in zip(pattern, row))
                for row in rows
            ), f"no row like {line!r} in:\n{printed[-3000:]}"
        else:
            assert line.strip() in lines, f"{line!r} not printed:\n{printed[-3000:]}"


def distinct_runs(commands: list) -> list:
    """One test per command as it is run here (placeholders filled, small data added): places whose
    commands run alike (`python -m mnist_hydra.train` and `... debug=smoke`) are one test."""
    runs: dict = {}
    for doc in commands:
        key = (doc.not_run, doc.command if doc.not_run else as_run_here(doc.command), tuple(doc.quoted))
        if key in runs:
            runs[key].also_at += [f"{doc.path}:{doc.line}", *doc.also_at]
        else:
            runs[key] = doc
    return list(runs.values())


RUNS = distinct_runs(COMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNS, ids=[command.name for command in RUNS])
def test_every_command_in_the_docs_works_as_documented(doc, request):
    if doc.not_run:
        where = ", ".join([f"{doc.path}:{doc.line}", *doc.also_at])
        pytest.skip(f"not run here ({where}): {doc.not_run}")
    workspace = request.getfixturevalue("docs_workspace")
    command = as_run_here(doc.command)
    if command.startswith("curl "):
        command = command.replace("http://127.0.0.1:8000/", request.getfixturevalue("docs_server"))
    if any(server in command for server in SERVERS):
        address, printed = served_until_it_listens(command, workspace)
        assert address.startswith("http://"), printed
        return
    process = shell(command, workspace)
    printed, _ = process.communicate(timeout=900)
    if doc.quoted:
        check_quoted(doc.quoted, printed)
    else:
        assert process.returncode == 0, f"{command}\nexited {process.returncode}:\n{printed[-4000:]}"
    if command.startswith("curl "):
        assert '"predicted": "7"' in printed.replace(":", ": ").replace(":  ", ": "), printed
