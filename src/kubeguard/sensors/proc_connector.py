"""Fallback sensor: the kernel's netlink process connector (CN_PROC), in pure Python, plus /proc.

The kernel reports process lifecycle only (fork, exec, exit, uid/gid/sid changes, ptrace attach)
and only pids; everything else (exe, argv, cwd, cgroup, pid namespace, tty) is read from /proc
right after the event, so a process that has already exited is reported with what the kernel
gave (``proc.name`` ``<NA>``) and counted in ``stats()["proc_gone"]``.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from pathlib import Path

from kubeguard.model import Event
from kubeguard.sensors.base import EmitFn, SensorError, clock_offset_ns

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
NLMSG_DONE = 3
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
RCVBUF = 32 << 20
SO_RCVBUFFORCE = 33

NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
PROC_EVENT_HDR = struct.Struct("=IIQ")  # what, cpu, timestamp_ns (CLOCK_MONOTONIC)

PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_UID = 0x00000004
PROC_EVENT_GID = 0x00000040
PROC_EVENT_SID = 0x00000080
PROC_EVENT_PTRACE = 0x00000100
PROC_EVENT_COMM = 0x00000200
PROC_EVENT_EXIT = 0x80000000

IDENTITY_FIELDS = ("proc.name", "proc.exepath", "proc.exe", "proc.args", "proc.cmdline", "proc.ppid", "proc.cwd",
                   "proc.vpid", "user.loginuid", "_cgroup_id", "_cgroup_path", "_pidns")
KNOWN_LIMIT = 65536
BLIND_SPOTS = [
    "no network events (connect, accept), no file opens, no mount/memfd/dup/unshare/setns/chmod/capset",
    "exe, arguments, cwd and cgroup are read from /proc after the exec: short-lived processes may be gone",
    "credential changes are reported as setuid/setgid with the new ids, not the exact syscall",
    "works only from the host network namespace (the agent needs hostNetwork)",
]


def cgroup2_mount() -> Path | None:
    """Mount point of the cgroup v2 hierarchy (for the cgroup id = directory inode)."""
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "cgroup2":
                return Path(parts[1])
    except OSError:
        return None
    return None


def listen_message(op: int) -> bytes:
    """The netlink message that subscribes to (or leaves) the proc connector's multicast group."""
    payload = struct.pack("=I", op)
    cn = CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn


def parse_messages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(what, timestamp_ns, event body) of every proc event in one datagram."""
    out: list[tuple[int, int, bytes]] = []
    offset = 0
    while offset + NLMSG_HDR.size <= len(data):
        length, _mtype, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDR.size or offset + length > len(data):
            raise ValueError(f"bad netlink length {length}")
        body = offset + NLMSG_HDR.size
        idx, val, _s, _a, cn_len, _f = CN_MSG.unpack_from(data, body)
        if idx == CN_IDX_PROC and val == CN_VAL_PROC and cn_len >= PROC_EVENT_HDR.size:
            start = body + CN_MSG.size
            what, _cpu, stamp = PROC_EVENT_HDR.unpack_from(data, start)
            out.append((what, stamp, data[start + PROC_EVENT_HDR.size:start + cn_len]))
        offset += (length + 3) & ~3
    return out


class ProcReader:
    """What /proc still says about a process (empty dict fields when it is gone)."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self.proc = proc
        self.cgroup_root = cgroup2_mount()

    def read(self, pid: int) -> dict[str, object] | None:
        base = self.proc / str(pid)
        try:
            cmdline = (base / "cmdline").read_bytes()
            stat = (base / "stat").read_text()
        except OSError:
            return None
        info: dict[str, object] = {}
        argv = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0")]
        if argv and argv[-1] == "":
            argv.pop()
        info["argv"] = argv
        name_end = stat.rfind(")")
        info["comm"] = stat[stat.find("(") + 1:name_end]
        fields = stat[name_end + 2:].split()
        info["ppid"], info["sid"], info["tty_nr"] = int(fields[1]), int(fields[3]), int(fields[4])
        for key, link in (("exe", "exe"), ("cwd", "cwd")):
            try:
                info[key] = os.readlink(base / link)
            except OSError:
                info[key] = ""
        try:
            status = (base / "status").read_text()
            for line in status.splitlines():
                if line.startswith(("Uid:", "Gid:")):
                    info[line[:3].lower()] = int(line.split()[2])  # effective id, as user.uid is
                elif line.startswith("NSpid:"):
                    info["vpid"] = int(line.split()[-1])
            info["loginuid"] = int((base / "loginuid").read_text())
            info["pidns"] = os.stat(base / "ns" / "pid").st_ino
        except (OSError, ValueError, IndexError):
            pass
        try:
            for line in (base / "cgroup").read_text().splitlines():
                if line.startswith("0::"):
                    info["cgroup_path"] = line[3:]
                    if self.cgroup_root is not None:
                        info["cgroup_id"] = os.stat(str(self.cgroup_root) + line[3:]).st_ino
        except OSError:
            pass
        return info


