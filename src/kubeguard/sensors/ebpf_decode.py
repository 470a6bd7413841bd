"""Decode kubeguard.bt's output (bpftrace `-f json` lines) into Falco-named `Event`s.

Every printf line is one record: fields separated by \\x1f, the first the tag. `LAYOUTS` names
the fields of each tag, in the order kubeguard.bt prints them, with their type; handlers read
them by name (`Fields`). Most tags carry the common header (`HEADER`) and become one event.
Exec and mount are split by the program into several lines (BPF's 512-byte stack): entry lines
(A, V, MA) are joined with their exit line (X, MO) by thread id and the entry's kernel timestamp, which the exit
line repeats (the two may come from two CPUs' rings, read far apart, in either order); an exec is completed by
its cwd lines (W) and emitted once all its lines are in, or STALE_NS after its exit, or by `flush`. The compiled
exec probe prints a successful exec as one line (E), decoded at once.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeguard.model import Event
from kubeguard.sensors.base import ENV_LIMIT, environ_text
from kubeguard.sensors.flags import (
    CLONE_FLAGS,
    L4_PROTOCOLS,
    LINKAT_FLAGS,
    MEMFD_FLAGS,
    NS_TYPES,
    PTRACE_REQUESTS,
    RENAMEAT2_FLAGS,
    UNLINKAT_FLAGS,
    bit_names,
    cap_names,
    errno_result,
    mode_names,
    open_flags,
    tty_nr,
)

SEP = "\x1f"
MAX_ARGV = 15  # arguments on A and V lines (63 bytes each)
E_MAX_ARGV = 512  # arguments on an E line (every one in the probe's 1024-byte copy, whole)
MAX_CWD = 9
# An exec still missing lines 5 s (of kernel time) after its exit line is emitted as it is. bpftrace drains one
# CPU's ring after another: on a loaded node a thread's entry line can come in after exit lines stamped over a
# second later (1 s emitted execs without their arguments under load).
STALE_NS = 5_000_000_000
ENV_CHUNK = 64  # bytes of the environment per %r field of an XE line
PENDING_LIMIT = 8192  # pending execs/mounts kept at most (a lost exit line must not grow memory)
ID_ARGS = {
    "setuid": ("uid",), "setgid": ("gid",), "setreuid": ("ruid", "euid"), "setregid": ("rgid", "egid"),
    "setresuid": ("ruid", "euid", "suid"), "setresgid": ("rgid", "egid", "sgid"),
}
O_CREAT = 0o100
O_DIRECTORY = 0o200000
S_IFMT = 0o170000
FILE_TYPES = {0o140000: "unix", 0o100000: "file", 0o010000: "pipe", 0o040000: "directory", 0o020000: "file",
              0o060000: "file", 0o120000: "file"}


FieldSpec = tuple[str, Callable[[str], Any]]
# The common header of kubeguard.bt's event lines, after the tag.
HEADER: tuple[FieldSpec, ...] = (
    ("nsecs", int), ("pid", int), ("tid", int), ("ppid", int), ("uid", int), ("gid", int), ("cgroup", int),
    ("pidns", int), ("vpid", int), ("comm", str),
)
HEADER_LEN = 1 + len(HEADER)  # tag + header fields


@dataclass(frozen=True, slots=True)
class Layout:
    """The fields of one record tag: name -> (position in the line, type)."""

    tag: str
    fields: dict[str, tuple[int, Callable[[str], Any]]]

    @classmethod
    def of(cls, tag: str, *fields: FieldSpec, header: bool = True) -> Layout:
        specs = (*HEADER, *fields) if header else fields
        return cls(tag, {name: (position, kind) for position, (name, kind) in enumerate(specs, 1)})


def _layouts(*layouts: Layout) -> dict[str, Layout]:
    table: dict[str, Layout] = {}
    for layout in layouts:
        if layout.tag in table:
            raise ValueError(f"record tag {layout.tag} declared twice")
        table[layout.tag] = layout
    return table


_INET = (("raddr", str), ("rport", int), ("laddr", str), ("lport", int))
# Every record kubeguard.bt prints (the printf of each tag lists the same fields in the same order).
LAYOUTS = _layouts(
    # exec: entry (A), more argv (V), exit (X), cwd walk (W); the strings "1" flag "more to come" / "at root"
    Layout.of("A", ("filename", str), ("argv0", str), ("argv1", str), ("argv2", str), ("more", str)),
    Layout.of("V", ("tid", int), ("first", int), ("argv0", str), ("argv1", str), ("argv2", str), ("argv3", str),
              ("more", str), header=False),
    Layout.of("X", ("ret", int), ("loginuid", int), ("sid", int), ("tty_major", int), ("tty_minor", int),
              ("filename", str), ("entry_ns", int)),
    Layout.of("W", ("tid", int), ("first", int), ("cwd0", str), ("cwd1", str), ("cwd2", str), ("at_root", str),
              header=False),
    Layout.of("Q", ("status", int)),
    # a whole successful exec in one line (the compiled exec probe's form of A, V, XE, XF, X and W): argc argv
    # fields follow, each whole, empty ones too, up to E_MAX_ARGV (the probe writes the separator in a string as
    # U+FFFD; argv_cut: 1 when its copy of the arguments was full or held more), then the environment as proc.env
    # (all fields up to the last: it keeps its separators) and its state ("" none read, "0" whole, "1" cut at
    # ENV_LIMIT, "x" on XE lines before this one)
    Layout.of("E", ("ret", int), ("loginuid", int), ("sid", int), ("tty_major", int), ("tty_minor", int),
              ("facts", int), ("permitted", int), ("effective", int), ("inheritable", int), ("filename", str),
              ("cwd", str), ("argv_cut", int), ("argc", int)),
    # network
    Layout.of("C4", ("fd", int), ("ret", int), ("proto", int), *_INET),
    Layout.of("C6", ("fd", int), ("ret", int), ("proto", int), *_INET),
    Layout.of("CU", ("fd", int), ("ret", int), ("path", str)),
    Layout.of("AC4", ("probe", str), ("fd", int), ("proto", int), *_INET),
    Layout.of("AC6", ("probe", str), ("fd", int), ("proto", int), *_INET),
    # files
    Layout.of("O", ("probe", str), ("ret", int), ("flags", int), ("mode", int), ("dirfd", int), ("caps", int),
              ("path", str)),
    Layout.of("CHM", ("probe", str), ("ret", int), ("fd", int), ("mode", int), ("path", str)),
    Layout.of("MF", ("ret", int), ("flags", int), ("name", str)),
    Layout.of("DUP", ("probe", str), ("ret", int), ("oldfd", int), ("newfd", int), ("flags", int), ("imode", int),
              ("family", int), ("proto", int), ("laddr", str), ("lport", int), ("raddr", str), ("rport", int)),
    # Falco file-system rules: one- and two-path calls (unlink, rmdir, mkdir; link, rename, symlink)
    Layout.of("P1", ("probe", str), ("ret", int), ("dirfd", int), ("flags", int), ("path", str)),
    Layout.of("P2", ("probe", str), ("ret", int), ("olddirfd", int), ("newdirfd", int), ("flags", int),
              ("oldpath", str), ("newpath", str)),
    # privileges, namespaces, mounts, modules
    Layout.of("ID", ("probe", str), ("ret", int), ("id0", int), ("id1", int), ("id2", int)),
    Layout.of("CAP", ("ret", int), ("eff_lo", int), ("eff_hi", int), ("perm_lo", int), ("perm_hi", int),
              ("inh_lo", int), ("inh_hi", int)),
    Layout.of("PT", ("ret", int), ("request", int), ("target", int)),
    Layout.of("MA", ("tid", int), ("source", str), ("target", str), ("fstype", str), ("entry_ns", int),
              header=False),
    Layout.of("MO", ("ret", int), ("flags", int), ("entry_ns", int)),
    Layout.of("UM", ("ret", int), ("flags", int), ("target", str)),
    Layout.of("NS", ("probe", str), ("ret", int), ("a", int), ("b", int)),
    Layout.of("MOD", ("probe", str), ("ret", int)),
    # Falco process/network rules (falcoproc): packet sockets
    Layout.of("TC", ("tid", int), ("permitted", int), ("effective", int), header=False),
    Layout.of("SK", ("ret", int), ("domain", int), ("type", int), ("proto", int)),
    # Falco process/privilege rules (falcolive1): exec facts (XF, before its X); bpf program loads; userfaultfd
    Layout.of("XF", ("tid", int), ("facts", int), ("permitted", int), ("effective", int), ("inheritable", int),
              header=False),
    Layout.of("BPF", ("ret", int), ("cmd", int)),
    # Falco's proc.env (env12): 256 bytes of the new program's environment per line (XE, before its X)
    Layout.of("XE", ("tid", int), ("offset", int), ("length", int), ("chunk0", str), ("chunk1", str),
              ("chunk2", str), ("chunk3", str), header=False),
    Layout.of("UF", ("ret", int), ("flags", int)),
    Layout.of("RV", ("ret", int), ("fd", int), ("family", int), ("data", str)),
    # Falco network rules (falcolive2): datagrams sent to a new destination without connect()
    Layout.of("SD4", ("probe", str), ("fd", int), ("ret", int), ("proto", int), *_INET),
    Layout.of("SD6", ("probe", str), ("fd", int), ("ret", int), ("proto", int), *_INET),
    # ... and received from a new sender on an unconnected socket
    Layout.of("RD4", ("probe", str), ("fd", int), ("ret", int), ("proto", int), *_INET),
    Layout.of("RD6", ("probe", str), ("fd", int), ("ret", int), ("proto", int), *_INET),
)
# The E line's fields by position (read without `Fields`: the E line is half of every exec's decoding)
(_E_NSECS, _E_TID, _E_RET, _E_LOGINUID, _E_SID, _E_TTY_MAJOR, _E_TTY_MINOR, _E_FACTS, _E_PERMITTED, _E_EFFECTIVE,
 _E_INHERITABLE, _E_FILENAME, _E_CWD, _E_ARGV_CUT, _E_ARGC) = (LAYOUTS["E"].fields[name][0] for name in (
    "nsecs", "tid", "ret", "loginuid", "sid", "tty_major", "tty_minor", "facts", "permitted", "effective",
    "inheritable", "filename", "cwd", "argv_cut", "argc"))
# XF facts (kubeguard.bt's execfacts section; the memfd fact had a line of its own, XM, before 2026-12-05)
FACT_PGRP_LEADER, FACT_UPPER_LAYER, FACT_PID_ONE, FACT_FROM_MEMFD = 1, 2, 4, 8
BPF_COMMANDS = {5: "BPF_PROG_LOAD"}
UFFD_FLAGS = ((0o2000000, "O_CLOEXEC"), (0o4000, "O_NONBLOCK"), (1, "UFFD_USER_MODE_ONLY"))


_PRINTF_HEAD, _PRINTF_TAIL, _JSON_SEP = '{"type": "printf", "data": "', '\\n"}', "\\u001f"


def _plain_printf(line: str) -> str | None:
    """The data of a printf line whose only JSON escapes are the field separators and the final newline (what
    bpftrace and the exec probe print for nearly every record), without its newline; None for any other line."""
    if not (line.startswith(_PRINTF_HEAD) and line.endswith(_PRINTF_TAIL)):
        return None
    data = line[len(_PRINTF_HEAD):-len(_PRINTF_TAIL)].replace(_JSON_SEP, SEP)
    if "\\" in data or '"' in data:  # another escape (or a stray quote): the JSON parser decides
        return None
    return data


class Fields:
    """One record's fields by name, converted to their layout's type on access.

    A missing field raises IndexError (the line is a parse error), except through `get` and
    `run`, for the trailing fields the program may leave out."""

    __slots__ = ("layout", "parts")

    def __init__(self, layout: Layout, parts: list[str]) -> None:
        self.layout, self.parts = layout, parts

    def __getitem__(self, name: str) -> Any:
        position, kind = self.layout.fields[name]
        return kind(self.parts[position])

    def get(self, name: str) -> Any:
        """The field, or None when the line ends before it."""
        position, kind = self.layout.fields[name]
        return kind(self.parts[position]) if position < len(self.parts) else None

    def run(self, first: str, count: int) -> list[str]:
        """Up to `count` raw fields from `first` on (fewer when the line ends sooner)."""
        position = self.layout.fields[first][0]
        return self.parts[position:position + count]


SOCKET_DOMAINS = {1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}


class DecodeError(ValueError):
    """A line that is not what kubeguard.bt prints."""


# the exec lines (entry, argv, exit, cwd, facts, environment) and the process exit, which pair or hold themselves
EXEC_TAGS = frozenset({"A", "V", "X", "W", "XF", "XE", "Q", "E"})

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
    exit_filename: str | None = None  # the filename the exit line names (its own entry's, kept in the kernel)
    cwd: dict[int, list[tuple[str, bool]]] = field(default_factory=dict)
    cwd_done: bool = False  # the walk reached the root
    cwd_complete: bool = False  # no more W lines will come
    exit_entry_ns: int | None = None  # the entry's timestamp the exit line repeats (None in old recordings)
    after: list[Event] = field(default_factory=list)  # the thread's later events (procexit) held behind this exec

    @property
    def ready(self) -> bool:
        return self.entry_seen and not self.argv_more and self.event is not None and self.cwd_complete

    def time(self) -> int:
        """Kernel time of the exec's first line (its entry's when seen)."""
        return self.entry_ns if self.entry_seen and self.entry_ns else self.exit_ns

    def pairs_with(self, entry_ns: int, filename: str) -> bool:
        """Whether an entry line (A) stamped `entry_ns` naming `filename` is this exit-only exec's entry."""
        if self.exit_entry_ns is not None:
            return self.exit_entry_ns == entry_ns
        return entry_ns <= self.exit_ns and self.exit_filename in (None, filename)


