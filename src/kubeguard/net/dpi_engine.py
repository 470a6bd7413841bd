"""The DPI engine: packets in, flow records and Detections (as Alerts) out.

packets -> Decoder (L2-L4, IP defrag) -> FlowTable -> TcpStream per direction (first-wins
reassembly, stream depth) -> protocol identification -> L7 parsers (looked up by protocol in the
`parsers` table) -> detectors.

Cheap paths keep the per-packet cost low: payload-less packets stop after flow accounting, and a
direction that is past its depth, or whose protocol needs no more inspection, only counts bytes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kubeguard.cluster.podmap import PodMap
from kubeguard.model import Alert
from kubeguard.net import identify as ident
from kubeguard.net import threats
from kubeguard.net.alerting import make_alert, pod_name
from kubeguard.net.decode import TCP, TH_ACK, TH_FIN, TH_RST, TH_SYN, UDP, Decoder, Packet, ip_text
from kubeguard.net.detect.dns import DnsTunnelDetector
from kubeguard.net.detect.http import inspect_http_request
from kubeguard.net.detect.sql import SqlAuthMonitor, inspect_sql_query
from kubeguard.net.detect.volume import ScanFloodDetector
from kubeguard.net.drops import DropReporter
from kubeguard.net.flows import Flow, FlowTable
from kubeguard.net.parsers import DATAGRAM_PARSERS, STREAM_PARSERS
from kubeguard.net.proto.dns import DnsError, parse_message
from kubeguard.net.proto.ssh import SshBanner
from kubeguard.net.proto.tls import Heartbeat, Hello, version_name
from kubeguard.net.reassembly import Budget, TcpStream
from kubeguard.net.types import Detection, DnsQuestion, HttpRequest

# What a parser or detector bug on hostile bytes raises; the reader counts it and goes on. Errors of the
# outputs (store, files) are not among them: they end the run with their own message.
INSPECTION_BUGS = (ArithmeticError, LookupError, ValueError, TypeError, AttributeError, RecursionError, struct.error)
log = logging.getLogger(__name__)

CONTENT_SCANNED = ("unknown", "telnet")  # flows whose bytes go through the content patterns


@dataclass(slots=True)
class EngineConfig:
    """Tunables (docs/dpi.md)."""

    stream_depth: int = 1 << 20  # bytes inspected per TCP direction (Suricata's default stream depth)
    raw_depth: int = 64 * 1024  # bytes content-scanned per direction of an unidentified flow
    body_limit: int = 64 * 1024  # HTTP request body bytes handed to detectors
    max_flows: int = 200_000
    reassembly_memory: int = 256 << 20  # out-of-order bytes queued across all flows
    tcp_timeout: float = 600.0
    udp_timeout: float = 60.0
    drop_report_interval: float = 10.0  # seconds of packet time between "packets or flows dropped" alerts


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Run the packet loop with a larger young-generation threshold.

    Each flow allocates many small objects; with the default threshold (700) the cyclic collector
    runs thousands of times a second and its full passes over a large flow table dominated the
    per-flow cost (measured: 2.4k vs 4.8k flows/s). Flows break their own cycles when they leave
    the table, so garbage is still freed at once by reference counting.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 50_000), max(old[1], 20), max(old[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*old)


class Detectors:
    """The detect package's entry points; a test may replace one with its own callable."""

    def __init__(self) -> None:
        self.http: Callable[[HttpRequest], list[Detection]] = inspect_http_request
        self.sql: Callable[[str], list[Detection]] = inspect_sql_query
        self.sql_auth = SqlAuthMonitor()
        self.dns = DnsTunnelDetector()
        self.volume = ScanFloodDetector()