def proc_fields(info: dict[str, object]) -> dict[str, object]:
    """Falco fields (proc.*, user.uid, group.gid, _cgroup_id, ...) from what ProcReader read."""
    argv = [str(a) for a in info["argv"]]  # type: ignore[attr-defined]
    exe = str(info.get("exe", ""))
    args = " ".join(argv[1:])
    comm = str(info["comm"])
    event: dict[str, object] = {
        "proc.name": comm, "proc.exepath": exe, "proc.exe": argv[0] if argv else exe, "proc.args": args,
        "proc.cmdline": f"{comm} {args}".rstrip(), "proc.ppid": info["ppid"], "proc.sid": info["sid"],
        "proc.tty": info["tty_nr"],
    }
    cwd = str(info.get("cwd", ""))
    if cwd:
        event["proc.cwd"] = cwd if cwd.endswith("/") else cwd + "/"
    for key, field in (("uid", "user.uid"), ("gid", "group.gid"), ("vpid", "proc.vpid"),
                       ("cgroup_id", "_cgroup_id"), ("pidns", "_pidns"), ("cgroup_path", "_cgroup_path")):
        if key in info:
            event[field] = info[key]
    if "loginuid" in info:
        login = int(info["loginuid"])  # type: ignore[call-overload]
        event["user.loginuid"] = -1 if login == 0xFFFFFFFF else login
    return event


