"""Reassembly, defragmentation, decoding and the flow table, tested on their own."""

from __future__ import annotations

import struct

from dpiutil import run_engine, tcp

from kubeguard.net.decode import Decoder
from kubeguard.net.dpi_engine import EngineConfig
from kubeguard.net.ipfrag import Defragmenter
from kubeguard.net.pcapgen import Conversation, ether, ip_packets, tcp_conversation, tcp_segment
from kubeguard.net.reassembly import TcpStream


def collect(depth: int = 1 << 20, max_queued: int = 1 << 16) -> tuple[TcpStream, list[bytes], list[int]]:
    out: list[bytes] = []
    gaps: list[int] = []
    return TcpStream(out.append, depth=depth, max_queued=max_queued, on_gap=lambda: gaps.append(1)), out, gaps


def test_in_order_retransmission_and_first_wins_overlap() -> None:
    s, out, _ = collect()
    s.syn(999)
    s.segment(1000, b"hello ")
    s.segment(1000, b"HELLO ")  # retransmission with other bytes: ignored
    s.segment(1003, b"LO WORLD")  # overlaps 3 delivered bytes: only "WORLD" is new
    assert b"".join(out) == b"hello WORLD"


def test_out_of_order_and_queued_overlaps_first_wins() -> None:
    s, out, _ = collect()
    s.syn(0)
    s.segment(7, b"world")
    s.segment(7, b"XXXXX")  # overlaps queued bytes: first wins there too
    s.segment(5, b"  wor")  # partly new (offsets 4..5), partly queued
    assert out == []
    s.segment(1, b"hell")
    assert b"".join(out) == b"hell  world"


def test_sequence_wraparound() -> None:
    s, out, _ = collect()
    s.syn(0xFFFFFFF0)
    s.segment(0xFFFFFFF1, b"A" * 20)
    s.segment((0xFFFFFFF1 + 20) & 0xFFFFFFFF, b"B" * 5)
    assert b"".join(out) == b"A" * 20 + b"B" * 5


def test_gap_is_skipped_on_close_and_reported() -> None:
    s, out, gaps = collect()
    s.syn(0)
    s.segment(1, b"abc")
    s.segment(10, b"xyz")
    s.close()
    assert b"".join(out) == b"abcxyz" and gaps == [1] and s.gap


def test_queue_bound_forces_gap_skip() -> None:
    s, out, gaps = collect(max_queued=100)
    s.syn(0)
    s.segment(1001, b"q" * 60)
    s.segment(1061, b"r" * 60)  # queue over its bound: the hole before it is given up
    assert gaps == [1] and b"".join(out) == b"q" * 60 + b"r" * 60


def test_depth_stops_delivery() -> None:
    s, out, _ = collect(depth=10)
    s.syn(0)
    s.segment(1, b"0123456789abcdef")
    s.segment(17, b"more")
    assert b"".join(out) == b"0123456789" and s.done


def test_defrag_first_wins_and_completion_in_any_order() -> None:
    d = Defragmenter()
    key = (b"\x01" * 4, b"\x02" * 4, 7, 17)
    assert d.add(key, 8, True, b"BBBBBBBB", 0.0) is None
    assert d.add(key, 16, False, b"CC", 0.0) is None
    assert d.add(key, 8, True, b"XXXXXXXX", 0.0) is None  # overlap: first wins
    assert d.add(key, 0, True, b"AAAAAAAA", 0.0) == b"AAAAAAAABBBBBBBBCC"
    assert len(d) == 0


def test_defrag_bounds_size_time_and_count() -> None:
    d = Defragmenter(timeout=5, max_pending=2)
    assert d.add((b"a", b"b", 1, 6), 65528, True, b"x" * 16, 0.0) is None  # beyond 65,535
    assert len(d) == 0
    d.add((b"a", b"b", 2, 6), 0, True, b"x" * 8, 0.0)
    d.add((b"a", b"b", 3, 6), 0, True, b"x" * 8, 1.0)
    d.add((b"a", b"b", 4, 6), 0, True, b"x" * 8, 10.0)  # full: the timed-out ones go first
    assert len(d) <= 2
    d.expire(100.0)
    assert len(d) == 0


def test_decoder_vlan_ipv6_and_malformed() -> None:
    dec = Decoder()
    l4 = tcp_segment(1234, 80, 1, 0, 0x18, b"GET / HTTP/1.1\r\n\r\n")
    frame = ether(ip_packets("fd00::1", "fd00::2", 6, l4)[0], True, vlan=100)
    pkt = dec.decode(1, frame, 1.0)
    assert pkt is not None and (pkt.sport, pkt.dport) == (1234, 80) and pkt.payload.startswith(b"GET")
    assert dec.decode(1, frame[:30], 1.0) is None
    assert dec.decode(1, b"", 1.0) is None
    bad_tcp = frame[:-len(l4)] + l4[:12] + b"\xf0" + l4[13:]  # data offset past the end
    assert dec.decode(1, bad_tcp[:70], 1.0) is None
    assert dec.malformed == 3


def test_ipv6_conversation_identified() -> None:
    flow = tcp([(0, b"GET / HTTP/1.1\r\nHost: v6\r\n\r\n")], client=("fd00::5", 40000),
               server=("fd00::7", 8080)).flow()
    assert (flow["fd.cip"], flow["net.proto"], flow["http.host"]) == ("fd00::5", "http", "v6")


