"""MySQL and PostgreSQL wire parsing: query text from clients, login outcomes from servers.

Only what detection needs: COM_QUERY / COM_STMT_PREPARE text (MySQL), Query / Parse text
(PostgreSQL), the server version, and whether a login succeeded or was denied.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

MAX_MESSAGE = 1 << 20
QueryCallback = Callable[[str], None]
AuthCallback = Callable[[bool, str], None]  # (failed, detail)


class MysqlStream:
    """One direction of a MySQL connection (packets: 3-byte length, 1-byte sequence)."""

    def __init__(self, client: bool, on_query: QueryCallback, on_auth: AuthCallback,
                 on_version: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.on_query = on_query
        self.on_auth = on_auth
        self.on_version = on_version
        self.failed = False
        self.done = False  # never: it parses to the end of the stream
        self._buf = b""
        self._packets = 0
        self._authed = False

    def feed(self, data: bytes) -> None:
        if self.failed:
            return
        self._buf += data
        while len(self._buf) >= 4:
            length = int.from_bytes(self._buf[:3], "little")
            if length > MAX_MESSAGE:
                self.failed = True
                return
            if len(self._buf) < 4 + length:
                return
            payload, self._buf = self._buf[4: 4 + length], self._buf[4 + length:]
            self._packets += 1
            self._packet(payload)

    def _packet(self, p: bytes) -> None:
        if not p:
            return
        if self.client:
            if p[0] in (0x03, 0x16) and self._packets > 1:  # COM_QUERY, COM_STMT_PREPARE
                self.on_query(p[1:].decode("utf-8", "replace"))
            return
        if self._packets == 1 and p[0] == 0x0A:  # greeting
            end = p.find(b"\x00", 1)
            if end > 0 and self.on_version:
                self.on_version(p[1:end].decode("ascii", "replace"))
            return
        if not self._authed:
            if p[0] == 0xFF and len(p) >= 3:
                code = struct.unpack_from("<H", p, 1)[0]
                if code in (1045, 1044, 1698, 1251):
                    self.on_auth(True, f"mysql error {code}")
                self._authed = True
            elif p[0] == 0x00:
                self.on_auth(False, "ok")
                self._authed = True

    def close(self) -> None:
        """End of the direction: nothing is held back to report."""


class PostgresStream:
    """One direction of a PostgreSQL connection (typed messages after the startup packet)."""

    def __init__(self, client: bool, on_query: QueryCallback, on_auth: AuthCallback) -> None:
        self.client = client
        self.on_query = on_query
        self.on_auth = on_auth
        self.failed = False
        self.done = False  # never: it parses to the end of the stream
        self._buf = b""
        self._startup = client  # the client's first message has no type byte
        self._authed = False

    def feed(self, data: bytes) -> None:
        if self.failed:
            return
        self._buf += data
        while True:
            if self._startup:
                if len(self._buf) < 8:
                    return
                length = struct.unpack_from("!i", self._buf, 0)[0]
                code = struct.unpack_from("!i", self._buf, 4)[0]
                if not 8 <= length <= 10000:
                    self.failed = True
                    return
                if len(self._buf) < length:
                    return
                self._buf = self._buf[length:]
                if code != 80877103:  # after SSLRequest another startup follows (or TLS)
                    self._startup = False
                continue
            if not self.client and self._buf[:1] in (b"S", b"N") and len(self._buf) == 1:
                self._buf = b""  # answer to SSLRequest
                return
            if len(self._buf) < 5:
                return
            mtype = self._buf[0]
            length = struct.unpack_from("!i", self._buf, 1)[0]
            if not 4 <= length <= MAX_MESSAGE:
                self.failed = True
                return
            if len(self._buf) < 1 + length:
                return
            body, self._buf = self._buf[5: 1 + length], self._buf[1 + length:]
            self._message(mtype, body)

    def _message(self, mtype: int, body: bytes) -> None:
        if self.client:
            if mtype == ord("Q"):
                self.on_query(body.rstrip(b"\x00").decode("utf-8", "replace"))
            elif mtype == ord("P"):  # Parse: name\0 query\0 ...
                parts = body.split(b"\x00", 2)
                if len(parts) >= 2:
                    self.on_query(parts[1].decode("utf-8", "replace"))
            return
        if self._authed:
            return
        if mtype == ord("R") and len(body) >= 4 and struct.unpack_from("!i", body, 0)[0] == 0:
            self._authed = True
            self.on_auth(False, "ok")
        elif mtype == ord("E"):
            fields = dict((f[:1], f[1:]) for f in body.split(b"\x00") if f)
            code = fields.get(b"C", b"").decode("ascii", "replace")
            if code in ("28P01", "28000"):
                self._authed = True
                self.on_auth(True, f"postgresql {code}")

    def close(self) -> None:
        """End of the direction: nothing is held back to report."""
