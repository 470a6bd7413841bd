"""A loopback TCP/UDP peer that records what a real client sends and answers with scripted bytes.

The recorded exchange is then written into a pcap (tests.net.helpers) and inspected by the
engine, so identification is tested on bytes real client libraries put on the wire.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class TcpRecorder:
    """Accepts one connection; sends `banner`, then answers each client chunk with the next reply."""

    def __init__(self, banner: bytes = b"", replies: list[bytes] | None = None,
                 respond: Callable[[bytes], bytes | None] | None = None) -> None:
        self.banner = banner
        self.replies = list(replies or [])
        self.respond = respond
        self.messages: list[tuple[int, bytes]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(1.5)
        with conn:
            if self.banner:
                conn.sendall(self.banner)
                self.messages.append((1, self.banner))
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                self.messages.append((0, data))
                reply = self.respond(data) if self.respond else (self.replies.pop(0) if self.replies else None)
                if reply:
                    try:
                        conn.sendall(reply)
                    except OSError:
                        break
                    self.messages.append((1, reply))

    def wait(self) -> list[tuple[int, bytes]]:
        self.thread.join(15)
        self.sock.close()
        return self.messages


class UdpRecorder:
    """Receives datagrams on loopback and answers each with `reply(data)` when given."""

    def __init__(self, reply: Callable[[bytes], bytes | None] | None = None) -> None:
        self.reply = reply
        self.messages: list[tuple[int, bytes]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
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
