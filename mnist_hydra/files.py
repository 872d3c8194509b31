"""Writing files that must never be seen half-written, and locks that processes take in turns.

Every output file of a run, an evaluation, a prediction or a sweep goes through
`write_atomically`: a reader (or a run resumed after a kill) sees the old file or the
new one, never a mix, and a full disk leaves the old file as it was.
"""

import csv
import fcntl
import io
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from mnist_hydra.faults import fault_point

TEMPORARY_MARK = ".partial."
TEMPORARY = re.compile(r"\.[^/]*\.[0-9a-f]{8}\.partial\.?[^/]*")  # temporary_name's form


def temporary_name(path: Path) -> Path:
    """A unique hidden name beside `path` that keeps its extensions (Keras checks them)."""
    base, dot, extensions = path.name.partition(".")
    return path.with_name(f".{base}.{secrets.token_hex(4)}{TEMPORARY_MARK}{extensions}".rstrip("."))


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Let `write` fill a temporary file, flush it to disk, then rename it over `path`.

    Rename is atomic within a folder; the fsyncs make the new content survive a power
    loss before the rename does. On any error the temporary file is removed.
    """
    path = Path(path)
    temporary = temporary_name(path)
    try:
        write(temporary)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        fault_point(f"write:{path.name}")  # tests only: a kill between the write and the rename
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_folder_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """`write_atomically` for a folder: `write` fills a temporary folder, which then takes
    `path`'s place. Two renames, not one (Linux cannot swap folders from Python): a kill
    between them leaves no folder at `path`, the old one hidden beside it, removed by the
    next write's clean-up (remove_temporaries)."""
    path = Path(path)
    temporary, old = temporary_name(path), temporary_name(path)
    try:
        write(temporary)
        fault_point(f"write:{path.name}")  # tests only
        if path.exists():
            os.rename(path, old)
        os.rename(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        if old.exists() and not path.exists():
            os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda temporary: temporary.write_text(text))


def write_json(path: Path, record) -> None:
    write_text(path, json.dumps(record, indent=2) + "\n")


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """A CSV file with a header; keys of a row that are not columns are left out."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(path, lambda temporary: temporary.write_bytes(text.getvalue().encode()))


def remove_temporaries(folder: Path) -> None:
    """Temporary files that a killed process left (call only while holding the folder's lock):
    only names of temporary_name's form, and never through a symbolic link."""
    for leftover in folder.glob(".*.partial*"):
        if not TEMPORARY.fullmatch(leftover.name) or leftover.is_symlink():
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def refuse_links(path: Path, base: Path) -> Path:
    """`path`, which must lie under `base` with no part of it, from `base` down, a symbolic link
    (nor `..`): where a received run's folder says to write, it writes inside that folder only."""
    base, path = Path(base).absolute(), Path(path).absolute()
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        raise OSError(f"{path} is not inside {base}") from None
    current = base
    for part in parts:
        current = current / part
        if part == ".." or current.is_symlink():
            raise OSError(f"{current} is a symbolic link (or ..): it could lead out of {base}")
    return path


@contextmanager
def file_lock(path: Optional[Path]):
    """Hold an exclusive lock on `path` (created if needed) for the block; None: no lock."""
    if path is None:
        yield
        return
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
