"""Port-independent identification of every listed protocol, on correct wire bytes written here.

Every flow uses server port 31337, so no port can give the answer away. Protocols for which a
real client is available are also covered in test_identify_clients.py.
"""

from __future__ import annotations

import struct

import pytest
from dpiutil import tcp, udp

from kubeguard.net.identify import PROTOCOLS


def _bson_hello() -> bytes:
    body = b"\x10hello\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    return struct.pack("<i", 4 + len(body) + 1) + body + b"\x00"


def _op_msg() -> bytes:
    doc = _bson_hello()
    body = struct.pack("<I", 0) + b"\x00" + doc
    return struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body


def _mysql_greeting() -> bytes:
    body = (b"\x0a8.0.36\x00" + struct.pack("<I", 12) + b"abcdefgh\x00" + struct.pack("<H", 0xF7FF) + b"\x21"
            + struct.pack("<H", 2) + struct.pack("<H", 0xDFFF) + b"\x15" + b"\x00" * 10 + b"ijklmnopqrst\x00"
            + b"mysql_native_password\x00")
    return len(body).to_bytes(3, "little") + b"\x00" + body


def _kafka_api_versions() -> bytes:
    client = b"rdkafka"
    body = struct.pack("!hhih", 18, 3, 1, len(client)) + client + b"\x00" + b"\x0alibrdkafka\x062.3.0\x00"
    return struct.pack("!i", len(body)) + body


def _zk_connect() -> bytes:
    body = struct.pack("!iqiqi", 0, 0, 30000, 0, 16) + b"\x00" * 16 + b"\x00"
    return struct.pack("!i", len(body)) + body


def _dhcp_discover() -> bytes:
    p = struct.pack("!BBBBIHH", 1, 1, 6, 0, 0x3903F326, 0, 0x8000) + b"\x00" * 16
    p += bytes.fromhex("0a0000000001") + b"\x00" * 10 + b"\x00" * 192 + b"\x63\x82\x53\x63"
    return p + b"\x35\x01\x01\x37\x03\x01\x03\x06\xff"


def _snmp_get() -> bytes:
    varbind = bytes.fromhex("300e300c06082b060102010101000500")
    pdu = b"\xa0" + bytes([len(varbind) + 11]) + bytes.fromhex("020101020100020100") + varbind
    msg = bytes.fromhex("020101") + b"\x04\x06public" + pdu
    return b"\x30" + bytes([len(msg)]) + msg


def _radius_request() -> bytes:
    attrs = b"\x01\x06bob1" + b"\x04\x06\x0a\x00\x00\x01"
    return struct.pack("!BBH", 1, 42, 20 + len(attrs)) + b"\x11" * 16 + attrs


def _smb2_negotiate() -> bytes:
    hdr = b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) + b"\x00" * 16
    body = struct.pack("<HHHHI", 36, 2, 1, 0, 0x7F) + b"\x00" * 16 + b"\x00" * 8 + struct.pack("<HH", 0x0202, 0x0210)
    msg = hdr + body
    return struct.pack("!I", len(msg)) + msg


