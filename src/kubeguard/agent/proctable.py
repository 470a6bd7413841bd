"""The process table: pid -> what the process is (exe, args, parent), from exec/fork/exit events.

Sensors see one event at a time; rules ask about ancestry (`proc.pname`, `proc.aname[2]`,
`proc.pcmdline`). The table remembers every process it saw exec (or fork), reads /proc for the
ones it missed (started before the agent, or whose exec event was dropped), and forgets a process
a little after it exits, so late events of a process and its children still find their parents.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeguard.agent.event_values import as_int
from kubeguard.cluster.cgroups import CgroupIdentity, identity_from_path, path_from_proc_cgroup

ANCESTRY_DEPTH = 8  # proc.aname[0..7]
EXITED_KEEP_SECONDS = 5.0  # how long an exited process stays resolvable as a parent
GONE_RETRY_SECONDS = 1.0  # a pid /proc did not have is not looked up there again before this (unless it execs)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # units of /proc/PID/stat's start time


@dataclass(slots=True)
class ProcInfo:
    """What the agent knows about one process (a thread group)."""

    pid: int
    ppid: int = 0
    name: str = ""
    exepath: str = ""
    exe: str = ""  # Falco's proc.exe: argv[0] as the process was started
    args: str = ""
    uid: int | None = None
    tty: int | None = None
    cwd: str = ""
    identity: CgroupIdentity | None = None
    cgroup_id: int | None = None  # the cgroup id `identity` was resolved for (None: from /proc)
    exited_at: float | None = None
    started_ns: int | None = None  # wall-clock ns of the process's creation (Falco's clone_ts), read once
    start_read: bool = False
    exec_ns: int | None = None  # evt.time of its last successful exec (proc.duration's floor once /proc lost it)

    @property
    def cmdline(self) -> str:
        """Falco's proc.cmdline: the name followed by the arguments."""
        return f"{self.name} {self.args}".rstrip()


