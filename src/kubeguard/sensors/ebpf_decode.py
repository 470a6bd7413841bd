"""Decode kubeguard.bt's output (bpftrace `-f json` lines) into Falco-named `Event`s.

Every printf line is one record: fields separated by \\x1f, the first the tag. Most tags carry
the common header (see kubeguard.bt) and become one event. Exec and mount are split by the
program into several lines (BPF's 512-byte stack): entry lines (A, V, MA) are kept per thread
id and joined with the exit line (X, MO); an exec is completed by its cwd lines (W) and emitted
when the cwd walk reached the root, or on the next record of the thread, or by `flush`.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from kubeguard.model import Event
from kubeguard.sensors.flags import (
    CLONE_FLAGS,
    L4_PROTOCOLS,
    MEMFD_FLAGS,
    NS_TYPES,
    PTRACE_REQUESTS,
    bit_names,
    cap_names,
    errno_result,
    mode_names,
    open_flags,
    tty_nr,
)

SEP = "\x1f"
HEADER_LEN = 11  # tag + 10 header fields
MAX_ARGV = 15
MAX_CWD = 9
STALE_NS = 1_000_000_000  # an exec still missing lines 1 s after its exit line is emitted as it is
PENDING_LIMIT = 8192  # pending execs/mounts kept at most (a lost exit line must not grow memory)
ID_ARGS = {
    "setuid": ("uid",), "setgid": ("gid",), "setreuid": ("ruid", "euid"), "setregid": ("rgid", "egid"),
    "setresuid": ("ruid", "euid", "suid"), "setresgid": ("rgid", "egid", "sgid"),
}
S_IFMT = 0o170000
FILE_TYPES = {0o140000: "unix", 0o100000: "file", 0o010000: "pipe", 0o040000: "directory", 0o020000: "file",
              0o060000: "file", 0o120000: "file"}


class DecodeError(ValueError):
    """A line that is not what kubeguard.bt prints."""


@dataclass
class PendingExec:
    """An exec being assembled from its entry (A, V), exit (X) and cwd (W) lines.

    Entry and exit lines can come from different CPUs (the process migrated during the exec), and
    bpftrace reads each CPU's buffer in turn, so either may arrive first."""

    filename: str = ""
    argv: list[str] = field(default_factory=list)
    argv_more: bool = False  # a V line with more arguments is still to come
    entry_seen: bool = False
    entry_ns: int = 0
    event: Event | None = None
    exit_ns: int = 0
    cwd: dict[int, list[tuple[str, bool]]] = field(default_factory=dict)
    cwd_done: bool = False  # the walk reached the root
    cwd_complete: bool = False  # no more W lines will come

    @property
    def ready(self) -> bool:
        return self.entry_seen and not self.argv_more and self.event is not None and self.cwd_complete


def syscall_of(probe: str) -> str:
    """``tracepoint:syscalls:sys_exit_openat`` -> ``openat``."""
    return probe.rsplit(":", 1)[-1].removeprefix("sys_exit_").removeprefix("sys_enter_")


def until_empty(values: list[str]) -> list[str]:
    """argv values up to the first empty one (the kernel's NULL terminator reads as "")."""
    out: list[str] = []
    for value in values:
        if value == "":
            break
        out.append(value)
    return out


def inet_fields(event: Event, family: int, proto: int, local: tuple[str, int], remote: tuple[str, int],
                client_is_local: bool) -> None:
    """Falco's fd.* fields of an inet socket: client/server from the direction, local/remote as seen here."""
    event["fd.type"] = "ipv6" if family == 10 else "ipv4"
    event["fd.typechar"] = "6" if family == 10 else "4"
    event["fd.l4proto"] = L4_PROTOCOLS.get(proto, str(proto))
    (lip, lport), (rip, rport) = local, remote
    client, server = (local, remote) if client_is_local else (remote, local)
    event.update({"fd.lip": lip, "fd.lport": lport, "fd.rip": rip, "fd.rport": rport,
                  "fd.cip": client[0], "fd.cport": client[1], "fd.sip": server[0], "fd.sport": server[1]})
    event["fd.name"] = f"{client[0]}:{client[1]}->{server[0]}:{server[1]}"
    event["evt.arg.tuple"] = event["fd.name"]


