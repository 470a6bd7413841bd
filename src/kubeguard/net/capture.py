"""Packet sources: pcap / pcapng files (dpkt) and live AF_PACKET capture on an interface.

Both yield frames as (timestamp, pcap link type, bytes). A damaged file ends its iteration with
a `CaptureError` naming the file and the packet number; frames read before it are kept.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from kubeguard.net.decode import LINK_ETHERNET

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
ETH_P_ALL = 0x0003
RCVBUF = 32 << 20  # the notes measured 0 drops with a 32 MiB receive buffer
PACKET_OUTGOING = 4


class CaptureError(Exception):
    """A capture file or interface could not be read; the message names it."""


class CaptureFile:
    """The frames of one pcap or pcapng file, iterated once; counts what it could not hand on.

    `skipped` counts packets the file held but no frame could be made of (a pcapng packet naming
    an interface that was never described); `skipped_blocks` counts pcapng blocks of types that
    carry no packets (statistics, name resolution, custom, ...), by type.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.skipped = 0
        self.skipped_blocks: dict[int, int] = {}

    def __iter__(self) -> Iterator[tuple[float, int, bytes]]:
        path = self.path
        try:
            fh = path.open("rb")
        except OSError as exc:
            raise CaptureError(f"{path}: cannot open: {exc.strerror or exc}") from exc
        with fh:
            magic = fh.read(4)
            fh.seek(0)
            if magic in PCAP_MAGICS:
                yield from _pcap_frames(fh, path)  # numbers its own packets in errors
            elif magic == PCAPNG_MAGIC:
                yield from _pcapng_frames(fh, path, self)
            else:
                raise CaptureError(f"{path}: not a pcap or pcapng file (magic {magic.hex() or 'empty'})")


def read_file(path: Path) -> CaptureFile:
    """Frames of a pcap or pcapng file (iterate the result; it keeps the skipped counts)."""
    return CaptureFile(path)


MAX_SNAPLEN = 262_144


