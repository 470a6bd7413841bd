"""Fuzzing: malformed and truncated packets, garbage captures, hostile L7 input.

No crash (only the documented error types), no hang (hypothesis deadline), bounded memory.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeguard.net.capture import CaptureError, read_file
from kubeguard.net.decode import Decoder
from kubeguard.net.dpi_engine import Engine, EngineConfig
from kubeguard.net.identify import identify
from kubeguard.net.pcapgen import PcapWriter, dns_query, ether, ip_packets, tcp_conversation, tcp_segment
from kubeguard.net.proto.dns import DnsError, parse_message
from kubeguard.net.proto.http import HttpRequestStream
from kubeguard.net.proto.tls import TlsStream

FUZZ = settings(max_examples=300, deadline=500, suppress_health_check=[HealthCheck.too_slow])
LINKTYPES = st.sampled_from([0, 1, 12, 101, 113, 228, 229, 276, 9999])


@FUZZ
@given(LINKTYPES, st.binary(max_size=200))
def test_decoder_never_raises(linktype: int, frame: bytes) -> None:
    Decoder().decode(linktype, frame, 0.0)


def _valid_frame(payload: bytes, sport: int, dport: int, fragment: int) -> list[bytes]:
    l4 = tcp_segment(sport, dport, 1, 0, 0x18, payload)
    return [ether(ip, True) for ip in ip_packets("10.0.0.1", "10.0.0.2", 6, l4, fragment=fragment)]


@FUZZ
@given(st.binary(max_size=300), st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 40),
       st.integers(0, 80), st.binary(max_size=4))
def test_mutated_real_frames_through_engine(payload: bytes, sport: int, dport: int, cut: int, flip_at: int,
                                             junk: bytes) -> None:
    engine = Engine(EngineConfig(), on_alert=lambda a: None, on_flow=lambda f: None)
    for frame in _valid_frame(payload, sport, dport, 16 if cut % 2 else 0):
        mutated = bytearray(frame[: len(frame) - cut])
        if flip_at < len(mutated):
            mutated[flip_at: flip_at + len(junk)] = junk
        engine.feed_frames([(1.0, 1, bytes(mutated))])
    engine.finish()


@FUZZ
@given(st.binary(max_size=600), st.binary(max_size=600), st.sampled_from(["tcp", "udp"]), st.booleans())
def test_identify_never_raises(client: bytes, server: bytes, l4: str, final: bool) -> None:
    answer = identify(l4, client, server, final=final)
    assert answer is None or isinstance(answer, str)


@FUZZ
@given(st.binary(max_size=512))
def test_dns_parser_only_raises_dns_error(msg: bytes) -> None:
    try:
        parse_message(msg)
    except DnsError:
        pass


def test_dns_compression_loop_and_forward_pointer() -> None:
    header = struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0)
    looping = header + b"\xc0\x0c" + b"\x00\x01\x00\x01"  # the name points at itself
    with pytest.raises(DnsError):
        parse_message(looping)
    forward = header + b"\xc0\x20" + b"\x00\x01\x00\x01" + b"\x00" * 30
    with pytest.raises(DnsError):
        parse_message(forward)
    # an answer name that loops: the question stands, answers are dropped
    ok = dns_query("a.example")
    answer = ok[:2] + b"\x81\x80" + ok[4:6] + b"\x00\x01" + ok[8:] + b"\xc0\x1d" + b"\x00" * 10
    questions = parse_message(answer)
    assert questions[0].qname == "a.example"


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_tls_stream_never_raises(chunks: list[bytes]) -> None:
    stream = TlsStream(True, lambda h: None, lambda hb: None)
    for chunk in chunks:
        stream.feed(b"\x16\x03\x01" + chunk)


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_http_stream_never_raises(chunks: list[bytes]) -> None:
    stream = HttpRequestStream(lambda r: None)
    for chunk in chunks:
        stream.feed(b"POST / HTTP/1.1\r\n" + chunk)
    stream.close()


def test_pathological_http_is_bounded() -> None:
    seen = []
    stream = HttpRequestStream(seen.append, body_limit=1000)
    stream.feed(b"POST /" + b"a" * 200_000 + b" HTTP/1.1\r\n")
    for i in range(5000):
        stream.feed(b"X-H%d: %s\r\n" % (i, b"v" * 50))
    stream.feed(b"Transfer-Encoding: chunked\r\n\r\n")
    for _ in range(2000):
        stream.feed(b"400\r\n" + b"B" * 1024 + b"\r\n")
    stream.feed(b"0\r\n\r\n")
    assert len(seen) == 1
    req = seen[0]
    assert len(req.uri) <= 70_000 and len(req.headers) <= 200 and len(req.body) == 1000 and req.body_truncated


@settings(max_examples=60, deadline=2000)
@given(st.binary(max_size=3000))
def test_garbage_capture_files(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "g.pcap"
    for blob in (data, b"\xd4\xc3\xb2\xa1" + data, b"\x0a\x0d\x0d\x0a" + data):
        path.write_bytes(blob)
        engine = Engine(EngineConfig(), on_alert=lambda a: None, on_flow=lambda f: None)
        try:
            engine.feed_frames(read_file(path))
        except CaptureError:
            pass
        engine.finish()


def test_memory_stays_bounded_under_many_flows_and_fragments(tmp_path: Path) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf)
    ts = 1_700_000_000.0
    for i in range(3000):
        src = f"10.{i // 250}.{i % 250}.1"
        # a first fragment that never completes, and a flow that never closes
        for frame in ip_packets(src, "10.9.9.9", 17, b"\x00" * 400, ident=i, fragment=64)[:1]:
            w.frame(ts, ether(frame, True))
        ts = tcp_conversation(w, (src, 40000 + i % 1000), ("10.9.9.9", 80), [(0, b"GET / HTTP/1.1\r\n")], ts=ts)
    path = tmp_path / "many.pcap"
    path.write_bytes(buf.getvalue())
    records = []
    engine = Engine(EngineConfig(max_flows=500), on_alert=lambda a: None, on_flow=records.append)
    engine.decoder.defrag.max_pending = 200
    tracemalloc.start()
    engine.feed_frames(read_file(path))
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(engine.table.flows) <= 500 and len(engine.decoder.defrag) <= 200
    assert peak < 40 << 20, peak
    engine.finish()
    assert len(records) == 3000
