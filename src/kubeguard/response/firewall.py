"""The inline firewall's decision per queued packet: the DPI engine and the allow-list decide, modes apply.

`Firewall.verdict(ip_packet)` feeds one packet (raw IP, as NFQUEUE hands it over) to the DPI engine
and answers a `Verdict`:

- PASS: forward it, keep inspecting the connection;
- BYPASS: forward it, and the connection never comes back to the queue (it is decided: its protocol
  is identified, both directions are past what the engine inspects, and the allow-list is done);
- BLOCK: drop it; the kernel resets the sender and drops everything else on the connection, and the
  firewall resets the receiver itself (`inject.Injector`), so a half-delivered request never completes;
- BLOCK_QUIET: drop it without the kernel's reset, because the firewall answered the client itself
  (an HTTP 403 for a blocked HTTP request) and reset the server;
- DROP: drop only this packet (fail-closed handling of a packet that could not be inspected).

What blocks, in `protect` mode of the workload concerned (monitor: alert only; discover: attacks are
alerted, allow-list violations are not): an engine detection on the connection at or above
`block_severity` (SQL injection, command injection, XXE, traversal, JNDI, SSRF to metadata, Stratum,
DNS tunnelling, ...; flood and scan detections only alert, as blocking one connection stops neither),
a connection the allow-list does not allow, a protocol it does not allow on that connection, and an
HTTP request outside its HTTP rules. The workload concerned is the pod the alert names (the engine's
choice: the server for attacks against a service, the client for mining and tunnels), or for
allow-list decisions the pod whose policy denied.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeguard.cluster.podmap import PodMap
from kubeguard.model import SEVERITY_FALCO_PRIORITY, Alert, Severity, Workload, format_time_ns
from kubeguard.net.alerting import make_alert
from kubeguard.net.decode import LINK_RAW, TCP, TH_SYN, Decoder, Packet
from kubeguard.net.detect.dns import registered_domain
from kubeguard.net.dpi_engine import Detectors, Engine, EngineConfig
from kubeguard.net.flows import Flow
from kubeguard.net.types import Detection, HttpRequest
from kubeguard.response.allowlist import AllowList, ConnectionGrant, Decision
from kubeguard.response.inject import Injector, TcpHead

log = logging.getLogger(__name__)

HTTP_PROTOS = ("http", "elasticsearch", "etcd")
KEEP_INSPECTING_UDP = (None, "dns", "stratum", "unknown")
MAX_TUNNELS = 4096  # DNS tunnels remembered for blocking (oldest forgotten first)
NON_BLOCKING_RULES = ("flood", "port scan", "session rate", "burst")  # volume detections: alert only
POLICY_RULE = "Firewall policy violation"


class Verdict(enum.IntEnum):
    PASS = 0
    BYPASS = 1
    BLOCK = 2
    BLOCK_QUIET = 3
    DROP = 4


@dataclass(slots=True)
class Counters:
    """What the firewall did, for the summary line, metrics and tests."""

    packets: int = 0
    passed: int = 0
    bypassed_flows: int = 0
    blocked_flows: int = 0
    blocked_packets: int = 0
    http_403: int = 0
    tunnel_queries: int = 0  # later queries of a blocked DNS tunnel, dropped
    unparsed: int = 0
    errors: int = 0
    fail_dropped: int = 0
    fail_passed: int = 0
    alerts: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class FlowState:
    """The firewall's state of one connection (kept in the engine's `flow.state`)."""

    client: Workload | None
    server: Workload | None
    grant: ConnectionGrant | None = None
    proto_checked: bool = False
    blocked: bool = False
    denied: list[Decision] = field(default_factory=list)  # monitor-mode violations already alerted


class Firewall:
    """Packet in, Verdict out; alerts to `on_alert`. Not thread-safe: one queue reader calls it."""

    def __init__(self, podmap: PodMap | None = None, allowlist: AllowList | None = None,
                 default_mode: str = "monitor", on_alert: Callable[[Alert], None] | None = None,
                 injector: Injector | None = None, fail_closed: bool = False,
                 block_severity: Severity = Severity.HIGH, config: EngineConfig | None = None,
                 hostname: str = "", mode_of: Callable[[Workload], str | None] | None = None,
                 netpol: Callable[[str, str, int, str], Decision | None] | None = None) -> None:
        self.podmap = podmap or PodMap()
        self.mode_of = mode_of  # the workload's mode from its WorkloadPolicy (kubeguard.policy), when it has one
        self.netpol = netpol  # NetworkPolicy (L3/L4): (cip, sip, port, l4) -> a deny Decision or None
        self.allowlist = allowlist or AllowList()
        self.default_mode = default_mode
        self.on_alert = on_alert or (lambda _a: None)
        self.injector = injector
        self.fail_closed = fail_closed
        self.block_severity = block_severity
        self.hostname = hostname
        self.counters = Counters()
        self.selected: frozenset[str] = frozenset()
        self._pending: list[Alert] = []
        self._tunnels: dict[tuple[str, str], float] = {}  # (client ip, registered domain) blocked as a DNS tunnel
        self._requests: list[HttpRequest] = []
        detectors = Detectors()
        inspect_http = detectors.http

        def http(req: HttpRequest) -> list[Detection]:
            self._requests.append(req)  # checked against the allow-list once the packet's flow is known
            return inspect_http(req) if inspect_http is not None else []

        detectors.http = http
        self.decoder = Decoder()
        self.engine = Engine(config or EngineConfig(), podmap=self.podmap, on_alert=self._pending.append,
                             detectors=detectors, hostname=hostname)

    # ---- configuration -------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Build the detectors' databases and models now, not on the first inline request (which would hold
        the queue for seconds): one request with every kind of value through the HTTP detector."""
        req = HttpRequest("POST", "/warm?id=1%27%20or%201=1--&u=http://169.254.169.254/&j=${jndi:ldap://x/a}",
                          headers=[("Host", "warm-up"), ("Content-Type", "application/json")],
                          body=b'{"q": "1 union select 1", "x": "<!DOCTYPE a [<!ENTITY b SYSTEM \'file:///\'>]>"}')
        detect = self.engine.detectors.http
        if detect is not None:
            detect(req)
        self._requests.clear()

    def select(self, ips: set[str] | frozenset[str]) -> None:
        """The pod addresses whose traffic is inline (modes apply to these pods only)."""
        self.selected = frozenset(ips)

    def set_pods(self, podmap: PodMap) -> None:
        self.podmap = podmap
        self.engine.podmap = podmap

    def mode(self, workload: Workload | None, ip: str) -> str:
        """The mode of the pod at `ip` ("off" when it is not inline): its WorkloadPolicy's mode, else the
        strictest mode of the allow-list policies selecting it, else the default."""
        if ip not in self.selected:
            return "off"
        if self.mode_of is not None and workload is not None:
            mode = self.mode_of(workload)
            if mode:
                return mode
        return self.allowlist.mode_for(workload, self.default_mode)

    # ---- per packet ----------------------------------------------------------------------------

    def verdict(self, data: bytes, now: float | None = None) -> Verdict:
        """Decide one queued packet (raw IP). Never raises: failures go to the fail mode."""
        self.counters.packets += 1
        try:
            pkt = self.decoder.decode(LINK_RAW, data, time.time() if now is None else now)
        except Exception:  # the decoder returns None on bad input; anything else is a bug: fail mode
            log.exception("decoder failed on a %d-byte packet", len(data))
            pkt = None
        if pkt is None:
            self.counters.unparsed += 1
            return self._fail()
        try:
            return self._decide(pkt, data)
        except Exception:
            self.counters.errors += 1
            if self.counters.errors <= 10 or self.counters.errors % 1000 == 0:
                log.exception("firewall error #%d on a packet (handled by the fail mode)", self.counters.errors)
            return self._fail()
        finally:
            self._pending.clear()
            self._requests.clear()

    def _fail(self) -> Verdict:
        if self.fail_closed:
            self.counters.fail_dropped += 1
            return Verdict.DROP
        self.counters.fail_passed += 1
        return Verdict.PASS

    def _decide(self, pkt: Packet, data: bytes) -> Verdict:
        flow = self.engine.packet(pkt)
        st: FlowState | None = flow.state.get("firewall")
        if st is None:
            st = flow.state["firewall"] = self._new_flow(flow)
        elif st.blocked:
            self._forward_alerts(flow, st, [])
            self.counters.blocked_packets += 1
            return Verdict.BLOCK
        blocks: list[tuple[Alert, str]] = []  # (alert, mode) of what would block on this packet
        if st.grant is None and not st.denied:
            self._connection_check(flow, st, blocks)
        if st.grant is not None and flow.proto is not None and not st.proto_checked:
            st.proto_checked = True
            decision = self.allowlist.protocol(st.grant, flow.proto)
            if not decision.allowed:
                self._violation(flow, st, decision, blocks)
        if st.grant is not None:
            for req in self._requests:
                decision = self.allowlist.http_request(st.grant, req.method, req.uri, req.header("host") or "",
                                                       req.headers)
                if not decision.allowed:
                    self._violation(flow, st, decision, blocks, {"http.method": req.method, "http.uri": req.uri[:2048]})
        self._forward_alerts(flow, st, blocks)
        if any(mode == "protect" for _, mode in blocks):
            self._remember_tunnels(flow, blocks)
            return self._block(flow, st, pkt, data)
        if self._tunnels and flow.proto == "dns" and self._tunnel_query(flow):
            return self._block(flow, st, pkt, data)
        if self._decided(flow):
            self.counters.bypassed_flows += 1
            return Verdict.BYPASS
        self.counters.passed += 1
        return Verdict.PASS

    def _remember_tunnels(self, flow: Flow, blocks: list[tuple[Alert, str]]) -> None:
        """A blocked DNS tunnel: later queries of that client to that domain are dropped too (the detector
        alerts once per tunnel, and every query is a new flow)."""
        for alert, mode in blocks:
            domain = alert.output_fields.get("dns.domain")
            if mode == "protect" and alert.rule == "DNS tunnelling" and domain:
                if len(self._tunnels) >= MAX_TUNNELS:
                    self._tunnels.pop(next(iter(self._tunnels)))
                self._tunnels[(flow.cip, str(domain))] = flow.end

    def _tunnel_query(self, flow: Flow) -> bool:
        qname = str(flow.meta.get("dns.qname", ""))
        if not qname:
            return False
        if (flow.cip, registered_domain(qname)[1]) in self._tunnels:
            self.counters.tunnel_queries += 1
            return True
        return False

    def _new_flow(self, flow: Flow) -> FlowState:
        by_ip = self.podmap.by_ip
        return FlowState(client=by_ip.get(flow.cip), server=by_ip.get(flow.sip))

    def _connection_check(self, flow: Flow, st: FlowState, blocks: list[tuple[Alert, str]]) -> None:
        if self.netpol is not None:
            denied = self.netpol(flow.cip, flow.sip, flow.sport, flow.l4)
            if denied is not None:
                self._violation(flow, st, denied, blocks)
                return
        found = self.allowlist.grant(flow.cip, st.client, flow.sip, st.server, flow.sport, flow.l4)
        if isinstance(found, Decision):
            self._violation(flow, st, found, blocks)
        else:
            st.grant = found

    def _violation(self, flow: Flow, st: FlowState, decision: Decision, blocks: list[tuple[Alert, str]],
                   extra: dict[str, Any] | None = None) -> None:
        """An allow-list deny: alerted (monitor, protect) and blocking (protect) for the deciding pod."""
        ip, workload = (flow.cip, st.client) if decision.side == "egress" else (flow.sip, st.server)
        mode = self.mode(workload, ip)
        if mode in ("off", "discover"):
            return
        if any(d.reason == decision.reason for d in st.denied):
            return  # monitor mode: one alert per connection and reason
        st.denied.append(decision)
        det = Detection(rule=POLICY_RULE, severity=Severity.HIGH,
                        evidence=f"{decision.reason} (policy {decision.policy}, {decision.side})",
                        mitre=("T1571",) if flow.proto and "protocol" in decision.reason else (),
                        fields={"firewall.policy": decision.policy, "firewall.side": decision.side, **(extra or {})},
                        tags=("firewall", "policy"))
        identity = flow.identity()
        alert = make_alert(det, identity, flow.end, self.podmap, self.hostname)
        if workload is not None:
            alert.workload = workload
            alert.output_fields.update(workload.falco_fields())
        blocks.append((alert, mode))

    def _forward_alerts(self, flow: Flow, st: FlowState, blocks: list[tuple[Alert, str]]) -> None:
        """Engine alerts of this packet plus allow-list alerts, each marked with the action taken."""
        for alert in self._pending:
            mode = self._alert_mode(alert, flow, st)
            if self._blocking(alert):
                blocks.append((alert, mode))
            else:
                alert.output_fields["firewall.action"] = "alert"
                self._emit(alert, mode)
        protect = any(mode == "protect" for _, mode in blocks)
        for alert, mode in blocks:
            alert.output_fields["firewall.action"] = "blocked" if protect else "alert"
            self._emit(alert, mode)

    def _emit(self, alert: Alert, mode: str) -> None:
        alert.output_fields["firewall.mode"] = mode
        self.counters.alerts += 1
        self.on_alert(alert)

    def _alert_mode(self, alert: Alert, flow: Flow, st: FlowState) -> str:
        workload = alert.workload
        for ip, pod in ((flow.cip, st.client), (flow.sip, st.server)):
            if workload is not None and pod == workload and ip in self.selected:
                return self.mode(pod, ip)
        modes = [self.mode(st.client, flow.cip), self.mode(st.server, flow.sip)]
        return max(modes, key=("off", "discover", "monitor", "protect").index)

    def _blocking(self, alert: Alert) -> bool:
        if alert.severity < self.block_severity:
            return False
        rule = alert.rule.lower()
        return not any(word in rule for word in NON_BLOCKING_RULES)

    def _block(self, flow: Flow, st: FlowState, pkt: Packet, data: bytes) -> Verdict:
        st.blocked = True
        self.counters.blocked_flows += 1
        self.counters.blocked_packets += 1
        if pkt.proto != TCP:
            return Verdict.BLOCK
        head = TcpHead.parse(data)
        if head is None or self.injector is None or (pkt.flags & TH_SYN and not pkt.payload):
            return Verdict.BLOCK  # a SYN: the kernel's reset refuses the connection; nothing to tell the server
        self.injector.reset_receiver(head)
        client_packet = pkt.src == flow.key[0] and pkt.sport == flow.cport
        if flow.proto in HTTP_PROTOS and client_packet and pkt.payload:
            self.injector.forbid_sender(head)
            self.counters.http_403 += 1
            return Verdict.BLOCK_QUIET
        return Verdict.BLOCK

    def _decided(self, flow: Flow) -> bool:
        """Nothing more to inspect on this connection: it may leave the queue."""
        if flow.proto is None:
            return False
        if flow.l4 == "tcp":
            streams = flow.streams
            return streams[0] is not None and streams[1] is not None and streams[0].done and streams[1].done
        if flow.l4 == "udp":
            return flow.proto not in KEEP_INSPECTING_UDP
        return False

    def finish(self) -> None:
        """End: every open flow leaves the engine (flow records, last alerts)."""
        self.engine.finish()
        self._pending.clear()


def bypass_alert(count: int, total: int, reason: str, hostname: str = "", dropped: bool = False) -> Alert:
    """The alert for packets the firewall could not inspect: passed (fail-open) or dropped (fail-closed)."""
    rule = "Firewall fail-closed drop" if dropped else "Firewall fail-open bypass"
    what = "dropped" if dropped else "passed"
    key = "firewall.dropped" if dropped else "firewall.bypassed"
    return Alert(rule=rule, priority=SEVERITY_FALCO_PRIORITY[Severity.HIGH],
                 output=f"{rule}: {count} packets {what} uninspected ({reason}); {total} since start",
                 time=format_time_ns(time.time_ns()), source="network", hostname=hostname,
                 output_fields={key: count, f"{key}_total": total, "firewall.reason": reason},
                 tags=["network", "firewall", "bypass"])
