"""SSH identification banners (RFC 4253 section 4.2): `SSH-protoversion-softwareversion comments`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class SshBanner:
    proto_version: str  # "2.0", "1.99", "1.5"
    software: str
    raw: str


def parse_banner(data: bytes) -> SshBanner | None:
    """The banner line among the first bytes (servers may send other lines before it)."""
    for line in data[:4096].split(b"\n")[:20]:
        if line.startswith(b"SSH-"):
            text = line.rstrip(b"\r").decode("ascii", "replace")[:255]
            parts = text.split("-", 2)
            if len(parts) < 3:
                return None
            return SshBanner(parts[1], parts[2].split(" ", 1)[0], text)
    return None


class SshStream:
    """One direction of an SSH connection until its banner line is complete."""

    def __init__(self, on_banner: Callable[[SshBanner], None]) -> None:
        self.on_banner = on_banner
        self.failed = False
        self.done = False
        self._buf = b""

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self._buf += data
        banner = parse_banner(self._buf)
        if banner is not None and b"\n" in self._buf[self._buf.find(b"SSH-"):]:
            self.done = True
            self.on_banner(banner)
        elif len(self._buf) > 4096:
            self.failed = True

    def close(self) -> None:
        """End of the direction: nothing is held back to report."""
