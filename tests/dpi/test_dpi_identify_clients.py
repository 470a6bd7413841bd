"""Identification on bytes that real client libraries and tools put on the wire (loopback).

Each client talks to a recording peer on 127.0.0.1; the recorded exchange is written into a
pcap with server port 31337 and inspected, so neither the port nor hand-written bytes decide.
"""

from __future__ import annotations

import contextlib
import ftplib
import imaplib
import logging
import logging.handlers
import poplib
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest
from dpirecorder import (
    TcpRecorder,
    UdpRecorder,
    http_heads,
    lines,
    mqtt_packets,
    mysql_packets,
    postgres_messages,
    resp,
    ssh_messages,
    tls_records,
)
from dpiutil import tcp, udp


def _h2_client_bytes(path: str, content_type: str | None) -> bytes:
    import h2.config
    import h2.connection

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [(":method", "POST" if content_type else "GET"), (":path", path), (":scheme", "http"),
               (":authority", "svc.local"), ("user-agent", "grpc-python/1.60")]
    if content_type:
        headers += [("content-type", content_type), ("te", "trailers")]
    conn.send_headers(1, headers, end_stream=content_type is None)
    return conn.data_to_send()


def case_http2() -> list[tuple[int, bytes]]:
    return [(0, _h2_client_bytes("/index.html", None))]


def case_grpc() -> list[tuple[int, bytes]]:
    return [(0, _h2_client_bytes("/helloworld.Greeter/SayHello", "application/grpc"))]


def case_etcd_grpc() -> list[tuple[int, bytes]]:
    return [(0, _h2_client_bytes("/etcdserverpb.KV/Range", "application/grpc"))]


def case_tls() -> list[tuple[int, bytes]]:
    rec = TcpRecorder(framer=tls_records, close_after=1)  # hangs up after the ClientHello: handshake fails
    ctx = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", rec.port), timeout=30) as raw, contextlib.suppress(OSError):
        ctx.wrap_socket(raw, server_hostname="api.shop.example")
    return rec.wait()


def case_http() -> list[tuple[int, bytes]]:
    rec = TcpRecorder(replies=[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"],
                      framer=http_heads)
    with urllib.request.urlopen(f"http://127.0.0.1:{rec.port}/health?x=1", timeout=30) as resp:
        resp.read()
    return rec.wait()


def case_smtp() -> list[tuple[int, bytes]]:
    rec = TcpRecorder(banner=b"220 mx.local ESMTP\r\n", respond=lambda d: b"250 OK\r\n" if not d.startswith(b"QUIT")
                      else b"221 Bye\r\n", framer=lines)
    with smtplib.SMTP("127.0.0.1", rec.port, timeout=30) as client:
        client.ehlo("pod-1")
    return rec.wait()


def case_ftp() -> list[tuple[int, bytes]]:
    answers = {b"USER": b"331 Password\r\n", b"PASS": b"230 Logged in\r\n", b"QUIT": b"221 Bye\r\n"}
    rec = TcpRecorder(banner=b"220 (vsFTPd 3.0.3)\r\n", respond=lambda d: answers.get(d[:4], b"200 OK\r\n"),
                      framer=lines)
    client = ftplib.FTP()
    client.connect("127.0.0.1", rec.port, timeout=30)
    client.login("anonymous", "a@b")
    client.quit()
    return rec.wait()


def case_pop3() -> list[tuple[int, bytes]]:
    rec = TcpRecorder(banner=b"+OK POP3 ready\r\n", respond=lambda d: b"+OK\r\n", framer=lines)
    client = poplib.POP3("127.0.0.1", rec.port, timeout=30)
    client.user("alice")
    client.quit()
    return rec.wait()


def case_imap() -> list[tuple[int, bytes]]:
    def respond(data: bytes) -> bytes:
        tag = data.split(b" ", 1)[0]
        if b"CAPABILITY" in data:
            return b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n"
        return b"* BYE\r\n" + tag + b" OK done\r\n"

    rec = TcpRecorder(banner=b"* OK IMAP4rev1 ready\r\n", respond=respond, framer=lines)
    client = imaplib.IMAP4("127.0.0.1", rec.port, timeout=30)
    client.logout()
    return rec.wait()


def case_redis() -> list[tuple[int, bytes]]:
    import redis

    rec = TcpRecorder(respond=lambda d: b"+PONG\r\n" if b"PING" in d else b"+OK\r\n", framer=resp)
    client = redis.Redis(host="127.0.0.1", port=rec.port, socket_timeout=30, protocol=2)
    assert client.ping()
    client.close()
    return rec.wait()


def case_postgresql() -> list[tuple[int, bytes]]:
    import pg8000

    error = b"SFATAL\x00C28P01\x00Mpassword authentication failed\x00\x00"
    reply = b"E" + (4 + len(error)).to_bytes(4, "big") + error
    rec = TcpRecorder(respond=lambda d: b"N" if d == b"\x00\x00\x00\x08\x04\xd2\x16/" else reply,
                      framer=postgres_messages)
    with pytest.raises(pg8000.DatabaseError):
        pg8000.connect(user="app", password="wrong", host="127.0.0.1", port=rec.port, timeout=30)
    return rec.wait()


def case_mysql() -> list[tuple[int, bytes]]:
    import pymysql
    from test_dpi_identify_wire import _mysql_greeting

    def ok(data: bytes) -> bytes:  # an OK packet answering each client packet
        return b"\x07\x00\x00" + bytes([(data[3] + 1) & 0xFF]) + b"\x00\x00\x00\x02\x00\x00\x00"

    rec = TcpRecorder(banner=_mysql_greeting(), respond=ok, framer=mysql_packets)
    conn = pymysql.connect(host="127.0.0.1", port=rec.port, user="app", password="pw", connect_timeout=30)
    conn.close()
    return rec.wait()


def case_mqtt() -> list[tuple[int, bytes]]:
    import paho.mqtt.client as mqtt

    rec = TcpRecorder(replies=[b"\x20\x02\x00\x00"], framer=mqtt_packets)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sensor-7")
    client.connect("127.0.0.1", rec.port)
    deadline = time.monotonic() + 30
    while not client.is_connected() and time.monotonic() < deadline:  # until the CONNACK is read
        client.loop(timeout=0.5)
    assert client.is_connected()
    client.disconnect()
    return rec.wait()


def case_ssh() -> list[tuple[int, bytes]]:
    if shutil.which("ssh") is None:
        pytest.skip("OpenSSH client not installed")
    # hangs up after the client's banner and KEXINIT, so ssh exits at once
    rec = TcpRecorder(banner=b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", framer=ssh_messages, close_after=2)
    subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "ConnectTimeout=30",
                    "-o", "UserKnownHostsFile=/dev/null", "-p", str(rec.port), "nobody@127.0.0.1", "true"],
                   capture_output=True, timeout=120, check=False)
    return rec.wait()


