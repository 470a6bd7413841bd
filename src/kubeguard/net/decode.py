"""Link, network and transport decoding: Ethernet / VLAN / Linux SLL / raw IP, IPv4, IPv6, TCP, UDP, ICMP.

Hand-written with `struct` on the hot path (dpkt objects cost several microseconds a packet).
Every length read from the wire is checked against the bytes present: a truncated or
malformed packet yields None (counted by the caller), never an exception.
"""

from __future__ import annotations

import socket
import struct

from kubeguard.net.ipfrag import Defragmenter

# pcap link types we decode
LINK_NULL = 0
LINK_ETHERNET = 1
LINK_RAW = 101
LINK_RAW_ALT = 12
LINK_LINUX_SLL = 113
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_LINUX_SLL2 = 276

# Capture timestamps the engine accepts: from the epoch to the end of classic pcap's 32-bit seconds
# (year 2106). Anything else (negative, NaN, a pcapng stamp 2^61 us away) is a malformed packet: it
# would otherwise move the engine's clock, expire every flow and break every time format.
MAX_TIMESTAMP = float(1 << 32)

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
L4_NAMES = {TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMPV6: "icmp"}

TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_U16 = struct.Struct("!H").unpack_from
_TCP = struct.Struct("!HHII").unpack_from  # sport, dport, seq, ack
_UDP = struct.Struct("!HH").unpack_from
_FAST_IP = struct.Struct("!HHH").unpack_from  # total length, id, flags/fragment offset
_FAST_TCP = struct.Struct("!HHIIH").unpack_from  # ports, seq, ack, data offset + flags
_IPV6_EXT = {0, 43, 60, 51, 135, 139, 140}  # hop-by-hop, routing, dst opts, AH, mobility, HIP, shim6
_VLAN = {0x8100, 0x88A8, 0x9100}


class Packet:
    """One decoded L3/L4 packet. Addresses stay raw bytes until a flow needs their text."""

    __slots__ = ("dport", "dst", "flags", "icmp_type", "payload", "proto", "seq", "sport", "src", "ts",
                 "wire_len")

    def __init__(self, ts: float, src: bytes, dst: bytes, proto: int, sport: int, dport: int,
                 flags: int, seq: int, payload: bytes, icmp_type: int | None, wire_len: int) -> None:
        self.ts = ts
        self.src = src
        self.dst = dst
        self.proto = proto
        self.sport = sport
        self.dport = dport
        self.flags = flags
        self.seq = seq
        self.payload = payload
        self.icmp_type = icmp_type
        self.wire_len = wire_len


def ip_text(raw: bytes) -> str:
    """Raw 4- or 16-byte address as text."""
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


