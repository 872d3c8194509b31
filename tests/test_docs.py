"""The docs say what the code does: the README's configuration table against the configs, its
quoted refusal, and its Python snippet, run as a reader would."""

import re
from pathlib import Path

import pytest
from conftest import compose_train
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

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
    import subprocess
    import sys

    export = subprocess.run(
        [sys.executable, "-m", "mnist_hydra.export", f"ckpt_path={trained_run}", f"output_dir={tmp_path}"],
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
