"""The flow table: one `Flow` per 5-tuple (both directions), with idle timeouts and a size bound.

The client is the side that sent the SYN (or, without one, the first packet; a SYN-ACK or a
well-known source port facing an ephemeral one flips it). Flows leave the table when idle past
their timeout, shortly after both sides closed, or, when the table is full, least recently active
first; each leaving flow is handed to `on_expire` so its record is never lost.

Every operation is O(1) per packet, so a flood of new flows can not make the table rescan itself:
flows sit in one recency queue per idle timeout (TCP, other, closed), least recently active first.
Expiry pops from the queue fronts while they are idle, and a full table evicts the least recently
active flow (closed ones first), counted in `evicted_full`. Recency is arrival order, so in a
capture whose timestamps go backwards a flow may leave up to that skew late.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from kubeguard.model import Severity, format_time_ns
from kubeguard.net.decode import L4_NAMES, TCP, TH_ACK, TH_SYN, UDP, Packet, ip_text

FlowKey = tuple[bytes, int, bytes, int, int]


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
        "queue",
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

    def __init__(self, key: FlowKey, ts: float) -> None:
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
        self.queue: OrderedDict[FlowKey, Flow] | None = None  # the FlowTable recency queue holding this flow

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
        self.flows: dict[FlowKey, Flow] = {}
        self._tcp: OrderedDict[FlowKey, Flow] = OrderedDict()
        self._other: OrderedDict[FlowKey, Flow] = OrderedDict()
        self._closed: OrderedDict[FlowKey, Flow] = OrderedDict()
        self.created = 0
        self.evicted_full = 0  # flows pushed out before their timeout because the table was full
        self._next_sweep = 0.0

    def lookup(self, pkt: Packet) -> tuple[Flow, int]:
        """The flow of this packet and its direction (0 client to server, 1 server to client)."""
        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.proto)
        flow = self.flows.get(key)
        if flow is not None:
            flow.queue.move_to_end(key)  # type: ignore[union-attr]
            return flow, 0
        rkey = (pkt.dst, pkt.dport, pkt.src, pkt.sport, pkt.proto)
        flow = self.flows.get(rkey)
        if flow is not None:
            flow.queue.move_to_end(rkey)  # type: ignore[union-attr]
            return flow, 1
        if self._server_sent_first(pkt):
            key = rkey
            direction = 1
        else:
            direction = 0
        if len(self.flows) >= self.max_flows:
            self._expire(pkt.ts)
            if len(self.flows) >= self.max_flows:
                self.evicted_full += 1
                evicted = self._least_recent()
                evicted.meta["flow.evicted"] = True  # its record says it left before its timeout
                self._leave(evicted)
        flow = self.flows[key] = Flow(key, pkt.ts)
        queue = self._tcp if pkt.proto == TCP else self._other
        queue[key] = flow
        flow.queue = queue
        self.created += 1
        return flow, direction

    def closed(self, flow: Flow) -> None:
        """Both sides of `flow` closed: it leaves `closed_timeout` after its last packet."""
        if flow.queue is not None and flow.queue is not self._closed:
            del flow.queue[flow.key]
            self._closed[flow.key] = flow
            flow.queue = self._closed

    @staticmethod
    def _server_sent_first(pkt: Packet) -> bool:
        if pkt.proto == TCP:
            if pkt.flags & TH_SYN:
                return bool(pkt.flags & TH_ACK)
        elif pkt.proto != UDP:
            return False
        return pkt.sport < _SERVICE_PORT_MAX <= pkt.dport

    def tick(self, now: float) -> None:
        """Expire idle and closed flows; cheap to call on every packet (runs once a second)."""
        if now >= self._next_sweep:
            self._next_sweep = now + 1.0
            self._expire(now)

    def _expire(self, now: float) -> None:
        """Pop idle flows from the front of each queue; stops at the first one still active (O(1) amortised)."""
        for queue, timeout in ((self._closed, self.closed_timeout), (self._other, self.udp_timeout),
                               (self._tcp, self.tcp_timeout)):
            while queue:
                flow = next(iter(queue.values()))
                if now - flow.end <= timeout:
                    break
                self._leave(flow)

    def _least_recent(self) -> Flow:
        """The flow to evict from a full table: the least recently active closed one, else the least recent."""
        if self._closed:
            return next(iter(self._closed.values()))
        heads = [next(iter(q.values())) for q in (self._tcp, self._other) if q]
        return min(heads, key=lambda f: f.end)

    def _leave(self, flow: Flow) -> None:
        del self.flows[flow.key]
        if flow.queue is not None:
            del flow.queue[flow.key]
            flow.queue = None
        self.on_expire(flow)

    def flush(self) -> None:
        """End of input: every remaining flow leaves the table, least recently active first.

        Popped from the recency queues (linked lists): taking the first key of the plain dict again
        and again would rescan the entries deleted before it, quadratic in the table size.
        """
        for queue in (self._closed, self._other, self._tcp):
            while queue:
                self._leave(next(iter(queue.values())))
