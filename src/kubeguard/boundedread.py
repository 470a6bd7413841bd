"""Reading untrusted files in bounded memory: whole small files, or lines of a capped length.

A file larger than its limit (a huge file, `/dev/zero`, an endless pipe) is refused with
`InputTooLarge` after reading at most the limit plus one chunk, never read whole into memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from kubeguard.errors import KubeguardError

CHUNK = 1 << 20
MAX_FILE_BYTES = 64 << 20  # default cap of a whole-file read (pods file, exceptions file, ...)
MAX_SKIP_BYTES = 256 << 20  # an over-long line is skipped up to this many bytes, then the file is refused


class InputTooLarge(KubeguardError):
    """A file, or one line of it, larger than what kubeguard reads (exit 2)."""


def read_bounded(path: Path, what: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path`, read in chunks; InputTooLarge past `limit` bytes, OSError when unreadable."""
    parts: list[bytes] = []
    size = 0
    with Path(path).open("rb") as handle:
        while True:
            chunk = handle.read(min(CHUNK, limit + 1 - size))
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise InputTooLarge(f"{path}: {what} larger than {limit >> 20} MiB, refused")


def read_bounded_text(path: Path, what: str, limit: int = MAX_FILE_BYTES) -> str:
    """`read_bounded` decoded as UTF-8 (KubeguardError when it is not)."""
    data = read_bounded(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KubeguardError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from exc


def bounded_lines(handle: BinaryIO, max_line: int, name: str,
                  max_skip: int = MAX_SKIP_BYTES) -> Iterator[tuple[int, int, bytes | None]]:
    """(line number, byte offset, line) of a binary stream; the line is None when longer than `max_line`.

    An over-long line is consumed in chunks (memory stays under `max_line` + one chunk); one that has no
    newline within `max_skip` bytes (a binary file, /dev/zero) raises InputTooLarge naming `name`:line.
    """
    number = 0
    offset = 0
    while True:
        line = handle.readline(max_line + 1)
        if not line:
            return
        number += 1
        start = offset
        offset += len(line)
        if len(line) <= max_line or line.endswith(b"\n"):
            yield number, start, line
            continue
        skipped = len(line)
        while True:
            rest = handle.readline(CHUNK)
            offset += len(rest)
            skipped += len(rest)
            if not rest or rest.endswith(b"\n"):
                break
            if skipped > max_skip:
                raise InputTooLarge(f"{name}:{number}: no line end within {max_skip >> 20} MiB "
                                    "(not a JSON-lines file?); the rest of the file is not read")
        yield number, start, None
