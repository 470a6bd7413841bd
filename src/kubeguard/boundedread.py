"""Reading untrusted line-oriented files in bounded memory (events files of `replay`).

Whole small files (manifests, pods, exceptions, rules files) are read with
`kubeguard.cluster.bounds.read_bounded`; this module reads lines of capped length: an over-long line
is skipped in chunks, and a file with no line end within MAX_SKIP_BYTES (`/dev/zero`, a binary file)
is refused with `InputTooLarge` instead of being read whole into memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from kubeguard.errors import KubeguardError

CHUNK = 1 << 20
MAX_SKIP_BYTES = 256 << 20  # an over-long line is skipped up to this many bytes, then the file is refused


class InputTooLarge(KubeguardError):
    """A file, or one line of it, larger than what kubeguard reads (exit 2)."""


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