def test_client_is_syn_sender_even_when_capture_starts_at_synack() -> None:
    def write(w: object) -> None:
        conv = Conversation(w, ("10.0.0.1", 50000), ("10.0.0.2", 6379), handshake=False)  # type: ignore[arg-type]
        conv._pkt(1, 5000, 1001, 0x12)  # SYN-ACK from the server first
        conv.seq = [1001, 5001]
        conv.send(0, b"*1\r\n$4\r\nPING\r\n")

    result = run_engine(write)
    flow = result.flow()
    assert (flow["fd.cip"], flow["fd.sport"], flow["net.proto"]) == ("10.0.0.1", 6379, "redis")


def test_stream_depth_makes_bulk_uninspected_but_counted() -> None:
    body = b"x" * 200_000
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    req = b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n"
    result = run_engine(lambda w: tcp_conversation(w, ("10.0.0.1", 40000), ("10.0.0.2", 80), [(0, req), (1, response)]),
                        config=EngineConfig(stream_depth=4096))
    flow = result.flow()
    assert flow["http.status"] == 200 and flow["flow.bytes_toclient"] > 200_000


def test_flow_table_bound_and_timeouts_emit_every_record() -> None:
    def write(w: object) -> None:
        ts = 1_700_000_000.0
        for i in range(30):
            ts = tcp_conversation(w, ("10.1.0.1", 30000 + i), ("10.1.0.2", 80),  # type: ignore[arg-type]
                                  [(0, b"GET /%d HTTP/1.1\r\n\r\n" % i)], ts=ts + 100)

    result = run_engine(write, config=EngineConfig(max_flows=4))
    assert len(result.flows) == 30
    assert sorted(f["http.uri"] for f in result.flows) == sorted(f"/{i}" for i in range(30))


def test_udp_flow_expires_after_idle_timeout() -> None:
    from kubeguard.net.pcapgen import dns_query, udp_exchange

    def write(w: object) -> None:
        ts = udp_exchange(w, ("10.0.0.1", 5000), ("10.0.0.53", 53), [(0, dns_query("a.example"))])  # type: ignore
        udp_exchange(w, ("10.0.0.1", 5000), ("10.0.0.53", 53), [(0, dns_query("b.example"))], ts=ts + 500)  # type: ignore

    result = run_engine(write, config=EngineConfig(udp_timeout=60))
    assert [f["dns.qname"] for f in result.flows] == ["a.example", "b.example"]


def test_truncated_ipv4_total_length_is_not_trusted() -> None:
    dec = Decoder()
    l4 = tcp_segment(1, 2, 0, 0, 0x18, b"payload")
    ip = ip_packets("10.0.0.1", "10.0.0.2", 6, l4)[0]
    lying = ip[:2] + struct.pack("!H", 60000) + ip[4:]
    pkt = dec.decode(1, ether(lying, True), 0.0)
    assert pkt is not None and pkt.payload == b"payload"


def test_per_flow_verdict_is_returned_and_recorded() -> None:
    from kubeguard.net.decode import Decoder
    from kubeguard.net.dpi_engine import Engine

    stratum = b'{"id":1,"method":"mining.subscribe","params":["x"]}\n'
    flows: list[dict[str, object]] = []
    engine = Engine(on_flow=flows.append)
    dec = Decoder()
    verdicts = []
    import io

    import dpkt

    from kubeguard.net.pcapgen import PcapWriter

    buf = io.BytesIO()
    w = PcapWriter(buf)
    tcp_conversation(w, ("10.0.0.1", 40000), ("10.0.0.2", 3333), [(0, stratum)])
    tcp_conversation(w, ("10.0.0.1", 40001), ("10.0.0.2", 80), [(0, b"GET / HTTP/1.1\r\n\r\n")], ts=1_700_000_100.0)
    buf.seek(0)
    for ts, frame in dpkt.pcap.Reader(buf):
        pkt = dec.decode(1, frame, ts)
        assert pkt is not None
        verdicts.append((pkt.dport if pkt.dport in (3333, 80) else pkt.sport, engine.packet(pkt).verdict))
    engine.finish()
    assert ("pass" in {v for p, v in verdicts if p == 3333}) and verdicts[-1][1] == "pass"
    assert [v for p, v in verdicts if p == 3333][-1] == "alert"
    by_port = {f["fd.sport"]: f for f in flows}
    assert by_port[3333]["net.verdict"] == "alert" and by_port[3333]["net.severity"] == "critical"
    assert by_port[3333]["net.alerts"] == ["Stratum mining protocol"]
    assert by_port[80]["net.verdict"] == "pass" and "net.severity" not in by_port[80]


def test_global_reassembly_budget_bounds_queued_bytes() -> None:
    from kubeguard.net.reassembly import Budget

    budget = Budget(limit=1000)
    streams = []
    for _ in range(10):
        s = TcpStream(lambda data: None, budget=budget)
        s.syn(0)
        s.segment(5000, b"z" * 300)  # a hole before it: queued
        streams.append(s)
        assert budget.used <= 1000 + 300
    for s in streams:
        s.close()
    assert budget.used == 0