def case_dns() -> list[tuple[int, bytes]]:
    import dns.message
    import dns.query

    def answer(data: bytes) -> bytes:
        query = dns.message.from_wire(data)
        return dns.message.make_response(query).to_wire()

    rec = UdpRecorder(reply=answer)
    query = dns.message.make_query("api.shop.example", "AAAA")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(query.to_wire(), ("127.0.0.1", rec.port))
    messages = rec.receive(1)
    sock.close()
    return messages


def case_syslog() -> list[tuple[int, bytes]]:
    rec = UdpRecorder()
    handler = logging.handlers.SysLogHandler(address=("127.0.0.1", rec.port))
    handler.setFormatter(logging.Formatter("%(asctime)s app[42]: %(message)s", datefmt="%b %d %H:%M:%S"))
    logger = logging.getLogger("dpi-syslog-test")
    logger.addHandler(handler)
    logger.warning("disk almost full")
    logger.removeHandler(handler)
    handler.close()
    return rec.receive(1)


# protocol -> (transport, client case)
CLIENT_CASES = {
    "http2": ("tcp", case_http2), "grpc": ("tcp", case_grpc), "etcd": ("tcp", case_etcd_grpc),
    "tls": ("tcp", case_tls), "http": ("tcp", case_http), "smtp": ("tcp", case_smtp), "ftp": ("tcp", case_ftp),
    "pop3": ("tcp", case_pop3), "imap": ("tcp", case_imap), "redis": ("tcp", case_redis),
    "postgresql": ("tcp", case_postgresql), "mysql": ("tcp", case_mysql), "mqtt": ("tcp", case_mqtt),
    "ssh": ("tcp", case_ssh), "dns": ("udp", case_dns), "syslog": ("udp", case_syslog),
}


@pytest.mark.parametrize("expected", sorted(CLIENT_CASES))
def test_protocol_identified_from_real_client(expected: str) -> None:
    l4, case = CLIENT_CASES[expected]
    messages = case()
    assert any(d == 0 for d, _ in messages) or expected in ("mysql",), messages
    result = tcp(messages) if l4 == "tcp" else udp(messages)
    assert result.flow()["net.proto"] == expected


def test_tls_client_metadata() -> None:
    flow = tcp(case_tls()).flow()
    assert flow["tls.sni"] == "api.shop.example"
    assert flow["tls.version"] == "TLSv1.3"
    assert re.fullmatch(r"[0-9a-f]{32}", flow["tls.ja3"])


def test_http2_and_grpc_metadata() -> None:
    flow = tcp(case_grpc()).flow()
    assert flow["http.uri"] == "/helloworld.Greeter/SayHello"
    assert flow["http.host"] == "svc.local"


def test_ssh_metadata() -> None:
    flow = tcp(case_ssh()).flow()
    assert flow["ssh.version"] == "2.0"
    assert flow["ssh.client"].startswith("SSH-2.0-OpenSSH")
    assert flow["ssh.server"] == "SSH-2.0-OpenSSH_9.2p1 Debian-2"


def test_dns_response_metadata() -> None:
    flow = udp(case_dns()).flow()
    assert (flow["dns.qname"], flow["dns.qtype"], flow["dns.rcode"]) == ("api.shop.example", "AAAA", 0)
