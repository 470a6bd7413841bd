"""Write pcapng files (Section Header, Interface Description, Enhanced Packet blocks) with comments.

The Section Header Block carries `shb_comment`, `shb_os` and `shb_userappl`; the Interface
Description Block carries `if_name`, `if_description`, `opt_comment` and `if_tsresol` (microseconds).
`RingWriter` rotates to a new file past `max_bytes` and keeps only the newest `files` (tshark's
``-b filesize:`` / ``-b files:`` ring buffer, with dumpcap's ``NAME_NNNNN_YYYYmmddHHMMSS.pcapng`` names).
"""

from __future__ import annotations

import platform
import struct
import time
from pathlib import Path
from typing import BinaryIO

from kubeguard import __version__

_SHB, _IDB, _EPB = 0x0A0D0D0A, 1, 6
_OPT_COMMENT, _SHB_OS, _SHB_USERAPPL = 1, 3, 4
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL = 2, 3, 9


class PcapngWriteError(Exception):
    """The capture file could not be written; the message names it."""


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _options(items: list[tuple[int, bytes]]) -> bytes:
    return b"".join(_option(code, value) for code, value in items if value) + b"\0\0\0\0" if items else b""


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def header_blocks(comments: list[str], interface: str, description: str, linktype: int, snaplen: int) -> bytes:
    """The SHB (section comments, OS, application) and one IDB for `interface`."""
    shb_opts = [(_OPT_COMMENT, c.encode()) for c in comments]
    shb_opts += [(_SHB_OS, f"{platform.system()} {platform.release()}".encode()),
                 (_SHB_USERAPPL, f"kubeguard {__version__}".encode())]
    shb = _block(_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _options(shb_opts))
    idb_opts = [(_IF_NAME, interface.encode()), (_IF_DESCRIPTION, description.encode())]
    idb_opts += [(_OPT_COMMENT, c.encode()) for c in comments] + [(_IF_TSRESOL, b"\x06")]
    idb = _block(_IDB, struct.pack("<HHI", linktype, 0, snaplen) + _options(idb_opts))
    return shb + idb


def packet_block(ts: float, frame: bytes, snaplen: int) -> bytes:
    """One EPB on interface 0 with a microsecond timestamp; frames longer than `snaplen` are cut."""
    micros = int(ts * 1_000_000)
    data = frame[:snaplen]
    body = struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(data), len(frame))
    return _block(_EPB, body + data + b"\0" * (-len(data) % 4))


class RingWriter:
    """Packets to `path` (one file), or, with `max_bytes`, to a ring of at most `files` rotating files."""

    def __init__(self, path: Path, header: bytes, snaplen: int, max_bytes: int | None = None,
                 files: int | None = None) -> None:
        self.path = path
        self.header = header
        self.snaplen = snaplen
        self.max_bytes = max_bytes
        self.files = files
        self.written: list[Path] = []
        self.packets = 0
        self._fh: BinaryIO | None = None
        self._size = 0
        self._number = 0
        self._open()

    def _name(self) -> Path:
        if self.max_bytes is None:
            return self.path
        stamp = time.strftime("%Y%m%d%H%M%S", time.localtime())
        suffix = self.path.suffix or ".pcapng"
        return self.path.with_name(f"{self.path.stem}_{self._number:05d}_{stamp}{suffix}")

    def _open(self) -> None:
        self._number += 1
        name = self._name()
        try:
            self._fh = name.open("wb")
            self._fh.write(self.header)
        except OSError as exc:
            raise PcapngWriteError(f"{name}: cannot write: {exc.strerror or exc}") from exc
        self._size = len(self.header)
        self.written.append(name)
        if self.files is not None:
            while len(self.written) > self.files:
                old = self.written.pop(0)
                old.unlink(missing_ok=True)

    def write(self, ts: float, frame: bytes) -> None:
        block = packet_block(ts, frame, self.snaplen)
        if self.max_bytes is not None and self._size + len(block) > self.max_bytes and self._size > len(self.header):
            self._close_file()
            self._open()
        assert self._fh is not None
        try:
            self._fh.write(block)
        except OSError as exc:
            raise PcapngWriteError(f"{self.written[-1]}: cannot write: {exc.strerror or exc}") from exc
        self._size += len(block)
        self.packets += 1

    def _close_file(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError as exc:
                raise PcapngWriteError(f"{self.written[-1]}: cannot write: {exc.strerror or exc}") from exc
            self._fh = None

    def close(self) -> None:
        self._close_file()
