"""DNS message parsing (UDP datagrams and TCP length-prefixed streams) into `DnsQuestion`s.

Names are read with compression pointers followed at most 32 times and only backwards, so a
pointer loop or a pointer past the end ends the parse instead of hanging it.
"""

from __future__ import annotations

import struct

from kubeguard.net.types import DnsQuestion

QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 10: "NULL", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
          33: "SRV", 35: "NAPTR", 43: "DS", 46: "RRSIG", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 99: "SPF",
          251: "IXFR", 252: "AXFR", 255: "ANY"}
_HDR = struct.Struct("!HHHHHH").unpack_from
_RR = struct.Struct("!HHIH").unpack_from
MAX_RECORDS = 64


class DnsError(ValueError):
    """The message is not a well-formed DNS message."""


def read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """Read a (possibly compressed) name at `pos`; return it and the position after it."""
    labels: list[str] = []
    end = -1
    jumps = 0
    total = 0
    while True:
        if pos >= len(msg):
            raise DnsError("name runs past the end")
        n = msg[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise DnsError("truncated pointer")
            target = ((n & 0x3F) << 8) | msg[pos + 1]
            jumps += 1
            if jumps > 32 or target >= pos:
                raise DnsError("compression pointer loop")
            if end < 0:
                end = pos + 2
            pos = target
            continue
        if n & 0xC0:
            raise DnsError("bad label type")
        label = msg[pos + 1: pos + 1 + n]
        if len(label) != n:
            raise DnsError("label runs past the end")
        total += n + 1
        if total > 255:
            raise DnsError("name longer than 255 bytes")
        labels.append(label.decode("latin-1"))
        pos += 1 + n
    return ".".join(labels), (end if end >= 0 else pos)


def parse_message(msg: bytes) -> list[DnsQuestion]:
    """Questions of one DNS message (responses carry rcode, answer size and CNAME/answer names)."""
    if len(msg) < 12:
        raise DnsError("shorter than a DNS header")
    _id, flags, qd, an, ns, _ar = _HDR(msg, 0)
    is_response = bool(flags & 0x8000)
    pos = 12
    questions: list[DnsQuestion] = []
    for _ in range(min(qd, MAX_RECORDS)):
        name, pos = read_name(msg, pos)
        if pos + 4 > len(msg):
            raise DnsError("question runs past the end")
        qtype = struct.unpack_from("!H", msg, pos)[0]
        pos += 4
        questions.append(DnsQuestion(qname=name.lower(), qtype=QTYPES.get(qtype, str(qtype)),
                                     is_response=is_response, rcode=flags & 0xF))
    if is_response and questions:
        names: list[str] = []
        answer_bytes = 0
        try:
            for _ in range(min(an + ns, MAX_RECORDS)):
                _name, pos = read_name(msg, pos)
                if pos + 10 > len(msg):
                    break
                rtype, _cls, _ttl, rdlen = _RR(msg, pos)
                pos += 10
                answer_bytes += rdlen
                if rtype in (5, 2, 12) and pos + rdlen <= len(msg):  # CNAME, NS, PTR: a name
                    names.append(read_name(msg, pos)[0].lower())
                pos += rdlen
        except DnsError:
            pass  # answers are best effort; the question stands
        for q in questions:
            q.answer_bytes = answer_bytes
            q.answer_names = tuple(names)
    return questions


class DnsTcpStream:
    """DNS over TCP: 2-byte length-prefixed messages, split across segments."""

    def __init__(self, on_message: object, limit: int = 65535 * 4) -> None:
        self.on_message = on_message
        self._buf = b""
        self._limit = limit
        self.failed = False
        self.done = False  # never: it parses to the end of the stream

    def feed(self, data: bytes) -> None:
        if self.failed:
            return
        self._buf += data
        while len(self._buf) >= 2:
            length = struct.unpack_from("!H", self._buf, 0)[0]
            if len(self._buf) < 2 + length:
                if len(self._buf) > self._limit:
                    self.failed = True
                return
            msg, self._buf = self._buf[2: 2 + length], self._buf[2 + length:]
            self.on_message(msg)  # type: ignore[operator]

    def close(self) -> None:
        """End of the direction: nothing is held back to report."""