class Engine:
    """Feed frames or packets; collect alerts via `on_alert` and flow records via `on_flow`."""

    def __init__(self, config: EngineConfig | None = None, podmap: PodMap | None = None,
                 on_alert: Callable[[Alert], None] | None = None,
                 on_flow: Callable[[dict[str, Any]], None] | None = None,
                 detectors: Detectors | None = None, hostname: str = "") -> None:
        self.config = config or EngineConfig()
        self.podmap = podmap
        self.on_alert = on_alert or (lambda _a: None)
        self.on_flow = on_flow
        self.detectors = detectors or Detectors()
        self._volume = self.detectors.volume
        self.hostname = hostname
        self.decoder = Decoder()
        self.reassembly_budget = Budget(self.config.reassembly_memory)
        self.table = FlowTable(self._expired, max_flows=self.config.max_flows,
                               tcp_timeout=self.config.tcp_timeout, udp_timeout=self.config.udp_timeout)
        self.packets = 0
        self.bytes = 0
        self.alerts = 0
        self.flows_done = 0
        self.inspection_errors = 0  # packets whose inspection raised (a parser bug); see feed_frames
        self._now = 0.0
        self.drops = DropReporter(self._drop_counts, self._alert, self.config.drop_report_interval, hostname)

    # ---- input --------------------------------------------------------------------------

    def feed_frames(self, frames: Iterable[tuple[float, int, bytes]]) -> None:
        """Frames as (timestamp, pcap link type, bytes)."""
        decode = self.decoder.decode
        packet = self.packet
        with _fewer_gc_passes():
            for ts, linktype, buf in frames:
                self.bytes += len(buf)
                pkt = decode(linktype, buf, ts)
                if pkt is None:
                    self.packets += 1
                    continue
                try:
                    packet(pkt)
                except INSPECTION_BUGS:
                    self._inspection_failed(pkt)

    def _inspection_failed(self, pkt: Packet) -> None:
        """A parser or detector raised on hostile bytes: a bug, logged (the first ten) and counted; reading goes on."""
        self.inspection_errors += 1
        if self.inspection_errors <= 10:
            log.exception("DPI inspection failed on a packet %s:%d -> %s:%d (counted; the capture goes on)",
                          ip_text(pkt.src), pkt.sport, ip_text(pkt.dst), pkt.dport)

    def packet(self, pkt: Packet) -> Flow:
        """One decoded packet; returns its flow, whose `verdict` an inline caller can act on."""
        self.packets += 1
        ts = pkt.ts
        if ts > self._now:
            self._now = ts
            self.table.tick(ts)
            if self.drops.due(ts):
                self.drops.check(ts)
        flow, d = self.table.lookup(pkt)
        # Floods and scans are told by packets without ACK (SYN, NULL/FIN/XMAS probes) and by non-TCP
        # packets; established TCP traffic (ACK set) is not passed, which keeps bulk transfers cheap.
        if pkt.proto != TCP or not pkt.flags & TH_ACK:
            src, dst = (flow.cip, flow.sip) if d == 0 else (flow.sip, flow.cip)
            dets = self._volume.observe_packet(ts, src, dst, pkt.proto, pkt.dport, pkt.flags, pkt.icmp_type)
            if dets:
                self._packet_detections(pkt, dets)
        flow.end = ts
        flow.pkts[d] += 1
        flow.bytes[d] += pkt.wire_len
        if pkt.proto == TCP:
            stream = flow.streams[d]
            if stream is None:
                stream = flow.streams[d] = self._new_stream(flow, d)
            flags = pkt.flags
            if flags & TH_SYN:
                stream.syn(pkt.seq)
            if pkt.payload and not stream.done:
                stream.segment(pkt.seq, pkt.payload)
            if flags & (TH_FIN | TH_RST):
                flow.closed |= 1 << d
                stream.close()
                self._direction_closed(flow, d)
        elif pkt.proto == UDP and pkt.payload:
            self._datagram(flow, d, pkt.payload, ts)
        return flow

    def finish(self) -> None:
        """End of input: close every flow (flushing queued stream data) and emit records."""
        self.table.flush()
        self.drops.check(self._now, final=True)

    def _drop_counts(self) -> dict[str, int]:
        return {"flows.evicted_full": self.table.evicted_full, "ipfrag.dropped": self.decoder.defrag.dropped}

    # ---- flows --------------------------------------------------------------------------

    def _new_stream(self, flow: Flow, d: int) -> TcpStream:
        return TcpStream(lambda data: self._stream_data(flow, d, data), depth=self.config.stream_depth,
                         on_gap=lambda: self._gap(flow, d), budget=self.reassembly_budget)

    def _expired(self, flow: Flow) -> None:
        for stream in flow.streams:
            if stream is not None:
                stream.close()
        if flow.proto is None:
            self._decide(flow, final=True)
        for handler in flow.handlers:
            if handler is not None:
                handler.close()
        self.flows_done += 1
        if self.on_flow is not None:
            record = flow.record()
            if self.podmap is not None:  # the pods on both ends, as alerts name them (netpol generate, flows --map)
                for side, ip in (("client", flow.cip), ("server", flow.sip)):
                    workload = self.podmap.by_ip.get(ip)
                    if workload is not None:
                        record[f"net.{side}.pod"] = pod_name(workload)
            self.on_flow(record)
        # Streams and parsers hold callbacks that refer back to the flow: break those cycles so the
        # flow is freed by reference counting now, not by the cyclic GC scanning a large heap later.
        flow.streams = [None, None]
        flow.handlers = [None, None]
        flow.state.clear()

    def _direction_closed(self, flow: Flow, d: int) -> None:
        if flow.closed == 3:
            self.table.closed(flow)
            if flow.proto is None:
                self._decide(flow, final=True)

    def _gap(self, flow: Flow, d: int) -> None:
        handler = flow.handlers[d]
        if handler is not None:
            handler.failed = True  # an L7 parser cannot resynchronise across missing bytes
        flow.meta["net.gap"] = True

    # ---- TCP data -----------------------------------------------------------------------

    def _stream_data(self, flow: Flow, d: int, data: bytes) -> None:
        if flow.proto is None:
            flow.heads[d] += data
            self._decide(flow)
            if flow.proto is None or flow.proto in CONTENT_SCANNED:
                self._content_scan(flow, d, data)
            return
        handler = flow.handlers[d]
        if handler is not None:
            handler.feed(data)
            if handler.done or handler.failed:
                flow.streams[d].finish_depth()
        elif flow.proto in CONTENT_SCANNED:
            self._content_scan(flow, d, data)

    def _decide(self, flow: Flow, final: bool = False) -> None:
        proto = ident.identify(flow.l4, flow.heads[0], flow.heads[1], final=final)
        if proto is None:
            return
        flow.proto = proto
        heads, flow.heads = flow.heads, [b"", b""]
        self._start_l7(flow, heads)

    def _start_l7(self, flow: Flow, heads: list[bytes]) -> None:
        proto = flow.proto
        factory = STREAM_PARSERS.get(proto) if proto is not None and flow.l4 == "tcp" else None
        handlers = list(factory(self, flow, heads)) if factory is not None else [None, None]
        flow.handlers = handlers
        for d in (0, 1):
            stream = flow.streams[d]
            handler = handlers[d]
            if handler is not None:
                if heads[d]:
                    handler.feed(heads[d])
                if stream is not None and (handler.done or handler.failed):
                    stream.finish_depth()
            elif proto not in CONTENT_SCANNED and stream is not None:
                stream.finish_depth()  # identified, nothing more to inspect: bulk path from here on

    # ---- content scanning (unidentified, stratum and telnet flows) ------------------------

    def _content_scan(self, flow: Flow, d: int, data: bytes) -> None:
        budget = self.config.raw_depth - flow.scanned[d]
        if budget <= 0:
            stream = flow.streams[d]
            if stream is not None and flow.proto is not None:
                stream.finish_depth()
            return
        data = data[:budget]
        flow.scanned[d] += len(data)
        window = flow.scan_tail[d] + data
        flow.scan_tail[d] = window[-threats.OVERLAP:]
        state = flow.state.get("content")
        if state is None:
            state = flow.state["content"] = threats.ContentState()
        for det in threats.content_detections(state, d, window, lambda: window):
            self._emit(flow, det)

    # ---- UDP ------------------------------------------------------------------------------

    def _datagram(self, flow: Flow, d: int, payload: bytes, ts: float) -> None:
        if flow.proto is None:
            flow.proto = ident.identify("udp", payload if d == 0 else b"", payload if d == 1 else b"")
        handler = DATAGRAM_PARSERS.get(flow.proto)  # type: ignore[arg-type]
        if handler is not None:
            handler(self, flow, payload)

    # ---- L7 events (`parsers.L7Events`: what the registered parsers report) ----------------------

    @property
    def body_limit(self) -> int:
        return self.config.body_limit

    def http_request(self, flow: Flow, req: HttpRequest) -> None:
        meta = flow.meta
        if "http.method" not in meta:
            meta["http.method"] = req.method
            meta["http.uri"] = req.uri[:2048]
            meta["http.host"] = (req.header("host") or "")[:255]
            meta["http.user_agent"] = (req.header("user-agent") or "")[:512]
        meta["http.requests"] = meta.get("http.requests", 0) + 1
        fields = {"http.method": req.method, "http.uri": req.uri[:2048], "http.host": req.header("host") or ""}
        for det in self.detectors.http(req):
            self._emit(flow, det, extra=fields)

    def http_status(self, flow: Flow, status: int, headers: list[tuple[str, str]]) -> None:
        flow.meta.setdefault("http.status", status)
        if flow.proto == "http":
            text = "\r\n".join(f"{k}: {v}" for k, v in headers).encode("latin-1", "replace")
            refined = ident.identify("tcp", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200\r\n" + text + b"\r\n")
            if refined in ("elasticsearch", "etcd"):
                flow.proto = refined

    def h2_headers(self, flow: Flow, head: bytes) -> None:
        headers = ident.h2_first_headers(head)
        if headers:
            flow.meta["http.method"] = headers.get(":method", "")
            flow.meta["http.uri"] = headers.get(":path", "")[:2048]
            flow.meta["http.host"] = headers.get(":authority", "")[:255]
            if headers.get("user-agent"):
                flow.meta["http.user_agent"] = headers["user-agent"][:512]

    def stratum(self, flow: Flow, fields: dict[str, str]) -> None:
        if "stratum.method" not in fields:
            return  # a pool's answer: nothing new
        for key, value in fields.items():
            flow.meta.setdefault(key, value)
        self._emit(flow, threats.stratum_detection(fields))

    def tls_hello(self, flow: Flow, hello: Hello, client: bool, sslv2: bool) -> None:
        if client:
            flow.meta["tls.version"] = "SSLv2" if sslv2 else version_name(hello.max_version)
            if hello.sni:
                flow.meta["tls.sni"] = hello.sni
            flow.meta["tls.ja3"] = hello.ja3()
            if hello.alpn:
                flow.meta["tls.alpn"] = ",".join(hello.alpn[:8])
            if hello.sni:
                det = threats.pool_name_detection("TLS SNI", [hello.sni])
                if det:
                    self._emit(flow, det)
        else:
            chosen = hello.versions[0] if hello.versions else hello.legacy_version
            flow.meta["tls.version"] = version_name(chosen)
        for det in threats.tls_hello_detections(hello, client, sslv2):
            self._emit(flow, det)

    def heartbeat(self, flow: Flow, hb: Heartbeat, client: bool) -> None:
        if client:
            flow.state["hb_request"] = hb.record_len
        det = threats.heartbleed_detection(hb, client, int(flow.state.get("hb_request", 0)))
        if det:
            self._emit(flow, det)

    def ssh_banner(self, flow: Flow, d: int, banner: SshBanner) -> None:
        side = "ssh.client" if d == 0 else "ssh.server"
        flow.meta[side] = banner.raw[:255]
        if d == 0 or "ssh.version" not in flow.meta:
            flow.meta["ssh.version"] = banner.proto_version
        det = threats.ssh_detection(banner, client=d == 0)
        if det:
            self._emit(flow, det)

    def dns_message(self, flow: Flow, msg: bytes) -> None:
        try:
            questions = parse_message(msg)
        except DnsError:
            flow.meta["dns.malformed"] = flow.meta.get("dns.malformed", 0) + 1
            return
        for q in questions:
            self._dns_question(flow, q)

    def _dns_question(self, flow: Flow, q: DnsQuestion) -> None:
        meta = flow.meta
        meta.setdefault("dns.qname", q.qname)
        meta.setdefault("dns.qtype", q.qtype)
        if q.is_response:
            meta["dns.rcode"] = q.rcode
            if q.answer_names:
                meta["dns.cnames"] = list(q.answer_names[:16])
        det = threats.pool_name_detection("DNS", [q.qname, *q.answer_names])
        if det:
            self._emit(flow, det)  # once per flow: the query and its answer name the same pool
        for det in self.detectors.dns.observe(flow.cip, q, self._now):
            self._emit(flow, det, extra={"dns.qname": q.qname, "dns.qtype": q.qtype})

    def sql_query(self, flow: Flow, query: str) -> None:
        flow.meta["sql.queries"] = flow.meta.get("sql.queries", 0) + 1
        for det in self.detectors.sql(query):
            self._emit(flow, det)

    def sql_auth(self, flow: Flow, failed: bool, detail: str) -> None:
        if failed:
            flow.meta["sql.auth_failed"] = True
        key = (flow.cip, flow.sip, flow.sport, flow.l4)
        for det in self.detectors.sql_auth.observe(key, failed, self._now):
            self._emit(flow, det)

    # ---- output ---------------------------------------------------------------------------

    def _emit(self, flow: Flow, det: Detection, extra: dict[str, Any] | None = None) -> None:
        dedupe = f"{det.rule}|{det.evidence}" if extra else det.rule
        if dedupe in flow.alerted:
            return
        flow.alerted.add(dedupe)
        flow.flag(det.rule, det.severity)
        identity = flow.identity()
        for key in ("tls.sni", "tls.version", "dns.qname", "ssh.version", "stratum.method", "stratum.agent"):
            if key in flow.meta:
                identity[key] = flow.meta[key]
        if extra:
            identity.update(extra)
        self._alert(make_alert(det, identity, self._now or flow.end, self.podmap, self.hostname))

    def _packet_detections(self, pkt: Packet, dets: list[Detection]) -> None:
        # No memory of its own here: the detector's cooldown (per rule and source / target, bounded)
        # decides when an alert repeats, so the same scan an hour later alerts again.
        src, dst = ip_text(pkt.src), ip_text(pkt.dst)
        for det in dets:
            identity = {"fd.cip": src, "fd.cport": pkt.sport, "fd.sip": dst, "fd.sport": pkt.dport,
                        "fd.l4proto": {TCP: "tcp", UDP: "udp"}.get(pkt.proto, "icmp"), "net.proto": "unknown"}
            self._alert(make_alert(det, identity, pkt.ts, self.podmap, self.hostname))

    def _alert(self, alert: Alert) -> None:
        self.alerts += 1
        self.on_alert(alert)
