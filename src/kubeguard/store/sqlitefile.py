"""SQLite files kubeguard owns: created private and stamped, recognised by their stamp before any write.

A file is created in a private temporary file (mode 600), stamped with an ``application_id``, set up,
and linked into place, so no other process sees it half-built and an existing file is never replaced.
An existing file is opened only after its header shows it is ours: a file kubeguard did not create is
never changed (no tables added, no mode changed).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

SQLITE_MAGIC = b"SQLite format 3\x00"


class NotOursError(ValueError):
    """The file exists and is not a kubeguard database of the expected kind."""


def create_stamped(path: Path, application_id: int, setup: Callable[[sqlite3.Connection], None]) -> bool:
    """Create `path` as a stamped database set up by `setup`; False when another process created it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)  # mkstemp creates it with mode 600
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA application_id={application_id}")
            setup(db)
        finally:
            db.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def application_id_of(path: Path, what: str) -> int:
    """The application_id in the header of the SQLite file `path` (reads only).

    Raises NotOursError, naming `what` was expected, for anything but a regular SQLite file."""
    if not path.is_file():
        raise NotOursError(f"{path}: not a {what} (not a regular file)")
    with path.open("rb") as handle:
        header = handle.read(100)
    if not header:
        raise NotOursError(f"{path}: not a {what} (an empty file); refusing to change it")
    if not header.startswith(SQLITE_MAGIC) or len(header) < 100:
        raise NotOursError(f"{path}: not a {what} (not an SQLite database); refusing to change it")
    return int.from_bytes(header[68:72], "big")
