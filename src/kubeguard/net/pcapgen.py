"""Write pcap files of synthetic conversations: tests, the benchmark corpus and the demo capture.

TCP conversations get a real handshake, sequence numbers and FIN teardown; payloads can be cut
into tiny segments, sent out of order, doubled by overlapping junk retransmissions (which a
first-wins reassembler must ignore), or carried in IP fragments: the evasion cases.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from typing import BinaryIO

from kubeguard.net.decode import TH_ACK, TH_FIN, TH_PSH, TH_SYN

CLIENT_MAC = bytes.fromhex("0a0000000001")
SERVER_MAC = bytes.fromhex("0a0000000002")
Endpoint = tuple[str, int]


class PcapWriter:
    """A classic pcap (microsecond, Ethernet) writer."""

    def __init__(self, fh: BinaryIO, snaplen: int = 65535) -> None:
        self.fh = fh
        self.frames = 0
        self.bytes = 0
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))

    def frame(self, ts: float, data: bytes) -> None:
        sec = int(ts)
        usec = round((ts - sec) * 1e6)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        self.fh.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
        self.fh.write(data)
        self.frames += 1
        self.bytes += len(data)


def _ip(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_packets(src: str, dst: str, proto: int, l4: bytes, ident: int = 1, fragment: int = 0,
               ttl: int = 64) -> list[bytes]:
    """IPv4 (or IPv6) packets carrying `l4`; IPv4 split into `fragment`-byte fragments when non-zero."""
    s, d = _ip(src), _ip(dst)
    if len(s) == 16:
        return [struct.pack("!IHBB", 6 << 28, len(l4), proto, ttl) + s + d + l4]
    if not fragment or len(l4) <= fragment:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident & 0xFFFF, 0x4000, ttl, proto, 0, s, d)
        return [hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:] + l4]
    size = max(8, fragment // 8 * 8)
    out = []
    for off in range(0, len(l4), size):
        piece = l4[off: off + size]
        more = 0x2000 if off + size < len(l4) else 0
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(piece), ident & 0xFFFF, more | (off // 8), ttl, proto,
                          0, s, d)
        out.append(hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:] + piece)
    return out


def ether(ip_packet: bytes, from_client: bool, vlan: int | None = None) -> bytes:
    dst, src = (SERVER_MAC, CLIENT_MAC) if from_client else (CLIENT_MAC, SERVER_MAC)
    etype = 0x86DD if ip_packet[0] >> 4 == 6 else 0x0800
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return dst + src + tag + struct.pack("!H", etype) + ip_packet


def tcp_segment(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0,
                       0) + payload


class Conversation:
    """One TCP connection being written: handshake on creation, `send()` per message, `close()`."""

    def __init__(self, writer: PcapWriter, client: Endpoint, server: Endpoint, ts: float = 1_700_000_000.0,
                 segment: int = 1400, reorder: bool = False, overlap: bool = False, fragment: int = 0,
                 vlan: int | None = None, handshake: bool = True, isn: tuple[int, int] = (1000, 5000)) -> None:
        self.w = writer
        self.client, self.server = client, server
        self.ts = ts
        self.segment = max(1, segment)
        self.reorder, self.overlap, self.fragment, self.vlan = reorder, overlap, fragment, vlan
        self.seq = [isn[0], isn[1]]
        self.ident = 1
        if handshake:
            self._pkt(0, self.seq[0], 0, TH_SYN)
            self._pkt(1, self.seq[1], self.seq[0] + 1, TH_SYN | TH_ACK)
            self.seq = [self.seq[0] + 1, self.seq[1] + 1]
            self._pkt(0, self.seq[0], self.seq[1], TH_ACK)

    def _pkt(self, d: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> None:
        src, dst = (self.client, self.server) if d == 0 else (self.server, self.client)
        l4 = tcp_segment(src[1], dst[1], seq, ack, flags, payload)
        self.ident += 1
        for ip in ip_packets(src[0], dst[0], 6, l4, ident=self.ident, fragment=self.fragment):
            self.ts += 0.0001
            self.w.frame(self.ts, ether(ip, d == 0, self.vlan))

    def send(self, d: int, data: bytes) -> None:
        """`data` from the client (d=0) or the server (d=1), cut and shuffled as configured."""
        segs = [(self.seq[d] + off, data[off: off + self.segment]) for off in range(0, len(data), self.segment)]
        if self.reorder and len(segs) > 1:
            segs = segs[1:][::-1] + segs[:1]  # everything but the first, backwards, then the first
        ack = self.seq[1 - d]
        for seq, piece in segs:
            self._pkt(d, seq, ack, TH_ACK | TH_PSH, piece)
            if self.overlap:
                # junk retransmissions over bytes already sent (whole and back half): first wins ignores them
                junk = bytes((b ^ 0x5A) | 0x20 for b in piece)
                self._pkt(d, seq, ack, TH_ACK | TH_PSH, junk)
                half = len(piece) // 2
                if half:
                    self._pkt(d, seq + half, ack, TH_ACK | TH_PSH, junk[half:])
        self.seq[d] += len(data)
        self._pkt(1 - d, self.seq[1 - d], self.seq[d], TH_ACK)

    def close(self) -> None:
        self._pkt(0, self.seq[0], self.seq[1], TH_FIN | TH_ACK)
        self._pkt(1, self.seq[1], self.seq[0] + 1, TH_FIN | TH_ACK)
        self._pkt(0, self.seq[0] + 1, self.seq[1] + 1, TH_ACK)


def tcp_conversation(writer: PcapWriter, client: Endpoint, server: Endpoint, messages: Iterable[tuple[int, bytes]],
                     ts: float = 1_700_000_000.0, **options: object) -> float:
    """Write a whole TCP connection; returns the timestamp after its last packet."""
    conv = Conversation(writer, client, server, ts=ts, **options)  # type: ignore[arg-type]
    for d, data in messages:
        conv.send(d, data)
    conv.close()
    return conv.ts


def udp_exchange(writer: PcapWriter, client: Endpoint, server: Endpoint, datagrams: Iterable[tuple[int, bytes]],
                 ts: float = 1_700_000_000.0, fragment: int = 0) -> float:
    """Write UDP datagrams between two endpoints; returns the timestamp after the last one."""
    ident = 7
    for d, data in datagrams:
        src, dst = (client, server) if d == 0 else (server, client)
        l4 = struct.pack("!HHHH", src[1], dst[1], 8 + len(data), 0) + data
        ident += 1
        for ip in ip_packets(src[0], dst[0], 17, l4, ident=ident, fragment=fragment):
            ts += 0.0001
            writer.frame(ts, ether(ip, d == 0))
    return ts


# ---- message builders (correct wire bytes) ------------------------------------------------

def tls_client_hello(sni: str = "", version: int = 0x0303, versions: tuple[int, ...] = (0x0304, 0x0303),
                     record_version: int = 0x0301) -> bytes:
    """A TLS record holding a ClientHello (SNI, groups, point formats, supported_versions when given)."""
    ciphers = (0x1301, 0x1302, 0xC02B, 0xC02F, 0x009C, 0x002F)
    ext = b""
    if sni:
        name = sni.encode()
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        ext += struct.pack("!HH", 0, len(entry) + 2) + struct.pack("!H", len(entry)) + entry
    groups = struct.pack("!HHH", 0x001D, 0x0017, 0x0018)
    ext += struct.pack("!HHH", 10, len(groups) + 2, len(groups)) + groups
    ext += struct.pack("!HHB", 11, 2, 1) + b"\x00"
    if versions:
        vs = b"".join(struct.pack("!H", v) for v in versions)
        ext += struct.pack("!HHB", 43, len(vs) + 1, len(vs)) + vs
    body = (struct.pack("!H", version) + bytes(range(32)) + b"\x00" + struct.pack("!H", 2 * len(ciphers))
            + b"".join(struct.pack("!H", c) for c in ciphers) + b"\x01\x00" + struct.pack("!H", len(ext)) + ext)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16" + struct.pack("!HH", record_version, len(hs)) + hs


def tls_server_hello(version: int = 0x0303, selected: int | None = 0x0304) -> bytes:
    """A TLS record holding a ServerHello (with supported_versions when `selected`)."""
    ext = struct.pack("!HHH", 43, 2, selected) if selected else b""
    body = struct.pack("!H", version) + bytes(32) + b"\x00" + struct.pack("!HB", 0x1301, 0)
    body += struct.pack("!H", len(ext)) + ext
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16" + struct.pack("!HH", version if version < 0x0303 else 0x0303, len(hs)) + hs


def heartbeat_request(claimed: int, payload: bytes = b"", version: int = 0x0302) -> bytes:
    """A TLS heartbeat request record; `claimed` larger than `payload` is Heartbleed."""
    body = b"\x01" + struct.pack("!H", claimed) + payload
    return b"\x18" + struct.pack("!HH", version, len(body)) + body


def _dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p) + b"\x00"


DNS_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "NULL": 10, "TXT": 16, "AAAA": 28, "AXFR": 252, "ANY": 255}


def dns_query(qname: str, qtype: str = "A", ident: int = 0x1234) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + _dns_name(qname) + struct.pack(
        "!HH", DNS_TYPES[qtype], 1)


def dns_response(qname: str, qtype: str = "A", ident: int = 0x1234, cnames: tuple[str, ...] = (),
                 address: str = "198.51.100.7", rcode: int = 0) -> bytes:
    """A response: the question, a CNAME chain (uncompressed names), then an A record."""
    answers = b""
    owner = qname
    for target in cnames:
        rdata = _dns_name(target)
        answers += _dns_name(owner) + struct.pack("!HHIH", 5, 1, 300, len(rdata)) + rdata
        owner = target
    count = len(cnames)
    if qtype == "A" and not rcode:
        answers += _dns_name(owner) + struct.pack("!HHIH", 1, 1, 300, 4) + ipaddress.ip_address(address).packed
        count += 1
    return (struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, count, 0, 0) + _dns_name(qname)
            + struct.pack("!HH", DNS_TYPES[qtype], 1) + answers)