class ProcessTable:
    """pid -> ProcInfo with /proc fallback; bounded (oldest entries evicted past `max_entries`)."""

    def __init__(self, proc: Path = Path("/proc"), max_entries: int = 65536) -> None:
        self.proc = proc
        self.max_entries = max_entries
        self._table: OrderedDict[int, ProcInfo] = OrderedDict()
        self.proc_reads = 0
        self.misses = 0
        self._gone: dict[int, float] = {}  # pid -> monotonic time /proc last lacked it (a gone parent's chain)

    def __len__(self) -> int:
        return len(self._table)

    def update(self, event: dict[str, Any]) -> None:
        """Learn from one sensor event: exec creates/replaces, fork copies the parent, exit marks."""
        etype = event.get("evt.type")
        pid = as_int(event.get("proc.pid"))
        if pid is None:
            return
        if etype in ("execve", "execveat"):
            if event.get("evt.dir", "<") == "<" and _failed(event):
                return
            old = self._table.get(pid)
            info = ProcInfo(
                pid=pid,
                ppid=as_int(event.get("proc.ppid")) or (old.ppid if old else 0),
                name=str(event.get("proc.name") or ""),
                exepath=str(event.get("proc.exepath") or event.get("proc.exe") or ""),
                exe=str(event.get("proc.exe") or ""),
                args=str(event.get("proc.args") or ""),
                uid=as_int(event.get("user.uid")),
                tty=as_int(event.get("proc.tty")),
                cwd=str(event.get("proc.cwd") or ""),
                identity=old.identity if old else None,
                cgroup_id=old.cgroup_id if old else None,
            )
            self._put(info)
        elif etype in ("clone", "fork", "vfork", "clone3"):
            child = as_int(event.get("evt.arg.child_pid")) or as_int(event.get("proc.child_pid"))
            parent = self._table.get(pid)
            if child and parent is not None:
                self._put(ProcInfo(pid=child, ppid=pid, name=parent.name, exepath=parent.exepath,
                                   exe=parent.exe, args=parent.args, uid=parent.uid, tty=parent.tty, cwd=parent.cwd,
                                   identity=parent.identity, cgroup_id=parent.cgroup_id))
        elif etype == "procexit":
            gone = self._table.get(pid)
            if gone is not None:
                gone.exited_at = time.monotonic()
        if len(self._table) > self.max_entries:
            self._evict()

    def get(self, pid: int) -> ProcInfo | None:
        """The process `pid`, from the table or else /proc; None when unknown and gone."""
        info = self._table.get(pid)
        if info is None:
            missed = self._gone.get(pid)
            now = time.monotonic()
            if missed is not None and now - missed < GONE_RETRY_SECONDS:
                return None  # every event of a process whose parent is gone would retry the same failing open
            info = self._from_proc(pid)
            if info is not None:
                self._put(info)
            else:
                if len(self._gone) >= self.max_entries:
                    self._gone.clear()
                self._gone[pid] = now
        return info

    def started_ns(self, info: ProcInfo) -> int | None:
        """Wall-clock ns at which the process was created (its fork, as Falco's clone_ts: an exec keeps it),
        from /proc/PID/stat's start time, read once per process; None when the process is already gone."""
        if not info.start_read:
            info.start_read = True
            try:
                stat = (self.proc / str(info.pid) / "stat").read_text()
                ticks = int(stat[stat.rindex(")") + 2:].split()[19])
            except (OSError, ValueError, IndexError):
                return None
            age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / CLOCK_TICKS
            info.started_ns = time.time_ns() - int(age * 1e9)
        return info.started_ns

    def ancestors(self, pid: int, ppid: int | None = None, depth: int = ANCESTRY_DEPTH) -> list[ProcInfo | None]:
        """[parent, grandparent, ...] up to `depth - 1` entries; None where the chain is unknown."""
        chain: list[ProcInfo | None] = []
        seen = {pid}
        if not ppid:
            me = self.get(pid)
            ppid = me.ppid if me else 0
        current = ppid
        while len(chain) < depth - 1 and current and current not in seen:
            seen.add(current)
            info = self.get(current)
            chain.append(info)
            if info is None:
                break
            current = info.ppid
        return chain

    def _put(self, info: ProcInfo) -> None:
        self._gone.pop(info.pid, None)
        self._table[info.pid] = info
        self._table.move_to_end(info.pid)

    def _evict(self) -> None:
        self.expire()
        while len(self._table) > self.max_entries:
            self._table.popitem(last=False)

    def expire(self) -> int:
        """Forget processes that exited more than EXITED_KEEP_SECONDS ago; returns how many."""
        before = len(self._table)
        now = time.monotonic()
        for pid in [p for p, i in self._table.items() if i.exited_at and now - i.exited_at > EXITED_KEEP_SECONDS]:
            del self._table[pid]
        return before - len(self._table)

    def _from_proc(self, pid: int) -> ProcInfo | None:
        base = self.proc / str(pid)
        self.proc_reads += 1
        try:
            stat = (base / "stat").read_text()
            raw_cmdline = (base / "cmdline").read_bytes()
            cgroup = (base / "cgroup").read_text()
        except OSError:
            self.misses += 1
            return None
        # stat: "pid (comm) state ppid ..." where comm may hold spaces and parentheses
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        argv = [a.decode(errors="replace") for a in raw_cmdline.split(b"\0") if a]
        try:
            exepath = os.readlink(base / "exe")
        except OSError:
            exepath = argv[0] if argv else ""
        try:
            uid = int((base / "status").read_text().split("\nUid:", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            uid = None
        return ProcInfo(
            pid=pid, ppid=int(fields[1]) if len(fields) > 1 else 0, name=comm, exepath=exepath,
            exe=argv[0] if argv else "", args=" ".join(argv[1:]), uid=uid,
            identity=identity_from_path(path_from_proc_cgroup(cgroup)),
        )


def _failed(event: dict[str, Any]) -> bool:
    res = as_int(event.get("evt.rawres"))
    return res is not None and res < 0
