"""The recording peer answers per protocol message, whatever the reads look like."""

from __future__ import annotations

import socket

import pytest
from dpirecorder import TcpRecorder, lines, mqtt_packets, mysql_packets, postgres_messages, resp


def _exchange(rec: TcpRecorder, chunks: list[bytes], replies_expected: int) -> bytes:
    """Send `chunks` (each in its own write) and read until `replies_expected` replies are in."""
    received = b""
    with socket.create_connection(("127.0.0.1", rec.port), timeout=30) as conn:
        for chunk in chunks:
            conn.sendall(chunk)
        while received.count(b"\r\n") < replies_expected:
            data = conn.recv(4096)
            assert data, "peer closed early"
            received += data
    rec.wait()
    return received


def test_pipelined_redis_commands_each_get_a_reply() -> None:
    two = b"*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$8\r\nLIB-NAME\r\n$8\r\nredis-py\r\n" * 2 + b"PING\r\n"
    rec = TcpRecorder(respond=lambda d: b"+PONG\r\n" if b"PING" in d else b"+OK\r\n", framer=resp)
    assert _exchange(rec, [two], 3) == b"+OK\r\n+OK\r\n+PONG\r\n"


def test_a_command_split_over_two_writes_gets_one_reply() -> None:
    rec = TcpRecorder(respond=lambda d: b"250 " + d, framer=lines)
    assert _exchange(rec, [b"EHLO po", b"d-1\r\nNOOP\r\n"], 2) == b"250 EHLO pod-1\r\n250 NOOP\r\n"


def test_the_peer_accepts_a_reconnect() -> None:
    rec = TcpRecorder(respond=lambda d: b"+OK\r\n", framer=resp)
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", rec.port), timeout=30) as conn:
            conn.sendall(b"PING\r\n")
            assert conn.recv(16) == b"+OK\r\n"
    rec.wait()
    assert rec.connections == 2


@pytest.mark.parametrize(("framer", "stream", "count"), [
    (resp, b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$-1\r\n*1\r\n$4\r\nPI", 2),
    (mysql_packets, b"\x01\x00\x00\x00\x01\x02\x00\x00\x01ab\x05\x00", 2),
    (postgres_messages, b"\x00\x00\x00\x08\x04\xd2\x16/" + b"p\x00\x00\x00\x06ab" + b"X\x00\x00", 2),
    (mqtt_packets, b"\x10\x02ab\xe0\x00\x30\x80\x01" + b"x" * 100, 2),
])
def test_framers_split_complete_messages_and_keep_the_rest(framer, stream: bytes, count: int) -> None:
    messages, rest = framer(stream)
    assert len(messages) == count
    assert b"".join(messages) + rest == stream
    assert rest
