"""Answers the firewall sends itself when it blocks a TCP packet: an HTTP 403 or a RST to each side.

The blocked packet P (from A to B, sequence s, acknowledging a, L payload bytes) is dropped.
Because P was the next in-order segment (its bytes completed what the engine inspected), B's
next expected sequence is exactly s and A's is exactly a, so:

- to B, as if from A: RST with sequence s (accepted by RFC 5961's exact-match check);
- to A, as if from B: for HTTP, ``403 Forbidden`` + ``Connection: close`` with FIN at sequence a
  acknowledging s + L (the client reads a real answer); otherwise a RST with sequence a.

Segments are built whole (IPv4 + TCP, checksums computed here) and sent through one raw socket
(IPPROTO_RAW, i.e. IP_HDRINCL) in the firewall's network namespace; the routing table there
delivers them to the pods as it delivers their forwarded traffic. IPv6 is not injected yet: a
blocked IPv6 connection is dropped and reset by the kernel's REJECT rule only.
"""

from __future__ import annotations

import logging
import socket
import struct

log = logging.getLogger(__name__)

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

FORBIDDEN_BODY = b"<html><body><h1>403 Forbidden</h1>Request blocked by kubeguard firewall.</body></html>\n"
FORBIDDEN = (b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: "
             + str(len(FORBIDDEN_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + FORBIDDEN_BODY)


class TcpHead:
    """The fields of a queued IPv4/TCP packet the injector needs."""

    __slots__ = ("ack", "dport", "dst", "flags", "payload_len", "seq", "sport", "src")

    def __init__(self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
                 payload_len: int) -> None:
        self.src, self.dst, self.sport, self.dport = src, dst, sport, dport
        self.seq, self.ack, self.flags, self.payload_len = seq, ack, flags, payload_len

    @classmethod
    def parse(cls, ip: bytes) -> TcpHead | None:
        """From a raw IPv4 packet (as NFQUEUE hands it over); None when not IPv4/TCP or short."""
        if len(ip) < 40 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_TCP:
            return None
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        if ihl < 20 or len(ip) < ihl + 20:
            return None
        sport, dport, seq, ack, off_flags = struct.unpack_from("!HHIIH", ip, ihl)
        doff = (off_flags >> 12) * 4
        end = min(total, len(ip)) if total >= ihl + doff else len(ip)
        return cls(ip[12:16], ip[16:20], sport, dport, seq, ack, off_flags & 0xFF, max(0, end - ihl - doff))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def segment(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
            payload: bytes = b"", window: int = 0) -> bytes:
    """One IPv4/TCP packet with correct checksums."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, window, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp) + len(payload))
    csum = _checksum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, socket.IPPROTO_TCP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return ip + tcp + payload


class Injector:
    """Sends the firewall's own TCP answers through a raw socket (needs CAP_NET_RAW)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sent = 0
        self.failed = 0

    def _send(self, packet: bytes, dst: bytes) -> None:
        try:
            self.sock.sendto(packet, (socket.inet_ntoa(dst), 0))
            self.sent += 1
        except OSError as exc:
            self.failed += 1
            log.warning("cannot inject a TCP answer to %s: %s", socket.inet_ntoa(dst), exc)

    def reset_receiver(self, p: TcpHead) -> None:
        """RST to the packet's receiver, as if from its sender."""
        self._send(segment(p.src, p.dst, p.sport, p.dport, p.seq, 0, RST), p.dst)

    def reset_sender(self, p: TcpHead) -> None:
        """RST to the packet's sender, as if from its receiver."""
        self._send(segment(p.dst, p.src, p.dport, p.sport, p.ack, 0, RST), p.src)

    def forbid_sender(self, p: TcpHead) -> None:
        """``HTTP 403`` + FIN to the packet's sender (the HTTP client), as if from the server."""
        fin = p.flags & FIN
        self._send(segment(p.dst, p.src, p.dport, p.sport, p.ack, p.seq + p.payload_len + (1 if fin else 0),
                           ACK | PSH | FIN, FORBIDDEN, window=1024), p.src)

    def close(self) -> None:
        self.sock.close()