class ProcConnectorSensor:
    """CN_PROC process events (exec, fork, exit, uid/gid/sid changes, ptrace attach) with /proc details."""

    name = "proc"

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self.blind_spots = list(BLIND_SPOTS)
        self.reader = ProcReader(proc)
        self.sock: socket.socket | None = None
        self.offset = clock_offset_ns()
        self.counters = {"events": 0, "lost": 0, "parse_errors": 0, "proc_gone": 0}
        self.known: dict[int, dict[str, object]] = {}  # tgid -> identity fields from its exec (or /proc)

    def start(self) -> None:
        if os.geteuid() != 0:
            raise SensorError("the proc sensor needs root (CAP_NET_ADMIN) to join the proc connector")
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except OSError as exc:
            raise SensorError(f"cannot open a netlink connector socket: {exc.strerror}") from exc
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((0, CN_IDX_PROC))
            sock.send(listen_message(PROC_CN_MCAST_LISTEN))
        except OSError as exc:
            sock.close()
            raise SensorError(f"cannot subscribe to the proc connector: {exc.strerror} "
                              "(it only works in the host network namespace)") from exc
        sock.settimeout(0.2)
        self.offset = clock_offset_ns()
        self.sock = sock

    def run(self, emit: EmitFn, stop: threading.Event) -> None:
        if self.sock is None:
            raise SensorError("proc sensor not started")
        sock = self.sock
        while not stop.is_set():
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the receive buffer overflowed: events were dropped
                    self.counters["lost"] += 1
                    continue
                if stop.is_set() or self.sock is None:
                    return
                raise SensorError(f"proc connector socket failed: {exc.strerror}") from exc
            try:
                messages = parse_messages(data)
            except (ValueError, struct.error):
                self.counters["parse_errors"] += 1
                continue
            for what, stamp, body in messages:
                try:
                    event = self.decode(what, stamp, body)
                except struct.error:
                    self.counters["parse_errors"] += 1
                    continue
                if event is not None:
                    self.counters["events"] += 1
                    emit(event)

    def decode(self, what: int, stamp: int, body: bytes) -> Event | None:
        """One proc event as a Falco-named Event (None for kinds we do not report)."""
        if what == PROC_EVENT_EXEC:
            pid, tgid = struct.unpack_from("=ii", body)
            return self._exec(tgid, pid, stamp)
        if what == PROC_EVENT_FORK:
            ppid, ptgid, cpid, ctgid = struct.unpack_from("=iiii", body)
            if cpid != ctgid:  # a new thread, not a process
                return None
            event = self._base("clone", ptgid, ppid, stamp)
            if ptgid in self.known:  # the child runs the parent's image until it execs
                self._remember(ctgid, self.known[ptgid])
            event.update({"evt.res": "SUCCESS", "evt.rawres": ctgid, "evt.arg.pid": ctgid})
            return event
        if what == PROC_EVENT_EXIT:
            pid, tgid, code, _signal = struct.unpack_from("=iiII", body)
            if pid != tgid:
                return None
            event = self._base("procexit", tgid, pid, stamp)
            event.update({"evt.arg.status": code, "evt.arg.ret": code >> 8 & 0xFF, "evt.arg.sig": code & 0x7F})
            return event
        if what in (PROC_EVENT_UID, PROC_EVENT_GID):
            pid, tgid, real, effective = struct.unpack_from("=iiII", body)
            kind = "uid" if what == PROC_EVENT_UID else "gid"
            event = self._base(f"set{kind}", tgid, pid, stamp)
            event.update({f"evt.arg.{kind}": effective, f"evt.arg.r{kind}": real, f"evt.arg.e{kind}": effective,
                          "evt.res": "SUCCESS", "evt.rawres": 0})
            event["user.uid" if kind == "uid" else "group.gid"] = effective
            return event
        if what == PROC_EVENT_SID:
            pid, tgid = struct.unpack_from("=ii", body)
            event = self._base("setsid", tgid, pid, stamp)
            event.update({"evt.res": "SUCCESS", "evt.rawres": tgid, "proc.sid": tgid})
            return event
        if what == PROC_EVENT_PTRACE:
            pid, tgid, tracer_pid, tracer_tgid = struct.unpack_from("=iiii", body)
            if tracer_tgid == 0:
                return None  # detach
            event = self._base("ptrace", tracer_tgid, tracer_pid, stamp)
            event.update({"evt.arg.request": "PTRACE_ATTACH", "evt.arg.pid": tgid, "evt.res": "SUCCESS",
                          "evt.rawres": 0})
            return event
        return None

    def _base(self, evt_type: str, tgid: int, pid: int, stamp: int) -> Event:
        event = Event({"evt.type": evt_type, "evt.dir": "<", "evt.time": stamp + self.offset, "proc.pid": tgid,
                       "proc.tid": pid, "_sensor": self.name})
        if evt_type != "execve":
            event.update(self._identity(tgid, forget=evt_type == "procexit"))
        return event

    def _identity(self, tgid: int, forget: bool) -> dict[str, object]:
        """Name, exe and cgroup of a process seen before (its exec), else from /proc while it lives."""
        known = self.known.pop(tgid, None) if forget else self.known.get(tgid)
        if known is None and not forget:
            info = self.reader.read(tgid)
            if info is not None:
                known = self._remember(tgid, proc_fields(info))
        return dict(known or {})

    def _remember(self, tgid: int, fields: dict[str, object]) -> dict[str, object]:
        keep = {k: v for k, v in fields.items() if k in IDENTITY_FIELDS}
        if len(self.known) >= KNOWN_LIMIT:
            self.known.pop(next(iter(self.known)))
        self.known[tgid] = keep
        return keep

    def _exec(self, tgid: int, pid: int, stamp: int) -> Event:
        event = self._base("execve", tgid, pid, stamp)
        event.update({"evt.res": "SUCCESS", "evt.rawres": 0})
        info = self.reader.read(tgid)
        if info is None:
            self.counters["proc_gone"] += 1
            event["proc.name"] = Event.NA
            return event
        fields = proc_fields(info)
        event.update(fields)
        self._remember(tgid, fields)
        return event

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        try:
            sock.send(listen_message(PROC_CN_MCAST_IGNORE))
        except OSError:
            pass
        sock.close()

    def stats(self) -> dict[str, int]:
        return dict(self.counters)