class BpftraceDecoder:
    """Turns kubeguard.bt's JSON lines into Events; counts what it could not parse and what was lost."""

    def __init__(self, clock_offset_ns: int = 0, sensor: str = "ebpf") -> None:
        self.clock_offset_ns = clock_offset_ns  # wall clock minus CLOCK_MONOTONIC (bpftrace's nsecs)
        self.sensor = sensor
        self.execs: dict[int, PendingExec] = {}
        self.mounts: dict[int, tuple[str, str, str]] = {}
        self.lost = 0
        self.parse_errors = 0
        self.events = 0
        self.ready = False
        self.latest_ns = 0
        self.expired_at = 0
        self.errors: list[str] = []  # bpftrace's own error lines (stderr is separate)

    # ---- input -------------------------------------------------------------------------
    def feed(self, line: str) -> list[Event]:
        """Decode one JSON line; returns the events it completes (0, 1 or 2). Never raises."""
        line = line.strip()
        if not line:
            return []
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if line.startswith("Lost ") and line.endswith(" events"):
                self.lost += int(line.split()[1])
                return []
            self.parse_errors += 1
            return []
        kind = record.get("type") if isinstance(record, dict) else None
        if kind == "printf":
            data = str(record.get("data", ""))
            if data == "READY\n":
                self.ready = True
                return []
            try:
                out = self.decode(data.rstrip("\n"))
            except (DecodeError, ValueError, IndexError):
                self.parse_errors += 1
                return []
            self.events += len(out)
            return out
        if kind == "lost_events":
            self.lost += int((record.get("data") or {}).get("events", 0))
        elif kind == "error":
            self.errors.append(str(record.get("data")))
        return []

    def flush(self) -> list[Event]:
        """Emit every exec still waiting for its cwd lines (at idle or shutdown)."""
        out = [self._finish_exec(p) for p in self.execs.values() if p.event is not None]
        self.execs.clear()
        self.events += len(out)
        return out

    # ---- records -------------------------------------------------------------------------
    def decode(self, data: str) -> list[Event]:
        parts = data.split(SEP)
        tag = parts[0]
        handler = getattr(self, f"_tag_{tag}", None)
        if handler is None:
            raise DecodeError(f"unknown record tag {tag!r}")
        return handler(parts)

    def _header(self, parts: list[str], evt_type: str) -> Event:
        if len(parts) < HEADER_LEN:
            raise DecodeError("short header")
        _, nsecs, pid, tid, ppid, uid, gid, cgroup, pidns, vpid, comm = parts[:HEADER_LEN]
        return Event({
            "evt.type": evt_type,
            "evt.dir": "<",
            "evt.time": int(nsecs) + self.clock_offset_ns,
            "proc.pid": int(pid),
            "proc.tid": int(tid),
            "proc.ppid": int(ppid),
            "proc.vpid": int(vpid),
            "proc.name": comm,
            "user.uid": int(uid),
            "group.gid": int(gid),
            "_cgroup_id": int(cgroup),
            "_pidns": int(pidns),
            "_sensor": self.sensor,
        })

    @staticmethod
    def _result(event: Event, ret: int) -> None:
        event["evt.rawres"] = ret
        event["evt.res"] = errno_result(ret)

    def _flush_tid(self, tid: int) -> list[Event]:
        pending = self.execs.get(tid)
        if pending is None or pending.event is None:
            return []
        del self.execs[tid]
        self.events += 1
        return [self._finish_exec(pending)]

    def _pending(self, tid: int) -> PendingExec:
        if len(self.execs) >= PENDING_LIMIT and tid not in self.execs:
            self.execs.pop(next(iter(self.execs)))
            self.parse_errors += 1
        return self.execs.setdefault(tid, PendingExec())

    def _complete(self, tid: int, pending: PendingExec) -> list[Event]:
        if not pending.ready:
            return []
        del self.execs[tid]
        self.events += 1
        return [self._finish_exec(pending)]

    def _expire(self, now_ns: int) -> list[Event]:
        """Emit execs whose missing lines are over STALE_NS late; forget entries whose exit never came."""
        out: list[Event] = []
        for tid, pending in list(self.execs.items()):
            if pending.event is not None and pending.exit_ns < now_ns - STALE_NS:
                del self.execs[tid]
                out.append(self._finish_exec(pending))
            elif pending.event is None and pending.entry_ns < now_ns - 5 * STALE_NS:
                del self.execs[tid]
        self.events += len(out)
        return out

    # exec: A (entry), V (more argv), X (exit), W (cwd)
    def _tag_A(self, parts: list[str]) -> list[Event]:
        tid = int(parts[3])
        out: list[Event] = []
        pending = self.execs.get(tid)
        if pending is not None and pending.entry_seen:  # a previous exec of this thread, done or orphaned
            out = self._flush_tid(tid)
            self.execs.pop(tid, None)
            pending = None
        if pending is None:
            pending = self._pending(tid)
        pending.entry_seen = True
        pending.entry_ns = int(parts[1])
        pending.filename = parts[HEADER_LEN]
        pending.argv = until_empty(parts[HEADER_LEN + 1:HEADER_LEN + 4])
        pending.argv_more = len(pending.argv) == 3 and parts[HEADER_LEN + 4:HEADER_LEN + 5] == ["1"]
        return out + self._complete(tid, pending)

    def _tag_V(self, parts: list[str]) -> list[Event]:
        tid, first = int(parts[1]), int(parts[2])
        pending = self.execs.get(tid)
        if pending is None or not pending.entry_seen or len(pending.argv) != first:
            return []
        pending.argv.extend(until_empty(parts[3:7]))
        pending.argv_more = len(pending.argv) == first + 4 < MAX_ARGV and parts[7:8] == ["1"]
        return self._complete(tid, pending)

    def _tag_X(self, parts: list[str]) -> list[Event]:
        tid = int(parts[3])
        out: list[Event] = []
        pending = self.execs.get(tid)
        if pending is not None and pending.event is not None:  # the previous exec's lines are all in
            out = self._flush_tid(tid)
            pending = None
        if pending is None:
            pending = self._pending(tid)
        event = self._header(parts, "execve")
        ret, loginuid, sid, tty_major, tty_minor = (int(v) for v in parts[HEADER_LEN:HEADER_LEN + 5])
        self._result(event, ret)
        event["user.loginuid"] = -1 if loginuid == 0xFFFFFFFF else loginuid
        event["proc.sid"] = sid
        event["proc.tty"] = tty_nr(tty_major, tty_minor)
        pending.event = event
        pending.exit_ns = int(parts[1])
        self.latest_ns = max(self.latest_ns, pending.exit_ns)
        if pending.exit_ns - self.expired_at > STALE_NS:
            self.expired_at = pending.exit_ns
            out += self._expire(pending.exit_ns)
        return out

    def _tag_W(self, parts: list[str]) -> list[Event]:
        tid, first = int(parts[1]), int(parts[2])
        pending = self.execs.get(tid)
        if pending is None or pending.event is None:
            return []
        names = []
        for item in parts[3:6]:
            name, _, is_root = item.rpartition("|")
            names.append((name, is_root == "1"))
            if is_root == "1":
                pending.cwd_done = True
                break
        pending.cwd[first] = names
        if len(parts) > 6 and parts[6] == "1":
            pending.cwd_done = True
        pending.cwd_complete = pending.cwd_done or first + 3 >= MAX_CWD
        return self._complete(tid, pending)

    @staticmethod
    def _cwd(pending: PendingExec) -> str:
        names: list[str] = []
        for first in sorted(pending.cwd):
            for name, is_root in pending.cwd[first]:
                if is_root:
                    break
                if name and name != "/":
                    names.append(name)
        path = "/" + "/".join(reversed(names))
        if not pending.cwd_done:
            path = "..." + path
        return path if path.endswith("/") else path + "/"

    def _finish_exec(self, pending: PendingExec) -> Event:
        event = pending.event
        assert event is not None
        argv = pending.argv
        cwd = self._cwd(pending) if pending.cwd else ""
        exepath = pending.filename
        if exepath and not exepath.startswith("/") and cwd.startswith("/"):
            exepath = posixpath.normpath(posixpath.join(cwd, exepath))
        args = " ".join(argv[1:])
        event["proc.exepath"] = exepath
        event["proc.exe"] = argv[0] if argv else exepath
        event["proc.args"] = args
        event["proc.cmdline"] = f"{event['proc.name']} {args}".rstrip()
        event["evt.arg.filename"] = pending.filename
        if cwd:
            event["proc.cwd"] = cwd
        if len(argv) >= MAX_ARGV:
            event["_argv_truncated"] = True
        return event

    def _tag_Q(self, parts: list[str]) -> list[Event]:
        out = self._flush_tid(int(parts[3]))
        event = self._header(parts, "procexit")
        status = int(parts[HEADER_LEN])
        event.update({"evt.arg.status": status, "evt.arg.ret": status >> 8 & 0xFF, "evt.arg.sig": status & 0x7F,
                      "evt.arg.core": int(bool(status & 0x80))})
        return [*out, event]

    # network
    def _connect(self, parts: list[str], family: int) -> list[Event]:
        event = self._header(parts, "connect")
        fd, ret, proto = (int(v) for v in parts[HEADER_LEN:HEADER_LEN + 3])
        raddr, rport, laddr, lport = parts[HEADER_LEN + 3:HEADER_LEN + 7]
        self._result(event, ret)
        event["fd.num"] = fd
        event["evt.arg.fd"] = fd
        inet_fields(event, family, proto, (laddr, int(lport)), (raddr, int(rport)), client_is_local=True)
        return [event]

    def _tag_C4(self, parts: list[str]) -> list[Event]:
        return self._connect(parts, 2)

    def _tag_C6(self, parts: list[str]) -> list[Event]:
        return self._connect(parts, 10)

    def _tag_CU(self, parts: list[str]) -> list[Event]:
        event = self._header(parts, "connect")
        fd, ret = int(parts[HEADER_LEN]), int(parts[HEADER_LEN + 1])
        self._result(event, ret)
        path = parts[HEADER_LEN + 2]
        event.update({"fd.num": fd, "evt.arg.fd": fd, "fd.type": "unix", "fd.typechar": "u", "fd.name": path,
                      "evt.arg.addr": path})
        return [event]

    def _accept(self, parts: list[str], family: int) -> list[Event]:
        event = self._header(parts, syscall_of(parts[HEADER_LEN]))
        fd, proto = int(parts[HEADER_LEN + 1]), int(parts[HEADER_LEN + 2])
        raddr, rport, laddr, lport = parts[HEADER_LEN + 3:HEADER_LEN + 7]
        self._result(event, fd)
        event["fd.num"] = fd
        inet_fields(event, family, proto, (laddr, int(lport)), (raddr, int(rport)), client_is_local=False)
        return [event]

    def _tag_AC4(self, parts: list[str]) -> list[Event]:
        return self._accept(parts, 2)

    def _tag_AC6(self, parts: list[str]) -> list[Event]:
        return self._accept(parts, 10)

    # files
    def _tag_O(self, parts: list[str]) -> list[Event]:
        event = self._header(parts, syscall_of(parts[HEADER_LEN]))
        ret, flags, mode = (int(v) for v in parts[HEADER_LEN + 1:HEADER_LEN + 4])
        path = parts[HEADER_LEN + 4]
        self._result(event, ret)
        access = flags & 3
        directory, filename = posixpath.split(path)
        event.update({
            "fd.num": ret if ret >= 0 else -1, "fd.name": path, "fd.type": "file", "fd.typechar": "f",
            "fd.directory": directory, "fd.filename": filename,
            "evt.arg.name": path, "evt.arg.flags": open_flags(flags), "evt.rawarg.flags": flags,
            "evt.arg.mode": mode, "evt.arg.fd": ret,
            "evt.is_open_read": access in (0, 2), "evt.is_open_write": access in (1, 2),
            "evt.is_open_exec": False,
        })
        return [event]

    def _tag_CHM(self, parts: list[str]) -> list[Event]:
        syscall = syscall_of(parts[HEADER_LEN])
        event = self._header(parts, syscall)
        ret, fd, mode = (int(v) for v in parts[HEADER_LEN + 1:HEADER_LEN + 4])
        path = parts[HEADER_LEN + 4]
        self._result(event, ret)
        event.update({"evt.arg.mode": mode_names(mode), "evt.rawarg.mode": mode, "fd.name": path})
        if syscall == "fchmod":
            event["evt.arg.fd"] = fd
        else:
            event["evt.arg.filename"] = path
            if syscall != "chmod":
                event["evt.arg.dirfd"] = fd
        return [event]

    def _tag_MF(self, parts: list[str]) -> list[Event]:
        event = self._header(parts, "memfd_create")
        ret, flags = int(parts[HEADER_LEN]), int(parts[HEADER_LEN + 1])
        self._result(event, ret)
        name = parts[HEADER_LEN + 2]
        event.update({"evt.arg.fd": ret, "fd.num": ret, "evt.arg.name": name, "fd.name": f"memfd:{name}",
                      "evt.arg.flags": bit_names(flags, MEMFD_FLAGS), "evt.rawarg.flags": flags})
        return [event]

    def _tag_DUP(self, parts: list[str]) -> list[Event]:
        event = self._header(parts, syscall_of(parts[HEADER_LEN]))
        ret, oldfd, newfd, flags, imode, family, proto = (int(v) for v in parts[HEADER_LEN + 1:HEADER_LEN + 8])
        laddr, lport, raddr, rport = parts[HEADER_LEN + 8:HEADER_LEN + 12]
        self._result(event, ret)
        event.update({"evt.arg.oldfd": oldfd, "evt.arg.newfd": newfd, "evt.arg.flags": flags, "fd.num": newfd})
        if family in (2, 10):
            # a socket duplicated onto stdin/out/err: the client side is this end when it connected out
            inet_fields(event, family, proto, (laddr, int(lport)), (raddr, int(rport)), client_is_local=True)
        else:
            kind = "unix" if family == 1 else FILE_TYPES.get(imode & S_IFMT, "file")
            event["fd.type"] = kind
            event["fd.typechar"] = {"unix": "u", "pipe": "p", "directory": "d"}.get(kind, "f")
        return [event]

    # privileges, namespaces, mounts, modules
    def _tag_ID(self, parts: list[str]) -> list[Event]:
        syscall = syscall_of(parts[HEADER_LEN])
        event = self._header(parts, syscall)
        ret = int(parts[HEADER_LEN + 1])
        self._result(event, ret)
        values = [int(v) for v in parts[HEADER_LEN + 2:HEADER_LEN + 5]]
        for name, value in zip(ID_ARGS.get(syscall, ()), values, strict=False):
            event[f"evt.arg.{name}"] = value
        return [event]

    def _tag_CAP(self, parts: list[str]) -> list[Event]:
        event = self._header(parts, "capset")
        ret, eff_lo, eff_hi, perm_lo, perm_hi, inh_lo, inh_hi = (int(v) for v in parts[HEADER_LEN:HEADER_LEN + 7])
        self._result(event, ret)
        for name, lo, hi in (("cap_effective", eff_lo, eff_hi), ("cap_permitted", perm_lo, perm_hi),
                             ("cap_inheritable", inh_lo, inh_hi)):
            mask = hi << 32 | lo
            event[f"evt.arg.{name}"] = cap_names(mask)
            event[f"evt.rawarg.{name}"] = mask
        return [event]

    def _tag_PT(self, parts: list[str]) -> list[Event]:
        event = self._header(parts, "ptrace")
        ret, request, target = (int(v) for v in parts[HEADER_LEN:HEADER_LEN + 3])
        self._result(event, ret)
        event.update({"evt.arg.request": PTRACE_REQUESTS.get(request, str(request)), "evt.rawarg.request": request,
                      "evt.arg.pid": target})
        return [event]

    def _tag_MA(self, parts: list[str]) -> list[Event]:
        if len(self.mounts) >= PENDING_LIMIT:
            self.mounts.clear()
        self.mounts[int(parts[1])] = (parts[2], parts[3], parts[4])
        return []

    def _tag_MO(self, parts: list[str]) -> list[Event]:
        event = self._header(parts, "mount")
        ret, flags = int(parts[HEADER_LEN]), int(parts[HEADER_LEN + 1])
        self._result(event, ret)
        source, target, fstype = self.mounts.pop(int(parts[3]), ("", "", ""))
        event.update({"evt.arg.dev": source, "evt.arg.dir": target, "evt.arg.type": fstype,
                      "evt.arg.source": source, "evt.arg.target": target, "evt.arg.flags": flags,
                      "fd.name": target})
        return [event]

    def _tag_UM(self, parts: list[str]) -> list[Event]:
        event = self._header(parts, "umount")
        ret, flags = int(parts[HEADER_LEN]), int(parts[HEADER_LEN + 1])
        self._result(event, ret)
        target = parts[HEADER_LEN + 2]
        event.update({"evt.arg.name": target, "evt.arg.target": target, "evt.arg.flags": flags, "fd.name": target})
        return [event]

    def _tag_NS(self, parts: list[str]) -> list[Event]:
        syscall = syscall_of(parts[HEADER_LEN])
        event = self._header(parts, syscall)
        ret, a, b = (int(v) for v in parts[HEADER_LEN + 1:HEADER_LEN + 4])
        self._result(event, ret)
        if syscall == "unshare":
            event.update({"evt.arg.flags": bit_names(a, CLONE_FLAGS), "evt.rawarg.flags": a})
        else:
            event.update({"evt.arg.fd": a, "evt.arg.nstype": NS_TYPES.get(b, str(b)), "evt.rawarg.nstype": b})
        return [event]

    def _tag_MOD(self, parts: list[str]) -> list[Event]:
        event = self._header(parts, syscall_of(parts[HEADER_LEN]))
        self._result(event, int(parts[HEADER_LEN + 1]))
        return [event]


def decode_lines(lines: list[str], clock_offset_ns: int = 0) -> list[Event]:
    """Decode a whole recorded bpftrace output (tests, replays)."""
    decoder = BpftraceDecoder(clock_offset_ns)
    events: list[Event] = []
    for line in lines:
        events.extend(decoder.feed(line))
    events.extend(decoder.flush())
    return events


def strip_internal(event: dict[str, Any]) -> dict[str, Any]:
    """The event without its internal ``_`` keys (what outputs print)."""
    return {k: v for k, v in event.items() if not k.startswith("_")}
