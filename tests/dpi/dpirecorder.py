"""A loopback TCP/UDP peer that records what a real client sends and answers with scripted bytes.

The recorded exchange is then written into a pcap (tests.net.helpers) and inspected by the
engine, so identification is tested on bytes real client libraries put on the wire.

The TCP peer answers per protocol message, never per `recv`: a framer splits what arrived into
complete messages (two pipelined commands in one read get two answers; one command split over
two reads gets one), and it accepts reconnects until `wait()`. No read timeout decides when a
client is done: `wait()` is called after the client finished, and the peer then drains what is
already queued on the socket and stops.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable

# A framer takes the bytes received so far and returns (complete messages, bytes left over).
Framer = Callable[[bytes], tuple[list[bytes], bytes]]


def whole_reads(buf: bytes) -> tuple[list[bytes], bytes]:
    """Every read is one message (for peers that never answer, or protocols framed by the read)."""
    return ([buf] if buf else []), b""


def lines(buf: bytes) -> tuple[list[bytes], bytes]:
    """CRLF-terminated command lines (SMTP, FTP, POP3, IMAP)."""
    messages = []
    while (end := buf.find(b"\r\n")) >= 0:
        messages.append(buf[:end + 2])
        buf = buf[end + 2:]
    return messages, buf


def http_heads(buf: bytes) -> tuple[list[bytes], bytes]:
    """HTTP/1 requests without bodies: up to the blank line."""
    messages = []
    while (end := buf.find(b"\r\n\r\n")) >= 0:
        messages.append(buf[:end + 4])
        buf = buf[end + 4:]
    return messages, buf


def _resp_end(buf: bytes, pos: int) -> int:
    """End offset of the RESP value starting at `pos`, or -1 when it is not complete yet."""
    line_end = buf.find(b"\r\n", pos)
    if line_end < 0:
        return -1
    kind, head = buf[pos:pos + 1], buf[pos + 1:line_end]
    if kind == b"*":
        end = line_end + 2
        for _ in range(max(int(head), 0)):
            end = _resp_end(buf, end)
            if end < 0:
                return -1
        return end
    if kind == b"$":
        size = int(head)
        end = line_end + 2 + max(size, 0) + (2 if size >= 0 else 0)
        return end if len(buf) >= end else -1
    return line_end + 2  # inline command or simple value


def resp(buf: bytes) -> tuple[list[bytes], bytes]:
    """Redis RESP commands (arrays of bulk strings, or inline commands)."""
    messages = []
    while buf and (end := _resp_end(buf, 0)) > 0:
        messages.append(buf[:end])
        buf = buf[end:]
    return messages, buf


def tls_records(buf: bytes) -> tuple[list[bytes], bytes]:
    """TLS records: type, version, 2-byte length, payload."""
    messages = []
    while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], "big"):
        end = 5 + int.from_bytes(buf[3:5], "big")
        messages.append(buf[:end])
        buf = buf[end:]
    return messages, buf


def ssh_messages(buf: bytes) -> tuple[list[bytes], bytes]:
    """SSH: the identification line, then binary packets (4-byte length, payload)."""
    if buf.startswith(b"SSH-"):
        end = buf.find(b"\r\n")
        if end < 0:
            return [], buf
        first, rest = [buf[:end + 2]], buf[end + 2:]
    else:
        first, rest = [], buf
    while len(rest) >= 4 and len(rest) >= 4 + int.from_bytes(rest[:4], "big"):
        end = 4 + int.from_bytes(rest[:4], "big")
        first.append(rest[:end])
        rest = rest[end:]
    return first, rest


def mysql_packets(buf: bytes) -> tuple[list[bytes], bytes]:
    """MySQL packets: 3-byte little-endian length, sequence id, payload."""
    messages = []
    while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:3], "little"):
        end = 4 + int.from_bytes(buf[:3], "little")
        messages.append(buf[:end])
        buf = buf[end:]
    return messages, buf


def postgres_messages(buf: bytes) -> tuple[list[bytes], bytes]:
    """PostgreSQL frontend messages: untyped (SSLRequest, startup) while the buffer starts with a
    zero byte, typed (one letter + 4-byte length) otherwise."""
    messages = []
    while len(buf) >= 5:
        typed = buf[0] != 0
        offset = 1 if typed else 0
        end = offset + int.from_bytes(buf[offset:offset + 4], "big")
        if len(buf) < end:
            break
        messages.append(buf[:end])
        buf = buf[end:]
    return messages, buf


def mqtt_packets(buf: bytes) -> tuple[list[bytes], bytes]:
    """MQTT control packets: one header byte and a variable-length remaining length."""
    messages = []
    while len(buf) >= 2:
        length, shift, pos = 0, 0, 1
        while pos < len(buf) and pos <= 4:
            length |= (buf[pos] & 0x7F) << shift
            shift += 7
            pos += 1
            if not buf[pos - 1] & 0x80:
                break
        else:
            break
        if len(buf) < pos + length:
            break
        messages.append(buf[:pos + length])
        buf = buf[pos + length:]
    return messages, buf


class TcpRecorder:
    """Accepts connections until `wait()`; sends `banner` on each, then answers each complete message.

    A reply comes from `respond(message)` or else the next of `replies`; `close_after` ends a
    connection after that many client messages (for a peer that hangs up, as a TLS server that
    does not speak would).
    """

    def __init__(self, banner: bytes = b"", replies: list[bytes] | None = None,
                 respond: Callable[[bytes], bytes | None] | None = None, framer: Framer = whole_reads,
                 close_after: int | None = None) -> None:
        self.banner = banner
        self.replies = list(replies or [])
        self.respond = respond
        self.framer = framer
        self.close_after = close_after
        self.messages: list[tuple[int, bytes]] = []
        self.connections = 0
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.sock:
            while True:
                readable, _, _ = select.select([self.sock], [], [], 0.05)
                if not readable:
                    if self._stop.is_set():
                        return
                    continue
                conn, _ = self.sock.accept()
                self.connections += 1
                with conn:
                    self._converse(conn)

    def _converse(self, conn: socket.socket) -> None:
        if self.banner:
            conn.sendall(self.banner)
            self.messages.append((1, self.banner))
        pending, answered = b"", 0
        while True:
            readable, _, _ = select.select([conn], [], [], 0.05)
            if not readable:
                if self._stop.is_set():
                    return  # the client is done and nothing more is queued
                continue
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.messages.append((0, data))
            complete, pending = self.framer(pending + data)
            for message in complete:
                reply = self.respond(message) if self.respond else (self.replies.pop(0) if self.replies else None)
                if reply:
                    try:
                        conn.sendall(reply)
                    except OSError:
                        return
                    self.messages.append((1, reply))
                answered += 1
                if self.close_after is not None and answered >= self.close_after:
                    return

    def wait(self) -> list[tuple[int, bytes]]:
        """Call once the client is done: drain what is queued, stop, and return the exchange."""
        self._stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "recorder did not stop"
        return self.messages


class UdpRecorder:
    """Receives datagrams on loopback and answers each with `reply(data)` when given."""

    def __init__(self, reply: Callable[[bytes], bytes | None] | None = None) -> None:
        self.reply = reply
        self.messages: list[tuple[int, bytes]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]

    def receive(self, count: int = 1) -> list[tuple[int, bytes]]:
        for _ in range(count):
            data, peer = self.sock.recvfrom(65535)
            self.messages.append((0, data))
            answer = self.reply(data) if self.reply else None
            if answer:
                self.sock.sendto(answer, peer)
                self.messages.append((1, answer))
        self.sock.close()
        return self.messages
