"""Every command the docs show, found with Sybil (which reads a document into regions, as it
does for doctests): the lines of fenced `bash` blocks, `$ command` transcripts (in `text` or
indented blocks, with the output the docs quote), and commands in inline code spans.

A command that cannot run here says so beside it in the doc's source: in a fenced block, its
comment ends with `not run: <why>`; in prose, an HTML comment `<!-- not run: <why> -->` right
after its code span (invisible on the rendered page). tests/test_docs.py runs the rest.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sybil import Document, Region
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

ROOT = Path(__file__).parent.parent
DOCUMENTS = [
    "README.md",
    "CONTRIBUTING.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md")),
]
# What starts a command in prose (an inline code span); other spans are names and values.
COMMAND_START = re.compile(
    r"^(python3? |\.venv/bin/|make |mnist-hydra-|curl |tensorboard |mlflow |optuna-dashboard|ray start|"
    r"PYTHONPATH=\S+ python|pip |eval |git |apt-get )"
)
NOT_RUN_COMMENT = re.compile(r"[\s,.;:)]*<!--\s*not run:\s*(.*?)\s*-->", re.S)
NOT_RUN_TRAILER = re.compile(r"\s#.*?\bnot run:\s*(.*)$")
INLINE_SPAN = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)*)`(?!`)")
INDENTED_TRANSCRIPT = re.compile(r"\n\n((?: {4}\$ .*\n)(?: {4}.*\S.*\n)*)")


@dataclass
class DocCommand:
    path: str  # the document, relative to the repository
    line: int
    command: str  # as written, continuations joined
    quoted: list[str] = field(default_factory=list)  # the output the docs show for it
    not_run: Optional[str] = None  # why it does not run here, as the doc says
    also_at: list[str] = field(default_factory=list)  # other places that show the very same command

    @property
    def name(self) -> str:
        return f"{self.path}:{self.line}: {self.command[:70]}"


def _shell_lines(source: str) -> list[tuple[int, str]]:
    """(line within the block, command) for each command of a shell block: `\\` continuations
    joined, comments and blank lines left out."""
    commands, pending, start = [], "", 0
    for number, raw in enumerate(source.splitlines()):
        if not pending:
            start = number
        text = raw.rstrip()
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        whole = (pending + text).strip()
        pending = ""
        if whole and not whole.startswith("#"):
            commands.append((start, whole))
    return commands


def _split_trailer(command: str) -> tuple[str, Optional[str]]:
    """A command and its `# not run: ...` trailer; any other trailing comment dropped."""
    not_run = NOT_RUN_TRAILER.search(command)
    if not_run:
        return command[: not_run.start()].strip(), not_run.group(1)
    return re.sub(r"\s+#\s.*$", "", command).strip(), None


def parse_commands(document: Document):
    """Sybil's parser: one region per command, none overlapping."""
    text, taken, regions = document.text, [], []

    def line_of(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    def add(start: int, end: int, command: DocCommand) -> None:
        regions.append(Region(start, end, parsed=command))

    for block in FencedCodeBlockLexer(language=r"bash|text")(document):
        taken.append((block.start, block.end))
        source, first = str(block.lexemes["source"]), line_of(block.start) + 1
        if block.lexemes["language"] == "bash":
            for index, (number, command) in enumerate(_shell_lines(source)):
                command, not_run = _split_trailer(command)
                add(
                    block.start + index,
                    block.start + index + 1,
                    DocCommand("", first + number, command, [], not_run),
                )
        else:  # a transcript: `$ command`, then what it printed
            lines = source.splitlines()
            for number, line in enumerate(lines):
                if line.startswith("$ "):
                    output = [out for out in lines[number + 1 :] if out.strip()]
                    command, not_run = _split_trailer(line[2:])
                    add(
                        block.start + number,
                        block.start + number + 1,
                        DocCommand("", first + number, command, output, not_run),
                    )
    for found in INDENTED_TRANSCRIPT.finditer(text):
        lines = [line[4:] for line in found.group(1).splitlines()]
        command, not_run = _split_trailer(lines[0][2:])
        taken.append((found.start(1), found.end(1)))
        add(
            found.start(1), found.end(1), DocCommand("", line_of(found.start(1)), command, lines[1:], not_run)
        )
    for found in INLINE_SPAN.finditer(text):
        span = " ".join(found.group(1).split())
        if not COMMAND_START.match(span) or any(start <= found.start() < end for start, end in taken):
            continue
        marker = NOT_RUN_COMMENT.match(text, found.end())
        not_run = " ".join(marker.group(1).split()) if marker else None
        add(found.start(), found.end(), DocCommand("", line_of(found.start()), span, [], not_run))
    return sorted(regions, key=lambda region: region.start)


def doc_commands() -> list[DocCommand]:
    """Every command of every document, in order; a command shown in several places (the same
    text, the same quoted output, `.venv/bin/python` or `python`) once, with the other places in
    `also_at`."""
    commands: dict[tuple, DocCommand] = {}
    for name in DOCUMENTS:
        document = Document.parse(str(ROOT / name), parse_commands)
        for example in document.examples():
            command = example.parsed
            command.path = name
            # `.venv/bin/python -m x` is `python -m x` once set up (the test runs both with this Python)
            same = re.sub(r"^\.venv/bin/python ", "python ", command.command)
            key = (same, tuple(command.quoted), command.not_run)
            if key in commands:
                commands[key].also_at.append(f"{name}:{command.line}")
            else:
                commands[key] = command
    return list(commands.values())