def _pcap_frames(fh: BinaryIO, path: Path) -> Iterator[tuple[float, int, bytes]]:
    """Classic pcap records, read strictly: a cut record is an error, not a silent end."""
    header = fh.read(24)
    if len(header) < 24:
        raise CaptureError(f"{path}: damaged capture at header: file shorter than a pcap header")
    order = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    scale = 1e-9 if header[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    linktype = struct.unpack(order + "I", header[20:24])[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII").unpack
    read = fh.read
    number = 0
    while True:
        rh = read(16)
        if not rh:
            return
        number += 1
        if len(rh) < 16:
            raise CaptureError(f"{path}: damaged capture at packet {number}: record header cut short")
        sec, frac, incl, _orig = record(rh)
        if incl > MAX_SNAPLEN:
            raise CaptureError(f"{path}: damaged capture at packet {number}: record length {incl} too large")
        buf = read(incl)
        if len(buf) < incl:
            raise CaptureError(f"{path}: damaged capture at packet {number}: {len(buf)} of {incl} bytes")
        yield sec + frac * scale, linktype, buf


def live(interface: str, duration: float | None = None, count: int | None = None, stop: object = None,
         on_ready: Callable[[], None] | None = None,
         bpf: list[tuple[int, int, int, int]] | None = None,
         on_drops: Callable[[int], None] | None = None) -> Iterator[tuple[float, int, bytes]]:
    """Frames from an interface via AF_PACKET (root), both directions, until duration / count / stop.

    `on_drops` is told, after each batch read, how many packets the kernel dropped since the last call
    (the socket's receive queue was full: PACKET_STATISTICS tp_drops).

    `bpf` is a classic BPF program (code, jt, jf, k), as `compile_bpf` returns, attached before binding.

    `on_ready` is called once the socket is bound: from then on no packet is missed.
    """
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except PermissionError as exc:
        raise CaptureError(f"{interface}: live capture needs root (CAP_NET_RAW)") from exc
    except OSError as exc:
        raise CaptureError(f"{interface}: cannot open AF_PACKET socket: {exc.strerror or exc}") from exc
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            if hasattr(socket, "SO_RCVBUFFORCE"):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUFFORCE, RCVBUF)
                except PermissionError:
                    pass
            if bpf:
                _attach(sock, bpf)
            sock.bind((interface, ETH_P_ALL))
        except OSError as exc:
            raise CaptureError(f"{interface}: cannot capture: {exc.strerror or exc}") from exc
        if on_ready is not None:
            on_ready()
        deadline = time.monotonic() + duration if duration else None
        loopback = interface == "lo"
        seen = 0
        while True:
            if stop is not None and getattr(stop, "is_set", lambda: False)():
                return
            timeout = 0.2
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                timeout = min(timeout, left)
            ready, _, _ = select.select([sock], [], [], timeout)
            if on_drops is not None:
                _report_drops(sock, on_drops)
            if not ready:
                continue
            while True:
                try:
                    buf, addr = sock.recvfrom(65535, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if loopback and addr[2] == PACKET_OUTGOING:
                    continue  # on lo every packet is seen twice: keep the incoming copy
                yield time.time(), LINK_ETHERNET, buf
                seen += 1
                if count is not None and seen >= count:
                    return
    finally:
        if on_drops is not None:
            _report_drops(sock, on_drops)
        sock.close()


SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26


def _report_drops(sock: socket.socket, on_drops: Callable[[int], None]) -> None:
    """Pass on the kernel's drop count since the last read (reading PACKET_STATISTICS resets it)."""
    try:
        _packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    except OSError:
        return
    if drops:
        on_drops(drops)


def compile_bpf(interface: str, expression: str) -> list[tuple[int, int, int, int]]:
    """A tcpdump/pcap filter expression compiled for `interface` by Debian's tcpdump (`-ddd`)."""
    tcpdump = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/sbin:/usr/bin")
    if tcpdump is None:
        raise CaptureError("--filter needs tcpdump (install Debian's tcpdump) to compile the BPF expression")
    done = subprocess.run([tcpdump, "-i", interface, "-ddd", expression], capture_output=True, text=True)
    lines = done.stdout.split("\n")
    if done.returncode != 0 or not lines[0].strip().isdigit():
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "tcpdump failed"
        raise CaptureError(f"--filter {expression!r}: {why}")
    program = [tuple(int(v) for v in line.split()) for line in lines[1: 1 + int(lines[0])]]
    return [(c, jt, jf, k) for c, jt, jf, k in program]


def _attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    code = b"".join(struct.pack("HBBI", c, jt, jf, k) for c, jt, jf, k in program)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def interface_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


# ---- pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html) ------------------------------------

PCAPNG_SHB, PCAPNG_IDB, PCAPNG_PB, PCAPNG_SPB, PCAPNG_EPB = 0x0A0D0D0A, 1, 2, 3, 6
MAX_BLOCK = 16 << 20  # larger than any packet block a capture tool writes
_IF_TSRESOL, _IF_TSOFFSET = 9, 14


class _Interface:
    """What an Interface Description Block says about the packets that name it."""

    __slots__ = ("linktype", "offset", "snaplen", "units")

    def __init__(self, linktype: int, snaplen: int, units: int, offset: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.units = units  # timestamp units per second (if_tsresol; default microseconds)
        self.offset = offset  # if_tsoffset, seconds added to every timestamp


def _options(body: bytes, order: str) -> dict[int, bytes]:
    """The options (code -> value) of a block body, read within the body's bounds."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        if code == 0:
            break
        out.setdefault(code, body[pos + 4: pos + 4 + length])
        pos += 4 + (length + 3) // 4 * 4
    return out


def _interface(body: bytes, order: str) -> _Interface:
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
    options = _options(body[8:], order)
    units = 1_000_000
    resol = options.get(_IF_TSRESOL)
    if resol:
        exp = resol[0] & 0x7F
        units = 2 ** exp if resol[0] & 0x80 else 10 ** exp
    offset = options.get(_IF_TSOFFSET)
    return _Interface(linktype, snaplen, units, struct.unpack(order + "q", offset)[0] if offset and len(offset) == 8
                      else 0)


def _pcapng_frames(fh: BinaryIO, path: Path, counts: CaptureFile) -> Iterator[tuple[float, int, bytes]]:
    """Packets of every block type that carries them (EPB, SPB, obsolete PB), per-interface link type and clock.

    A Simple Packet Block has no timestamp: it gets the previous packet's (0 before any).
    """
    order = "<"
    interfaces: list[_Interface] = []
    number = 0
    last_ts = 0.0
    read = fh.read
    while True:
        head = read(8)
        if not head:
            return
        what = "header" if number == 0 and not interfaces else f"packet {number + 1}"
        if len(head) < 8:
            raise CaptureError(f"{path}: damaged capture at {what}: block header cut short")
        if head[:4] == PCAPNG_MAGIC:
            bom = read(4)
            if bom == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise CaptureError(f"{path}: damaged capture at {what}: bad section byte-order magic")
            btype, length = PCAPNG_SHB, struct.unpack(order + "I", head[4:])[0]
            rest = 4
            interfaces = []  # interface ids are per section
        else:
            btype, length = struct.unpack(order + "II", head)
            rest = 0
        if length < 12 + rest or length % 4 or length > MAX_BLOCK:
            raise CaptureError(f"{path}: damaged capture at {what}: block length {length} invalid")
        data = read(length - 8 - rest)
        if len(data) < length - 8 - rest:
            raise CaptureError(f"{path}: damaged capture at {what}: block of {length} bytes cut short")
        body = data[:-4]
        if struct.unpack(order + "I", data[-4:])[0] != length:
            raise CaptureError(f"{path}: damaged capture at {what}: block lengths disagree")
        try:
            if btype == PCAPNG_SHB:
                continue
            if btype == PCAPNG_IDB:
                interfaces.append(_interface(body, order))
                continue
            if btype == PCAPNG_EPB:
                iface_id, hi, lo, caplen, _orig = struct.unpack_from(order + "IIIII", body)
                start = 20
            elif btype == PCAPNG_PB:
                iface_id, _drops, hi, lo, caplen, _orig = struct.unpack_from(order + "HHIIII", body)
                start = 20
            elif btype == PCAPNG_SPB:
                (orig,) = struct.unpack_from(order + "I", body)
                iface_id, start = 0, 4
                snaplen = interfaces[0].snaplen if interfaces else 0
                caplen = min(orig, snaplen or orig, len(body) - 4)
            else:
                counts.skipped_blocks[btype] = counts.skipped_blocks.get(btype, 0) + 1
                continue
        except struct.error as exc:
            raise CaptureError(f"{path}: damaged capture at {what}: {exc}") from exc
        number += 1
        if start + caplen > len(body):
            raise CaptureError(f"{path}: damaged capture at packet {number}: {len(body) - start} of {caplen} bytes")
        if iface_id >= len(interfaces):
            counts.skipped += 1  # a packet of an interface never described: its link type is unknown
            continue
        iface = interfaces[iface_id]
        if btype != PCAPNG_SPB:
            last_ts = ((hi << 32) | lo) / iface.units + iface.offset
        yield last_ts, iface.linktype, body[start: start + caplen]
