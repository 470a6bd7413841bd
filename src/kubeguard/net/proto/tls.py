"""TLS record and handshake parsing: ClientHello (SNI, versions, JA3), ServerHello, heartbeats.

Handshake messages are reassembled across records up to 64 KiB; every length is checked
against the bytes present before use.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

VERSIONS = {0x0002: "SSLv2", 0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
            0x0304: "TLSv1.3"}
_U16 = struct.Struct("!H").unpack_from
MAX_HANDSHAKE = 64 * 1024


def is_grease(value: int) -> bool:
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def version_name(value: int) -> str:
    return VERSIONS.get(value, f"0x{value:04x}")


@dataclass(slots=True)
class Hello:
    """The facts of a ClientHello or ServerHello."""

    legacy_version: int
    versions: list[int] = field(default_factory=list)  # supported_versions (client) / selected (server)
    sni: str = ""
    ciphers: list[int] = field(default_factory=list)
    extensions: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    point_formats: list[int] = field(default_factory=list)
    alpn: list[str] = field(default_factory=list)

    @property
    def max_version(self) -> int:
        real = [v for v in self.versions if not is_grease(v)]
        return max(real) if real else self.legacy_version

    def ja3_string(self) -> str:
        def join(values: list[int]) -> str:
            return "-".join(str(v) for v in values if not is_grease(v))

        return ",".join((str(self.legacy_version), join(self.ciphers), join(self.extensions), join(self.groups),
                         join(self.point_formats)))

    def ja3(self) -> str:
        return hashlib.md5(self.ja3_string().encode(), usedforsecurity=False).hexdigest()


class TlsError(ValueError):
    """Malformed TLS."""


def parse_hello(body: bytes, client: bool) -> Hello:
    """Parse a ClientHello / ServerHello body (after the 4-byte handshake header)."""
    if len(body) < 38:
        raise TlsError("hello too short")
    hello = Hello(legacy_version=_U16(body, 0)[0])
    pos = 34
    sid_len = body[pos]
    pos += 1 + sid_len
    if client:
        cs_len = _need(body, pos, 2)
        ciphers = body[pos + 2: pos + 2 + cs_len]
        if len(ciphers) != cs_len or cs_len % 2:
            raise TlsError("bad cipher list")
        hello.ciphers = [v for (v,) in struct.iter_unpack("!H", ciphers)]
        pos += 2 + cs_len
        if pos >= len(body):
            raise TlsError("no compression methods")
        pos += 1 + body[pos]
    else:
        hello.ciphers = [_need(body, pos, 2)]
        pos += 3
    if pos + 2 > len(body):
        return hello  # no extensions
    ext_total = _U16(body, pos)[0]
    pos += 2
    end = min(len(body), pos + ext_total)
    while pos + 4 <= end:
        etype, elen = struct.unpack_from("!HH", body, pos)
        data = body[pos + 4: pos + 4 + elen]
        if len(data) != elen:
            raise TlsError("extension runs past the end")
        hello.extensions.append(etype)
        _extension(hello, etype, data, client)
        pos += 4 + elen
    return hello


def _need(body: bytes, pos: int, size: int) -> int:
    if pos + size > len(body):
        raise TlsError("truncated")
    return int.from_bytes(body[pos: pos + size], "big")


def _extension(hello: Hello, etype: int, data: bytes, client: bool) -> None:
    if etype == 0 and client and len(data) >= 5:  # server_name
        pos = 2
        while pos + 3 <= len(data):
            ntype, nlen = data[pos], _U16(data, pos + 1)[0]
            name = data[pos + 3: pos + 3 + nlen]
            if ntype == 0 and len(name) == nlen:
                hello.sni = name.decode("ascii", "replace").lower()
                break
            pos += 3 + nlen
    elif etype == 10 and len(data) >= 2:  # supported_groups
        hello.groups = [v for (v,) in struct.iter_unpack("!H", data[2: 2 + (len(data) - 2) // 2 * 2])]
    elif etype == 11 and data:  # ec_point_formats
        hello.point_formats = list(data[1: 1 + data[0]])
    elif etype == 43:  # supported_versions
        if client and data:
            raw = data[1: 1 + data[0]]
            hello.versions = [v for (v,) in struct.iter_unpack("!H", raw[: len(raw) // 2 * 2])]
        elif len(data) == 2:
            hello.versions = [_U16(data, 0)[0]]
    elif etype == 16 and len(data) >= 2:  # ALPN
        pos = 2
        while pos < len(data):
            n = data[pos]
            hello.alpn.append(data[pos + 1: pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n


@dataclass(slots=True)
class Heartbeat:
    """A heartbeat message: its claimed payload length against the record it came in."""

    kind: int  # 1 request, 2 response
    claimed: int
    record_len: int
    encrypted: bool


class TlsStream:
    """One direction of a TLS connection: hands hellos and heartbeats to callbacks until encrypted."""

    def __init__(self, client: bool, on_hello: Callable[[Hello], None],
                 on_heartbeat: Callable[[Heartbeat], None]) -> None:
        self.client = client
        self.on_hello = on_hello
        self.on_heartbeat = on_heartbeat
        self.failed = False
        self.sslv2 = False
        self.records = 0
        self.ccs_seen = False
        self.done = False  # application data began (or enough records): nothing more to parse
        self._buf = b""
        self._hs = b""
        self._hello_done = False

    def feed(self, data: bytes) -> None:
        if self.failed:
            return
        self._buf += data
        try:
            self._records()
        except TlsError:
            self.failed = True

    def _records(self) -> None:
        if self.records == 0 and len(self._buf) >= 3 and self._buf[0] & 0x80 and self._buf[2] == 1:
            self._sslv2()
            return
        while len(self._buf) >= 5:
            rtype, version, length = self._buf[0], _U16(self._buf, 1)[0], _U16(self._buf, 3)[0]
            if rtype not in (20, 21, 22, 23, 24) or version >> 8 != 3 or length > 18432:
                raise TlsError("not a TLS record")
            if len(self._buf) < 5 + length:
                return
            body, self._buf = self._buf[5: 5 + length], self._buf[5 + length:]
            self.records += 1
            if rtype == 23 or self.records > 64:
                self.done = True
                return
            if rtype == 22 and not self._hello_done and not self.ccs_seen:
                self._handshake(body)
            elif rtype == 20:
                self.ccs_seen = True
            elif rtype == 24 and body:
                claimed = _U16(body, 1)[0] if len(body) >= 3 else 0
                self.on_heartbeat(Heartbeat(body[0], claimed, length, self.ccs_seen))
            if len(self._buf) > MAX_HANDSHAKE:
                raise TlsError("record buffer overflow")

    def _handshake(self, body: bytes) -> None:
        self._hs += body
        if len(self._hs) > MAX_HANDSHAKE:
            raise TlsError("handshake too large")
        while len(self._hs) >= 4 and not self._hello_done:
            mtype = self._hs[0]
            mlen = int.from_bytes(self._hs[1:4], "big")
            if len(self._hs) < 4 + mlen:
                return
            msg, self._hs = self._hs[4: 4 + mlen], self._hs[4 + mlen:]
            if (mtype == 1 and self.client) or (mtype == 2 and not self.client):
                self._hello_done = True
                self.on_hello(parse_hello(msg, self.client))

    def _sslv2(self) -> None:
        """SSLv2-framed ClientHello (what SSLv2 and some SSLv3 clients send)."""
        length = ((self._buf[0] & 0x7F) << 8) | self._buf[1]
        if len(self._buf) < 2 + length or length < 9:
            return
        msg = self._buf[2: 2 + length]
        self.sslv2 = True
        self.records = 1
        self._buf = b""
        self._hello_done = True
        version = _U16(msg, 1)[0]
        cs_len = _U16(msg, 3)[0]
        specs = msg[9: 9 + cs_len]
        hello = Hello(legacy_version=version if version else 0x0002)
        hello.ciphers = [int.from_bytes(specs[i: i + 3], "big") for i in range(0, len(specs) - 2, 3)]
        self.on_hello(hello)

    def close(self) -> None:
        """End of the direction: nothing is held back to report."""
