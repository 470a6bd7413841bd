"""The flow table: one `Flow` per 5-tuple (both directions), with idle timeouts and a size bound.

The client is the side that sent the SYN (or, without one, the first packet; a SYN-ACK or a
well-known source port facing an ephemeral one flips it). Flows leave the table when idle past
their timeout, shortly after both sides closed, or, when the table is full, oldest first; each
leaving flow is handed to `on_expire` so its record is never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeguard.model import Severity, format_time_ns
from kubeguard.net.decode import L4_NAMES, TCP, TH_ACK, TH_SYN, UDP, Packet, ip_text


class Flow:
    """Both directions of one connection (index 0: client to server, 1: server to client)."""

    __slots__ = (
        "alerted",
        "bytes",
        "cip",
        "closed",
        "cport",
        "end",
        "handlers",
        "heads",
        "key",
        "l4",
        "meta",
        "pkts",
        "proto",
        "rules",
        "scan_tail",
        "scanned",
        "severity",
        "sip",
        "sport",
        "start",
        "state",
        "streams",
        "verdict",
    )

    def __init__(self, key: tuple[bytes, int, bytes, int, int], ts: float) -> None:
        self.key = key
        self.cip = ip_text(key[0])
        self.cport = key[1]
        self.sip = ip_text(key[2])
        self.sport = key[3]
        self.l4 = L4_NAMES.get(key[4], str(key[4]))
        self.start = ts
        self.end = ts
        self.pkts = [0, 0]
        self.bytes = [0, 0]
        self.proto: str | None = None
        self.meta: dict[str, Any] = {}
        self.streams: list[Any] = [None, None]  # TcpStream per direction (TCP only)
        self.handlers: list[Any] = [None, None]  # L7 parser per direction once identified
        self.heads: list[bytes] = [b"", b""]  # first bytes per direction until identified
        self.scan_tail: list[bytes] = [b"", b""]
        self.scanned = [0, 0]
        self.closed = 0  # bit 0: client FIN/RST, bit 1: server FIN/RST
        self.alerted: set[str] = set()
        # The per-flow verdict, first-class so inline enforcement can act on it: "pass" until a
        # detection fires on the flow, then "alert" with the highest severity and the rules seen.
        self.verdict = "pass"
        self.severity: Severity | None = None
        self.rules: list[str] = []
        self.state: dict[str, Any] = {}  # per-flow detector state

    def identity(self) -> dict[str, Any]:
        """The flow keys every record and alert carries."""
        return {
            "fd.cip": self.cip, "fd.cport": self.cport, "fd.sip": self.sip, "fd.sport": self.sport,
            "fd.l4proto": self.l4, "net.proto": self.proto or "unknown",
        }

    def record(self) -> dict[str, Any]:
        """The `--flows-out` JSON line of this flow."""
        out = self.identity()
        out.update({
            "flow.pkts_toserver": self.pkts[0], "flow.pkts_toclient": self.pkts[1],
            "flow.bytes_toserver": self.bytes[0], "flow.bytes_toclient": self.bytes[1],
            "flow.start": format_time_ns(int(self.start * 1e9)), "flow.end": format_time_ns(int(self.end * 1e9)),
        })
        out["net.verdict"] = self.verdict
        if self.severity is not None:
            out["net.severity"] = self.severity.label
            out["net.alerts"] = list(self.rules)
        out.update(self.meta)
        return out

    def flag(self, rule: str, severity: Severity) -> None:
        """Record a detection in the flow's verdict."""
        self.verdict = "alert"
        if self.severity is None or severity > self.severity:
            self.severity = severity
        if rule not in self.rules:
            self.rules.append(rule)


_SERVICE_PORT_MAX = 1024


class FlowTable:
    """Flows by canonical key (client ip, client port, server ip, server port, l4 proto)."""

    def __init__(self, on_expire: Callable[[Flow], None], max_flows: int = 200_000, tcp_timeout: float = 600.0,
                 udp_timeout: float = 60.0, closed_timeout: float = 5.0) -> None:
        self.on_expire = on_expire
        self.max_flows = max_flows
        self.tcp_timeout = tcp_timeout
        self.udp_timeout = udp_timeout
        self.closed_timeout = closed_timeout
        self.flows: dict[tuple[bytes, int, bytes, int, int], Flow] = {}
        self.created = 0
        self.evicted_full = 0
        self._next_sweep = 0.0

    def lookup(self, pkt: Packet) -> tuple[Flow, int]:
        """The flow of this packet and its direction (0 client to server, 1 server to client)."""
        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.proto)
        flow = self.flows.get(key)
        if flow is not None:
            return flow, 0
        rkey = (pkt.dst, pkt.dport, pkt.src, pkt.sport, pkt.proto)
        flow = self.flows.get(rkey)
        if flow is not None:
            return flow, 1
        if self._server_sent_first(pkt):
            key = rkey
            direction = 1
        else:
            direction = 0
        if len(self.flows) >= self.max_flows:
            self._sweep(pkt.ts)
            if len(self.flows) >= self.max_flows:
                old = self.flows.pop(next(iter(self.flows)))
                self.evicted_full += 1
                self.on_expire(old)
        flow = self.flows[key] = Flow(key, pkt.ts)
        self.created += 1
        return flow, direction

    @staticmethod
    def _server_sent_first(pkt: Packet) -> bool:
        if pkt.proto == TCP:
            if pkt.flags & TH_SYN:
                return bool(pkt.flags & TH_ACK)
        elif pkt.proto != UDP:
            return False
        return pkt.sport < _SERVICE_PORT_MAX <= pkt.dport

    def tick(self, now: float) -> None:
        """Expire idle and closed flows; cheap to call on every packet (sweeps once a second)."""
        if now >= self._next_sweep:
            self._next_sweep = now + 1.0
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        expired = []
        for key, flow in self.flows.items():
            idle = now - flow.end
            timeout = self.tcp_timeout if flow.l4 == "tcp" else self.udp_timeout
            if idle > timeout or (flow.closed == 3 and idle > self.closed_timeout):
                expired.append(key)
        for key in expired:
            self.on_expire(self.flows.pop(key))

    def flush(self) -> None:
        """End of input: every remaining flow leaves the table."""
        while self.flows:
            self.on_expire(self.flows.pop(next(iter(self.flows))))