def syscall_of(probe: str) -> str:
    """``tracepoint:syscalls:sys_exit_openat`` -> ``openat``."""
    return probe.rsplit(":", 1)[-1].removeprefix("sys_exit_").removeprefix("sys_enter_")


def absolute_name(path: str) -> str:
    """Falco's resolved name of an absolute path (``/var/../etc/x`` -> ``/etc/x``); relative paths as written.

    Falco joins relative names to the cwd or the dirfd's path; this sensor knows neither at the call."""
    if not path.startswith("/"):
        return path
    name = posixpath.normpath(path)
    return "/" + name.lstrip("/")


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
    event["fd.sockfamily"] = "ip"  # libsinsp: "ip" for AF_INET and AF_INET6 sockets, "unix" for AF_UNIX
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
        self.execs: dict[int, list[PendingExec]] = {}  # per thread id, the execs still missing lines
        self.last_entry: dict[int, PendingExec] = {}  # per thread, the exec of the last A line (its V lines follow)
        self.last_exit: dict[int, PendingExec] = {}  # per thread, the exec of the last X line (its W lines follow)
        self.held = 0  # events dropped with a pending exec evicted at PENDING_LIMIT
        self.held_behind: dict[int, PendingExec] = {}  # thread id -> the parent's exec its own exec waits behind
        self.memfd_exec_tids: set[int] = set()  # XF with the memfd fact seen: the next X of that tid runs a memfd
        self.unshare_caps: dict[int, tuple[int, int]] = {}  # TC seen: caps for the next NS (unshare) of that tid
        self.exec_facts: dict[int, tuple[int, int, int, int]] = {}  # XF seen: facts and caps for the next X
        self.exec_env: dict[int, bytearray] = {}  # XE seen: the environment for the next X of that tid
        self.exec_env_cut: set[int] = set()  # ... longer than ENV_LIMIT (the copy is its first bytes)
        self.own_pid = 0  # the bpftrace process itself: its BPF_PROG_LOADs (attaching its probes) are dropped
        self.mounts: dict[tuple[int, int | None], tuple[str, str, str]] = {}  # (tid, entry time): MA seen
        self.mount_exits: dict[tuple[int, int | None], Event] = {}  # MO seen before its MA
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
        data = _plain_printf(line)
        if data is not None:  # the common line, read without the JSON parser
            return self._printf(data)
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
            return self._printf(str(record.get("data", "")).rstrip("\n"))
        if kind == "lost_events":
            self.lost += int((record.get("data") or {}).get("events", 0))
        elif kind == "error":
            self.errors.append(str(record.get("data")))
        return []

    def _printf(self, data: str) -> list[Event]:
        """One printed record (its trailing newline removed)."""
        if data == "READY":
            self.ready = True
            return []
        try:
            out = self.decode(data)
        except (DecodeError, ValueError, IndexError):
            self.parse_errors += 1
            return []
        self.events += len(out)
        return out

    def flush(self) -> list[Event]:
        """Emit every exec still waiting for lines, and what waits behind it (at idle or shutdown)."""
        out: list[Event] = []
        for tid, execs in list(self.execs.items()):
            for pending in sorted(execs, key=PendingExec.time):
                out += self._drop(tid, pending)
        self.last_entry.clear()
        self.last_exit.clear()
        self.held_behind.clear()
        out += [self._mount_event(event, ("", "", "")) for event in self.mount_exits.values()]
        self.events += len(self.mount_exits)
        self.mount_exits.clear()
        return out

    def expire(self, now_ns: int) -> list[Event]:
        """At idle: emit what waits on lines over STALE_NS late at kernel time `now_ns` (CLOCK_MONOTONIC, as
        bpftrace's nsecs); an exec whose other lines are still in a CPU's ring keeps waiting for the next drain."""
        self.expired_at = max(self.expired_at, now_ns)
        return self._expire(now_ns)

    # ---- records -------------------------------------------------------------------------
    def decode(self, data: str) -> list[Event]:
        parts = data.split(SEP)
        tag = parts[0]
        layout = LAYOUTS.get(tag)
        if layout is None:
            raise DecodeError(f"unknown record tag {tag!r}")
        handler: Callable[[Fields], list[Event]] = getattr(self, f"_tag_{tag}")
        out = handler(Fields(layout, parts))
        if out and tag not in EXEC_TAGS and (self.execs or self.held_behind):
            out = [event for event in out if not self._held(event)]
        return out

    def _held(self, event: Event) -> bool:
        """Hold a thread's event behind its exec still missing lines (or behind the parent's exec its own waits
        for): rules see the new program's opens and connects after its exec, with its name, parent and args."""
        tid = event.get("proc.tid")
        if not isinstance(tid, int):
            return False
        at = int(event["evt.time"]) - self.clock_offset_ns
        waiting = [p for p in self.execs.get(tid, ()) if p.time() <= at]
        if waiting:
            max(waiting, key=PendingExec.time).after.append(event)
            return True
        parent = self.held_behind.get(tid)
        ppid = event.get("proc.ppid")
        if parent is not None and isinstance(ppid, int) and any(parent is p for p in self.execs.get(ppid, ())):
            parent.after.append(event)
            return True
        return False

    def _header(self, f: Fields, evt_type: str) -> Event:
        if len(f.parts) < HEADER_LEN:
            raise DecodeError("short header")
        _, nsecs, pid, tid, ppid, uid, gid, cgroup, pidns, vpid, comm = f.parts[:HEADER_LEN]  # HEADER's order
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

    # exec pairing: per thread, the execs whose lines are not all in yet, in the order their first line came
    def _thread(self, tid: int) -> list[PendingExec]:
        if len(self.held_behind) >= PENDING_LIMIT:
            self.held_behind.clear()
        if tid not in self.execs and len(self.execs) >= PENDING_LIMIT:  # a lost exit line must not grow memory
            for held in self.execs.pop(next(iter(self.execs))):
                self.parse_errors += 1
                self.held += len(held.after)
        return self.execs.setdefault(tid, [])

    def _emit(self, tid: int) -> list[Event]:
        """Emit the thread's completed execs (and the events held behind them), in kernel-time order."""
        execs = self.execs.get(tid)
        if not execs:
            return []
        out: list[Event] = []
        for pending in sorted(execs, key=PendingExec.time):
            if not pending.ready:
                break  # a later exec of the thread waits behind an earlier one still missing lines
            self._forget(tid, pending)
            parent = self._parent_waiting(pending)
            if parent is not None:  # the parent's exec is still missing lines: the child's comes after it
                parent.after += [self._finish_exec(pending), *pending.after]
                self.held_behind[tid] = parent
                continue
            out.append(self._finish_exec(pending))
            out += pending.after
        if not execs:
            del self.execs[tid]
        self.events += len(out)
        return out

    def _parent_waiting(self, pending: PendingExec) -> PendingExec | None:
        """The parent process's exec that began before this one and still misses lines, if any."""
        assert pending.event is not None
        ppid = pending.event.get("proc.ppid")
        if not isinstance(ppid, int) or ppid == pending.event["proc.tid"]:
            return None
        waiting = [p for p in self.execs.get(ppid, ()) if p.time() <= pending.time()]
        return max(waiting, key=PendingExec.time) if waiting else None

    def _forget(self, tid: int, pending: PendingExec) -> None:
        self.execs[tid].remove(pending)
        if self.last_entry.get(tid) is pending:
            del self.last_entry[tid]
        if self.last_exit.get(tid) is pending:
            del self.last_exit[tid]

    def _drop(self, tid: int, pending: PendingExec) -> list[Event]:
        """Emit an exec as it is (its missing lines are over STALE_NS late) or forget an entry without exit."""
        self._forget(tid, pending)
        if not self.execs[tid]:
            del self.execs[tid]
        out = ([self._finish_exec(pending)] if pending.event is not None else []) + pending.after
        self.events += len(out)
        return out

    def _expire(self, now_ns: int) -> list[Event]:
        """Emit execs whose missing lines are over STALE_NS late; forget entries whose exit never came."""
        out: list[Event] = self._stale_mounts(now_ns)
        for tid, execs in list(self.execs.items()):
            for pending in list(execs):
                if pending.event is not None and pending.exit_ns < now_ns - STALE_NS:
                    out += self._drop(tid, pending)
                elif pending.event is None and pending.entry_ns < now_ns - (
                        STALE_NS if any(p.time() > pending.time() for p in execs) else 5 * STALE_NS):
                    out += self._drop(tid, pending)  # its exit was lost; sooner when a later exec waits behind it
            if tid in self.execs:
                out += self._emit(tid)
        return out

    # exec: A (entry), V (more argv), X (exit), W (cwd). An exec's entry lines (A, V) come in a row from one
    # CPU's ring, its exit lines (XF, XE, X, W) in a row from the CPU it ran on after sched_exec: the two
    # groups meet here by thread and by the entry's timestamp, which the exit line repeats (kept in the kernel).
    def _tag_A(self, f: Fields) -> list[Event]:
        tid, entry_ns, filename = f["tid"], f["nsecs"], f["filename"]
        execs = self._thread(tid)
        exits = [p for p in execs if not p.entry_seen and p.event is not None and p.pairs_with(entry_ns, filename)]
        pending = min(exits, key=lambda p: p.exit_ns) if exits else None
        if pending is None:
            pending = PendingExec()
            execs.append(pending)
        pending.entry_seen = True
        pending.entry_ns = entry_ns
        pending.filename = filename
        pending.argv = until_empty(f.run("argv0", 3))
        pending.argv_more = len(pending.argv) == 3 and f.get("more") == "1"
        self.last_entry[tid] = pending
        return self._emit(tid)

    def _tag_V(self, f: Fields) -> list[Event]:
        tid, first = f["tid"], f["first"]
        pending = self.last_entry.get(tid)  # V lines follow their own A line in the same CPU's ring
        if pending is None or len(pending.argv) != first:
            return []
        pending.argv.extend(until_empty(f.run("argv0", 4)))
        pending.argv_more = len(pending.argv) == first + 4 < MAX_ARGV and f.get("more") == "1"
        return self._emit(tid)

    def _exec_event(self, f: Fields, from_memfd: bool) -> Event:
        """The execve event of an exit (X) line, before its facts, environment and names."""
        event = self._header(f, "execve")
        self._exec_result(event, f["ret"], f["loginuid"], f["sid"], f["tty_major"], f["tty_minor"], from_memfd)
        return event

    @staticmethod
    def _exec_result(event: Event, ret: int, loginuid: int, sid: int, tty_major: int, tty_minor: int,
                     from_memfd: bool) -> None:
        """The fields an exit (X) or whole-exec (E) line gives after the header."""
        event["evt.rawres"] = ret
        event["evt.res"] = errno_result(ret)
        event["user.loginuid"] = -1 if loginuid == 0xFFFFFFFF else loginuid
        event["proc.sid"] = sid
        event["proc.tty"] = tty_nr(tty_major, tty_minor)
        event["proc.is_exe_from_memfd"] = from_memfd
        if from_memfd:
            event["evt.arg.flags"] = "EXE_FROM_MEMFD"  # libscap's execve exit flag, as Falco renders it

    def _pop_env(self, event: Event, tid: int) -> None:
        """proc.env from the thread's XE lines, when they came."""
        env = self.exec_env.pop(tid, None)
        if env is not None:
            event["proc.env"] = environ_text(bytes(env))
            if tid in self.exec_env_cut:  # longer than the copy: the agent may read the rest from /proc
                self.exec_env_cut.discard(tid)
                event["_env_truncated"] = True

    def _tag_E(self, f: Fields) -> list[Event]:
        """A whole successful exec (the compiled probe's line): complete at once, nothing to pair. Its fields are
        read by position, in the order (and with the checks) `Fields` would read them."""
        parts = f.parts
        tid, facts, argc = int(parts[_E_TID]), int(parts[_E_FACTS]), int(parts[_E_ARGC])
        if not 0 <= argc <= E_MAX_ARGV:
            raise DecodeError(f"E line with argc {argc}")
        start = _E_ARGC + 1
        if len(parts) < start + argc + 2:
            raise DecodeError(f"E line with {len(parts)} fields for argc {argc}")
        event = self._header(f, "execve")
        self._exec_result(event, int(parts[_E_RET]), int(parts[_E_LOGINUID]), int(parts[_E_SID]),
                          int(parts[_E_TTY_MAJOR]), int(parts[_E_TTY_MINOR]), bool(facts & FACT_FROM_MEMFD))
        self._exec_facts(event, (facts, int(parts[_E_PERMITTED]), int(parts[_E_EFFECTIVE]),
                                 int(parts[_E_INHERITABLE])) if facts else None)
        env, state = SEP.join(parts[start + argc:-1]), parts[-1]  # the environment may hold the separator
        if state == "x":
            self._pop_env(event, tid)
        elif state:
            event["proc.env"] = env
            if state == "1":
                event["_env_truncated"] = True
        self.latest_ns = max(self.latest_ns, int(parts[_E_NSECS]))
        return [self._exec_names(event, parts[_E_FILENAME], parts[start:start + argc], parts[_E_CWD],
                                 int(parts[_E_ARGV_CUT]) == 1)]

    def _tag_X(self, f: Fields) -> list[Event]:
        tid = f["tid"]
        from_memfd = tid in self.memfd_exec_tids
        if from_memfd:
            self.memfd_exec_tids.discard(tid)
        event = self._exec_event(f, from_memfd)
        if f["ret"] == 0:
            self._exec_facts(event, self.exec_facts.pop(tid, None))
            self._pop_env(event, tid)
        # the X line's filename field is empty since the sensor stopped keeping it per thread (the entry's
        # timestamp pairs); recordings made before still carry it
        exit_ns, exit_filename, entry_ns = f["nsecs"], f.get("filename") or None, f.get("entry_ns")
        execs = self._thread(tid)
        candidates = [p for p in execs if p.entry_seen and p.event is None
                      and (entry_ns == p.entry_ns if entry_ns else p.entry_ns <= exit_ns)
                      and (exit_filename is None or exit_filename == p.filename)]
        if entry_ns is None and candidates:  # a recording without the entry's timestamp: the latest entry before
            candidates = [max(candidates, key=lambda p: p.entry_ns)]
        if candidates:
            pending = candidates[0]
        else:
            pending = PendingExec(entry_seen=entry_ns == 0, filename=exit_filename or "")  # 0: entry before start
            execs.append(pending)
        pending.event = event
        pending.exit_ns = exit_ns
        pending.exit_entry_ns = entry_ns
        pending.exit_filename = exit_filename
        self.last_exit[tid] = pending
        self.latest_ns = max(self.latest_ns, exit_ns)
        out = self._emit(tid)
        if exit_ns - self.expired_at > STALE_NS:
            self.expired_at = exit_ns
            out += self._expire(exit_ns)
        return out

    def _tag_W(self, f: Fields) -> list[Event]:
        tid, first = f["tid"], f["first"]
        pending = self.last_exit.get(tid)  # W lines follow their own X line in the same CPU's ring
        if pending is None or pending.event is None or pending.cwd_complete:
            return []
        names = []
        for item in f.run("cwd0", 3):
            name, _, is_root = item.rpartition("|")
            names.append((name, is_root == "1"))
            if is_root == "1":
                pending.cwd_done = True
                break
        pending.cwd[first] = names
        if f.get("at_root") == "1":
            pending.cwd_done = True
        pending.cwd_complete = pending.cwd_done or first + 3 >= MAX_CWD
        return self._emit(tid)

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
        if pending.exit_filename is not None and pending.exit_filename != pending.filename:
            # the entry line paired here was another attempt's (an execvp's failed PATH entries, read out of order)
            pending.filename = pending.exit_filename
        return self._exec_names(event, pending.filename, pending.argv, self._cwd(pending) if pending.cwd else "",
                                len(pending.argv) >= MAX_ARGV)

    @staticmethod
    def _exec_names(event: Event, filename: str, argv: list[str], cwd: str, argv_cut: bool) -> Event:
        """The exec's file, argv and cwd fields."""
        exepath = filename
        if exepath and not exepath.startswith("/") and cwd.startswith("/"):
            exepath = posixpath.normpath(posixpath.join(cwd, exepath))
        args = " ".join(argv[1:])
        event["proc.exepath"] = exepath
        event["proc.exe"] = argv[0] if argv else exepath
        event["proc.args"] = args
        event["proc.cmdline"] = f"{event['proc.name']} {args}".rstrip()
        event["evt.arg.filename"] = filename
        if cwd:
            event["proc.cwd"] = cwd
        if argv_cut:
            event["_argv_truncated"] = True
        return event

    def _tag_Q(self, f: Fields) -> list[Event]:
        event = self._header(f, "procexit")
        status = f["status"]
        event.update({"evt.arg.status": status, "evt.arg.ret": status >> 8 & 0xFF, "evt.arg.sig": status & 0x7F,
                      "evt.arg.core": int(bool(status & 0x80))})
        tid = f["tid"]
        if tid not in self.execs and not self.held_behind:  # nothing pending (every exec of the compiled probe)
            return [event]
        waiting = [p for p in self.execs.get(tid, ()) if p.event is not None or p.entry_ns <= f["nsecs"]]
        if waiting:  # an exec of this thread still misses lines (another CPU's ring): its exit comes after it
            max(waiting, key=PendingExec.time).after.append(event)
            return []
        parent = self.held_behind.pop(tid, None)
        if parent is not None and any(parent is p for p in self.execs.get(f["ppid"], ())):
            parent.after.append(event)  # its exec waits behind its parent's: so does its exit
            return []
        return [event]

    # network
    def _connect(self, f: Fields, family: int, evt_type: str = "connect", client_is_local: bool = True) -> list[Event]:
        """connect, and the calls that name their peer (sendto, sendmsg: this end is the client; recvfrom,
        recvmsg: the sender is)."""
        event = self._header(f, evt_type)
        fd = f["fd"]
        self._result(event, f["ret"])
        event["fd.num"] = fd
        event["evt.arg.fd"] = fd
        inet_fields(event, family, f["proto"], (f["laddr"], f["lport"]), (f["raddr"], f["rport"]),
                    client_is_local=client_is_local)
        return [event]

    def _tag_C4(self, f: Fields) -> list[Event]:
        return self._connect(f, 2)

    def _tag_C6(self, f: Fields) -> list[Event]:
        return self._connect(f, 10)

    def _tag_CU(self, f: Fields) -> list[Event]:
        event = self._header(f, "connect")
        fd = f["fd"]
        self._result(event, f["ret"])
        path = f["path"]
        event.update({"fd.num": fd, "evt.arg.fd": fd, "fd.type": "unix", "fd.typechar": "u", "fd.sockfamily": "unix",
                      "fd.name": path, "evt.arg.addr": path})
        return [event]

    def _accept(self, f: Fields, family: int) -> list[Event]:
        event = self._header(f, syscall_of(f["probe"]))
        fd = f["fd"]
        self._result(event, fd)
        event["fd.num"] = fd
        inet_fields(event, family, f["proto"], (f["laddr"], f["lport"]), (f["raddr"], f["rport"]),
                    client_is_local=False)
        return [event]

    def _tag_AC4(self, f: Fields) -> list[Event]:
        return self._accept(f, 2)

    def _tag_AC6(self, f: Fields) -> list[Event]:
        return self._accept(f, 10)

    # files
    def _tag_O(self, f: Fields) -> list[Event]:
        event = self._header(f, syscall_of(f["probe"]))
        ret, flags, mode, raw = f["ret"], f["flags"], f["mode"], f["path"]
        self._result(event, ret)
        access = flags & 3
        path = absolute_name(raw)
        directory, filename = posixpath.split(path)
        creates = bool(flags & O_CREAT)
        is_dir = flags & O_DIRECTORY == O_DIRECTORY
        event.update({
            "fd.num": ret if ret >= 0 else -1, "fd.name": path, "fd.nameraw": raw,
            "fd.type": "directory" if is_dir else "file", "fd.typechar": "d" if is_dir else "f",
            "fd.directory": directory, "fd.filename": filename,
            "evt.arg.name": path, "evt.arg.flags": open_flags(flags), "evt.rawarg.flags": flags,
            "evt.arg.mode": mode, "evt.arg.fd": ret,
            "evt.is_open_read": access in (0, 2), "evt.is_open_write": access in (1, 2),
            "evt.is_open_create": creates, "evt.is_open_exec": creates and bool(mode & 0o111),
            "thread.cap_effective": cap_names(f["caps"]),
        })
        if event["evt.type"] != "open":
            event["evt.arg.dirfd"] = f["dirfd"]
        return [event]

    def _tag_P1(self, f: Fields) -> list[Event]:
        """unlink, unlinkat, rmdir, mkdir, mkdirat with Falco's argument names for each."""
        syscall = syscall_of(f["probe"])
        event = self._header(f, syscall)
        self._result(event, f["ret"])
        path, flags = absolute_name(f["path"]), f["flags"]
        if syscall == "unlinkat":
            event.update({"evt.arg.dirfd": f["dirfd"], "evt.arg.name": path,
                          "evt.arg.flags": bit_names(flags, UNLINKAT_FLAGS), "evt.rawarg.flags": flags})
        else:
            event["evt.arg.path"] = path
            if syscall == "mkdirat":
                event["evt.arg.dirfd"] = f["dirfd"]
            if syscall.startswith("mkdir"):
                event["evt.arg.mode"] = flags
        return [event]

    def _tag_P2(self, f: Fields) -> list[Event]:
        """link(at), rename(at, at2), symlink(at) with Falco's argument names for each."""
        syscall = syscall_of(f["probe"])
        event = self._header(f, syscall)
        self._result(event, f["ret"])
        old, new, flags = f["oldpath"], absolute_name(f["newpath"]), f["flags"]
        if syscall.startswith("symlink"):
            event.update({"evt.arg.target": old, "evt.arg.linkpath": new})  # the target is kept as written
            if syscall == "symlinkat":
                event["evt.arg.linkdirfd"] = f["newdirfd"]
            return [event]
        event.update({"evt.arg.oldpath": absolute_name(old), "evt.arg.newpath": new})
        if syscall == "linkat":
            event.update({"evt.arg.olddir": f["olddirfd"], "evt.arg.newdir": f["newdirfd"],
                          "evt.arg.flags": bit_names(flags, LINKAT_FLAGS), "evt.rawarg.flags": flags})
        elif syscall.startswith("renameat"):
            event.update({"evt.arg.olddirfd": f["olddirfd"], "evt.arg.newdirfd": f["newdirfd"]})
            if syscall == "renameat2":
                event.update({"evt.arg.flags": bit_names(flags, RENAMEAT2_FLAGS), "evt.rawarg.flags": flags})
        return [event]

    def _tag_CHM(self, f: Fields) -> list[Event]:
        syscall = syscall_of(f["probe"])
        event = self._header(f, syscall)
        fd, mode, path = f["fd"], f["mode"], f["path"]
        self._result(event, f["ret"])
        event.update({"evt.arg.mode": mode_names(mode), "evt.rawarg.mode": mode, "fd.name": path})
        if syscall == "fchmod":
            event["evt.arg.fd"] = fd
        else:
            event["evt.arg.filename"] = path
            if syscall != "chmod":
                event["evt.arg.dirfd"] = fd
        return [event]

    def _tag_MF(self, f: Fields) -> list[Event]:
        event = self._header(f, "memfd_create")
        ret, flags = f["ret"], f["flags"]
        self._result(event, ret)
        name = f["name"]
        event.update({"evt.arg.fd": ret, "fd.num": ret, "evt.arg.name": name, "fd.name": f"memfd:{name}",
                      "evt.arg.flags": bit_names(flags, MEMFD_FLAGS), "evt.rawarg.flags": flags})
        return [event]

    def _tag_DUP(self, f: Fields) -> list[Event]:
        event = self._header(f, syscall_of(f["probe"]))
        newfd, family = f["newfd"], f["family"]
        self._result(event, f["ret"])
        event.update({"evt.arg.oldfd": f["oldfd"], "evt.arg.newfd": newfd, "evt.arg.flags": f["flags"],
                      "fd.num": newfd})
        if family in (2, 10):
            # a socket duplicated onto stdin/out/err: the client side is this end when it connected out
            inet_fields(event, family, f["proto"], (f["laddr"], f["lport"]), (f["raddr"], f["rport"]),
                        client_is_local=True)
        else:
            kind = "unix" if family == 1 else FILE_TYPES.get(f["imode"] & S_IFMT, "file")
            event["fd.type"] = kind
            event["fd.typechar"] = {"unix": "u", "pipe": "p", "directory": "d"}.get(kind, "f")
        return [event]

    # privileges, namespaces, mounts, modules
    def _tag_ID(self, f: Fields) -> list[Event]:
        syscall = syscall_of(f["probe"])
        event = self._header(f, syscall)
        self._result(event, f["ret"])
        values = [int(v) for v in f.run("id0", 3)]
        for name, value in zip(ID_ARGS.get(syscall, ()), values, strict=False):
            event[f"evt.arg.{name}"] = value
        return [event]

    def _tag_CAP(self, f: Fields) -> list[Event]:
        event = self._header(f, "capset")
        self._result(event, f["ret"])
        for name, lo, hi in (("cap_effective", "eff_lo", "eff_hi"), ("cap_permitted", "perm_lo", "perm_hi"),
                             ("cap_inheritable", "inh_lo", "inh_hi")):
            mask = f[hi] << 32 | f[lo]
            event[f"evt.arg.{name}"] = cap_names(mask)
            event[f"evt.rawarg.{name}"] = mask
        return [event]

    def _tag_PT(self, f: Fields) -> list[Event]:
        event = self._header(f, "ptrace")
        request = f["request"]
        self._result(event, f["ret"])
        event.update({"evt.arg.request": PTRACE_REQUESTS.get(request, str(request)), "evt.rawarg.request": request,
                      "evt.arg.pid": f["target"]})
        return [event]

    def _tag_MA(self, f: Fields) -> list[Event]:
        key = (f["tid"], f.get("entry_ns"))
        mount = (f["source"], f["target"], f["fstype"])
        event = self.mount_exits.pop(key, None)
        if event is not None:  # its exit line came first (another CPU's ring)
            self.events += 1
            return [self._mount_event(event, mount)]
        if len(self.mounts) >= PENDING_LIMIT:
            self.mounts.clear()
        self.mounts[key] = mount
        return []

    def _tag_MO(self, f: Fields) -> list[Event]:
        event = self._header(f, "mount")
        self._result(event, f["ret"])
        event["evt.arg.flags"] = f["flags"]
        key = (f["tid"], f.get("entry_ns"))
        mount = self.mounts.pop(key, None)
        if mount is not None or key[1] == 0:  # 0: the mount began before the program was loaded
            return [self._mount_event(event, mount or ("", "", ""))]
        if len(self.mount_exits) >= PENDING_LIMIT:
            self.parse_errors += 1
            return [self._mount_event(event, ("", "", ""))]
        self.mount_exits[key] = event  # waits for its entry line, at most STALE_NS
        return []

    @staticmethod
    def _mount_event(event: Event, mount: tuple[str, str, str]) -> Event:
        source, target, fstype = mount
        event.update({"evt.arg.dev": source, "evt.arg.dir": target, "evt.arg.type": fstype,
                      "evt.arg.source": source, "evt.arg.target": target, "fd.name": target})
        return event

    def _stale_mounts(self, now_ns: int) -> list[Event]:
        """Mount exits whose entry line is over STALE_NS late, emitted without their paths."""
        stale = [key for key, event in self.mount_exits.items()
                 if event["evt.time"] - self.clock_offset_ns < now_ns - STALE_NS]
        out = [self._mount_event(self.mount_exits.pop(key), ("", "", "")) for key in stale]
        self.events += len(out)
        return out

    def _tag_UM(self, f: Fields) -> list[Event]:
        event = self._header(f, "umount")
        flags = f["flags"]
        self._result(event, f["ret"])
        target = f["target"]
        event.update({"evt.arg.name": target, "evt.arg.target": target, "evt.arg.flags": flags, "fd.name": target})
        return [event]

    def _tag_NS(self, f: Fields) -> list[Event]:
        syscall = syscall_of(f["probe"])
        event = self._header(f, syscall)
        a, b = f["a"], f["b"]
        self._result(event, f["ret"])
        if syscall == "unshare":
            event.update({"evt.arg.flags": bit_names(a, CLONE_FLAGS), "evt.rawarg.flags": a})
            caps = self.unshare_caps.pop(f["tid"], None)
            if caps is not None:
                event["thread.cap_permitted"], event["thread.cap_effective"] = cap_names(caps[0]), cap_names(caps[1])
        else:
            event.update({"evt.arg.fd": a, "evt.arg.nstype": NS_TYPES.get(b, str(b)), "evt.rawarg.nstype": b})
        return [event]

    def _tag_MOD(self, f: Fields) -> list[Event]:
        event = self._header(f, syscall_of(f["probe"]))
        self._result(event, f["ret"])
        return [event]

    # --- Falco process/network rules (falcoproc) ---------------------------------------------------------
    def _tag_TC(self, f: Fields) -> list[Event]:
        if len(self.unshare_caps) >= PENDING_LIMIT:
            self.unshare_caps.clear()
        self.unshare_caps[f["tid"]] = (f["permitted"], f["effective"])
        return []

    def _tag_SK(self, f: Fields) -> list[Event]:
        """socket(): Falco's socket event with evt.arg.domain/type/proto (domain by name, as Falco renders it)."""
        event = self._header(f, "socket")
        ret, domain = f["ret"], f["domain"]
        self._result(event, ret)
        name = SOCKET_DOMAINS.get(domain, str(domain))
        event.update({"evt.arg.domain": name, "evt.rawarg.domain": domain, "evt.arg.type": f["type"],
                      "evt.arg.proto": f["proto"], "evt.args": f"domain={domain}({name}) type={f['type']} "
                      f"proto={f['proto']}"})
        if ret >= 0:
            event.update({"evt.arg.fd": ret, "fd.num": ret})
        return [event]

    # --- Falco network rules (falcolive2) ----------------------------------------------------------------
    def _datagram(self, f: Fields, family: int, sent: bool) -> list[Event]:
        """sendto/sendmsg to a new destination (this end is the client) or recvfrom/recvmsg from a new sender
        (the sender is, Falco's tuple for these calls) on an unconnected socket: the kernel side prints only
        those, so Falco's fd.connected=false and fd.name_changed=true (its outbound and inbound macros)."""
        events = self._connect(f, family, syscall_of(f["probe"]), client_is_local=sent)
        events[0].update({"fd.connected": False, "fd.name_changed": True})
        return events

    def _tag_SD4(self, f: Fields) -> list[Event]:
        return self._datagram(f, 2, sent=True)

    def _tag_SD6(self, f: Fields) -> list[Event]:
        return self._datagram(f, 10, sent=True)

    def _tag_RD4(self, f: Fields) -> list[Event]:
        return self._datagram(f, 2, sent=False)

    def _tag_RD6(self, f: Fields) -> list[Event]:
        return self._datagram(f, 10, sent=False)


    # --- Falco process/privilege rules (falcolive1) -------------------------------------------------------
    def _tag_XF(self, f: Fields) -> list[Event]:
        if len(self.exec_facts) >= PENDING_LIMIT:
            self.exec_facts.clear()
        self.exec_facts[f["tid"]] = (f["facts"], f["permitted"], f["effective"], f["inheritable"])
        if f["facts"] & FACT_FROM_MEMFD:
            if len(self.memfd_exec_tids) >= PENDING_LIMIT:
                self.memfd_exec_tids.clear()
            self.memfd_exec_tids.add(f["tid"])
        return []

    @staticmethod
    def _exec_facts(event: Event, facts: tuple[int, int, int, int] | None) -> None:
        """The fields of a successful exec that its XF line gives: the program prints XF whenever one of the
        facts holds, so no XF line means none does."""
        bits = facts[0] if facts else 0
        event["proc.is_vpgid_leader"] = bool(bits & FACT_PGRP_LEADER)
        event["proc.is_exe_upper_layer"] = bool(bits & FACT_UPPER_LAYER)
        if facts and bits & FACT_PID_ONE:
            for name, mask in zip(("thread.cap_permitted", "thread.cap_effective", "thread.cap_inheritable"),
                                  facts[1:], strict=True):
                event[name] = cap_names(mask)
        if bits & FACT_UPPER_LAYER:
            event["evt.arg.flags"] = "|".join(filter(None, (str(event.get("evt.arg.flags") or ""), "EXE_UPPER_LAYER")))

    def _tag_XE(self, f: Fields) -> list[Event]:
        """Part of an exec's environment: chunk j covers [offset + 64 j, + 64) of it, but was read as the 64
        bytes ending at the environment's end when it would run past it (kubeguard.bt's execenv section)."""
        tid, offset, length = f["tid"], f["offset"], f["length"]
        if offset < 0 or length < 0 or offset % (4 * ENV_CHUNK):
            raise DecodeError(f"XE line with offset {offset}, length {length}")
        size = min(length, ENV_LIMIT)
        env = self.exec_env.get(tid)
        if offset == 0 or env is None or len(env) != size:  # the first line of an exec (or its first was lost)
            if len(self.exec_env) >= PENDING_LIMIT:
                self.exec_env.clear()
                self.exec_env_cut.clear()
            env = self.exec_env[tid] = bytearray(size)
            if length > size:
                self.exec_env_cut.add(tid)
            else:
                self.exec_env_cut.discard(tid)
        for j, text in enumerate(f.run("chunk0", 4)):
            nominal = offset + ENV_CHUNK * j
            if nominal >= size:
                break
            start = min(nominal, length - ENV_CHUNK)
            data = unescape_buffer(text)
            piece = data[nominal - start:min(nominal + ENV_CHUNK, size) - start]
            env[nominal:nominal + len(piece)] = piece
        return []

    def _tag_BPF(self, f: Fields) -> list[Event]:
        """bpf(BPF_PROG_LOAD): Falco's bpf event with evt.arg.cmd (the enter side's argument) and the fd."""
        if f["pid"] == self.own_pid:
            return []
        event = self._header(f, "bpf")
        ret, cmd = f["ret"], f["cmd"]
        self._result(event, ret)
        event.update({"evt.arg.cmd": BPF_COMMANDS.get(cmd, str(cmd)), "evt.rawarg.cmd": cmd})
        if ret >= 0:
            event.update({"evt.arg.fd": ret, "fd.num": ret})
        return [event]

    def _tag_RV(self, f: Fields) -> list[Event]:
        """recvfrom() of a Java process: Falco's exit event with the data (evt.buffer: the first 64 bytes here,
        Falco's default snaplen is 80) and the socket's fd.type."""
        event = self._header(f, "recvfrom")
        ret, fd, family = f["ret"], f["fd"], f["family"]
        self._result(event, ret)
        data = unescape_buffer(f["data"])[:max(ret, 0)]  # the program prints 64 bytes of the buffer
        event.update({"fd.num": fd, "evt.arg.fd": fd, "evt.buffer": data, "evt.arg.data": data})
        kind = {2: "ipv4", 10: "ipv6", 1: "unix"}.get(family)
        if kind is not None:
            event["fd.type"], event["fd.typechar"] = kind, {"ipv4": "4", "ipv6": "6", "unix": "u"}[kind]
        return [event]

    def _tag_UF(self, f: Fields) -> list[Event]:
        """userfaultfd(): Falco's event with the result (the new fd) and evt.arg.flags."""
        event = self._header(f, "userfaultfd")
        ret, flags = f["ret"], f["flags"]
        self._result(event, ret)
        event.update({"evt.arg.flags": bit_names(flags, UFFD_FLAGS), "evt.rawarg.flags": flags})
        if ret >= 0:
            event["fd.num"] = ret
        return [event]


def unescape_buffer(text: str) -> bytes:
    """The bytes of bpftrace's %r rendering: `\\xNN` for non-printable bytes, printable ones as themselves."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text.startswith("\\x", i) and i + 4 <= len(text):
            try:
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        out.extend(text[i].encode())
        i += 1
    return bytes(out)


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
