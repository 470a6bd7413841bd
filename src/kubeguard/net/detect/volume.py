"""Floods and scans from packet headers alone: cheap per packet, bounded memory.

`ScanFloodDetector.observe_packet` is called for every packet the engine sees. It keeps, per
source, a tumbling window of the (destination, port) pairs it probed (vertical scan: many ports
on one host; horizontal scan: one port on many hosts) and its new-session rate, and per
destination one-second buckets of SYN and ICMP echo counts (floods). Every table is capped
(least recently used source or target dropped) and every per-key set is capped at its alert
threshold, so a spoofed flood can not exhaust memory.

Defaults follow the established IDS ones: Snort's portscan2 alerts at 20 ports or 5 targets
per 60 s, Zeek's scan policy at 15 ports per host and 25 hosts per port (5 min window); we use
20 ports / 25 hosts per 60 s, and flood rates well above what one pod's clients generate.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from kubeguard.model import Severity
from kubeguard.net.types import Detection

SYN, ACK, RST, FIN, PSH = 0x02, 0x10, 0x04, 0x01, 0x08
ICMP_ECHO = frozenset({8, 128})  # echo request, IPv4 and IPv6
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}  # IP protocol numbers the engine may pass


@dataclass(slots=True)
class ScanFloodThresholds:
    """Thresholds (documented in docs/dpi-detect.md); all configurable."""

    scan_window: float = 60.0  # seconds of probes remembered per source
    vertical_ports: int = 20  # distinct ports on one destination (portscan2: 20)
    horizontal_hosts: int = 25  # distinct destinations on one port (Zeek: 25)
    session_rate: int = 200  # new sessions (SYN or new UDP peer/port) per source per second
    syn_rate: int = 1000  # SYNs per destination per second
    icmp_rate: int = 500  # ICMP echo requests per destination per second
    cooldown: float = 60.0  # seconds before the same alert repeats for the same key
    max_sources: int = 4096  # tracked sources / destinations; least recently used dropped
    max_fanout: int = 512  # destinations (and ports) tracked per source


class _Source:
    __slots__ = ("dsts_by_port", "ports_by_dst", "sess_count", "sess_sec", "start")

    def __init__(self, ts: float) -> None:
        self.start = ts
        self.ports_by_dst: dict[str, set[int]] = {}
        self.dsts_by_port: dict[int, set[str]] = {}
        self.sess_sec = int(ts)
        self.sess_count = 0


class _Target:
    __slots__ = ("icmp", "sec", "srcs", "syn")

    def __init__(self, ts: float) -> None:
        self.sec = int(ts)
        self.syn = 0
        self.icmp = 0
        self.srcs: set[str] = set()


class ScanFloodDetector:
    """Per-packet scan and flood detection (see module doc)."""

    def __init__(self, thresholds: ScanFloodThresholds | None = None) -> None:
        self.t = thresholds or ScanFloodThresholds()
        self.sources: OrderedDict[str, _Source] = OrderedDict()
        self.targets: OrderedDict[str, _Target] = OrderedDict()
        self.alerted: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _fire(self, rule: str, key: str, ts: float) -> bool:
        last = self.alerted.get((rule, key))
        if last is not None and ts - last < self.t.cooldown:
            return False
        self.alerted[(rule, key)] = ts
        self.alerted.move_to_end((rule, key))
        if len(self.alerted) > self.t.max_sources:
            self.alerted.popitem(last=False)
        return True

    def _source(self, src: str, ts: float) -> _Source:
        state = self.sources.get(src)
        if state is None or ts - state.start > self.t.scan_window:
            state = self.sources[src] = _Source(ts)
            if len(self.sources) > self.t.max_sources:
                self.sources.popitem(last=False)
        self.sources.move_to_end(src)
        return state

    def _target(self, dst: str, ts: float) -> _Target:
        state = self.targets.get(dst)
        if state is None:
            state = self.targets[dst] = _Target(ts)
            if len(self.targets) > self.t.max_sources:
                self.targets.popitem(last=False)
        elif int(ts) != state.sec:
            state.sec, state.syn, state.icmp = int(ts), 0, 0
            state.srcs.clear()
        self.targets.move_to_end(dst)
        return state

    def observe_packet(self, ts: float, src: str, dst: str, proto: str | int, dport: int, tcp_flags: int,
                       icmp_type: int | None) -> list[Detection]:
        """Detections raised by one packet (``proto``: "tcp", "udp", "icmp", "icmp6" or the IP protocol number)."""
        if not math.isfinite(ts):
            return []  # a broken capture timestamp can not be windowed
        proto = PROTO_NAMES.get(proto, "other") if isinstance(proto, int) else proto.lower()
        out: list[Detection] = []
        fields = {"fd.cip": src, "fd.sip": dst, "fd.l4proto": proto}
        if proto.startswith("icmp"):
            if icmp_type in ICMP_ECHO:
                target = self._target(dst, ts)
                target.icmp += 1
                if len(target.srcs) < 64:
                    target.srcs.add(src)
                if target.icmp >= self.t.icmp_rate and self._fire("icmp", dst, ts):
                    out.append(Detection("ICMP flood", Severity.HIGH,
                                         f"{target.icmp} echo requests/s to {dst} from {len(target.srcs)} source(s)",
                                         ("T1498",), fields, ("net", "dpi")))
            return out
        if proto == "tcp":
            probe = tcp_flags & (SYN | ACK) == SYN or tcp_flags & (SYN | ACK | RST) == 0  # SYN, NULL/FIN/XMAS
            if tcp_flags & (SYN | ACK) == SYN:
                target = self._target(dst, ts)
                target.syn += 1
                if len(target.srcs) < 64:
                    target.srcs.add(src)
                if target.syn >= self.t.syn_rate and self._fire("syn", dst, ts):
                    out.append(Detection("TCP SYN flood", Severity.HIGH,
                                         f"{target.syn} SYNs/s to {dst} from {len(target.srcs)} source(s)",
                                         ("T1498", "T1499"), fields, ("net", "dpi")))
        elif proto == "udp":
            probe = True
        else:
            return out
        if not probe:
            return out
        state = self._source(src, ts)
        ports = state.ports_by_dst.get(dst)
        new_session = False
        if ports is None and len(state.ports_by_dst) < self.t.max_fanout:
            ports = state.ports_by_dst[dst] = set()
        if ports is not None and dport not in ports and len(ports) <= self.t.vertical_ports:
            ports.add(dport)
            new_session = True
            if len(ports) == self.t.vertical_ports and self._fire("vscan", f"{src}>{dst}", ts):
                out.append(Detection("Vertical port scan", Severity.MEDIUM,
                                     f"{src} probed {len(ports)} {proto} ports on {dst} within "
                                     f"{self.t.scan_window:.0f}s",
                                     ("T1046",), fields, ("net", "dpi")))
        hosts = state.dsts_by_port.get(dport)
        if hosts is None and len(state.dsts_by_port) < self.t.max_fanout:
            hosts = state.dsts_by_port[dport] = set()
        if hosts is not None and dst not in hosts and len(hosts) <= self.t.horizontal_hosts:
            hosts.add(dst)
            new_session = True
            if len(hosts) == self.t.horizontal_hosts and self._fire("hscan", f"{src}:{dport}", ts):
                out.append(Detection("Horizontal port scan", Severity.MEDIUM,
                                     f"{src} probed {proto} port {dport} on {len(hosts)} hosts within "
                                     f"{self.t.scan_window:.0f}s", ("T1046",), {**fields, "fd.sport": dport},
                                     ("net", "dpi")))
        if proto == "tcp" or new_session:
            if int(ts) != state.sess_sec:
                state.sess_sec, state.sess_count = int(ts), 0
            state.sess_count += 1
            if state.sess_count >= self.t.session_rate and self._fire("rate", src, ts):
                out.append(Detection("Excessive session rate", Severity.MEDIUM,
                                     f"{state.sess_count} new sessions/s from {src}", ("T1499", "T1046"), fields,
                                     ("net", "dpi")))
        return out
