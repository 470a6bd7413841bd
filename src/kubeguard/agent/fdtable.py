"""The fd table: (pid, fd) -> the socket it holds, so events that name only an fd get `fd.*`.

A reverse shell connects a socket and then dup2()s it onto 0, 1 and 2; the dup event carries only
fd numbers. The table remembers the `fd.*` fields of every connect/accept, follows dup/dup2/dup3
(the new fd inherits the old fd's socket), forgets on close and exit, looks through the parent
chain for fds inherited across fork, and falls back to /proc/PID/fd + /proc/PID/net/{tcp,udp}[6].
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubeguard.agent.event_values import as_int

SocketFields = dict[str, Any]

DUP_TYPES = frozenset({"dup", "dup2", "dup3"})
SOCKET_OPEN_TYPES = frozenset({"connect", "accept", "accept4"})
EINPROGRESS = -115
SOCKET_TYPES = ("ipv4", "ipv6", "unix")


class FdTable:
    """Socket fds per process. `parent_of(pid)` (from the process table) resolves inherited fds."""

    def __init__(self, parent_of: Callable[[int], int] | None = None, proc: Path = Path("/proc"),
                 max_processes: int = 65536) -> None:
        self.parent_of = parent_of
        self.proc = proc
        self.max_processes = max_processes
        self._fds: dict[int, dict[int, SocketFields]] = {}

    def lookup(self, pid: int, fd: int) -> SocketFields | None:
        """The socket fields of `fd` in `pid` (or inherited from an ancestor, or read from /proc)."""
        current, hops = pid, 0
        while current and hops < 4:
            found = self._fds.get(current, {}).get(fd)
            if found is not None:
                return found
            if self.parent_of is None:
                break
            current, hops = self.parent_of(current), hops + 1
        return self._from_proc(pid, fd)

    def apply(self, event: dict[str, Any]) -> None:
        """Learn from one event, and fill its `fd.*` fields when it names a known socket fd."""
        etype = event.get("evt.type")
        pid = as_int(event.get("proc.pid"))
        if pid is None:
            return
        if etype in SOCKET_OPEN_TYPES:
            res = as_int(event.get("evt.rawres"))
            if res is not None and res < 0 and res != EINPROGRESS:
                return
            fd = as_int(event.get("fd.num"))
            if etype != "connect" and res is not None and res >= 0:
                fd = res  # accept returns the new fd
            if fd is not None and event.get("fd.type") in SOCKET_TYPES:
                self._remember(pid, fd, {k: v for k, v in event.items() if k.startswith("fd.") and k != "fd.num"})
        elif etype in DUP_TYPES:
            old = as_int(event.get("evt.arg.oldfd", event.get("evt.arg.fd")))
            new = as_int(event.get("evt.rawres"))
            if new is None:
                new = as_int(event.get("evt.arg.newfd"))
            if event.get("fd.type") in SOCKET_TYPES:  # the sensor read the socket itself
                sock: dict[str, Any] | None = {k: v for k, v in event.items()
                                               if k.startswith("fd.") and k != "fd.num"}
            else:
                sock = self.lookup(pid, old) if old is not None and "fd.type" not in event else None
            if sock is not None:
                for key, value in sock.items():
                    event.setdefault(key, value)
                event.setdefault("fd.num", old)
            if new is not None and new >= 0:
                if sock is not None:
                    self._remember(pid, new, sock)
                else:
                    self._fds.get(pid, {}).pop(new, None)
        elif etype == "close":
            fd = as_int(event.get("fd.num", event.get("evt.arg.fd")))
            if fd is not None:
                self._fds.get(pid, {}).pop(fd, None)
        elif etype == "procexit":
            self._fds.pop(pid, None)
        elif "fd.num" in event and "fd.type" not in event:
            fd = as_int(event.get("fd.num"))
            sock = self._fds.get(pid, {}).get(fd) if fd is not None else None
            if sock is not None:
                for key, value in sock.items():
                    event.setdefault(key, value)

    def _remember(self, pid: int, fd: int, fields: SocketFields) -> None:
        if pid not in self._fds and len(self._fds) >= self.max_processes:
            self._fds.pop(next(iter(self._fds)))
        self._fds.setdefault(pid, {})[fd] = fields

    def _from_proc(self, pid: int, fd: int) -> SocketFields | None:
        try:
            target = os.readlink(self.proc / str(pid) / "fd" / str(fd))
        except OSError:
            return None
        if not target.startswith("socket:["):
            return None
        inode = target[len("socket:["):-1]
        for name, family, proto in (("tcp", "ipv4", "tcp"), ("tcp6", "ipv6", "tcp"),
                                    ("udp", "ipv4", "udp"), ("udp6", "ipv6", "udp")):
            try:
                lines = (self.proc / str(pid) / "net" / name).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                if len(cols) > 9 and cols[9] == inode:
                    lip, lport = _hex_endpoint(cols[1])
                    rip, rport = _hex_endpoint(cols[2])
                    return socket_fields(family, proto, lip, lport, rip, rport)
        return None


def socket_fields(family: str, proto: str, lip: str, lport: int, rip: str, rport: int) -> SocketFields:
    """Falco's `fd.*` fields of a connected socket seen from its local end (client side)."""
    return {
        "fd.type": family, "fd.l4proto": proto,
        "fd.lip": lip, "fd.lport": lport, "fd.rip": rip, "fd.rport": rport,
        "fd.cip": lip, "fd.cport": lport, "fd.sip": rip, "fd.sport": rport,
        "fd.name": f"{lip}:{lport}->{rip}:{rport}",
    }


def _hex_endpoint(text: str) -> tuple[str, int]:
    """/proc/net/tcp's ``0100007F:1F90`` -> ("127.0.0.1", 8080); IPv6 in four host-order words."""
    addr_hex, port_hex = text.split(":")
    raw = bytes.fromhex(addr_hex)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port_hex, 16)
    words = struct.unpack("<4I", raw)
    return socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words)), int(port_hex, 16)


