"""Writing files that other processes read while they change: whole records, taken in turns."""

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Optional


def write_json(path: Path, record) -> None:
    """Write through a temporary file, so that a reader never sees half a record."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, path)


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