CASES: dict[str, tuple[str, list[tuple[int, bytes]]]] = {
    "http": ("tcp", [(0, b"GET /shop?id=3 HTTP/1.1\r\nHost: shop\r\nUser-Agent: curl/8.5\r\n\r\n"),
                     (1, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]),
    "elasticsearch": ("tcp", [(0, b"GET /_cluster/health HTTP/1.1\r\nHost: es:9200\r\n\r\n"),
                              (1, b"HTTP/1.1 200 OK\r\nX-elastic-product: Elasticsearch\r\n"
                                  b"content-length: 2\r\n\r\n{}")]),
    "etcd": ("tcp", [(0, b"POST /v3/kv/range HTTP/1.1\r\nHost: etcd\r\nContent-Length: 13\r\n\r\n"
                        b'{"key":"Zm9v"}'), (1, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")]),
    "ssh": ("tcp", [(1, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"), (0, b"SSH-2.0-Go\r\n")]),
    "mysql": ("tcp", [(1, _mysql_greeting())]),
    "postgresql": ("tcp", [(0, struct.pack("!ii", 41, 196608) + b"user\x00app\x00database\x00shop\x00\x00"[:33])]),
    "redis": ("tcp", [(0, b"*1\r\n$4\r\nPING\r\n"), (1, b"+PONG\r\n")]),
    "mongodb": ("tcp", [(0, _op_msg())]),
    "kafka": ("tcp", [(0, _kafka_api_versions())]),
    "memcached": ("tcp", [(0, b"get session:4411\r\n"), (1, b"END\r\n")]),
    "cassandra": ("tcp", [(0, b"\x04\x00\x00\x00\x05\x00\x00\x00\x00")]),
    "zookeeper": ("tcp", [(0, _zk_connect())]),
    "amqp": ("tcp", [(0, b"AMQP\x00\x00\x09\x01")]),
    "mqtt": ("tcp", [(0, b"\x10\x14\x00\x04MQTT\x04\x02\x00\x3c\x00\x08sensor-1")]),
    "nats": ("tcp", [(1, b'INFO {"server_id":"N1","version":"2.10.7","max_payload":1048576}\r\n'),
                     (0, b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')]),
    "smtp": ("tcp", [(1, b"220 mx.example.com ESMTP Postfix\r\n"), (0, b"EHLO client\r\n")]),
    "imap": ("tcp", [(1, b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n"), (0, b"a1 CAPABILITY\r\n")]),
    "pop3": ("tcp", [(1, b"+OK Dovecot ready.\r\n"), (0, b"USER alice\r\n")]),
    "ftp": ("tcp", [(1, b"220 (vsFTPd 3.0.3)\r\n"), (0, b"USER anonymous\r\n")]),
    "ldap": ("tcp", [(0, bytes.fromhex("300c020101600702010304008000"))]),
    "rtsp": ("tcp", [(0, b"OPTIONS rtsp://cam.local/stream RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
                     (1, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")]),
    "telnet": ("tcp", [(1, b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27")]),
    "rdp": ("tcp", [(0, b"\x03\x00\x00\x2b\x26\xe0\x00\x00\x00\x00\x00Cookie: mstshash=admin\r\n"
                        b"\x01\x00\x08\x00\x03\x00\x00\x00")]),
    "smb": ("tcp", [(0, _smb2_negotiate())]),
    "vnc": ("tcp", [(1, b"RFB 003.008\n"), (0, b"RFB 003.008\n")]),
    "socks": ("tcp", [(0, b"\x05\x02\x00\x02"), (1, b"\x05\x00")]),
    "stratum": ("tcp", [(0, b'{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"4AdU","pass":"x",'
                            b'"agent":"XMRig/6.21.0"}}\n')]),
    "sip": ("udp", [(0, b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
                        b"Content-Length: 0\r\n\r\n")]),
    "ntp": ("udp", [(0, b"\x23" + b"\x00" * 47)]),
    "dhcp": ("udp", [(0, _dhcp_discover())]),
    "syslog": ("udp", [(0, b"<34>1 2026-11-28T12:00:00Z web-1 app 42 - - login failed")]),
    "snmp": ("udp", [(0, _snmp_get())]),
    "radius": ("udp", [(0, _radius_request())]),
    "tftp": ("udp", [(0, b"\x00\x01pxelinux.0\x00octet\x00")]),
    "dns": ("udp", [(0, bytes.fromhex("12340100000100000000000003777777076578616d706c6503636f6d0000010001"))]),
}


@pytest.mark.parametrize("expected", sorted(CASES))
def test_protocol_identified_from_wire_bytes(expected: str) -> None:
    l4, messages = CASES[expected]
    result = tcp(messages) if l4 == "tcp" else udp(messages)
    assert result.flow()["net.proto"] == expected


@pytest.mark.parametrize("expected", ["http", "mysql", "redis", "smtp", "stratum", "ssh", "kafka", "mqtt"])
def test_identification_survives_one_byte_segments(expected: str) -> None:
    _l4, messages = CASES[expected]
    assert tcp(messages, segment=1).flow()["net.proto"] == expected


def test_dns_over_tcp() -> None:
    query = bytes.fromhex("abcd0100000100000000000003777777076578616d706c6503636f6d0000100001")
    flow = tcp([(0, struct.pack("!H", len(query)) + query)]).flow()
    assert flow["net.proto"] == "dns"
    assert flow["dns.qname"] == "www.example.com"
    assert flow["dns.qtype"] == "TXT"


def test_random_bytes_are_unknown() -> None:
    junk = bytes((i * 37 + 11) % 251 for i in range(600))
    assert tcp([(0, junk), (1, junk[::-1])]).flow()["net.proto"] == "unknown"
    assert udp([(0, junk[:100])]).flow()["net.proto"] == "unknown"


def test_every_listed_protocol_has_a_case() -> None:
    from test_dpi_identify_clients import CLIENT_CASES

    covered = set(CASES) | set(CLIENT_CASES)
    assert set(PROTOCOLS) <= covered, set(PROTOCOLS) - covered