class Decoder:
    """Decodes captured frames of one link type into Packets, reassembling IP fragments."""

    def __init__(self, defrag: Defragmenter | None = None) -> None:
        self.defrag = defrag or Defragmenter()
        self.malformed = 0  # frames that could not be decoded (bad headers, out-of-range timestamps)
        self.bad_time = 0  # of which: timestamps outside [0, MAX_TIMESTAMP)
        self.non_ip = 0

    def decode(self, linktype: int, buf: bytes, ts: float) -> Packet | None:
        """Decode one frame; None for non-IP, malformed, or a fragment still waiting for the rest."""
        if not 0.0 <= ts < MAX_TIMESTAMP:
            self.malformed += 1
            self.bad_time += 1
            return None
        try:
            # fast path: Ethernet, IPv4 without options, not a fragment, TCP
            if linktype == 1 and buf[12:15] == b"\x08\x00\x45" and buf[23] == 6:
                total, _ident, frag = _FAST_IP(buf, 16)
                if not frag & 0x3FFF:
                    end = 14 + total
                    if total < 40 or end > len(buf):
                        end = len(buf)
                    sport, dport, seq, _ack, offflags = _FAST_TCP(buf, 34)
                    start = 34 + (offflags >> 12) * 4
                    if offflags >> 12 >= 5 and start <= end:
                        return Packet(ts, buf[26:30], buf[30:34], 6, sport, dport, offflags & 0xFF, seq,
                                      buf[start:end], None, len(buf))
            return self._decode(linktype, buf, ts)
        except (struct.error, IndexError, ValueError):
            self.malformed += 1
            return None

    def _decode(self, linktype: int, buf: bytes, ts: float) -> Packet | None:
        if linktype == LINK_ETHERNET:
            etype = _U16(buf, 12)[0]
            off = 14
            while etype in _VLAN:
                etype = _U16(buf, off + 2)[0]
                off += 4
        elif linktype in (LINK_RAW, LINK_RAW_ALT, LINK_IPV4, LINK_IPV6):
            if not buf:
                raise ValueError("empty")
            etype = 0x0800 if buf[0] >> 4 == 4 else 0x86DD
            off = 0
        elif linktype == LINK_LINUX_SLL:
            etype, off = _U16(buf, 14)[0], 16
        elif linktype == LINK_LINUX_SLL2:
            etype, off = _U16(buf, 0)[0], 20
        elif linktype == LINK_NULL:
            family = int.from_bytes(buf[:4], "little") or int.from_bytes(buf[:4], "big")
            etype, off = (0x0800 if family == 2 else 0x86DD), 4
        else:
            self.non_ip += 1
            return None
        if etype == 0x0800:
            return self._ipv4(buf, off, ts, len(buf))
        if etype == 0x86DD:
            return self._ipv6(buf, off, ts, len(buf))
        self.non_ip += 1
        return None

    def _ipv4(self, buf: bytes, off: int, ts: float, wire_len: int) -> Packet | None:
        vihl = buf[off]
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20:
            raise ValueError("bad IPv4 header")
        total = _U16(buf, off + 2)[0]
        end = off + total if total >= ihl else len(buf)  # TSO captures carry total=0
        if end > len(buf):
            end = len(buf)  # truncated capture: keep what is there
        frag = _U16(buf, off + 6)[0]
        proto = buf[off + 9]
        src = buf[off + 12: off + 16]
        dst = buf[off + 16: off + 20]
        if len(dst) != 4 or off + ihl > end:
            raise ValueError("short IPv4 header")
        if frag & 0x3FFF:  # MF set or offset non-zero
            ident = _U16(buf, off + 4)[0]
            data = self.defrag.add((src, dst, ident, proto), (frag & 0x1FFF) * 8, bool(frag & 0x2000),
                                   buf[off + ihl: end], ts)
            if data is None:
                return None
            return self._l4(ts, src, dst, proto, data, 0, len(data), wire_len)
        return self._l4(ts, src, dst, proto, buf, off + ihl, end, wire_len)

    def _ipv6(self, buf: bytes, off: int, ts: float, wire_len: int) -> Packet | None:
        if buf[off] >> 4 != 6:
            raise ValueError("bad IPv6 header")
        plen = _U16(buf, off + 4)[0]
        nxt = buf[off + 6]
        src = buf[off + 8: off + 24]
        dst = buf[off + 24: off + 40]
        if len(dst) != 16:
            raise ValueError("short IPv6 header")
        pos = off + 40
        end = min(pos + plen, len(buf)) if plen else len(buf)
        frag_info = None
        for _ in range(8):  # bounded walk of extension headers
            if nxt in _IPV6_EXT:
                hlen = (buf[pos + 1] + 2) * 4 if nxt == 51 else (buf[pos + 1] + 1) * 8
                nxt = buf[pos]
                pos += hlen
            elif nxt == 44:  # fragment header
                fo = _U16(buf, pos + 2)[0]
                ident = int.from_bytes(buf[pos + 4: pos + 8], "big")
                frag_info = (fo & 0xFFF8, bool(fo & 1), ident)
                nxt = buf[pos]
                pos += 8
            else:
                break
        if pos > end:
            raise ValueError("IPv6 extension headers past the end")
        if frag_info is not None and (frag_info[0] or frag_info[1]):
            data = self.defrag.add((src, dst, frag_info[2], nxt), frag_info[0], frag_info[1], buf[pos:end], ts)
            if data is None:
                return None
            return self._l4(ts, src, dst, nxt, data, 0, len(data), wire_len)
        return self._l4(ts, src, dst, nxt, buf, pos, end, wire_len)

    def _l4(self, ts: float, src: bytes, dst: bytes, proto: int, buf: bytes, pos: int, end: int,
            wire_len: int) -> Packet | None:
        if proto == TCP:
            sport, dport, seq, _ack = _TCP(buf, pos)
            doff = (buf[pos + 12] >> 4) * 4
            if doff < 20 or pos + doff > end:
                raise ValueError("bad TCP header")
            return Packet(ts, src, dst, TCP, sport, dport, buf[pos + 13], seq, buf[pos + doff: end], None, wire_len)
        if proto == UDP:
            sport, dport = _UDP(buf, pos)
            if pos + 8 > end:
                raise ValueError("short UDP header")
            return Packet(ts, src, dst, UDP, sport, dport, 0, 0, buf[pos + 8: end], None, wire_len)
        if proto in (ICMP, ICMPV6):
            if pos >= end:
                raise ValueError("short ICMP header")
            return Packet(ts, src, dst, proto, 0, 0, 0, 0, buf[pos + 8: end], buf[pos], wire_len)
        return Packet(ts, src, dst, proto, 0, 0, 0, 0, buf[pos:end], None, wire_len)
