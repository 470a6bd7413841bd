"""File writes below /etc, binary dirs and other watched paths, through fanotify (ctypes over libc).

Notification group: filesystem marks (FAN_MARK_FILESYSTEM) on every filesystem holding a watched
prefix, FAN_UNLIMITED_QUEUE, FAN_MODIFY | FAN_CLOSE_WRITE. Each event comes with an open fd of
the file, so the path is the real resolved one (readlink of /proc/self/fd/N), whatever path or
directory fd the writer used. One Event is emitted per writer and file: at its first FAN_MODIFY
(the writer still holds its fd, so fd.num can be found) or, for a write-open without a write, at
FAN_CLOSE_WRITE.

Permission hook (for enforcement): `PermissionGate` marks chosen mounts (never the root mount:
this process's own opens would wait for its own answers) with FAN_OPEN_EXEC_PERM and answers each
exec with `decide(event) -> bool`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kubeguard.model import Event
from kubeguard.sensors.base import SENSITIVE_PREFIXES, EmitFn, SensorError
from kubeguard.sensors.proc_connector import IDENTITY_FIELDS, ProcReader, proc_fields

FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_CLASS_CONTENT = 0x4
FAN_UNLIMITED_QUEUE = 0x10
FAN_MARK_ADD = 0x1
FAN_MARK_MOUNT = 0x10
FAN_MARK_FILESYSTEM = 0x100
FAN_MODIFY = 0x2
FAN_CLOSE_WRITE = 0x8
FAN_OPEN_EXEC = 0x1000
FAN_Q_OVERFLOW = 0x4000
FAN_OPEN_EXEC_PERM = 0x40000
FAN_ALLOW = 0x1
FAN_DENY = 0x2
FAN_NOFD = -1
AT_FDCWD = -100
O_RDONLY = 0
O_LARGEFILE = 0o100000
O_CLOEXEC = 0o2000000

METADATA = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
RESPONSE = struct.Struct("=iI")  # fd, response
PSEUDO_FS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
             "bpf", "mqueue", "hugetlbfs", "configfs", "fusectl", "pstore", "autofs", "binfmt_misc"}


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    libc.fanotify_init.restype = ctypes.c_int
    libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
    libc.fanotify_mark.restype = ctypes.c_int
    return libc


def fanotify_init(flags: int) -> int:
    """A new fanotify group fd (SensorError with the errno's text)."""
    fd: int = _libc().fanotify_init(flags, O_RDONLY | O_LARGEFILE | O_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise SensorError(f"fanotify_init failed: {os.strerror(err)}"
                          + (" (needs root / CAP_SYS_ADMIN)" if err == 1 else ""))
    return fd


def fanotify_mark(group: int, flags: int, mask: int, path: str) -> None:
    """Add a mark; OSError on failure."""
    if _libc().fanotify_mark(group, FAN_MARK_ADD | flags, mask, AT_FDCWD, path.encode()) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


def mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount, from /proc/self/mounts (octal escapes decoded)."""
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append((parts[1].encode().decode("unicode_escape"), parts[2]))
    return out


def mount_point_of(path: str, table: list[tuple[str, str]]) -> tuple[str, str]:
    """The deepest mount containing `path` (and its fs type)."""
    best = ("/", "")
    for point, fstype in table:
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fstype)
    return best


def read_events(data: bytes) -> list[tuple[int, int, int]]:
    """(mask, fd, pid) of each fanotify_event_metadata record in a read() buffer."""
    out = []
    offset = 0
    while offset + METADATA.size <= len(data):
        length, _vers, _res, _mlen, mask, fd, pid = METADATA.unpack_from(data, offset)
        if length < METADATA.size:
            raise ValueError(f"bad fanotify event length {length}")
        out.append((mask, fd, pid))
        offset += length
    return out


def fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def writer_fd(pid: int, fd: int) -> int:
    """The writer's own fd number for the file our event fd refers to (-1 when not found)."""
    try:
        mine = os.fstat(fd)
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                st = os.stat(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if st.st_ino == mine.st_ino and st.st_dev == mine.st_dev:
                return int(name)
    except OSError:
        pass
    return -1


class FanotifySensor:
    """fanotify write notifications below watched prefixes, with real resolved paths."""

    name = "fanotify"

    def __init__(self, prefixes: tuple[str, ...] = SENSITIVE_PREFIXES) -> None:
        self.prefixes = tuple(p for p in prefixes if not p.startswith(("/proc/", "/dev/mem", "/dev/kmem")))
        self.group = -1
        self.marked: list[str] = []
        self.reader = ProcReader()
        self.open_writes: set[tuple[int, int, int]] = set()  # (pid, dev, ino) already reported
        self.counters = {"events": 0, "lost": 0, "parse_errors": 0, "seen": 0}
        self.blind_spots = [
            "only file writes (modify / close after write); reads and execs are seen by the ebpf sensor",
            "files on filesystems that hold no watched prefix (e.g. a container's own overlay root)",
            "a writer gone before its event is read has no fd number (fd.num=-1), so rules requiring "
            "fd.num>=0 rely on the ebpf sensor's openat for it",
        ]

    def start(self) -> None:
        if os.geteuid() != 0:
            raise SensorError("the fanotify sensor needs root (CAP_SYS_ADMIN)")
        self.group = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE)
        table = mounts()
        done: set[int] = set()
        failures = []
        for prefix in self.prefixes:
            path = prefix.rstrip("/") or "/"
            while not os.path.exists(path) and path != "/":
                path = os.path.dirname(path)
            point, fstype = mount_point_of(os.path.realpath(path), table)
            if fstype in PSEUDO_FS:
                continue
            dev = os.stat(point).st_dev
            if dev in done:
                continue
            try:
                fanotify_mark(self.group, FAN_MARK_FILESYSTEM, FAN_MODIFY | FAN_CLOSE_WRITE, point)
            except OSError as exc:
                failures.append(f"{point}: {exc.strerror}")
                continue
            done.add(dev)
            self.marked.append(point)
        if not self.marked:
            self.close()
            raise SensorError("fanotify could not mark any watched filesystem: " + "; ".join(failures))
        if failures:
            self.blind_spots.append("unmarked filesystems: " + "; ".join(failures))

    def run(self, emit: EmitFn, stop: threading.Event) -> None:
        if self.group < 0:
            raise SensorError("fanotify sensor not started")
        own = os.getpid()
        while not stop.is_set():
            ready, _, _ = select.select([self.group], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.group, 1 << 16)
            except BlockingIOError:
                continue
            except OSError as exc:
                if stop.is_set() or self.group < 0:
                    return
                raise SensorError(f"reading fanotify events failed: {exc.strerror}") from exc
            try:
                records = read_events(data)
            except (ValueError, struct.error):
                self.counters["parse_errors"] += 1
                continue
            for mask, fd, pid in records:
                if mask & FAN_Q_OVERFLOW:
                    self.counters["lost"] += 1
                if fd == FAN_NOFD or fd < 0:
                    continue
                try:
                    event = self.decode(mask, fd, pid) if pid != own else None
                finally:
                    os.close(fd)
                if event is not None:
                    self.counters["events"] += 1
                    emit(event)

    def decode(self, mask: int, fd: int, pid: int) -> Event | None:
        """An Event for a write below a watched prefix (None for other files and repeats)."""
        self.counters["seen"] += 1
        try:
            path = fd_path(fd)
            st = os.fstat(fd)
        except OSError:
            self.counters["parse_errors"] += 1
            return None
        if not path.startswith(self.prefixes):
            return None
        key = (pid, st.st_dev, st.st_ino)
        if mask & FAN_MODIFY:
            if key in self.open_writes:
                if mask & FAN_CLOSE_WRITE:
                    self.open_writes.discard(key)
                return None
            if not mask & FAN_CLOSE_WRITE:
                self.open_writes.add(key)
        elif key in self.open_writes:  # the close of a write already reported
            self.open_writes.discard(key)
            return None
        directory, filename = os.path.split(path)
        num = writer_fd(pid, fd) if not mask & FAN_CLOSE_WRITE else -1
        event = Event({
            "evt.type": "open", "evt.dir": "<", "evt.time": time.time_ns(), "proc.pid": pid,
            "fd.name": path, "fd.directory": directory, "fd.filename": filename, "fd.type": "file",
            "fd.typechar": "f", "fd.num": num, "evt.is_open_write": True, "evt.is_open_read": False,
            "evt.arg.name": path, "evt.res": "SUCCESS", "evt.rawres": max(num, 0),
            "_fanotify_mask": "|".join(n for bit, n in ((FAN_MODIFY, "MODIFY"), (FAN_CLOSE_WRITE, "CLOSE_WRITE"))
                                       if mask & bit),
            "_sensor": self.name,
        })
        info = self.reader.read(pid)
        if info is not None:
            fields = proc_fields(info)
            event.update({k: v for k, v in fields.items() if k in IDENTITY_FIELDS or k in ("user.uid", "group.gid")})
        return event

    def close(self) -> None:
        group, self.group = self.group, -1
        if group >= 0:
            os.close(group)

    def stats(self) -> dict[str, int]:
        return dict(self.counters)


class PermissionGate:
    """fanotify exec permission events on chosen mounts, answered by `decide(event) -> allow?`."""

    def __init__(self, mount_points: list[str], decide: Callable[[Event], bool]) -> None:
        table = mounts()
        for point in mount_points:
            real = os.path.realpath(point)
            if mount_point_of(real, table)[0] != real:
                raise SensorError(f"{point} is not a mount point (permission marks are per mount)")
            if real == "/":
                raise SensorError("never mark / for permission events from Python: its own opens would block")
        self.mount_points = mount_points
        self.decide = decide
        self.group = -1
        self.counters = {"allowed": 0, "denied": 0, "errors": 0}

    def start(self) -> None:
        self.group = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK)
        for point in self.mount_points:
            try:
                fanotify_mark(self.group, FAN_MARK_MOUNT, FAN_OPEN_EXEC_PERM, point)
            except OSError as exc:
                self.close()
                raise SensorError(f"cannot mark {point} for exec permission events: {exc.strerror}") from exc

    def run(self, stop: threading.Event) -> None:
        """Answer every permission event until `stop` (an error in `decide` allows: never hang a process)."""
        while not stop.is_set():
            ready, _, _ = select.select([self.group], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.group, 1 << 16)
            except BlockingIOError:
                continue
            for _mask, fd, pid in read_events(data):
                allow = True
                try:
                    path = fd_path(fd)
                    directory, filename = os.path.split(path)
                    allow = bool(self.decide(Event({
                        "evt.type": "execve", "evt.dir": ">", "proc.pid": pid, "fd.name": path,
                        "proc.exepath": path, "fd.directory": directory, "fd.filename": filename,
                        "evt.is_open_exec": True})))
                except Exception:  # the decision failed: allow, count it
                    self.counters["errors"] += 1
                finally:
                    os.write(self.group, RESPONSE.pack(fd, FAN_ALLOW if allow else FAN_DENY))
                    os.close(fd)
                self.counters["allowed" if allow else "denied"] += 1

    def close(self) -> None:
        group, self.group = self.group, -1
        if group >= 0:
            os.close(group)
