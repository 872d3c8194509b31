"""The codebase stays one a newcomer can hold: short functions. (The import layers, the absence
of circles and of TensorFlow before the checks are import-linter's contracts: make lint.)"""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
LONGEST_FUNCTION = 80  # lines; a task reads as a few named steps (CONTRIBUTING.md)


def test_no_function_of_the_package_is_longer_than_80_lines():
    too_long = []
    for path in sorted([*(ROOT / "mnist_hydra").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > LONGEST_FUNCTION:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not too_long, too_long
