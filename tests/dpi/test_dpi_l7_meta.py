"""L7 metadata beyond identification: SQL queries and login outcomes from real clients, capture
formats (pcapng, Linux cooked), and HTTP requests handed to detectors."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
from dpirecorder import TcpRecorder
from dpiutil import CLIENT, SERVER, tcp
from test_dpi_identify_clients import case_postgresql
from test_dpi_identify_wire import _mysql_greeting

from kubeguard.model import Severity
from kubeguard.net.capture import read_file
from kubeguard.net.dpi_engine import Detectors, Engine
from kubeguard.net.pcapgen import ether, ip_packets, tcp_segment
from kubeguard.net.types import Detection, HttpRequest


def test_mysql_query_text_and_version_from_pymysql() -> None:
    import pymysql

    def respond(data: bytes) -> bytes:
        return b"\x07\x00\x00" + bytes([(data[3] + 1) & 0xFF]) + b"\x00\x00\x00\x02\x00\x00\x00"

    rec = TcpRecorder(banner=_mysql_greeting(), respond=respond)
    conn = pymysql.connect(host="127.0.0.1", port=rec.port, user="app", password="pw", connect_timeout=5,
                           autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM sessions WHERE id = %s", ("1' OR '1'='1",))
    conn.close()
    queries: list[str] = []
    detectors = Detectors()
    detectors.sql = lambda q: queries.append(q) or []
    flow = tcp(rec.wait(), detectors=detectors).flow()
    assert flow["mysql.version"] == "8.0.36"
    assert any("DELETE FROM sessions WHERE id = '1\\' OR \\'1\\'=\\'1'" in q for q in queries), queries


def test_postgres_auth_failure_reaches_the_monitor() -> None:
    seen: list[bool] = []

    class Monitor:
        def observe(self, key: object, failed: bool, ts: float) -> list[Detection]:
            seen.append(failed)
            return [Detection("SQL access denied burst", Severity.HIGH, "test")] if failed else []

    detectors = Detectors()
    detectors.sql_auth = Monitor()
    result = tcp(case_postgresql(), detectors=detectors)
    assert seen == [True]
    assert result.flow()["sql.auth_failed"] is True
    assert result.rules() == {"SQL access denied burst"}


def test_http_requests_reach_detector_with_fields_and_one_alert_each() -> None:
    got: list[HttpRequest] = []

    def inspect(req: HttpRequest) -> list[Detection]:
        got.append(req)
        return [Detection("HTTP test", Severity.HIGH, f"saw {req.uri}", ("T1190",))] if "evil" in req.uri else []

    detectors = Detectors()
    detectors.http = inspect
    body = b'{"cmd":"id"}'
    pipeline = (b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"
                b"POST /evil?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body + b"GET /evil2 HTTP/1.1\r\nHost: a\r\n\r\n")
    result = tcp([(0, pipeline)], segment=3, reorder=True, detectors=detectors)
    assert [r.uri for r in got] == ["/ok", "/evil?x=1", "/evil2"]
    assert got[1].body == body and got[1].content_length == ["12"] and got[1].header("content-type")
    assert sorted(a.output_fields["http.uri"] for a in result.alerts) == ["/evil2", "/evil?x=1"]


def test_smuggling_request_still_handed_on_when_llhttp_rejects_it() -> None:
    got: list[HttpRequest] = []
    detectors = Detectors()
    detectors.http = lambda r: got.append(r) or []
    req = (b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n")
    tcp([(0, req)], detectors=detectors)
    assert got and got[0].content_length == ["4"] and got[0].transfer_encoding == ["chunked"]


def _frames() -> list[bytes]:
    payload = b"*1\r\n$4\r\nPING\r\n"
    l4 = tcp_segment(CLIENT[1], SERVER[1], 100, 0, 0x18, payload)
    return [ip_packets(CLIENT[0], SERVER[0], 6, l4)[0]]


def _run(path: Path) -> list[dict[str, object]]:
    flows: list[dict[str, object]] = []
    engine = Engine(on_flow=flows.append)
    engine.feed_frames(read_file(path))
    engine.finish()
    return flows


def test_pcapng_file(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    with path.open("wb") as fh:
        writer = dpkt.pcapng.Writer(fh, linktype=1)
        for ip in _frames():
            writer.writepkt(ether(ip, True), ts=1_700_000_000.5)
    flows = _run(path)
    assert [f["net.proto"] for f in flows] == ["redis"]


def test_linux_cooked_capture(tmp_path: Path) -> None:
    path = tmp_path / "any.pcap"
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 113))
        for ip in _frames():
            frame = struct.pack("!HHH8sH", 4, 1, 6, b"\x0a\x00\x00\x00\x00\x01\x00\x00", 0x0800) + ip
            fh.write(struct.pack("<IIII", 1_700_000_000, 0, len(frame), len(frame)) + frame)
    flows = _run(path)
    assert [(f["net.proto"], f["fd.cip"]) for f in flows] == [("redis", CLIENT[0])]


def test_ipv6_fragments_reassembled() -> None:
    from kubeguard.net.decode import Decoder

    l4 = struct.pack("!HHHH", 5353, 53, 8 + 40, 0) + bytes(40)
    src, dst = bytes.fromhex("fd00" + "00" * 13 + "01"), bytes.fromhex("fd00" + "00" * 13 + "02")

    def frag(offset: int, more: bool, data: bytes) -> bytes:
        fh = struct.pack("!BBHI", 17, 0, offset | int(more), 0xBEEF)
        ip = struct.pack("!IHBB", 6 << 28, 8 + len(data), 44, 64) + src + dst + fh + data
        return ether(ip, True)

    dec = Decoder()
    assert dec.decode(1, frag(24, False, l4[24:]), 0.0) is None
    pkt = dec.decode(1, frag(0, True, l4[:24]), 0.0)
    assert pkt is not None and (pkt.sport, pkt.dport, len(pkt.payload)) == (5353, 53, 40)


def test_negative_content_length_handed_on() -> None:
    got: list[HttpRequest] = []
    detectors = Detectors()
    detectors.http = lambda r: got.append(r) or []
    tcp([(0, b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\nabc")],
        segment=4, detectors=detectors)
    assert [r.uri for r in got] == ["/ok", "/x"]
    assert got[1].content_length == ["-5"]
